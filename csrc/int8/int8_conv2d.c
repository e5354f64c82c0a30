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

static pt_int8_gemm_problem conv_problem(const pt_conv_geometry *g, const conv_ctx *ctx, const int8_t *w,
                                         const pt_requant *rq, uint8_t *y)
{
    const int64_t P = g->h_out * g->w_out;
    pt_int8_gemm_problem pr = {g->n, P, g->c_in * g->kh * g->kw, g->c_out, w, rq, y,
                               g->c_out * P, P, 1, conv_panel, ctx};
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
