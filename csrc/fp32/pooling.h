/* 2-D average and max pooling, NCHW, PyTorch semantics (torch.nn.functional.avg_pool2d with
 * count_include_pad=True and ceil_mode=False; max_pool2d with dilation 1).
 *
 * The geometry is a pt_conv_geometry with c_out == c_in (the window is kh x kw). Global average pooling is
 * average pooling with the window equal to the input (kh = H, kw = W, stride 1, no padding).
 *   avg forward:    y[n,c,oh,ow] = sum of the window (padding counts as 0) / (kh * kw)
 *   max forward:    y[n,c,oh,ow] = max of the window (padding never wins; needs pad <= k / 2 so every
 *                   window holds at least one real element)
 *   max grad_input: dy goes to the window's first maximum in row-major order (NaN counts as a maximum),
 *                   recomputed from x, so no index tensor is kept.
 * Cores split (image, channel) planes.
 */
#ifndef PT_POOLING_H
#define PT_POOLING_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"
#include "conv_geometry.h"

pt_status pt_avg_pool2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, float *y);
pt_status pt_avg_pool2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, float *dx,
                                   int accumulate);

pt_status pt_max_pool2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, float *y);
pt_status pt_max_pool2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *x,
                                   float *dx, int accumulate);

#endif
