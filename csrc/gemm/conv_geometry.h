/* Geometry shared by the convolution kernels (NCHW activations, OIHW weights, PyTorch semantics). */
#ifndef PT_CONV_GEOMETRY_H
#define PT_CONV_GEOMETRY_H

#include <stdint.h>
#include "pt_status.h"

typedef struct {
    int64_t n, c_in, h_in, w_in;   /* input (N, C_in, H, W) */
    int64_t c_out, kh, kw;         /* weight (C_out, C_in / groups, kh, kw) */
    int64_t stride_h, stride_w, pad_h, pad_w;
    int64_t h_out, w_out;          /* derived: (H + 2 pad - k) / stride + 1 */
} pt_conv_geometry;

/* Bounds that keep every index product of a kernel inside int64 (and a workspace size in bytes too): each
 * size, stride and padding is at most PT_CONV_MAX_EXTENT; the input, output, weight, padded input plane
 * and per-image patch matrix (C_in*kh*kw x H_out*W_out) each hold at most PT_CONV_MAX_ELEMENTS values. */
#define PT_CONV_MAX_EXTENT INT64_C(2147483647)
#define PT_CONV_MAX_ELEMENTS (INT64_C(1) << 60)

/* Fills *g and checks it (before any arithmetic that could overflow): every size in [1, MAX_EXTENT],
 * stride in [1, MAX_EXTENT], padding in [0, MAX_EXTENT], output size >= 1, element counts
 * within PT_CONV_MAX_ELEMENTS. Sizes: PT_ERR_BAD_SHAPE; stride / padding: PT_ERR_BAD_ARGUMENT. */
pt_status pt_conv_geometry_init(pt_conv_geometry *g, int64_t n, int64_t c_in, int64_t h_in, int64_t w_in,
                                int64_t c_out, int64_t kh, int64_t kw, int64_t stride_h, int64_t stride_w,
                                int64_t pad_h, int64_t pad_w);

/* Output columns [*lo, *hi) of a row whose input column ow*stride - pad + k lies inside [0, width). */
static inline void pt_conv_valid_range(int64_t count, int64_t stride, int64_t pad, int64_t k, int64_t width,
                                       int64_t *lo, int64_t *hi)
{
    /* ow*stride >= pad - k  and  ow*stride <= width - 1 + pad - k */
    const int64_t first = pad - k, last = width - 1 + pad - k;
    int64_t l = first <= 0 ? 0 : (first + stride - 1) / stride;
    int64_t h = last < 0 ? 0 : last / stride + 1;
    if (h > count) h = count;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* im2col of one image for patch rows [k0, k1) (row k = (c * kh + ky) * kw + kx) and output pixels
 * [p0, p1): out[(k - k0) * (p1 - p0) + (p - p0)] = x[c, oh*sh - ph + ky, ow*sw - pw + kx] or 0 in the
 * padding. `x` is one (C_in, H, W) image. */
void pt_im2col(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1, int64_t p0, int64_t p1,
               float *out);

/* Width of the column panels of the matmul's 6x16 tile (its NR): layouts written for it are read in place.
 * The 8x32 tile's panels are twice as wide. */
#define PT_IM2COL_PANEL 16

/* The same patch values transposed into panels of `panel` patch rows (the tile's NR), the packed-B layout
 * of col^T: row k of pixel p goes to out[((k - k0) / panel) * (p1 - p0) * panel + (p - p0) * panel +
 * (k - k0) % panel] (a narrower last panel keeps panel-float rows; its unused floats are not written). */
void pt_im2col_transposed_panels(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1, int64_t p0,
                                 int64_t p1, int64_t panel, float *out);

/* col2im of one image for channels [c0, c1) and input rows [ih0, ih1): dx[c] = sum over (ky, kx, output
 * pixel) of the dcol rows of channel c that land in those rows, where dcol holds rows [c0*kh*kw, c1*kh*kw) of
 * the (C_in*kh*kw, H_out*W_out) matrix for output rows [oh0, oh1) only ((oh1 - oh0) * W_out columns; every
 * output row that reaches an input row of the band must be among them). Overwrites those rows of dx[c0:c1]
 * (or adds to them when accumulate). Each dx element takes its terms in (ky, kx) order, whatever the band. */
void pt_col2im(const pt_conv_geometry *g, const float *dcol, int64_t c0, int64_t c1, int64_t oh0, int64_t oh1,
               int64_t ih0, int64_t ih1, float *dx, int accumulate);

#endif
