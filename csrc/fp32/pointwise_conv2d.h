/* Pointwise (1x1, stride 1, no padding) convolution: one matmul per step with the batch folded into the
 * pixel axis by two-level views, so no data is copied or transposed.
 *
 * Shapes (C-contiguous float32): x (N, C_in, HW), w (C_out, C_in), bias (C_out) or NULL,
 * y / dy (N, C_out, HW), where HW = H * W.
 *   forward:     y[:, j]  = W . x[:, j] + bias     (M = C_out, N = N*HW, K = C_in)
 *   grad_input:  dx[:, j] = W^T . dy[:, j]         (M = C_in,  N = N*HW, K = C_out)
 *   grad_weight: dW = sum_j dy[:, j] x[:, j]^T     (M = C_out, N = C_in, K = N*HW)
 */
#ifndef PT_POINTWISE_CONV2D_H
#define PT_POINTWISE_CONV2D_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

int64_t pt_pointwise_conv2d_forward_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                     int64_t hw);
pt_status pt_pointwise_conv2d_forward(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                      const float *x, const float *w, const float *bias, float *y, float *workspace,
                                      int64_t workspace_floats);

int64_t pt_pointwise_conv2d_grad_input_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                        int64_t hw);
pt_status pt_pointwise_conv2d_grad_input(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                         const float *dy, const float *w, float *dx, int accumulate, float *workspace,
                                         int64_t workspace_floats);

int64_t pt_pointwise_conv2d_grad_weight_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                         int64_t hw);
pt_status pt_pointwise_conv2d_grad_weight(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                          const float *dy, const float *x, float *dw, int accumulate, float *workspace,
                                          int64_t workspace_floats);

#endif
