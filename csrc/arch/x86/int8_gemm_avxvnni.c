/* The AVX-VNNI microkernel of the INT8 engine (int8_gemm.c): the vpdpbusd of AVX512-VNNI in its VEX form on
 * 8-int32 ymm registers, for CPUs that have it without AVX-512 (or at the avx2 ISA level): 4 uint8 codes times 4
 * int8 weights added into an int32 lane per instruction, twice the products of the avx2 kernel's vpmaddwd on
 * int16 pairs. 6 output channels x 16 pixels: 12 accumulators (enough chains to cover vpdpbusd's latency on two
 * ports), two pixel vectors and the broadcast weights fill the 16 ymm registers. The panel is the uint8 k-quad
 * copy of the avx512vnni kernel (pt_int8_vnni_quads); the weights are read from their rows as they are. The
 * integers are those of the other microkernels. Called only where the CPU has AVX2 and AVX-VNNI. */
#include "int8_gemm_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx2,fma,avxvnni")
#include <immintrin.h>
#include <string.h>
#include "int_math.h"
#include "int8_requant_avx2.h"

#define MC 6 /* output channels per tile */

/* acc + per int32 lane the sum of the 4 products of the uint8 bytes of u with the int8 bytes of s (inline
 * assembly, as pt_dpbusd: the intrinsic's accumulator gets copied around every instruction by GCC 12; {vex}
 * picks the AVX-VNNI encoding, and GCC wants its braces escaped) */
static inline __m256i dpbusd_vex(__m256i acc, __m256i u, __m256i s)
{
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "x"(s));
    return acc;
}

/* Channels [c, c + channels) (channels <= MC) x `pixels` <= 16 pixels into y (at channel c and the tile's first
 * pixel): the sums over the k quads in 2 MC registers, then requantized from the registers. The rows past
 * `channels` repeat row c (their sums unused); bytes past K in a row's last quad meet codes that are 0. */
static void vnni_tile(const pt_int8_gemm_problem *pr, int64_t c, int64_t channels, const uint8_t *x, int64_t ldq,
                      int64_t pixels, uint8_t *y)
{
    const int64_t K = pr->K, full_quads = K / 4;
    const int8_t *row[MC];
    for (int i = 0; i < MC; i++) row[i] = pr->w + (c + (i < channels ? i : 0)) * K;
    __m256i acc[MC][2];
    for (int i = 0; i < MC; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (int64_t kq = 0; kq < full_quads; kq++, x += ldq) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)x);
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(x + 32));
        for (int i = 0; i < MC; i++) {
            int32_t word;
            memcpy(&word, row[i] + 4 * kq, 4);
            const __m256i a = _mm256_set1_epi32(word);
            acc[i][0] = dpbusd_vex(acc[i][0], b0, a);
            acc[i][1] = dpbusd_vex(acc[i][1], b1, a);
        }
    }
    if (K % 4) { /* the last quad, read without passing the end of the row */
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)x);
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(x + 32));
        for (int i = 0; i < MC; i++) {
            const __m256i a = _mm256_set1_epi32(pt_int8_last_quad(row[i] + 4 * full_quads, K % 4));
            acc[i][0] = dpbusd_vex(acc[i][0], b0, a);
            acc[i][1] = dpbusd_vex(acc[i][1], b1, a);
        }
    }
    const int64_t cs = pr->y_channel_stride, ps = pr->y_pixel_stride;
    for (int i = 0; i < channels; i++) {
        const pt_requant8 q = pt_requant8_channel(pr->rq, c + i, K);
        const __m128i codes = pt_requant8_codes16(&q, pr->rq, c + i, acc[i][0], acc[i][1]);
        uint8_t *dst = y + (c + i) * cs;
        if (ps == 1 && pixels == PT_INT8_AVXVNNI_PIXELS) {
            _mm_storeu_si128((__m128i *)dst, codes);
        } else {
            uint8_t bytes[16];
            _mm_storeu_si128((__m128i *)bytes, codes);
            for (int64_t j = 0; j < pixels; j++) dst[j * ps] = bytes[j];
        }
    }
}

void pt_int8_avxvnni_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const uint8_t *quads, int64_t ldq,
                           int64_t np, uint8_t *y)
{
    const int64_t ps = pr->y_pixel_stride;
    for (int64_t c = c0; c < c1; c += MC)
        for (int64_t p = 0; p < np; p += PT_INT8_AVXVNNI_PIXELS)
            vnni_tile(pr, c, min64(MC, c1 - c), quads + 4 * p, ldq, min64(PT_INT8_AVXVNNI_PIXELS, np - p), y + p * ps);
}
#endif
