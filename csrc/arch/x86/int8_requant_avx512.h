/* Requantization of 16 int32 sums of one channel in AVX-512 registers, exactly as int8_requant.h (for the
 * x86 files compiled with AVX512F/BW/VL: include it after their target pragma). */
#ifndef PT_INT8_REQUANT_AVX512_H
#define PT_INT8_REQUANT_AVX512_H

#include <immintrin.h>
#include "int8_requant.h"

/* The requantization parameters of one channel, broadcast. */
typedef struct {
    __m512i bias, m, half, lo, hi;
    __m128i shift;
    int may_overflow; /* whether a bias-added sum can leave int32 */
} pt_requant16;

/* For channel c of a kernel whose sums of products are at most k_max * 255 * 128 in magnitude. */
static inline pt_requant16 pt_requant16_channel(const pt_requant *rq, int64_t c, int64_t k_max)
{
    const int s = rq->shift[c];
    const int64_t bias = rq->bias ? rq->bias[c] : 0;
    pt_requant16 q;
    q.may_overflow = (bias < 0 ? -bias : bias) + k_max * 255 * 128 > INT32_MAX;
    q.bias = _mm512_set1_epi32(rq->bias ? rq->bias[c] : 0);
    q.m = _mm512_set1_epi64(rq->multiplier[c]);
    q.half = _mm512_set1_epi64(s ? (int64_t)1 << (s - 1) : 0);
    q.lo = _mm512_set1_epi64(rq->clip_min);
    q.hi = _mm512_set1_epi64(rq->clip_max);
    q.shift = _mm_cvtsi32_si128(s);
    return q;
}

/* The codes of 64-bit lane products p, as pt_requant_one: p <= 0 -> 0, then the clip. */
static inline __m512i pt_requant16_code64(const pt_requant16 *q, __m512i p)
{
    __m512i r = _mm512_srl_epi64(_mm512_add_epi64(p, q->half), q->shift);
    r = _mm512_maskz_mov_epi64(_mm512_cmpgt_epi64_mask(p, _mm512_setzero_si512()), r);
    return _mm512_max_epu64(_mm512_min_epu64(r, q->hi), q->lo);
}

/* The 16 codes of the sums acc of channel c (q its parameters) as int32 lanes, exactly as pt_requantize: when
 * every bias-added sum fits in int32 (checked only where one may not), 32 x 32 -> 64-bit products of the even
 * and the odd lanes; otherwise the scalar formula. */
static inline __m512i pt_requant16_codes32(const pt_requant16 *q, const pt_requant *rq, int64_t c, __m512i acc)
{
    const __m512i s = _mm512_add_epi32(acc, q->bias);
    /* signed overflow of acc + bias: the sum's sign differs from both operands' signs */
    const __m512i ov = _mm512_and_si512(_mm512_xor_si512(s, acc), _mm512_xor_si512(s, q->bias));
    if (q->may_overflow && _mm512_cmplt_epi32_mask(ov, _mm512_setzero_si512())) {
        int32_t sums[16];
        uint8_t codes[16];
        _mm512_storeu_si512((void *)sums, acc);
        pt_requantize_row(rq, c, sums, 16, codes, 1);
        return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)codes));
    }
    const __m512i even = pt_requant16_code64(q, _mm512_mul_epi32(s, q->m));
    const __m512i odd = pt_requant16_code64(q, _mm512_mul_epi32(_mm512_srli_epi64(s, 32), q->m));
    return _mm512_or_si512(even, _mm512_slli_epi64(odd, 32)); /* lane order restored */
}

/* The same as 16 bytes. */
static inline __m128i pt_requant16_codes(const pt_requant16 *q, const pt_requant *rq, int64_t c, __m512i acc)
{
    return _mm512_cvtepi32_epi8(pt_requant16_codes32(q, rq, c, acc));
}

#endif
