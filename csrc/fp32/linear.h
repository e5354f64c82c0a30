/* Fully connected layer, PyTorch layout: x (N, in), w (out, in), bias (out) or NULL, y / dy (N, out).
 *   forward:     y  = x . W^T + bias   (M = N,   N = out, K = in)
 *   grad_input:  dx = dy . W           (M = N,   N = in,  K = out)
 *   grad_weight: dW = dy^T . x         (M = out, N = in,  K = N)
 * Transposes are views (swapped strides), never copies.
 */
#ifndef PT_LINEAR_H
#define PT_LINEAR_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

int64_t pt_linear_forward_workspace_floats(const pt_team *team, int64_t n, int64_t in, int64_t out);
pt_status pt_linear_forward(const pt_team *team, int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                            const float *bias, float *y, float *workspace, int64_t workspace_floats);

int64_t pt_linear_grad_input_workspace_floats(const pt_team *team, int64_t n, int64_t in, int64_t out);
pt_status pt_linear_grad_input(const pt_team *team, int64_t n, int64_t in, int64_t out, const float *dy, const float *w,
                               float *dx, int accumulate, float *workspace, int64_t workspace_floats);

int64_t pt_linear_grad_weight_workspace_floats(const pt_team *team, int64_t n, int64_t in, int64_t out);
pt_status pt_linear_grad_weight(const pt_team *team, int64_t n, int64_t in, int64_t out, const float *dy,
                                const float *x, float *dw, int accumulate, float *workspace, int64_t workspace_floats);

#endif
