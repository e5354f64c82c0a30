/* The AVX512-VNNI microkernel of the INT8 engine (int8_gemm.c): 4 output channels x 32 pixels, one vpdpwssd
 * (int16 pairs multiplied and added into int32, no saturation) per channel and 16 pixels, in place of the AVX2
 * kernel's vpmaddwd + vpaddd. The panel and packed-weight layouts are the AVX2 kernel's (k-pair-major panel,
 * 4 weight pairs per k pair), with the panel padded to 32 pixels; the integers are the same. Called only where
 * the CPU has AVX512F/BW/VL and AVX512-VNNI. */
#include "int8_gemm_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2")
#include <immintrin.h>
#include "int_math.h"

/* acc[i][j] = sum_kp dot(w pair of channel i, x pair of pixel j), 4 channels x 32 pixels. */
static void vnni_4x32(int64_t kpairs, const int32_t *wp, const int16_t *x, int64_t ldk, int32_t acc[4][32])
{
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00;
    __m512i c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int64_t kp = 0; kp < kpairs; kp++, wp += 4, x += ldk) {
        const __m512i b0 = _mm512_loadu_si512((const void *)x);
        const __m512i b1 = _mm512_loadu_si512((const void *)(x + 32));
        __m512i a = _mm512_set1_epi32(wp[0]);
        c00 = _mm512_dpwssd_epi32(c00, a, b0);
        c01 = _mm512_dpwssd_epi32(c01, a, b1);
        a = _mm512_set1_epi32(wp[1]);
        c10 = _mm512_dpwssd_epi32(c10, a, b0);
        c11 = _mm512_dpwssd_epi32(c11, a, b1);
        a = _mm512_set1_epi32(wp[2]);
        c20 = _mm512_dpwssd_epi32(c20, a, b0);
        c21 = _mm512_dpwssd_epi32(c21, a, b1);
        a = _mm512_set1_epi32(wp[3]);
        c30 = _mm512_dpwssd_epi32(c30, a, b0);
        c31 = _mm512_dpwssd_epi32(c31, a, b1);
    }
    _mm512_storeu_si512((void *)acc[0], c00); _mm512_storeu_si512((void *)(acc[0] + 16), c01);
    _mm512_storeu_si512((void *)acc[1], c10); _mm512_storeu_si512((void *)(acc[1] + 16), c11);
    _mm512_storeu_si512((void *)acc[2], c20); _mm512_storeu_si512((void *)(acc[2] + 16), c21);
    _mm512_storeu_si512((void *)acc[3], c30); _mm512_storeu_si512((void *)(acc[3] + 16), c31);
}

void pt_int8_avx512vnni_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const int32_t *wpack,
                              int64_t kpairs, const int16_t *panel, int64_t ldk, int64_t np, uint8_t *y)
{
    const int64_t cs = pr->y_channel_stride, ps = pr->y_pixel_stride;
    for (int64_t c = c0; c < c1; c += 4) { /* c0 is a multiple of 4 */
        const int64_t mc = min64(4, c1 - c);
        for (int64_t p = 0; p < np; p += PT_INT8_VNNI_PIXELS) {
            int32_t acc[4][32];
            vnni_4x32(kpairs, wpack + (c / 4) * kpairs * 4, panel + 2 * p, ldk, acc);
            for (int64_t half = 0; half < 32 && p + half < np; half += 16) {
                const int64_t mp = min64(16, np - p - half);
                for (int64_t i = 0; i < mc; i++)
                    pt_int8_avx2_requant_row16(pr->rq, c + i, acc[i] + half, mp, y + (c + i) * cs + (p + half) * ps,
                                               ps);
            }
        }
    }
}
#endif
