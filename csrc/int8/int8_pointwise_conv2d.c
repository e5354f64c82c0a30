#include "arch.h"
#include "int8.h"
#include "int8_gemm.h"

typedef struct {
    int64_t c_in, hw;
    const uint8_t *x;
} pointwise_ctx;

/* The panel holds pixels [p0, p1) of the image's (C_in, HW) block with k = c (layout: int8_gemm.h). */
static void pointwise_panel(const void *vctx, int64_t img, int64_t p0, int64_t p1, int16_t *panel,
                            int64_t pixel_stride, int64_t kpair_stride)
{
    const pointwise_ctx *ctx = (const pointwise_ctx *)vctx;
    const int64_t C = ctx->c_in, np = p1 - p0;
    const uint8_t *x = ctx->x + img * C * ctx->hw + p0;
    for (int64_t c = 0; c < C; c++) {
        const uint8_t *xc = x + c * ctx->hw;
        int16_t *dst = panel + pt_int8_panel_index(0, c, pixel_stride, kpair_stride);
        for (int64_t p = 0; p < np; p++) dst[p * pixel_stride] = xc[p];
    }
}

#if PT_ARCH_X86
#include "int8_gemm_x86.h"

/* The same panel; the k-pair-major layout of the x86 microkernels (which run only where the CPU has AVX2)
 * in vectors. */
static void pointwise_panel_x86(const void *vctx, int64_t img, int64_t p0, int64_t p1, int16_t *panel,
                                int64_t pixel_stride, int64_t kpair_stride)
{
    const pointwise_ctx *ctx = (const pointwise_ctx *)vctx;
    if (pixel_stride != 2) {
        pointwise_panel(vctx, img, p0, p1, panel, pixel_stride, kpair_stride);
        return;
    }
    pt_int8_pair_rows_avx2(ctx->x + img * ctx->c_in * ctx->hw + p0, ctx->hw, ctx->c_in, p1 - p0, panel, kpair_stride);
}
#define POINTWISE_PANEL pointwise_panel_x86
#else
#define POINTWISE_PANEL pointwise_panel
#endif

int64_t pt_int8_pointwise_conv2d_forward_workspace_bytes(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                         int64_t hw)
{
    if (pt_team_check(team) != PT_OK) return 0;
    return pt_int8_gemm_workspace_bytes(team, n, hw, c_in, c_out);
}

pt_status pt_int8_pointwise_conv2d_forward(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                           const uint8_t *x, const int8_t *w, const pt_requant *rq, uint8_t *y,
                                           void *workspace, int64_t workspace_bytes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL) return PT_ERR_NULL_POINTER;
    const pointwise_ctx ctx = {c_in, hw, x};
    const pt_int8_gemm_problem pr = {n, hw, c_in, c_out, w, rq, y, c_out * hw, hw, 1, POINTWISE_PANEL, &ctx};
    return pt_int8_gemm_run(team, &pr, workspace, workspace_bytes);
}
