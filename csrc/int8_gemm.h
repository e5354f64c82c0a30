/* The engine of the INT8 conv / pointwise / linear kernels: y = requant(W . X) over panels of pixels.
 *
 * W is (C_out, K) int8, row-major (the PyTorch weight of a conv, OIHW, is already this: K = C_in*kh*kw).
 * For each image, a layer-specific `build_panel` writes the activations of pixels [p0, p1) as a
 * pixel-major panel: panel[(p - p0) * K + k] = x_u8 of patch element k of pixel p, widened to int16 (the
 * HWC-like "column" layout of PULP-NN; int16 lets the host's SIMD multiply-add pairs without saturation).
 * A 4x2 register-blocked microkernel (4 output channels x 2 pixels, the PULP-NN tile) computes the int32
 * dot products and requantizes them (int8_requant.h) straight into
 *   y[img * y_img_stride + c * y_channel_stride + p * y_pixel_stride].
 * Work units are (image, pixel panel, block of output channels), split across cores; every output element
 * is computed by one core with the same integer arithmetic, so results do not depend on the team size.
 */
#ifndef PT_INT8_GEMM_H
#define PT_INT8_GEMM_H

#include <stdint.h>
#include "int8_requant.h"

typedef void (*pt_int8_panel_fn)(const void *ctx, int64_t img, int64_t p0, int64_t p1, int16_t *panel);

typedef struct {
    int64_t images, pixels, K, c_out;
    const int8_t *w;
    const pt_requant *rq;
    uint8_t *y;
    int64_t y_img_stride, y_channel_stride, y_pixel_stride;
    pt_int8_panel_fn build_panel;
    const void *ctx;
} pt_int8_gemm_problem;

/* Workspace bytes for a problem of these sizes and team size (0 if a size is < 1). */
int64_t pt_int8_gemm_workspace_bytes(int64_t images, int64_t pixels, int64_t K, int64_t c_out, int num_threads);

/* Runs the problem on the team. Checks sizes, K <= PT_INT8_MAX_K, the requant parameters, workspace. */
pt_status pt_int8_gemm_run(const pt_int8_gemm_problem *pr, void *workspace, int64_t workspace_bytes);

#endif
