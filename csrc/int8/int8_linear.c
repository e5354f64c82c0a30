#include "int8.h"
#include "int8_gemm.h"

typedef struct {
    int64_t n_in;
    const uint8_t *x;
} linear_ctx;

/* The batch rows are the "pixels" of a single image: the panel holds rows [p0, p1) of x, k = feature. */
static void linear_panel(const void *vctx, int64_t img, int64_t p0, int64_t p1, int16_t *panel,
                         int64_t pixel_stride, int64_t kpair_stride)
{
    (void)img;
    const linear_ctx *ctx = (const linear_ctx *)vctx;
    for (int64_t p = 0; p < p1 - p0; p++) {
        const uint8_t *x = ctx->x + (p0 + p) * ctx->n_in;
        for (int64_t k = 0; k < ctx->n_in; k++)
            panel[pt_int8_panel_index(p, k, pixel_stride, kpair_stride)] = x[k];
    }
}

int64_t pt_int8_linear_forward_workspace_bytes(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out)
{
    if (pt_team_check(team) != PT_OK) return 0;
    return pt_int8_gemm_workspace_bytes(team, 1, n, n_in, n_out);
}

pt_status pt_int8_linear_forward(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out, const uint8_t *x,
                                 const int8_t *w, const pt_requant *rq, uint8_t *y, void *workspace,
                                 int64_t workspace_bytes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL) return PT_ERR_NULL_POINTER;
    const linear_ctx ctx = {n_in, x};
    const pt_int8_gemm_problem pr = {1, n, n_in, n_out, w, rq, y, 0, 1, n_out, linear_panel, &ctx};
    return pt_int8_gemm_run(team, &pr, workspace, workspace_bytes);
}
