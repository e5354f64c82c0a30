/* The AVX512-VNNI INT8 depthwise worker (int8_depthwise_x86.h): 16 outputs per vector, one vpdpbusd (4 uint8
 * inputs times 4 int8 weights added into int32, no saturation) per kernel row, and the requantization in
 * 64-bit lanes. Called only where the CPU has AVX512F/BW/VL and AVX512-VNNI. */
#include "int8_depthwise_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,popcnt")
#include <immintrin.h>
#include <string.h>
#include "int8_requant_avx512.h"
#include "int8_vnni_avx512.h"
#include "parallel.h"

/* n bytes, 64 at a time, the last (or only) piece through a byte mask */
static void copy_bytes(uint8_t *dst, const uint8_t *src, int32_t n)
{
    for (; n > 64; n -= 64, dst += 64, src += 64) _mm512_storeu_si512((void *)dst, _mm512_loadu_si512((const void *)src));
    const __mmask64 keep = n == 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1;
    _mm512_mask_storeu_epi8((void *)dst, keep, _mm512_maskz_loadu_epi8(keep, (const void *)src));
}

/* Step 2: T[t] = the 4 bytes of P from byte stride_w * t, for t < words, 16 words from one 64-byte load. */
static void build_words(const uint8_t *plane, int32_t words, int32_t sw, int32_t *T)
{
    if (sw == 1) { /* word c = bytes c..c+3: dwords L..L+3 into 128-bit lane L, then bytes m..m+3 for word 4 L + m */
        const __m512i dwords = _mm512_setr_epi32(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6);
        const __m512i bytes = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6));
        for (int32_t t = 0; t < words; t += 16) {
            const __m512i r = _mm512_loadu_si512((const void *)(plane + t));
            _mm512_storeu_si512((void *)(T + t), _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dwords, r), bytes));
        }
    } else { /* stride 2: word c = bytes 2c..2c+3 = uint16 c and c + 1 */
        const __m512i pairs = _mm512_set_epi16(16, 15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8, 7, 7, 6,
                                               6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0);
        for (int32_t t = 0; t < words; t += 16) {
            const __m512i r = _mm512_loadu_si512((const void *)(plane + 2 * t));
            _mm512_storeu_si512((void *)(T + t), _mm512_permutexvar_epi16(pairs, r));
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
    uint16_t *keep = (uint16_t *)(T + t->words); /* per vector of flat outputs: its lanes with ow < W_out */
    uint8_t *codes = (uint8_t *)(keep + t->outputs / 16);
    /* step 4 for rows shorter than a vector: the valid lanes packed in registers; longer ones: the flat codes
     * stored, then the rows copied (fewer instructions per output there) */
    const int pack = g->w_out < 16;
    memset(plane, 0, (size_t)t->plane_bytes); /* the padding stays zero: only the interior is rewritten */
    {
        const int32_t valid = (int32_t)g->h_out * t->wq, Wo = (int32_t)g->w_out;
        for (int32_t i = 0; i < t->outputs; i += 16) {
            uint32_t m = 0;
            for (int32_t j = 0; j < 16; j++) m |= (uint32_t)(i + j < valid && (i + j) % t->wq < Wo) << j;
            keep[i / 16] = (uint16_t)m;
        }
    }
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
        uint8_t *y = t->y + u * out_plane;
        for (int32_t i = 0; i < t->outputs; i += 16) {
            __m512i acc = _mm512_setzero_si512();
            for (int32_t ky = 0; ky < kh; ky++)
                acc = pt_dpbusd(acc, _mm512_loadu_si512((const void *)(T + i + t->tap_offset[ky])), wrow[ky]);
            const __m512i codes32 = pt_requant16_codes32(&q, t->rq, c, acc);
            if (pack) { /* the codes of the valid columns packed to the front, stored in order */
                const __mmask16 m = keep[i / 16];
                const int n = __builtin_popcount(m);
                const __m512i packed = _mm512_maskz_compress_epi32(m, codes32);
                _mm_mask_storeu_epi8((void *)y, (__mmask16)((1u << n) - 1), _mm512_cvtepi32_epi8(packed));
                y += n;
            } else {
                _mm_storeu_si128((__m128i *)(codes + i), _mm512_cvtepi32_epi8(codes32));
            }
        }
        if (!pack) pt_int8_dw_x86_store_rows(t, codes, y, copy_bytes);
    }
}
#endif
