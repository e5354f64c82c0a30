/* Depthwise 2-D convolution (groups = channels, depth multiplier 1): direct loops, no workspace (small
 * scratch planes live on the stack). On hosts with SIMD, 3x3 kernels on planes up to 16x16 run 8 channels
 * per vector (channel blocks); other shapes, and every shape on targets without SIMD, run per plane.
 *
 * Shapes (C-contiguous float32): x (N, C, H, W), w (C, 1, kh, kw), bias (C) or NULL, y / dy (N, C, H_out,
 * W_out); the geometry must have c_out == c_in. Forward and grad_input split (image, channel) planes or
 * (image, block of 8 channels) across cores, grad_weight splits channels or channel blocks; each output
 * element is summed by one core in a fixed order.
 */
#ifndef PT_DEPTHWISE_CONV2D_H
#define PT_DEPTHWISE_CONV2D_H

#include "parallel.h"
#include "conv_geometry.h"

pt_status pt_depthwise_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, const float *w,
                                      const float *bias, float *y);
pt_status pt_depthwise_conv2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                         const float *w, float *dx, int accumulate);
pt_status pt_depthwise_conv2d_grad_weight(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                          const float *x, float *dw, int accumulate);

#endif
