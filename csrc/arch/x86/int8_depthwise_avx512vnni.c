/* The AVX512-VNNI INT8 depthwise worker (int8_depthwise_x86.h): 16 outputs per vector, one vpdpbusd (4 uint8
 * inputs times 4 int8 weights added into int32, no saturation) per kernel row, and the requantization in
 * 64-bit lanes. Called only where the CPU has AVX512F/BW/VL and AVX512-VNNI. */
#include "int8_depthwise_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2")
#include <immintrin.h>
#include <string.h>
#include "int8_requant_avx512.h"
#include "parallel.h"

/* n bytes, 64 at a time, the last (or only) piece through a byte mask */
static void copy_bytes(uint8_t *dst, const uint8_t *src, int32_t n)
{
    for (; n > 64; n -= 64, dst += 64, src += 64) _mm512_storeu_si512((void *)dst, _mm512_loadu_si512((const void *)src));
    const __mmask64 keep = n == 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1;
    _mm512_mask_storeu_epi8((void *)dst, keep, _mm512_maskz_loadu_epi8(keep, (const void *)src));
}

/* Step 2: T[t] = the 4 bytes of P from byte stride_w * t, for t < words. */
static void build_words(const uint8_t *plane, int32_t words, int32_t sw, int32_t *T)
{
    if (sw == 1) {
        for (int32_t t = 0; t < words; t += 16) {
            const uint8_t *p = plane + t;
            const __m512i b0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
            const __m512i b1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 1)));
            const __m512i b2 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)));
            const __m512i b3 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 3)));
            const __m512i lo = _mm512_or_si512(b0, _mm512_slli_epi32(b1, 8));
            const __m512i hi = _mm512_or_si512(_mm512_slli_epi32(b2, 16), _mm512_slli_epi32(b3, 24));
            _mm512_storeu_si512((void *)(T + t), _mm512_or_si512(lo, hi));
        }
    } else { /* stride 2: bytes 2t, 2t + 1 are the uint16 at 2t, bytes 2t + 2, 2t + 3 the next one */
        for (int32_t t = 0; t < words; t += 16) {
            const uint8_t *p = plane + 2 * t;
            const __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
            const __m512i b = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + 2)));
            _mm512_storeu_si512((void *)(T + t), _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
        }
    }
}

void pt_int8_dw_x86_worker_avx512vnni(void *arg)
{
    const pt_int8_dw_x86_task *t = (const pt_int8_dw_x86_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, in_plane = g->h_in * g->w_in, out_plane = g->h_out * g->w_out;
    const int32_t kh = (int32_t)g->kh, kw = (int32_t)g->kw, sw = (int32_t)g->stride_w;
    uint8_t *plane = t->workspace + pt_core_id() * t->per_core_bytes;
    int32_t *T = (int32_t *)(plane + t->plane_bytes);
    uint8_t *codes = (uint8_t *)(T + 2 * t->words);
    memset(plane, 0, (size_t)t->plane_bytes); /* the padding stays zero: only the interior is rewritten */
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    int64_t c = u0 % C;
    for (int64_t u = u0; u < u1; u++, c = c + 1 == C ? 0 : c + 1) {
        pt_int8_dw_x86_pad_plane(t, t->x + u * in_plane, plane, copy_bytes);
        build_words(plane, t->words, sw, T);
        __m512i wrow[PT_INT8_DW_X86_MAX_KH]; /* kernel row ky: its kw <= 4 int8 weights, zero after */
        const int8_t *w = t->w + c * kh * kw;
        for (int32_t ky = 0; ky < kh; ky++) {
            uint32_t bytes = 0;
            for (int32_t kx = 0; kx < kw; kx++) bytes |= (uint32_t)(uint8_t)w[ky * kw + kx] << (8 * kx);
            wrow[ky] = _mm512_set1_epi32((int32_t)bytes);
        }
        const pt_requant16 q = pt_requant16_channel(t->rq, c, kh * kw);
        for (int32_t i = 0; i < t->outputs; i += 16) {
            __m512i acc = _mm512_setzero_si512();
            for (int32_t ky = 0; ky < kh; ky++)
                acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512((const void *)(T + i + t->tap_offset[ky])), wrow[ky]);
            _mm_storeu_si128((__m128i *)(codes + i), pt_requant16_codes(&q, t->rq, c, acc));
        }
        pt_int8_dw_x86_store_rows(t, codes, t->y + u * out_plane, copy_bytes);
    }
}
#endif
