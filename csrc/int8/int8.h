/* INT8 inference layers (PULP-NN style): uint8 activations (NCHW, zero point 0), int8 weights in the
 * PyTorch layouts (conv OIHW, depthwise (C,1,kh,kw), pointwise (C_out,C_in), linear (out,in)), int32
 * accumulation and per-channel requantization to uint8 (the formula and ranges: int8_requant.h).
 * Inside, conv2d / pointwise / linear gather pixels into int16 pixel-major panels (int8_gemm.h); their
 * workspace (bytes, caller-provided) comes from the *_workspace_bytes query. Depthwise pads one NCHW
 * plane at a time into its workspace; pooling works on the planes directly and needs none.
 */
#ifndef PT_INT8_H
#define PT_INT8_H

#include "parallel.h"
#include <stdint.h>
#include "conv_geometry.h"
#include "int8_requant.h"

/* y (N, C_out, H_out, W_out) = requant(conv2d(x (N, C_in, H, W), w (C_out, C_in, kh, kw))). */
int64_t pt_int8_conv2d_forward_workspace_bytes(const pt_team *team, const pt_conv_geometry *g);
pt_status pt_int8_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x, const int8_t *w,
                                 const pt_requant *rq, uint8_t *y, void *workspace, int64_t workspace_bytes);

/* 1x1 convolution: y (N, C_out, HW) = requant(w (C_out, C_in) . x (N, C_in, HW)). */
int64_t pt_int8_pointwise_conv2d_forward_workspace_bytes(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                         int64_t hw);
pt_status pt_int8_pointwise_conv2d_forward(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                           const uint8_t *x, const int8_t *w, const pt_requant *rq, uint8_t *y,
                                           void *workspace, int64_t workspace_bytes);

/* y (N, out) = requant(x (N, in) . w (out, in)^T). */
int64_t pt_int8_linear_forward_workspace_bytes(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out);
pt_status pt_int8_linear_forward(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out, const uint8_t *x,
                                 const int8_t *w, const pt_requant *rq, uint8_t *y, void *workspace,
                                 int64_t workspace_bytes);

/* Depthwise: y[n,c] = requant_c(sum_{ky,kx} w[c,ky,kx] * x[n,c,ih,iw]); g->c_out must equal g->c_in.
 * Each core pads one plane at a time into its workspace. */
int64_t pt_int8_depthwise_conv2d_forward_workspace_bytes(const pt_team *team, const pt_conv_geometry *g);
pt_status pt_int8_depthwise_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x,
                                           const int8_t *w, const pt_requant *rq, uint8_t *y, void *workspace,
                                           int64_t workspace_bytes);

/* Average pooling of uint8 codes over kh x kw windows (g->c_out == g->c_in, padding must be 0):
 * y = floor(sum / (kh*kw) + 1/2), the mean rounded half up (same scale in and out). Global average
 * pooling is kh = H, kw = W. */
pt_status pt_int8_avg_pool2d(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x, uint8_t *y);

#endif
