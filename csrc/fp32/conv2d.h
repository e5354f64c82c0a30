/* Dense 2-D convolution (groups = 1): forward, grad_input, grad_weight, lowered to matmul via im2col.
 *
 * Shapes (C-contiguous float32): x (N, C_in, H, W), w (C_out, C_in, kh, kw), bias (C_out) or NULL,
 * y / dy (N, C_out, H_out, W_out). Workspace: the *_workspace_floats() query for the team that will
 * run the call (its size and matmul variant).
 *   forward:     per (image, block of output pixels) unit, im2col the block then W[C_out x K] . col.
 *   grad_input:  per (image, block of input channels), dcol = W^T . dY, then col2im (a gather per channel).
 *   grad_weight: per block of dW columns (patch rows k), sum over images of dY . col^T.
 * No unit ever shares an output element with another, so the result is the same for any team size.
 */
#ifndef PT_CONV2D_H
#define PT_CONV2D_H

#include "parallel.h"
#include <stdint.h>
#include "conv_geometry.h"

int64_t pt_conv2d_forward_workspace_floats(const pt_team *team, const pt_conv_geometry *g);
pt_status pt_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, const float *w,
                            const float *bias, float *y, float *workspace, int64_t workspace_floats);

int64_t pt_conv2d_grad_input_workspace_floats(const pt_team *team, const pt_conv_geometry *g);
pt_status pt_conv2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *w,
                               float *dx, int accumulate, float *workspace, int64_t workspace_floats);

int64_t pt_conv2d_grad_weight_workspace_floats(const pt_team *team, const pt_conv_geometry *g);
pt_status pt_conv2d_grad_weight(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *x,
                                float *dw, int accumulate, float *workspace, int64_t workspace_floats);

#endif
