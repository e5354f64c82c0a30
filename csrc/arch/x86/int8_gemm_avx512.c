/* The AVX512-VNNI microkernel of the INT8 engine (int8_gemm.c): 8 output channels x 32 pixels, one vpdpwssd
 * (int16 pairs multiplied and added into int32, no saturation) per channel and 16 pixels, in place of the AVX2
 * kernel's vpmaddwd + vpaddd. The panel and packed-weight layouts are the AVX2 kernel's (k-pair-major panel,
 * 4 weight pairs per k pair), with the panel padded to 32 pixels; the integers are the same. Called only where
 * the CPU has AVX512F/BW/VL and AVX512-VNNI. */
#include "int8_gemm_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2")
#include <immintrin.h>
#include "int_math.h"
#include "int8_requant_avx512.h"

/* Channels [c, c + channels) (channels <= MC, MC 4 or 8) x `pixels` <= 32 pixels into y (at channel c and the
 * tile's first pixel): the sums sum_kp dot(w pair of channel i, x pair of pixel j) in 2 MC registers (two blocks of packed weights, 4
 * channels each, wp and wp + block_stride, for 8 channels: 16 accumulators cover the latency of vpdpwssd
 * on two ports), then requantized from the registers. Always inlined with a constant MC. */
static inline __attribute__((always_inline)) void vnni_tile(int mc, const pt_int8_gemm_problem *pr, int64_t c,
                                                            int64_t channels, int64_t kpairs, const int32_t *wp,
                                                            int64_t block_stride, const int16_t *x, int64_t ldk, int64_t pixels,
                                                            uint8_t *y)
{
    __m512i acc[8][2];
    for (int i = 0; i < mc; i++) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    for (int64_t kp = 0; kp < kpairs; kp++, wp += 4, x += ldk) {
        const __m512i b0 = _mm512_loadu_si512((const void *)x);
        const __m512i b1 = _mm512_loadu_si512((const void *)(x + 32));
        for (int i = 0; i < mc; i++) {
            const __m512i a = _mm512_set1_epi32(wp[(i / 4) * block_stride + i % 4]);
            acc[i][0] = _mm512_dpwssd_epi32(acc[i][0], a, b0);
            acc[i][1] = _mm512_dpwssd_epi32(acc[i][1], a, b1);
        }
    }
    const int64_t cs = pr->y_channel_stride, ps = pr->y_pixel_stride;
    for (int i = 0; i < channels; i++) {
        const pt_requant16 q = pt_requant16_channel(pr->rq, c + i);
        for (int64_t half = 0; half < 2 && 16 * half < pixels; half++) {
            const int64_t n = min64(16, pixels - 16 * half);
            const __m128i codes = pt_requant16_codes(&q, pr->rq, c + i, acc[i][half]);
            uint8_t *dst = y + (c + i) * cs + 16 * half * ps;
            if (ps == 1) {
                _mm_mask_storeu_epi8((void *)dst, (__mmask16)((1u << n) - 1), codes);
            } else {
                uint8_t bytes[16];
                _mm_storeu_si128((__m128i *)bytes, codes);
                for (int64_t j = 0; j < n; j++) dst[j * ps] = bytes[j];
            }
        }
    }
}

void pt_int8_avx512vnni_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const int32_t *wpack,
                              int64_t kpairs, const int16_t *panel, int64_t ldk, int64_t np, uint8_t *y)
{
    const int64_t ps = pr->y_pixel_stride;
    for (int64_t c = c0; c < c1; c += 8) { /* c0 is a multiple of 4: 8-channel tiles, then maybe one of 4 */
        const int64_t channels = min64(8, c1 - c);
        const int32_t *wp = wpack + (c / 4) * kpairs * 4;
        for (int64_t p = 0; p < np; p += PT_INT8_VNNI_PIXELS) {
            const int64_t pixels = min64(PT_INT8_VNNI_PIXELS, np - p);
            if (channels > 4)
                vnni_tile(8, pr, c, channels, kpairs, wp, kpairs * 4, panel + 2 * p, ldk, pixels, y + p * ps);
            else
                vnni_tile(4, pr, c, channels, kpairs, wp, kpairs * 4, panel + 2 * p, ldk, pixels, y + p * ps);
        }
    }
}
#endif
