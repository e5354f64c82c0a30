/* The AVX512-VNNI microkernel of the INT8 engine (int8_gemm.c): 8 output channels x 32 pixels, one vpdpbusd
 * (4 uint8 codes times 4 int8 weights added into int32, no saturation) per channel and 16 pixels: twice the
 * products per instruction of vpdpwssd on int16 pairs. The engine's int16 panel is copied once to uint8 k
 * quads (pt_int8_vnni_quads); the weights are read from their rows as they are (no packing). The integers are those of the other
 * microkernels. Called only where the CPU has AVX512F/BW/VL and AVX512-VNNI. */
#include "int8_gemm_x86.h"

#if PT_ARCH_X86
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2")
#include <immintrin.h>
#include <string.h>
#include "int_math.h"
#include "int8_requant_avx512.h"
#include "int8_vnni_avx512.h"

/* Channels [c, c + channels) (channels <= MC, MC 4 or 8) x `pixels` <= 32 pixels into y (at channel c and the
 * tile's first pixel): the sums over the k quads of dot(4 weights of channel i, 4 codes of pixel j) in 2 MC
 * registers (16 accumulators for 8 channels cover the latency of vpdpbusd on two ports), then requantized
 * from the registers. The weights are read from the rows of pr->w (the rows past `channels` repeat row c, their
 * sums unused); bytes past K in a row's last quad meet codes that are 0. Always inlined with a constant MC. */
static inline __attribute__((always_inline)) void vnni_tile(int mc, const pt_int8_gemm_problem *pr, int64_t c,
                                                            int64_t channels, const uint8_t *x, int64_t ldq,
                                                            int64_t pixels, uint8_t *y)
{
    const int64_t K = pr->K, full_quads = K / 4;
    const int8_t *row[8];
    for (int i = 0; i < mc; i++) row[i] = pr->w + (c + (i < channels ? i : 0)) * K;
    __m512i acc[8][2];
    for (int i = 0; i < mc; i++) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    for (int64_t kq = 0; kq < full_quads; kq++, x += ldq) {
        const __m512i b0 = _mm512_loadu_si512((const void *)x);
        const __m512i b1 = _mm512_loadu_si512((const void *)(x + 64));
        for (int i = 0; i < mc; i++) {
            int32_t word;
            memcpy(&word, row[i] + 4 * kq, 4);
            const __m512i a = _mm512_set1_epi32(word);
            acc[i][0] = pt_dpbusd(acc[i][0], b0, a);
            acc[i][1] = pt_dpbusd(acc[i][1], b1, a);
        }
    }
    if (K % 4) { /* the last quad, read without passing the end of the row */
        const __m512i b0 = _mm512_loadu_si512((const void *)x);
        const __m512i b1 = _mm512_loadu_si512((const void *)(x + 64));
        for (int i = 0; i < mc; i++) {
            const __m512i a = _mm512_set1_epi32(pt_int8_last_quad(row[i] + 4 * full_quads, K % 4));
            acc[i][0] = pt_dpbusd(acc[i][0], b0, a);
            acc[i][1] = pt_dpbusd(acc[i][1], b1, a);
        }
    }
    const int64_t cs = pr->y_channel_stride, ps = pr->y_pixel_stride;
    for (int i = 0; i < channels; i++) {
        const pt_requant16 q = pt_requant16_channel(pr->rq, c + i, K);
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

void pt_int8_avx512vnni_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const uint8_t *quads,
                              int64_t ldq, int64_t np, uint8_t *y)
{
    const int64_t ps = pr->y_pixel_stride;
    for (int64_t c = c0; c < c1; c += 8) {
        const int64_t channels = min64(8, c1 - c);
        for (int64_t p = 0; p < np; p += PT_INT8_VNNI_PIXELS) {
            const int64_t pixels = min64(PT_INT8_VNNI_PIXELS, np - p);
            if (channels > 4)
                vnni_tile(8, pr, c, channels, quads + 4 * p, ldq, pixels, y + p * ps);
            else
                vnni_tile(4, pr, c, channels, quads + 4 * p, ldq, pixels, y + p * ps);
        }
    }
}
#endif
