/* GCC turns short copy / fill loops (a 16-float panel row, an 8-float plane row) into memcpy / memset
 * calls that cost more than the loop; keep them inline. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#include "conv_geometry.h"

/* Whether a * b * c * d (each >= 1) is at most PT_CONV_MAX_ELEMENTS; divides before
 * multiplying so nothing overflows. */
static int count_fits(int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t p = a;
    if (b > PT_CONV_MAX_ELEMENTS / p) return 0;
    p *= b;
    if (c > PT_CONV_MAX_ELEMENTS / p) return 0;
    p *= c;
    return d <= PT_CONV_MAX_ELEMENTS / p;
}

static int extent_ok(int64_t v, int64_t lo) { return v >= lo && v <= PT_CONV_MAX_EXTENT; }

pt_status pt_conv_geometry_init(pt_conv_geometry *g, int64_t n, int64_t c_in, int64_t h_in, int64_t w_in,
                                int64_t c_out, int64_t kh, int64_t kw, int64_t stride_h, int64_t stride_w,
                                int64_t pad_h, int64_t pad_w)
{
    if (g == 0) return PT_ERR_NULL_POINTER;
    if (!extent_ok(n, 1) || !extent_ok(c_in, 1) || !extent_ok(h_in, 1) || !extent_ok(w_in, 1) ||
        !extent_ok(c_out, 1) || !extent_ok(kh, 1) || !extent_ok(kw, 1))
        return PT_ERR_BAD_SHAPE;
    if (!extent_ok(stride_h, 1) || !extent_ok(stride_w, 1) || !extent_ok(pad_h, 0) || !extent_ok(pad_w, 0))
        return PT_ERR_BAD_ARGUMENT;
    /* every term is below 2^31, so the padded sizes (below 2^33) cannot overflow */
    const int64_t h_pad = h_in + 2 * pad_h, w_pad = w_in + 2 * pad_w;
    if (h_pad < kh || w_pad < kw) return PT_ERR_BAD_SHAPE;
    const int64_t h_out = (h_pad - kh) / stride_h + 1, w_out = (w_pad - kw) / stride_w + 1;
    if (!count_fits(n, c_in, h_in, w_in) || !count_fits(n, c_out, h_out, w_out) ||
        !count_fits(c_out, c_in, kh, kw) || !count_fits(1, 1, h_pad, w_pad) || !count_fits(c_in, kh, kw, 1) ||
        !count_fits(c_in * kh * kw, h_out, w_out, 1)) /* c_in * kh * kw fits: checked just before */
        return PT_ERR_BAD_SHAPE;
    g->n = n; g->c_in = c_in; g->h_in = h_in; g->w_in = w_in;
    g->c_out = c_out; g->kh = kh; g->kw = kw;
    g->stride_h = stride_h; g->stride_w = stride_w; g->pad_h = pad_h; g->pad_w = pad_w;
    g->h_out = h_out;
    g->w_out = w_out;
    return PT_OK;
}

/* out[(k - k0) * k_stride + (p - p0) * p_stride] for patch rows [k0, k1) and pixels [p0, p1); inlined
 * with constant strides so each layout gets its own tight loops. */
