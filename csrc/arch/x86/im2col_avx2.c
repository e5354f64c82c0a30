/* The transposed im2col panels of conv2d's grad_weight (pt_im2col_transposed_panels, csrc/gemm/im2col.c) for
 * the avx2 and avx512 ISA levels: the same values in the same layout, written as 8 x 8 blocks (8 patch rows x
 * 8 output pixels of one row, loaded as 8 vectors and transposed in registers) instead of one scattered
 * store per value, which made the generic copy cost as much as the product it feeds. Column strides 1 and 2
 * (conv1); other strides, and the pixels of a row where some of the 8 patch rows read the padding, take the
 * generic loops' values one at a time. */
#include "arch.h"
#if PT_ARCH_X86
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include "conv_geometry.h"

#define GROUP 8 /* patch rows per transposed block: one 8-float vector per pixel */

static inline void transpose8(__m256 r[GROUP])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Pixels ow .. ow + 7 of a row whose pixel ow reads row[ow * sw] (sw 1 or 2). With sw = 2 the two loads read
 * row[2 ow .. 2 ow + 15]: the caller keeps pixel ow + 8 inside the row, so the last one is too. */
static inline __m256 load_pixels(const float *row, int64_t ow, int64_t sw)
{
    if (sw == 1) return _mm256_loadu_ps(row + ow);
    const __m256 a = _mm256_loadu_ps(row + 2 * ow), b = _mm256_loadu_ps(row + 2 * ow + 8);
    const __m256 even = _mm256_shuffle_ps(a, b, 0x88); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xd8));
}

/* One group of GROUP patch rows, pixels [p0, p1), into d[(p - p0) * panel + j] for row j. */
static void transposed_group(const pt_conv_geometry *g, const float *x, int64_t k, int64_t rows, int64_t p0,
                             int64_t p1, int64_t panel, float *d)
{
    const int64_t khw = g->kh * g->kw, Wo = g->w_out, W = g->w_in, sw = g->stride_w;
    const int64_t lookahead = sw == 2 ? 1 : 0; /* stride 2: the block's pixel after the last stays inside too */
    int64_t ky[GROUP], shift[GROUP], lo[GROUP], hi[GROUP];
    const float *plane[GROUP];
    for (int j = 0; j < GROUP; j++) {
        if (j >= rows) { /* past the last patch row: zeros in the panel's unused floats */
            plane[j] = NULL;
            continue;
        }
        const int64_t kj = k + j, c = kj / khw, kx = kj % g->kw;
        ky[j] = (kj % khw) / g->kw;
        shift[j] = kx - g->pad_w;
        plane[j] = x + c * g->h_in * W;
        pt_conv_valid_range(Wo, sw, g->pad_w, kx, W, &lo[j], &hi[j]);
    }
    for (int64_t p = p0; p < p1;) {
        const int64_t oh = p / Wo, ow0 = p % Wo, ow1 = (p1 - p < Wo - ow0) ? ow0 + (p1 - p) : Wo;
        float *dp = d + (p - p0 - ow0) * panel; /* dp + ow * panel: pixel (oh, ow) */
        const float *src[GROUP];                /* src[j][ow * sw]: row j's value at pixel ow, where valid */
        int64_t vec_lo = ow0, vec_hi = ow1;     /* pixels where every row reads inside the image */
        for (int j = 0; j < GROUP; j++) {
            const int64_t ih = plane[j] ? oh * g->stride_h - g->pad_h + ky[j] : -1;
            src[j] = ih >= 0 && ih < g->h_in ? plane[j] + ih * W + shift[j] : NULL;
            if (src[j]) {
                vec_lo = lo[j] > vec_lo ? lo[j] : vec_lo;
                vec_hi = hi[j] < vec_hi ? hi[j] : vec_hi;
            }
        }
        int64_t ow = ow0;
        for (; ow < ow1; ow++) {
            if (ow >= vec_lo && ow + GROUP + lookahead <= vec_hi) {
                __m256 r[GROUP];
                for (int j = 0; j < GROUP; j++) r[j] = src[j] ? load_pixels(src[j], ow, sw) : _mm256_setzero_ps();
                transpose8(r);
                for (int j = 0; j < GROUP; j++) _mm256_storeu_ps(dp + (ow + j) * panel, r[j]);
                ow += GROUP - 1;
                continue;
            }
            for (int j = 0; j < GROUP; j++)
                dp[ow * panel + j] = src[j] && ow >= lo[j] && ow < hi[j] ? src[j][ow * sw] : 0.0f;
        }
        p += ow1 - ow0;
    }
}

void pt_im2col_transposed_panels_avx2(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1,
                                      int64_t p0, int64_t p1, int64_t panel, float *out)
{
    if (g->stride_w > 2 || panel % GROUP != 0) {
        pt_im2col_transposed_panels(g, x, k0, k1, p0, p1, panel, out);
        return;
    }
    for (int64_t k = k0; k < k1; k += panel, out += (p1 - p0) * panel)
        for (int64_t j = 0; j < panel && k + j < k1; j += GROUP)
            transposed_group(g, x, k + j, k1 - (k + j) < GROUP ? k1 - (k + j) : GROUP, p0, p1, panel, out + j);
}
#endif
