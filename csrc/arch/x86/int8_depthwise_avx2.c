/* The AVX2 INT8 depthwise worker (int8_depthwise_x86.h): the 4 bytes of each word of T are kept as two words of
 * int16 pairs, E = (byte 0, byte 2) and O = (byte 1, byte 3), so a kernel row is two vpmaddwd (int16 pairs
 * multiplied and added into int32, exact for uint8 x int8) per 8 outputs. Called only where the CPU has AVX2. */
#include "int8_depthwise_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx2")
#include <immintrin.h>
#include <string.h>
#include "int8_requant_avx2.h"
#include "parallel.h"

/* n bytes, 8 at a time, then byte by byte */
static void copy_bytes(uint8_t *dst, const uint8_t *src, int32_t n)
{
    for (; n >= 8; n -= 8, dst += 8, src += 8) memcpy(dst, src, 8);
    for (int32_t j = 0; j < n; j++) dst[j] = src[j];
}

/* Step 2 (split): E[t] = P[s t] | P[s t + 2] << 16 and O[t] = P[s t + 1] | P[s t + 3] << 16, s = stride_w. */
static void build_words(const uint8_t *plane, int32_t words, int32_t sw, int32_t *E, int32_t *O)
{
    for (int32_t t = 0; t < words; t += 8) {
        __m256i b0, b1, b2, b3; /* bytes s t + j of 8 words, zero-extended to int32 */
        if (sw == 1) {
            const uint8_t *p = plane + t;
            b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
            b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 1)));
            b2 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2)));
            b3 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 3)));
        } else { /* stride 2: bytes 2t, 2t + 1 are the uint16 at 2t, bytes 2t + 2, 2t + 3 the next one */
            const uint8_t *p = plane + 2 * t;
            const __m256i a = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
            const __m256i b = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2)));
            const __m256i low_byte = _mm256_set1_epi32(0xFF);
            b0 = _mm256_and_si256(a, low_byte);
            b1 = _mm256_srli_epi32(a, 8);
            b2 = _mm256_and_si256(b, low_byte);
            b3 = _mm256_srli_epi32(b, 8);
        }
        _mm256_storeu_si256((__m256i *)(E + t), _mm256_or_si256(b0, _mm256_slli_epi32(b2, 16)));
        _mm256_storeu_si256((__m256i *)(O + t), _mm256_or_si256(b1, _mm256_slli_epi32(b3, 16)));
    }
}

static inline int32_t int16_pair(int32_t lo, int32_t hi)
{
    return (int32_t)((uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16));
}

void pt_int8_dw_x86_worker_avx2(void *arg)
{
    const pt_int8_dw_x86_task *t = (const pt_int8_dw_x86_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, in_plane = g->h_in * g->w_in, out_plane = g->h_out * g->w_out;
    const int32_t kh = (int32_t)g->kh, kw = (int32_t)g->kw, sw = (int32_t)g->stride_w;
    uint8_t *plane = t->workspace + pt_core_id() * t->per_core_bytes;
    int32_t *E = (int32_t *)(plane + t->plane_bytes), *O = E + t->words;
    uint8_t *codes = (uint8_t *)(O + t->words);
    memset(plane, 0, (size_t)t->plane_bytes); /* the padding stays zero: only the interior is rewritten */
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    int64_t c = u0 % C;
    for (int64_t u = u0; u < u1; u++, c = c + 1 == C ? 0 : c + 1) {
        pt_int8_dw_x86_pad_plane(t, t->x + u * in_plane, plane, copy_bytes);
        build_words(plane, t->words, sw, E, O);
        __m256i w_even[PT_INT8_DW_X86_MAX_KH], w_odd[PT_INT8_DW_X86_MAX_KH]; /* (w0, w2) and (w1, w3) of row ky */
        const int8_t *w = t->w + c * kh * kw;
        for (int32_t ky = 0; ky < kh; ky++) {
            int32_t r[4] = {0, 0, 0, 0};
            for (int32_t kx = 0; kx < kw; kx++) r[kx] = w[ky * kw + kx];
            w_even[ky] = _mm256_set1_epi32(int16_pair(r[0], r[2]));
            w_odd[ky] = _mm256_set1_epi32(int16_pair(r[1], r[3]));
        }
        const pt_requant8 q = pt_requant8_channel(t->rq, c, kh * kw);
        for (int32_t i = 0; i < t->outputs; i += 16) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0;
            for (int32_t ky = 0; ky < kh; ky++) {
                const int32_t k = i + t->tap_offset[ky];
                const __m256i e0 = _mm256_loadu_si256((const __m256i *)(E + k));
                const __m256i e1 = _mm256_loadu_si256((const __m256i *)(E + k + 8));
                const __m256i o0 = _mm256_loadu_si256((const __m256i *)(O + k));
                const __m256i o1 = _mm256_loadu_si256((const __m256i *)(O + k + 8));
                a0 = _mm256_add_epi32(a0, _mm256_add_epi32(_mm256_madd_epi16(e0, w_even[ky]),
                                                           _mm256_madd_epi16(o0, w_odd[ky])));
                a1 = _mm256_add_epi32(a1, _mm256_add_epi32(_mm256_madd_epi16(e1, w_even[ky]),
                                                           _mm256_madd_epi16(o1, w_odd[ky])));
            }
            _mm_storeu_si128((__m128i *)(codes + i), pt_requant8_codes16(&q, t->rq, c, a0, a1));
        }
        pt_int8_dw_x86_store_rows(t, codes, t->y + u * out_plane, copy_bytes);
    }
}
#endif