static inline void im2col_strided(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1, int64_t p0,
                                  int64_t p1, float *out, int64_t k_stride, int64_t p_stride)
{
    const int64_t khw = g->kh * g->kw, Wo = g->w_out, sw = g->stride_w;
    for (int64_t k = k0; k < k1; k++) {
        const int64_t c = k / khw, ky = (k % khw) / g->kw, kx = k % g->kw;
        const float *xc = x + c * g->h_in * g->w_in;
        float *dst = out + (k - k0) * k_stride;
        int64_t lo, hi;
        pt_conv_valid_range(Wo, sw, g->pad_w, kx, g->w_in, &lo, &hi);
        /* walk the output pixels [p0, p1) one output row (or part of one) at a time */
        for (int64_t p = p0; p < p1;) {
            const int64_t oh = p / Wo, ow0 = p % Wo, ow1 = (p1 - p < Wo - ow0) ? ow0 + (p1 - p) : Wo;
            float *d = dst + (p - p0) * p_stride - ow0 * p_stride; /* d[ow * p_stride] is pixel (oh, ow) */
            const int64_t ih = oh * g->stride_h - g->pad_h + ky;
            if (ih < 0 || ih >= g->h_in) {
                for (int64_t ow = ow0; ow < ow1; ow++) d[ow * p_stride] = 0.0f;
            } else {
                const int64_t l = lo > ow0 ? lo : ow0, h = hi < ow1 ? hi : ow1;
                const float *src = xc + ih * g->w_in; /* pixel (oh, ow) reads src[ow*sw - pw + kx] */
                const int64_t shift = kx - g->pad_w;
                for (int64_t ow = ow0; ow < l && ow < ow1; ow++) d[ow * p_stride] = 0.0f;
                if (sw == 1)
                    for (int64_t ow = l; ow < h; ow++) d[ow * p_stride] = src[ow + shift];
                else
                    for (int64_t ow = l; ow < h; ow++) d[ow * p_stride] = src[ow * sw + shift];
                for (int64_t ow = (h > ow0 ? h : ow0); ow < ow1; ow++) d[ow * p_stride] = 0.0f;
            }
            p += ow1 - ow0;
        }
    }
}

void pt_im2col(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1, int64_t p0, int64_t p1,
               float *out)
{
    im2col_strided(g, x, k0, k1, p0, p1, out, p1 - p0, 1);
}

void pt_im2col_transposed_panels(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1, int64_t p0,
                                 int64_t p1, int64_t panel, float *out)
{
    /* one panel (p1 - p0 pixels x panel floats) stays in L1 while its columns are written; the tiles' two
     * widths as constants, so the stores of each get their own tight loops */
    for (int64_t k = k0; k < k1; k += panel, out += (p1 - p0) * panel) {
        const int64_t k_end = k + panel < k1 ? k + panel : k1;
        if (panel == PT_IM2COL_PANEL)
            im2col_strided(g, x, k, k_end, p0, p1, out, 1, PT_IM2COL_PANEL);
        else if (panel == 2 * PT_IM2COL_PANEL)
            im2col_strided(g, x, k, k_end, p0, p1, out, 1, 2 * PT_IM2COL_PANEL);
        else
            im2col_strided(g, x, k, k_end, p0, p1, out, 1, panel);
    }
}

void pt_col2im(const pt_conv_geometry *g, const float *dcol, int64_t c0, int64_t c1, int64_t oh0, int64_t oh1,
               int64_t ih0, int64_t ih1, float *dx, int accumulate)
{
    const int64_t hw = g->h_in * g->w_in, P = (oh1 - oh0) * g->w_out, sw = g->stride_w;
    for (int64_t c = c0; c < c1; c++) {
        float *dxc = dx + c * hw;
        if (!accumulate)
            for (int64_t i = ih0 * g->w_in; i < ih1 * g->w_in; i++) dxc[i] = 0.0f;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            for (int64_t kx = 0; kx < g->kw; kx++) {
                const float *src = dcol + (((c - c0) * g->kh + ky) * g->kw + kx) * P;
                int64_t lo, hi;
                pt_conv_valid_range(g->w_out, sw, g->pad_w, kx, g->w_in, &lo, &hi);
                for (int64_t oh = oh0; oh < oh1; oh++) {
                    const int64_t ih = oh * g->stride_h - g->pad_h + ky;
                    if (ih < ih0 || ih >= ih1) continue;
                    float *d = dxc + ih * g->w_in; /* pixel (oh, ow) adds into d[ow*sw - pw + kx] */
                    const float *s = src + (oh - oh0) * g->w_out;
                    const int64_t shift = kx - g->pad_w;
                    if (sw == 1)
                        for (int64_t ow = lo; ow < hi; ow++) d[ow + shift] += s[ow];
                    else
                        for (int64_t ow = lo; ow < hi; ow++) d[ow * sw + shift] += s[ow];
                }
            }
        }
    }
}
