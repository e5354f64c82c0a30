/* Depthwise 2-D convolution (groups = channels, depth multiplier 1): direct loops, no workspace (small
 * scratch planes live on the stack). On hosts with SIMD, 3x3 kernels on planes up to 16x16 run 8 channels
 * per vector (channel blocks); other shapes, and every shape on targets without SIMD, run per plane.
 *
 * Shapes (C-contiguous float32): x (N, C, H, W), w (C, 1, kh, kw), bias (C) or NULL, y / dy (N, C, H_out,
 * W_out); the geometry must have c_out == c_in. Forward and grad_input split (image, channel) planes or
 * (image, block of 8 channels) across cores, grad_weight splits channels or channel blocks; each output
 * element is summed by one core in a fixed order.
 *
 * Tiers, from the most general to the fastest: "generic" (direct loops, every shape), "plane" (a padded plane
 * on the stack and a tap stencil, for kernels of up to 25 taps with stride <= 2 on small planes; 3x3 stride-1 planes
 * of a multiple of 8 pixels read in place with lane masks) and, on SIMD hosts, "channel-blocks". By default a
 * call runs the fastest tier that supports its shape; pt_team.depthwise_tier caps that at a given tier (a tier
 * that does not support the shape falls back to the next one down), so every tier can be run and tested on
 * any host. All tiers give results within float rounding of each other; each is bitwise thread-invariant.
 */
#ifndef PT_DEPTHWISE_CONV2D_H
#define PT_DEPTHWISE_CONV2D_H

#include "parallel.h"
#include "conv_geometry.h"

/* Name of tier `index` (0 = "generic"), or NULL past the last tier this build has. */
const char *pt_depthwise_tier_name(int index);
/* The default tier of pt_team_default(): PT_DEPTHWISE_AUTO or a tier index (PT_ERR_UNKNOWN_VARIANT otherwise). */
pt_status pt_depthwise_set_default_tier(int tier);
int pt_depthwise_get_default_tier(void);

pt_status pt_depthwise_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, const float *w,
                                      const float *bias, float *y);
pt_status pt_depthwise_conv2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                         const float *w, float *dx, int accumulate);
pt_status pt_depthwise_conv2d_grad_weight(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                          const float *x, float *dw, int accumulate);

#endif
