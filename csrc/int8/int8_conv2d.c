#include "arch.h"
#include "int8.h"
#include "int8_gemm.h"

typedef struct {
    const pt_conv_geometry *g;
    const uint8_t *x;
} conv_ctx;

/* im2col of one image into an int16 panel (layout: int8_gemm.h), patch index k = (c * kh + ky) * kw + kx,
 * the order of the OIHW weight rows; padding reads as code 0 (real 0: the zero point is 0). */
static void conv_panel(const void *vctx, int64_t img, int64_t p0, int64_t p1, int16_t *panel, int64_t pixel_stride,
                       int64_t kpair_stride)
{
    const conv_ctx *ctx = (const conv_ctx *)vctx;
    const pt_conv_geometry *g = ctx->g;
    const int64_t H = g->h_in, W = g->w_in, kh = g->kh, kw = g->kw;
    const uint8_t *x = ctx->x + img * g->c_in * H * W;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t ih0 = (p / g->w_out) * g->stride_h - g->pad_h, iw0 = (p % g->w_out) * g->stride_w - g->pad_w;
        int64_t k = 0;
        for (int64_t c = 0; c < g->c_in; c++) {
            for (int64_t ky = 0; ky < kh; ky++) {
                const int64_t ih = ih0 + ky;
                const uint8_t *row = x + (c * H + ih) * W;
                for (int64_t kx = 0; kx < kw; kx++, k++) {
                    const int64_t iw = iw0 + kx;
                    panel[pt_int8_panel_index(p - p0, k, pixel_stride, kpair_stride)] =
                        (ih >= 0 && ih < H && iw >= 0 && iw < W) ? row[iw] : 0;
                }
            }
        }
    }
}

#if PT_ARCH_X86
#include <emmintrin.h>
#include <string.h>
#include "int8_gemm_x86.h"

#define X86_PANEL_PIXELS 256 /* the most pixels of a panel built below (the engine's panels are no wider) */

/* Patch element k of pixels [p0, p1) (p1 - p0 <= X86_PANEL_PIXELS) into dst, output row by output row: the
 * columns whose input column is inside the image copied (column strides 1 and 2 in vectors: SSE2 is the x86-64
 * baseline), the rest (and rows outside it) 0. x is the image, x_end the end of its planes. */
static void conv_patch_row(const pt_conv_geometry *g, const uint8_t *x, const uint8_t *x_end, int64_t k, int64_t p0,
                           int64_t p1, uint8_t *dst)
{
    const int64_t H = g->h_in, W = g->w_in, Wo = g->w_out, sh = g->stride_h, sw = g->stride_w;
    const int64_t kx = k % g->kw, ky = (k / g->kw) % g->kh, c = k / (g->kw * g->kh);
    /* output columns [ow_lo, ow_hi) read inside the image: 0 <= ow * sw + kx - pad_w < W */
    const int64_t first = g->pad_w - kx, ow_lo = first > 0 ? (first + sw - 1) / sw : 0;
    const int64_t last = W - 1 + g->pad_w - kx, ow_hi = last >= 0 ? last / sw + 1 : 0;
    for (int64_t p = p0; p < p1;) {
        const int64_t oh = p / Wo, ow0 = p % Wo, ow1 = ow0 + (p1 - p < Wo - ow0 ? p1 - p : Wo - ow0);
        const int64_t ih = oh * sh + ky - g->pad_h;
        uint8_t *out = dst + (p - p0) - ow0;
        if (ih < 0 || ih >= H) {
            for (int64_t ow = ow0; ow < ow1; ow++) out[ow] = 0;
        } else {
            const uint8_t *row = x + (c * H + ih) * W + kx - g->pad_w;
            const int64_t a = ow0 > ow_lo ? ow0 : ow_lo, b = ow1 < ow_hi ? ow1 : ow_hi;
            for (int64_t ow = ow0; ow < a && ow < ow1; ow++) out[ow] = 0;
            int64_t ow = a;
            if (sw == 1 && b > a) {
                memcpy(out + a, row + a, (size_t)(b - a));
                ow = b;
            } else if (sw == 2) { /* the even bytes of 32: 16 columns */
                const __m128i low_byte = _mm_set1_epi16(0xFF);
                for (; ow + 16 <= b && row + 2 * ow + 32 <= x_end; ow += 16) {
                    const __m128i lo = _mm_loadu_si128((const __m128i *)(row + 2 * ow));
                    const __m128i hi = _mm_loadu_si128((const __m128i *)(row + 2 * ow + 16));
                    _mm_storeu_si128((__m128i *)(out + ow),
                                     _mm_packus_epi16(_mm_and_si128(lo, low_byte), _mm_and_si128(hi, low_byte)));
                }
            }
            for (; ow < b; ow++) out[ow] = row[ow * sw];
            for (int64_t ow = b > ow0 ? b : ow0; ow < ow1; ow++) out[ow] = 0;
        }
        p += ow1 - ow0;
    }
}

/* The same panel; the k-pair-major layout of the x86 microkernels (which run only where the CPU has AVX2) as
 * pairs of patch rows. */
static void conv_panel_x86(const void *vctx, int64_t img, int64_t p0, int64_t p1, int16_t *panel,
                           int64_t pixel_stride, int64_t kpair_stride)
{
    const conv_ctx *ctx = (const conv_ctx *)vctx;
    const pt_conv_geometry *g = ctx->g;
    if (pixel_stride != 2 || p1 - p0 > X86_PANEL_PIXELS) {
        conv_panel(vctx, img, p0, p1, panel, pixel_stride, kpair_stride);
        return;
    }
    const int64_t K = g->c_in * g->kh * g->kw;
    const uint8_t *x = ctx->x + img * g->c_in * g->h_in * g->w_in, *x_end = x + g->c_in * g->h_in * g->w_in;
    uint8_t rows[2][X86_PANEL_PIXELS];
    for (int64_t k = 0; k < K; k += 2, panel += kpair_stride) {
        const int64_t pair = K - k < 2 ? K - k : 2;
        for (int64_t j = 0; j < pair; j++) conv_patch_row(g, x, x_end, k + j, p0, p1, rows[j]);
        pt_int8_pair_rows_avx2(rows[0], X86_PANEL_PIXELS, pair, p1 - p0, panel, kpair_stride);
    }
}
#define CONV_PANEL conv_panel_x86
#else
#define CONV_PANEL conv_panel
#endif

static pt_int8_gemm_problem conv_problem(const pt_conv_geometry *g, const conv_ctx *ctx, const int8_t *w,
                                         const pt_requant *rq, uint8_t *y)
{
    const int64_t P = g->h_out * g->w_out;
    pt_int8_gemm_problem pr = {g->n, P, g->c_in * g->kh * g->kw, g->c_out, w, rq, y,
                               g->c_out * P, P, 1, CONV_PANEL, ctx};
    return pr;
}

int64_t pt_int8_conv2d_forward_workspace_bytes(const pt_team *team, const pt_conv_geometry *g)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (g == NULL) return 0;
    return pt_int8_gemm_workspace_bytes(team, g->n, g->h_out * g->w_out, g->c_in * g->kh * g->kw, g->c_out);
}

pt_status pt_int8_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x, const int8_t *w,
                                 const pt_requant *rq, uint8_t *y, void *workspace, int64_t workspace_bytes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (g == NULL || x == NULL) return PT_ERR_NULL_POINTER;
    const conv_ctx ctx = {g, x};
    const pt_int8_gemm_problem pr = conv_problem(g, &ctx, w, rq, y);
    return pt_int8_gemm_run(team, &pr, workspace, workspace_bytes);
}
