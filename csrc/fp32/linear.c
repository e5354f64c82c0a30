#include <stddef.h>
#include "linear.h"
#include "matmul.h"

static int bad_shape(int64_t n, int64_t in, int64_t out) { return n < 1 || in < 1 || out < 1; }

/* A small batch (1 < n < out) runs as y^T = W . x^T, so that the big operand W is read in place instead
 * of being packed transposed on every call (batch 1 is a dot-product path inside the matmul). */
static int transpose_forward(int64_t n, int64_t out) { return n > 1 && n < out; }

int64_t pt_linear_forward_workspace_floats(const pt_team *team, int64_t n, int64_t in, int64_t out)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (bad_shape(n, in, out)) return 0;
    if (transpose_forward(n, out))
        return pt_matmul_view_workspace_floats(team, pt_matmul_pick(team, out, n, in), out, n, in);
    return pt_matmul_view_workspace_floats(team, pt_matmul_pick(team, n, out, in), n, out, in);
}

pt_status pt_linear_forward(const pt_team *team, int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                            const float *bias, float *y, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL || w == NULL || y == NULL) return PT_ERR_NULL_POINTER;
    if (bad_shape(n, in, out)) return PT_ERR_BAD_SHAPE;
    if (transpose_forward(n, out)) {
        /* y^T = W . x^T: W is read in place and only x^T (n columns) is packed. Each element is the same
         * fused multiply-add chain over `in` as in the untransposed product, so the choice is invisible. */
        const pt_view A = pt_view_2d(w, in, 1), B = pt_view_2d(x, 1, in), C = pt_view_2d(y, 1, out);
        const pt_bias b = {bias, NULL};
        return pt_matmul_view(team, pt_matmul_pick(team, out, n, in), out, n, in, &A, &B, &C, &b, 0, workspace,
                              workspace_floats);
    }
    const pt_view A = pt_view_2d(x, in, 1), B = pt_view_2d(w, 1, in) /* W^T */, C = pt_view_2d(y, out, 1);
    const pt_bias b = {NULL, bias};
    return pt_matmul_view(team, pt_matmul_pick(team, n, out, in), n, out, in, &A, &B, &C, &b, 0, workspace,
                          workspace_floats);
}

int64_t pt_linear_grad_input_workspace_floats(const pt_team *team, int64_t n, int64_t in, int64_t out)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (bad_shape(n, in, out)) return 0;
    return pt_matmul_view_workspace_floats(team, pt_matmul_pick(team, n, in, out), n, in, out);
}

pt_status pt_linear_grad_input(const pt_team *team, int64_t n, int64_t in, int64_t out, const float *dy, const float *w,
                               float *dx, int accumulate, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (dy == NULL || w == NULL || dx == NULL) return PT_ERR_NULL_POINTER;
    if (bad_shape(n, in, out)) return PT_ERR_BAD_SHAPE;
    const pt_view A = pt_view_2d(dy, out, 1), B = pt_view_2d(w, in, 1), C = pt_view_2d(dx, in, 1);
    return pt_matmul_view(team, pt_matmul_pick(team, n, in, out), n, in, out, &A, &B, &C, NULL, accumulate, workspace,
                          workspace_floats);
}

int64_t pt_linear_grad_weight_workspace_floats(const pt_team *team, int64_t n, int64_t in, int64_t out)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (bad_shape(n, in, out)) return 0;
    return pt_matmul_view_workspace_floats(team, pt_matmul_pick(team, out, in, n), out, in, n);
}

pt_status pt_linear_grad_weight(const pt_team *team, int64_t n, int64_t in, int64_t out, const float *dy,
                                const float *x, float *dw, int accumulate, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (dy == NULL || x == NULL || dw == NULL) return PT_ERR_NULL_POINTER;
    if (bad_shape(n, in, out)) return PT_ERR_BAD_SHAPE;
    const pt_view A = pt_view_2d(dy, 1, out) /* dy^T */, B = pt_view_2d(x, in, 1), C = pt_view_2d(dw, in, 1);
    return pt_matmul_view(team, pt_matmul_pick(team, out, in, n), out, in, n, &A, &B, &C, NULL, accumulate, workspace,
                          workspace_floats);
}
