/* Requantization of 16 int32 sums of one channel (two AVX2 registers of 8), exactly as int8_requant.h (for the
 * x86 files compiled with AVX2: include it after their target pragma). */
#ifndef PT_INT8_REQUANT_AVX2_H
#define PT_INT8_REQUANT_AVX2_H

#include <immintrin.h>
#include "int8_requant.h"

/* The requantization parameters of one channel, broadcast. */
typedef struct {
    __m256i bias, m, half, lo, hi;
    __m128i shift;
    int may_overflow; /* whether a bias-added sum can leave int32 */
} pt_requant8;

/* For channel c of a kernel whose sums of products are at most k_max * 255 * 128 in magnitude. */
static inline pt_requant8 pt_requant8_channel(const pt_requant *rq, int64_t c, int64_t k_max)
{
    const int s = rq->shift[c];
    const int64_t bias = rq->bias ? rq->bias[c] : 0;
    pt_requant8 q;
    q.may_overflow = (bias < 0 ? -bias : bias) + k_max * 255 * 128 > INT32_MAX;
    q.bias = _mm256_set1_epi32((int32_t)bias);
    q.m = _mm256_set1_epi64x(rq->multiplier[c]);
    q.half = _mm256_set1_epi64x(s ? (int64_t)1 << (s - 1) : 0);
    q.lo = _mm256_set1_epi64x(rq->clip_min);
    q.hi = _mm256_set1_epi64x(rq->clip_max);
    q.shift = _mm_cvtsi32_si128(s);
    return q;
}

/* The codes of 64-bit lane products p (lanes 0, 2, 4, 6 of them used), as pt_requant_one. */
static inline __m256i pt_requant8_code64(const pt_requant8 *q, __m256i p)
{
    __m256i r = _mm256_srl_epi64(_mm256_add_epi64(p, q->half), q->shift);
    r = _mm256_and_si256(r, _mm256_cmpgt_epi64(p, _mm256_setzero_si256()));  /* p <= 0 -> 0 */
    r = _mm256_blendv_epi8(r, q->hi, _mm256_cmpgt_epi64(r, q->hi));         /* min(r, hi) */
    return _mm256_blendv_epi8(r, q->lo, _mm256_cmpgt_epi64(q->lo, r));      /* max(r, lo) */
}

/* The 16 codes of the sums a0 (8 of them), a1 (the next 8) of channel c, exactly as pt_requantize: when every
 * bias-added sum fits in int32 (checked only where one may not), 32 x 32 -> 64-bit products of the even and
 * the odd lanes; otherwise the scalar formula. */
static inline __m128i pt_requant8_codes16(const pt_requant8 *q, const pt_requant *rq, int64_t c, __m256i a0,
                                          __m256i a1)
{
    const __m256i s0 = _mm256_add_epi32(a0, q->bias), s1 = _mm256_add_epi32(a1, q->bias);
    if (q->may_overflow) {
        /* signed overflow of a + bias: the sum's sign differs from both operands' signs */
        const __m256i ov = _mm256_or_si256(_mm256_and_si256(_mm256_xor_si256(s0, a0), _mm256_xor_si256(s0, q->bias)),
                                           _mm256_and_si256(_mm256_xor_si256(s1, a1), _mm256_xor_si256(s1, q->bias)));
        if (_mm256_movemask_ps(_mm256_castsi256_ps(ov))) {
            int32_t sums[16];
            uint8_t codes[16];
            _mm256_storeu_si256((__m256i *)sums, a0);
            _mm256_storeu_si256((__m256i *)(sums + 8), a1);
            pt_requantize_row(rq, c, sums, 16, codes, 1);
            return _mm_loadu_si128((const __m128i *)codes);
        }
    }
    const __m256i r0 = pt_requant8_code64(q, _mm256_mul_epi32(s0, q->m));
    const __m256i r1 = pt_requant8_code64(q, _mm256_mul_epi32(_mm256_srli_epi64(s0, 32), q->m));
    const __m256i r2 = pt_requant8_code64(q, _mm256_mul_epi32(s1, q->m));
    const __m256i r3 = pt_requant8_code64(q, _mm256_mul_epi32(_mm256_srli_epi64(s1, 32), q->m));
    /* interleave even and odd lanes back into order, then narrow to bytes */
    const __m256i y0 = _mm256_or_si256(r0, _mm256_slli_epi64(r1, 32));
    const __m256i y1 = _mm256_or_si256(r2, _mm256_slli_epi64(r3, 32));
    const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(y0, y1), 0xD8);
    return _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
}

#endif
