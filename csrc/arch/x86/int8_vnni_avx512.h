/* vpdpbusd (AVX512-VNNI) as inline assembly, for the files compiled with AVX512-VNNI. GCC 12 keeps the
 * accumulator of the _mm512_dpbusd_epi32 intrinsic in the wrong register: every one of them was copied in
 * and out around each instruction (and spilled) in the inner loops; tied "+v" operands keep it in place. */
#ifndef PT_INT8_VNNI_AVX512_H
#define PT_INT8_VNNI_AVX512_H

#include <immintrin.h>

/* acc + per int32 lane the sum of the 4 products of the uint8 bytes of u with the int8 bytes of s */
static inline __m512i pt_dpbusd(__m512i acc, __m512i u, __m512i s)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
    return acc;
}

#endif
