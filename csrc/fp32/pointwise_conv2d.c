#include <stddef.h>
#include "pointwise_conv2d.h"
#include "matmul.h"

/* A (channels x N*HW) view of an NCHW tensor: column j is pixel j % HW of image j / HW. */
static pt_view batch_folded(const float *data, int64_t channels, int64_t hw)
{
    pt_view v = pt_view_2d(data, hw, 1);
    v.col_block = hw;
    v.col_stride_outer = channels * hw;
    return v;
}

static int bad_shape(int64_t n, int64_t c_in, int64_t c_out, int64_t hw)
{
    return n < 1 || c_in < 1 || c_out < 1 || hw < 1;
}

int64_t pt_pointwise_conv2d_forward_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                     int64_t hw)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (bad_shape(n, c_in, c_out, hw)) return 0;
    return pt_matmul_view_workspace_floats(team, pt_matmul_pick(team, c_out, n * hw, c_in), c_out, n * hw, c_in);
}

pt_status pt_pointwise_conv2d_forward(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                      const float *x, const float *w, const float *bias, float *y, float *workspace,
                                      int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL || w == NULL || y == NULL) return PT_ERR_NULL_POINTER;
    if (bad_shape(n, c_in, c_out, hw)) return PT_ERR_BAD_SHAPE;
    const pt_view A = pt_view_2d(w, c_in, 1), B = batch_folded(x, c_in, hw), C = batch_folded(y, c_out, hw);
    const pt_bias b = {bias, NULL};
    return pt_matmul_view(team, pt_matmul_pick(team, c_out, n * hw, c_in), c_out, n * hw, c_in, &A, &B, &C, &b, 0,
                          workspace, workspace_floats);
}

/* dx = W^T . dY, or, for at most SMALL_COLS columns (a batch-1 layer on a 4x4 plane) with a vector tile,
 * dx^T = dY^T . W: W's rows then stream contiguously (B read in place) instead of W^T being read in place one
 * row of W (4 KiB apart for 1024 channels) per reduction step, a page per load. The same products are summed
 * in the same K blocks in the same order, so both give the same bits. */
#define SMALL_COLS 16

typedef struct {
    int transposed;
    int variant;
    int64_t M, N; /* of the product run (K = c_out) */
} ig_plan;

static ig_plan grad_input_plan(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw)
{
    ig_plan p = {0, pt_matmul_pick(team, c_in, n * hw, c_out), c_in, n * hw};
    const int transposed_variant = pt_matmul_pick(team, n * hw, c_in, c_out);
    if (n * hw <= SMALL_COLS && pt_matmul_variant_info(transposed_variant)->nr >= SMALL_COLS) {
        p.transposed = 1;
        p.variant = transposed_variant;
        p.M = n * hw;
        p.N = c_in;
    }
    return p;
}

int64_t pt_pointwise_conv2d_grad_input_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                        int64_t hw)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (bad_shape(n, c_in, c_out, hw)) return 0;
    const ig_plan p = grad_input_plan(team, n, c_in, c_out, hw);
    return pt_matmul_view_workspace_floats(team, p.variant, p.M, p.N, c_out);
}

/* The (N*HW x channels) view of an NCHW tensor: row j is pixel j % HW of image j / HW. */
static pt_view batch_folded_transposed(const float *data, int64_t channels, int64_t hw)
{
    pt_view v = pt_view_2d(data, 1, hw);
    v.row_block = hw;
    v.row_stride_outer = channels * hw;
    return v;
}

pt_status pt_pointwise_conv2d_grad_input(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                         const float *dy, const float *w, float *dx, int accumulate, float *workspace,
                                         int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (dy == NULL || w == NULL || dx == NULL) return PT_ERR_NULL_POINTER;
    if (bad_shape(n, c_in, c_out, hw)) return PT_ERR_BAD_SHAPE;
    const ig_plan p = grad_input_plan(team, n, c_in, c_out, hw);
    if (p.transposed) {
        const pt_view A = batch_folded_transposed(dy, c_out, hw), B = pt_view_2d(w, c_in, 1);
        const pt_view C = batch_folded_transposed(dx, c_in, hw);
        return pt_matmul_view(team, p.variant, p.M, p.N, c_out, &A, &B, &C, NULL, accumulate, workspace,
                              workspace_floats);
    }
    const pt_view A = pt_view_2d(w, 1, c_in); /* W^T */
    const pt_view B = batch_folded(dy, c_out, hw), C = batch_folded(dx, c_in, hw);
    return pt_matmul_view(team, p.variant, p.M, p.N, c_out, &A, &B, &C, NULL, accumulate, workspace,
                          workspace_floats);
}

int64_t pt_pointwise_conv2d_grad_weight_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                         int64_t hw)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (bad_shape(n, c_in, c_out, hw)) return 0;
    return pt_matmul_view_workspace_floats(team, pt_matmul_pick(team, c_out, c_in, n * hw), c_out, c_in, n * hw);
}

pt_status pt_pointwise_conv2d_grad_weight(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                          const float *dy, const float *x, float *dw, int accumulate, float *workspace,
                                          int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (dy == NULL || x == NULL || dw == NULL) return PT_ERR_NULL_POINTER;
    if (bad_shape(n, c_in, c_out, hw)) return PT_ERR_BAD_SHAPE;
    const pt_view A = batch_folded(dy, c_out, hw);
    /* x^T: row j = (image j / HW, pixel j % HW), column = input channel */
    pt_view B = pt_view_2d(x, 1, hw);
    B.row_block = hw;
    B.row_stride_outer = c_in * hw;
    const pt_view C = pt_view_2d(dw, c_in, 1);
    return pt_matmul_view(team, pt_matmul_pick(team, c_out, c_in, n * hw), c_out, c_in, n * hw, &A, &B, &C, NULL,
                          accumulate, workspace, workspace_floats);
}
