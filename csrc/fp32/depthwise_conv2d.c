/* GCC turns short copy / fill loops (a 16-float panel row, an 8-float plane row) into memcpy / memset
 * calls that cost more than the loop; keep them inline. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#include <stddef.h>
#include <stdint.h>
#include "arch.h"
#include "depthwise_conv2d.h"
#include "parallel.h"

/* This file compiles once as itself (the portable kernels, the tier choice and the API) and once more per x86
 * ISA level from csrc/arch/x86/depthwise_conv2d_<level>.c, under that level's target flags with
 * PT_DEPTHWISE_LEVEL set: the same kernels then use its vector width and fused multiply-adds. The API runs the
 * kernel set of its team's ISA level (isa.h). */
#ifndef PT_DEPTHWISE_LEVEL
#define PT_DEPTHWISE_LEVEL generic
#define PT_DEPTHWISE_API 1
#else
#define PT_DEPTHWISE_API 0
#endif
#define DW_CAT2(a, b) a##b
#define DW_CAT(a, b) DW_CAT2(a, b)
#define DW_KERNELS(level) DW_CAT(pt_depthwise_kernels_, level)

typedef struct {
    const pt_conv_geometry *g;
    const float *a, *b, *bias; /* the two operands of the step (see each worker) */
    float *out;
    int accumulate;
} dw_task;

/* kernels[tier] of one step, and the three steps of one ISA level */
typedef struct {
    pt_task_fn generic, plane, channel_blocks;
} step_kernels;
typedef struct {
    step_kernels forward, grad_input, grad_weight;
} dw_kernel_set;

#if PT_DEPTHWISE_API
static pt_status check(const pt_conv_geometry *g, const void *a, const void *b, const void *out)
{
    if (g == NULL || a == NULL || b == NULL || out == NULL) return PT_ERR_NULL_POINTER;
    if (g->c_out != g->c_in) return PT_ERR_BAD_SHAPE;
    return PT_OK;
}
#endif

/* a = x, b = w: y[n,c,oh,ow] = bias[c] + sum_{ky,kx} w[c,ky,kx] * x[n,c,ih,iw] (padding contributes 0). */
static void forward_worker(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, ph = g->pad_h, pw = g->pad_w, kh = g->kh, kw = g->kw;
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    int64_t c = u0 % C; /* the channel of plane u, without a 64-bit division per plane */
    for (int64_t u = u0; u < u1; u++, c = c + 1 < C ? c + 1 : 0) {
        const float *x = t->a + u * H * W, *w = t->b + c * kh * kw;
        const float b = t->bias ? t->bias[c] : 0.0f;
        float *y = t->out + u * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < Wo; ow++) {
                float acc = 0.0f;
                for (int64_t ky = 0; ky < kh; ky++) {
                    const int64_t ih = oh * sh - ph + ky;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        const int64_t iw = ow * sw - pw + kx;
                        if (iw >= 0 && iw < W) acc += w[ky * kw + kx] * x[ih * W + iw];
                    }
                }
                y[oh * Wo + ow] = acc + b;
            }
        }
    }
}

/* a = dy, b = w: each (image, channel) plane of dx is scattered into by its own plane of dy only. */
static void grad_input_worker(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, ph = g->pad_h, pw = g->pad_w, kh = g->kh, kw = g->kw;
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    int64_t c = u0 % C; /* the channel of plane u, without a 64-bit division per plane */
    for (int64_t u = u0; u < u1; u++, c = c + 1 < C ? c + 1 : 0) {
        const float *dy = t->a + u * Ho * Wo, *w = t->b + c * kh * kw;
        float *dx = t->out + u * H * W;
        if (!t->accumulate)
            for (int64_t i = 0; i < H * W; i++) dx[i] = 0.0f;
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < Wo; ow++) {
                const float gy = dy[oh * Wo + ow];
                for (int64_t ky = 0; ky < kh; ky++) {
                    const int64_t ih = oh * sh - ph + ky;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        const int64_t iw = ow * sw - pw + kx;
                        if (iw >= 0 && iw < W) dx[ih * W + iw] += w[ky * kw + kx] * gy;
                    }
                }
            }
        }
    }
}

/* a = dy, b = x: dw[c,ky,kx] = sum_n sum_{oh,ow} dy[n,c,oh,ow] * x[n,c,ih,iw]; cores split channels. */
static void grad_weight_worker(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, ph = g->pad_h, pw = g->pad_w, kh = g->kh, kw = g->kw;
    int64_t c0, c1;
    pt_chunk(C, 1, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
        float *dw = t->out + c * kh * kw;
        for (int64_t ky = 0; ky < kh; ky++) {
            for (int64_t kx = 0; kx < kw; kx++) {
                float acc = 0.0f;
                for (int64_t n = 0; n < g->n; n++) {
                    const float *dy = t->a + (n * C + c) * Ho * Wo, *x = t->b + (n * C + c) * H * W;
                    for (int64_t oh = 0; oh < Ho; oh++) {
                        const int64_t ih = oh * sh - ph + ky;
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t ow = 0; ow < Wo; ow++) {
                            const int64_t iw = ow * sw - pw + kx;
                            if (iw >= 0 && iw < W) acc += dy[oh * Wo + ow] * x[ih * W + iw];
                        }
                    }
                }
                dw[ky * kw + kx] = t->accumulate ? dw[ky * kw + kx] + acc : acc;
            }
        }
    }
}

/* ---- direct vectorised kernels (small kernels, strides 1 and 2) ----------------------------------------
 * A plane is copied into a zero-bordered buffer once, then every output is a fixed sum over the taps with
 * no bounds checks: with the buffer's row pitch P, output (r, c) of a stride-1 correlation is
 * sum_t w[t] * buf[(r + ky) * P + c + kx], so all outputs of a plane are one flat 1-D stencil over
 * r * P + c, computed 8 at a time (the columns c >= width are computed and dropped). The borders of the
 * buffers are zeroed once per task; each plane rewrites the same interior positions.
 *   forward:     buf = padded x;                         y = stencil rows oh*sh, columns ow*sw
 *   grad_input:  buf = dy spread to stride s and padded by k-1-p;  dx = stencil with the flipped kernel
 *   grad_weight: dw[t] = dot(dy spread onto the padded-x grid, padded x shifted by tap t), over all images
 * Each output element is summed by one core in a fixed order (taps ascending; for grad_weight, lane-wise
 * partial sums over images and pixels, then the 8 lanes in a fixed tree). */

/* Floats of one stack buffer (a padded plane); larger planes use the generic loops above. */
#ifndef PT_DW_PLANE_FLOATS
#define PT_DW_PLANE_FLOATS 4608
#endif
#define DW_MAX_TAPS 25
#define SERIAL_MAX_MACS 65536 /* calls below this run on one core (see run) */
#define DW_GW_CHANNELS 16 /* grad_weight channel block (its accumulators live on the stack) */

static inline int64_t round8(int64_t x) { return (x + 7) & ~(int64_t)7; }

typedef struct {
    int64_t pitch, rows;  /* padded buffer: rows x pitch, then a zero tail */
    int64_t floats;       /* buffer floats including the tail the 8-wide loops may read */
} dw_buffer;

/* Buffer with `pad_*` zero rows/columns before an h x w interior and `extra_*` after it. The tail covers
 * the farthest read of a stencil whose flat range is rounded up to 8. */
static dw_buffer buffer_for(int64_t h, int64_t w, int64_t pad_top, int64_t pad_left, int64_t extra_h,
                            int64_t extra_w, int64_t kw)
{
    dw_buffer b;
    b.pitch = pad_left + w + extra_w;
    b.rows = pad_top + h + extra_h;
    b.floats = b.rows * b.pitch + 8 + kw;
    return b;
}

#if PT_DEPTHWISE_API /* the tier choice (the kernels of every level share it) */
static int direct_supported(const pt_conv_geometry *g)
{
    if (g->kh * g->kw > DW_MAX_TAPS || g->stride_h > 2 || g->stride_w > 2) return 0;
    if (g->pad_h > g->kh - 1 || g->pad_w > g->kw - 1) return 0;
    dw_buffer x = buffer_for(g->h_in, g->w_in, g->pad_h, g->pad_w, g->pad_h, g->pad_w, g->kw);
    dw_buffer u = buffer_for(g->h_in, g->w_in, 0, 0, g->kh - 1, g->kw - 1, g->kw);
    return x.floats <= PT_DW_PLANE_FLOATS && u.floats <= PT_DW_PLANE_FLOATS;
}
#endif

static void zero(float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++) p[i] = 0.0f;
}

/* Copies an h x w plane into buf at (top, left) with row pitch `pitch`. */
static void copy_plane(const float *restrict src, int64_t h, int64_t w, float *restrict buf, int64_t pitch,
                       int64_t top, int64_t left)
{
    for (int64_t r = 0; r < h; r++) {
        const float *s = src + r * w;
        float *d = buf + (top + r) * pitch + left;
        for (int64_t c = 0; c < w; c++) d[c] = s[c];
    }
}

/* Spreads an ho x wo plane onto buf: element (r, c) to ((top + r*sh) * pitch + left + c*sw). */
static void spread_plane(const float *restrict src, int64_t ho, int64_t wo, int64_t sh, int64_t sw,
                         float *restrict buf, int64_t pitch, int64_t top, int64_t left)
{
    if (sw == 1) {
        for (int64_t r = 0; r < ho; r++) copy_plane(src + r * wo, 1, wo, buf, pitch, top + r * sh, left);
        return;
    }
    for (int64_t r = 0; r < ho; r++) {
        float *d = buf + (top + r * sh) * pitch + left;
        for (int64_t c = 0; c < wo; c++) d[c * sw] = src[r * wo + c];
    }
}

/* out[q] = sum_t w[t] * buf[q + off[t]] for q in [q0, q1) rounded up to a multiple of 8. */
static void stencil(const float *restrict buf, const int64_t *off, const float *w, int taps, int64_t q0,
                    int64_t q1, float *restrict out)
{
    for (int64_t q = q0; q < q1; q += 8) {
        pt_vec8 acc = {0};
        for (int t = 0; t < taps; t++) acc += w[t] * *(const pt_vec8 *)(buf + q + off[t]);
        *(pt_vec8 *)(out + q - q0) = acc;
    }
}

static void tap_offsets(int64_t kh, int64_t kw, int64_t pitch, int64_t *off)
{
    for (int64_t ky = 0; ky < kh; ky++)
        for (int64_t kx = 0; kx < kw; kx++) off[ky * kw + kx] = ky * pitch + kx;
}

/* 3x3, stride 1, padding 1 on planes of H*W = a multiple of 8 floats (the 8x8 and 4x4 MobileNet planes):
 * no copy at all. The stencil runs on the plane in place with row pitch W; a tap that would read across the
 * plane's border (into the neighbouring row or plane) is masked to +0 by an AND with a precomputed lane mask,
 * which gives the same value as the zero border of the buffered path. Only the first and last plane of the
 * tensor, whose masked reads would leave the array, take the buffered path. */
#define MASKED_MAX_VECTORS 64 /* planes up to 512 floats */

static int masked_supported(const pt_conv_geometry *g)
{
    const int64_t hw = g->h_in * g->w_in;
    return g->kh == 3 && g->kw == 3 && g->stride_h == 1 && g->stride_w == 1 && g->pad_h == 1 &&
           g->pad_w == 1 && hw % 8 == 0 && hw / 8 <= MASKED_MAX_VECTORS;
}

typedef struct {
    int64_t off[9];                       /* flat offset of tap t from the output position */
    pt_ivec8 mask[9][MASKED_MAX_VECTORS]; /* all ones where tap t reads inside the plane */
} dw_masks;

/* Row by row, 32-bit: each core builds the masks, so a division per element (64-bit, a library call on
 * rv32) cost more than the stencil of a 512-channel 8x8 layer's share. */
static void masks_init(int64_t H, int64_t W, dw_masks *m)
{
    const int h = (int)H, w = (int)W; /* a plane of at most 8 * MASKED_MAX_VECTORS floats */
    for (int t = 0; t < 9; t++) {
        const int dy = t / 3 - 1, dx = t % 3 - 1;
        m->off[t] = (int64_t)dy * W + dx;
        for (int r = 0, q = 0; r < h; r++) {
            const int row_inside = r + dy >= 0 && r + dy < h;
            for (int c = 0; c < w; c++, q++)
                m->mask[t][q >> 3][q & 7] = (row_inside && c + dx >= 0 && c + dx < w) ? -1 : 0;
        }
    }
}

static inline pt_vec8 masked_load(const float *p, pt_ivec8 mask)
{
    return (pt_vec8)(*(const pt_ivec8 *)p & mask);
}

/* s[q] = sum_t w[t] * plane[q + off[t]] (taps outside the plane count 0) over the whole plane, then
 * out[q] = s[q] + bias, or out[q] += s[q] when accumulating. */
static void masked_stencil(const float *restrict plane, const dw_masks *m, const float *w, int64_t vectors,
                           float bias, int accumulate, float *restrict out)
{
    for (int64_t v = 0; v < vectors; v++) {
        const float *p = plane + v * 8;
        pt_vec8 acc = {0};
        for (int t = 0; t < 9; t++) acc += w[t] * masked_load(p + m->off[t], m->mask[t][v]);
        pt_vec8 *o = (pt_vec8 *)(out + v * 8);
        if (accumulate)
            *o += acc;
        else
            *o = acc + bias;
    }
}

static void forward_direct(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, taps = g->kh * g->kw;
    const dw_buffer xb = buffer_for(H, W, g->pad_h, g->pad_w, g->pad_h, g->pad_w, g->kw);
    float xp[PT_DW_PLANE_FLOATS], row[PT_DW_PLANE_FLOATS];
    int64_t off[DW_MAX_TAPS];
    tap_offsets(g->kh, g->kw, xb.pitch, off);
    zero(xp, xb.floats);
    /* stride 1: the whole plane is one flat range; stride 2: one range per output row */
    const int64_t span = sw * (Wo - 1) + 1;
    const int masked = masked_supported(g);
    dw_masks m;
    if (masked) masks_init(H, W, &m);
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    int64_t c = u0 % C; /* the channel of plane u, without a 64-bit division per plane */
    for (int64_t u = u0; u < u1; u++, c = c + 1 < C ? c + 1 : 0) {
        const float b = t->bias ? t->bias[c] : 0.0f;
        float *y = t->out + u * Ho * Wo;
        if (masked && u > 0 && u < g->n * C - 1) {
            masked_stencil(t->a + u * H * W, &m, t->b + c * taps, H * W / 8, b, 0, y);
            continue;
        }
        copy_plane(t->a + u * H * W, H, W, xp, xb.pitch, g->pad_h, g->pad_w);
        if (sh == 1) {
            stencil(xp, off, t->b + c * taps, (int)taps, 0, Ho * xb.pitch, row);
            for (int64_t oh = 0; oh < Ho; oh++)
                for (int64_t ow = 0; ow < Wo; ow++) y[oh * Wo + ow] = row[oh * xb.pitch + ow * sw] + b;
        } else {
            for (int64_t oh = 0; oh < Ho; oh++) {
                const int64_t q0 = oh * sh * xb.pitch;
                stencil(xp, off, t->b + c * taps, (int)taps, q0, q0 + span, row);
                for (int64_t ow = 0; ow < Wo; ow++) y[oh * Wo + ow] = row[ow * sw] + b;
            }
        }
    }
}

static void grad_input_direct(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t kh = g->kh, kw = g->kw, taps = kh * kw;
    const int64_t top = kh - 1 - g->pad_h, left = kw - 1 - g->pad_w;
    const dw_buffer ub = buffer_for(H, W, 0, 0, kh - 1, kw - 1, kw);
    float up[PT_DW_PLANE_FLOATS], row[PT_DW_PLANE_FLOATS];
    int64_t off[DW_MAX_TAPS];
    float wflip[DW_MAX_TAPS];
    tap_offsets(kh, kw, ub.pitch, off);
    zero(up, ub.floats);
    const int masked = masked_supported(g);
    dw_masks m;
    if (masked) masks_init(H, W, &m);
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    int64_t c = u0 % C; /* the channel of plane u, without a 64-bit division per plane */
    for (int64_t u = u0; u < u1; u++, c = c + 1 < C ? c + 1 : 0) {
        const float *w = t->b + c * taps;
        for (int64_t i = 0; i < taps; i++) wflip[i] = w[taps - 1 - i];
        float *dx = t->out + u * H * W;
        if (masked && u > 0 && u < g->n * C - 1) {
            /* stride 1, padding 1: dx is the same stencil over dy with the flipped kernel */
            masked_stencil(t->a + u * Ho * Wo, &m, wflip, H * W / 8, 0.0f, t->accumulate, dx);
            continue;
        }
        spread_plane(t->a + u * Ho * Wo, Ho, Wo, g->stride_h, g->stride_w, up, ub.pitch, top, left);
        stencil(up, off, wflip, (int)taps, 0, H * ub.pitch, row);
        for (int64_t ih = 0; ih < H; ih++) {
            const float *src = row + ih * ub.pitch;
            float *d = dx + ih * W;
            if (t->accumulate)
                for (int64_t iw = 0; iw < W; iw++) d[iw] += src[iw];
            else
                for (int64_t iw = 0; iw < W; iw++) d[iw] = src[iw];
        }
    }
}

static void grad_weight_direct(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, taps = g->kh * g->kw;
    const dw_buffer xb = buffer_for(H, W, g->pad_h, g->pad_w, g->pad_h, g->pad_w, g->kw);
    float xp[PT_DW_PLANE_FLOATS], dyp[PT_DW_PLANE_FLOATS];
    int64_t off[DW_MAX_TAPS];
    tap_offsets(g->kh, g->kw, xb.pitch, off);
    zero(xp, xb.floats);
    zero(dyp, xb.floats);
    const int64_t span = round8((sh * (Ho - 1) + 1) * xb.pitch);
    const int masked = masked_supported(g);
    dw_masks m;
    if (masked) masks_init(H, W, &m);
    int64_t c0, c1;
    pt_chunk(C, 1, &c0, &c1);
    /* Channels in blocks, images outside: memory is read in its own order (a channel at a time over all
     * images would jump a whole image per plane). Each channel still sums images, then pixels, in order. */
    for (int64_t cb = c0; cb < c1; cb += DW_GW_CHANNELS) {
        const int64_t cend = cb + DW_GW_CHANNELS < c1 ? cb + DW_GW_CHANNELS : c1;
        pt_vec8 acc[DW_GW_CHANNELS][DW_MAX_TAPS];
        for (int64_t c = cb; c < cend; c++)
            for (int64_t i = 0; i < taps; i++) acc[c - cb][i] = (pt_vec8){0};
        for (int64_t n = 0; n < g->n; n++) {
            for (int64_t c = cb; c < cend; c++) {
                pt_vec8 *a = acc[c - cb];
                const int64_t u = n * C + c;
                if (masked && u > 0 && u < g->n * C - 1) {
                    const float *x = t->b + u * H * W, *dy = t->a + u * Ho * Wo;
                    for (int64_t v = 0; v < H * W / 8; v++) {
                        const pt_vec8 d = *(const pt_vec8 *)(dy + v * 8);
                        for (int i = 0; i < 9; i++) a[i] += d * masked_load(x + v * 8 + m.off[i], m.mask[i][v]);
                    }
                    continue;
                }
                copy_plane(t->b + u * H * W, H, W, xp, xb.pitch, g->pad_h, g->pad_w);
                spread_plane(t->a + u * Ho * Wo, Ho, Wo, sh, sw, dyp, xb.pitch, 0, 0);
                for (int64_t q = 0; q < span; q += 8) {
                    const pt_vec8 d = *(const pt_vec8 *)(dyp + q);
                    for (int64_t i = 0; i < taps; i++) a[i] += d * *(const pt_vec8 *)(xp + q + off[i]);
                }
            }
        }
        for (int64_t c = cb; c < cend; c++) {
            float *dw = t->out + c * taps;
            for (int64_t i = 0; i < taps; i++) {
                const pt_vec8 v = acc[c - cb][i];
                const float s = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
                dw[i] = t->accumulate ? dw[i] + s : s;
            }
        }
    }
}

/* ---- channel blocks: small planes, 3x3, strides 1 and 2 (hosts with SIMD only) ------------------------
 * The planes of a small layer (8x8, 4x4) are too short to fill vectors along a row, so here a vector holds
 * the same pixel of 8 channels of one image instead. A block of 8 channel planes is transposed (8x8 register
 * transposes) into a zero-bordered scratch of [row][column][8 channels], every tap is one 8-wide FMA with a
 * per-lane weight vector, and the result is transposed back:
 *   forward:     y = sum_t w[t] * xpad[oh*sh + ky][ow*sw + kx], then + bias
 *   grad_input:  dy spread to stride s inside a border of k-1-p; dx = the stride-1 sum with the flipped kernel
 *   grad_weight: dw[t] += dy[oh][ow] * xpad[oh*sh + ky][ow*sw + kx] over images, then pixels, row-major
 * Each lane is one channel and never mixes with the others, so a channel gets the same bits in any block
 * position, and the last block of a channel count that is not a multiple of 8 just leaves its spare lanes at
 * zero. Forward and grad_input split (image, channel block) units across cores, grad_weight splits channel
 * blocks (each core runs the image loop of its own channels). On targets without SIMD the 8 lanes would be
 * 8 scalar copies of the same work plus the transposes, so there the plane kernels above are used instead. */
#define DW_CHANNEL_BLOCKS PT_ARCH_SIMD8

#if DW_CHANNEL_BLOCKS
#define CB_LANES 8
#define CB_MAX_PLANE 256   /* input planes up to 16x16 pixels */
#define CB_MAX_PIXELS 400  /* pixels of one bordered scratch plane (16x16 with a border of 2) */

typedef int32_t cb_index8 __attribute__((vector_size(32)));
#if defined(__clang__)
#define CB_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define CB_SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (cb_index8){__VA_ARGS__})
#endif
#define CB_INLINE static inline __attribute__((always_inline))

#if PT_DEPTHWISE_API
static int channel_blocks_supported(const pt_conv_geometry *g)
{
    const int64_t H = g->h_in, W = g->w_in;
    return g->kh == 3 && g->kw == 3 && g->stride_h <= 2 && g->stride_w <= 2 && g->pad_h <= 2 && g->pad_w <= 2 &&
           H * W <= CB_MAX_PLANE && (H + 2 * g->pad_h) * (W + 2 * g->pad_w) <= CB_MAX_PIXELS &&
           (H + 2) * (W + 2) <= CB_MAX_PIXELS;
}
#endif

/* r[i][j] -> r[j][i] (unpack, 64-bit shuffle, 128-bit swap: the classic AVX sequence). */
CB_INLINE void transpose8(pt_vec8 r[8])
{
    pt_vec8 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = CB_SHUFFLE(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = CB_SHUFFLE(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4)
        for (int j = 0; j < 2; j++) {
            s[i + 2 * j] = CB_SHUFFLE(t[i + j], t[i + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            s[i + 2 * j + 1] = CB_SHUFFLE(t[i + j], t[i + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int j = 0; j < 4; j++) {
        r[j] = CB_SHUFFLE(s[j], s[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[j + 4] = CB_SHUFFLE(s[j], s[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* Scratch position of each pixel (r, c) of an h x w plane: (top + r*sr) * pitch + left + c*sc. */
static void block_map(int64_t h, int64_t w, int64_t top, int64_t left, int64_t sr, int64_t sc, int64_t pitch,
                      int32_t *map)
{
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++) map[r * w + c] = (int32_t)((top + r * sr) * pitch + left + c * sc);
}

/* dst[map[q]][l] = src[l * hw + q] for the `lanes` planes of src (spare lanes 0); map NULL: dst[q]. */
CB_INLINE void gather_block(const float *restrict src, int lanes, int64_t hw, const int32_t *map,
                            pt_vec8 *restrict dst)
{
    int64_t q = 0;
    for (; q + 8 <= hw; q += 8) {
        pt_vec8 r[8];
        if (lanes == CB_LANES) { /* the common case: the rows stay in registers */
            for (int l = 0; l < 8; l++) r[l] = *(const pt_vec8 *)(src + l * hw + q);
        } else {
            for (int l = 0; l < 8; l++) r[l] = (pt_vec8){0};
            for (int l = 0; l < lanes; l++) r[l] = *(const pt_vec8 *)(src + l * hw + q);
        }
        transpose8(r);
        for (int j = 0; j < 8; j++) dst[map ? map[q + j] : q + j] = r[j];
    }
    for (; q < hw; q++) {
        pt_vec8 v = {0};
        for (int l = 0; l < lanes; l++) v[l] = src[l * hw + q];
        dst[map ? map[q] : q] = v;
    }
}

/* Per-lane taps of channels c0 .. c0+lanes-1 (flipped: the kernel rotated by 180 degrees); spare lanes 0. */
static void block_weights(const float *w, int64_t c0, int lanes, int flip, pt_vec8 taps[9])
{
    if (lanes == CB_LANES) { /* taps 0..7 and 1..8 of the 8 channels, each an 8x8 transpose */
        pt_vec8 first[8], last[8];
        for (int l = 0; l < 8; l++) {
            first[l] = *(const pt_vec8 *)(w + (c0 + l) * 9);
            last[l] = *(const pt_vec8 *)(w + (c0 + l) * 9 + 1);
        }
        transpose8(first);
        transpose8(last);
        for (int t = 0; t < 8; t++) taps[flip ? 8 - t : t] = first[t];
        taps[flip ? 0 : 8] = last[7];
        return;
    }
    for (int t = 0; t < 9; t++) {
        taps[t] = (pt_vec8){0};
        for (int l = 0; l < lanes; l++) taps[t][l] = w[(c0 + l) * 9 + (flip ? 8 - t : t)];
    }
}

/* Sum over the 9 taps around p (p = the top-left tap), taps in ascending order. */
CB_INLINE pt_vec8 taps9(const pt_vec8 *p, int64_t pitch, const pt_vec8 w[9])
{
    pt_vec8 acc = w[0] * p[0];
    acc += w[1] * p[1];
    acc += w[2] * p[2];
    acc += w[3] * p[pitch];
    acc += w[4] * p[pitch + 1];
    acc += w[5] * p[pitch + 2];
    acc += w[6] * p[2 * pitch];
    acc += w[7] * p[2 * pitch + 1];
    acc += w[8] * p[2 * pitch + 2];
    return acc;
}

/* dst[l * hw + q] = taps9 at scratch position at[q], + bias (or dst += the sum when accumulating), for the
 * `lanes` planes of dst: 8 output pixels at a time, transposed in registers on the way out. */
static void correlate_block(const pt_vec8 *restrict s, const int32_t *at, int64_t pitch, int64_t hw,
                            const pt_vec8 w[9], pt_vec8 bias, int lanes, int accumulate, float *restrict dst)
{
    int64_t q = 0;
    for (; q + 8 <= hw; q += 8) {
        /* taps9 for 8 pixels, tap by tap, so the 8 sums are 8 independent chains in flight */
        const pt_vec8 *p[8];
        pt_vec8 r[8];
        for (int j = 0; j < 8; j++) p[j] = s + at[q + j];
        for (int j = 0; j < 8; j++) r[j] = w[0] * p[j][0];
        for (int t = 1; t < 9; t++) {
            const int64_t off = (t / 3) * pitch + t % 3;
            for (int j = 0; j < 8; j++) r[j] += w[t] * p[j][off];
        }
        for (int j = 0; j < 8; j++) r[j] += bias;
        transpose8(r);
        if (lanes == CB_LANES && !accumulate) {
            for (int l = 0; l < 8; l++) *(pt_vec8 *)(dst + l * hw + q) = r[l];
        } else {
            for (int l = 0; l < lanes; l++) {
                pt_vec8 *d = (pt_vec8 *)(dst + l * hw + q);
                if (accumulate)
                    *d += r[l];
                else
                    *d = r[l];
            }
        }
    }
    for (; q < hw; q++) {
        const pt_vec8 v = taps9(s + at[q], pitch, w) + bias;
        for (int l = 0; l < lanes; l++) dst[l * hw + q] = accumulate ? dst[l * hw + q] + v[l] : v[l];
    }
}

static int block_lanes(int64_t C, int64_t c0)
{
    return (int)(C - c0 < CB_LANES ? C - c0 : CB_LANES);
}

/* A block is read 8 planes abreast, which the hardware prefetchers follow poorly on planes this small: the
 * input of a block ahead is requested while this one computes. */
#define CB_PREFETCH_AHEAD 2
CB_INLINE void prefetch_block(const float *block, int lanes, int64_t plane)
{
    for (int64_t i = 0; i < lanes * plane; i += 16) __builtin_prefetch(block + i);
}

/* Forward and grad_input split units u = (image n, channel block b), u = n * blocks + b, which is memory
 * order. The tap vectors (and bias) of a block are built once per task while the layer has at most
 * CB_CACHED_BLOCKS blocks, else once per unit; the values are the same either way. */
#define CB_CACHED_BLOCKS 128 /* 1024 channels: 40 KB of stack */
typedef struct {
    int64_t n, b, c0;
    int lanes;
} dw_unit;

static dw_unit unit_at(int64_t u, int64_t blocks, int64_t C)
{
    dw_unit v = {u / blocks, u % blocks, (u % blocks) * CB_LANES, 0};
    v.lanes = block_lanes(C, v.c0);
    return v;
}

typedef struct {
    pt_vec8 taps[CB_CACHED_BLOCKS][9], bias[CB_CACHED_BLOCKS];
    unsigned char built[CB_CACHED_BLOCKS];
    int64_t blocks;
    pt_vec8 scratch_taps[9], scratch_bias; /* when there are more blocks than the cache holds */
} dw_tap_cache;

static void tap_cache_init(dw_tap_cache *tc, int64_t blocks)
{
    tc->blocks = blocks;
    for (int64_t b = 0; b < CB_CACHED_BLOCKS && b < blocks; b++) tc->built[b] = 0;
}

/* The tap vectors of unit v's block (flipped for grad_input), and its bias vector in *bias (0 without one). */
static const pt_vec8 *block_taps(dw_tap_cache *tc, const dw_unit *v, const float *w, const float *bias_in,
                                 int flip, pt_vec8 *bias)
{
    const int cached = tc->blocks <= CB_CACHED_BLOCKS;
    pt_vec8 *taps = cached ? tc->taps[v->b] : tc->scratch_taps, *b = cached ? &tc->bias[v->b] : &tc->scratch_bias;
    if (!cached || !tc->built[v->b]) {
        block_weights(w, v->c0, v->lanes, flip, taps);
        *b = (pt_vec8){0};
        if (bias_in && v->lanes == CB_LANES)
            *b = *(const pt_vec8 *)(bias_in + v->c0);
        else if (bias_in)
            for (int l = 0; l < v->lanes; l++) (*b)[l] = bias_in[v->c0 + l];
        if (cached) tc->built[v->b] = 1;
    }
    *bias = *b;
    return taps;
}

/* This core's (image, channel block) units of a stencil step: gather each block of `src` (planes of
 * src_plane pixels) into the bordered scratch at `map`, run the taps at `at` and write the out_pixels result
 * planes (flip: the transposed stencil of grad_input; bias: per channel or NULL). */
static void stencil_units(const dw_task *t, int64_t src_plane, int64_t out_pixels, const int32_t *map,
                          const int32_t *at, int64_t pitch, pt_vec8 *scratch, int flip, const float *bias,
                          int accumulate)
{
    const int64_t C = t->g->c_in, blocks = (C + CB_LANES - 1) / CB_LANES;
    dw_tap_cache tc;
    tap_cache_init(&tc, blocks);
    int64_t u0, u1;
    pt_chunk(t->g->n * blocks, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const dw_unit v = unit_at(u, blocks, C);
        const float *src = t->a + (v.n * C + v.c0) * src_plane;
        pt_vec8 block_bias;
        const pt_vec8 *w = block_taps(&tc, &v, t->b, bias, flip, &block_bias);
        if (u + CB_PREFETCH_AHEAD < u1) prefetch_block(src + (v.lanes + CB_LANES) * src_plane, CB_LANES, src_plane);
        gather_block(src, v.lanes, src_plane, map, scratch);
        correlate_block(scratch, at, pitch, out_pixels, w, block_bias, v.lanes, accumulate,
                        t->out + (v.n * C + v.c0) * out_pixels);
    }
}

static void forward_blocks(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out, pitch = W + 2 * g->pad_w;
    _Alignas(32) pt_vec8 xs[CB_MAX_PIXELS];
    int32_t map[CB_MAX_PLANE], at[CB_MAX_PIXELS];
    block_map(H, W, g->pad_h, g->pad_w, 1, 1, pitch, map);
    block_map(Ho, Wo, 0, 0, g->stride_h, g->stride_w, pitch, at);
    for (int64_t i = 0; i < (H + 2 * g->pad_h) * pitch; i++) xs[i] = (pt_vec8){0};
    stencil_units(t, H * W, Ho * Wo, map, at, pitch, xs, 0, t->bias, 0);
}

static void grad_input_blocks(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out, pitch = W + 2;
    _Alignas(32) pt_vec8 dys[CB_MAX_PIXELS];
    int32_t map[CB_MAX_PIXELS], at[CB_MAX_PLANE];
    /* dy (oh, ow) lands at (2 - pad + oh*stride): dx (ih, iw) = sum_t wflip[t] * dys[ih + ky][iw + kx] */
    block_map(Ho, Wo, 2 - g->pad_h, 2 - g->pad_w, g->stride_h, g->stride_w, pitch, map);
    block_map(H, W, 0, 0, 1, 1, pitch, at);
    for (int64_t i = 0; i < (H + 2) * pitch; i++) dys[i] = (pt_vec8){0};
    stencil_units(t, Ho * Wo, H * W, map, at, pitch, dys, 1, NULL, t->accumulate);
}

/* acc[t] += dy[oh][ow] * xs[oh*sh + ky][ow*sw + kx] over the output pixels, row-major. */
CB_INLINE void weight_taps_block(const pt_vec8 *restrict xs, const pt_vec8 *restrict dys, int64_t pitch, int64_t sh,
                                 int64_t sw, int64_t ho, int64_t wo, pt_vec8 *restrict acc)
{
    pt_vec8 a[9];
    for (int i = 0; i < 9; i++) a[i] = acc[i];
    for (int64_t oh = 0; oh < ho; oh++)
        for (int64_t ow = 0; ow < wo; ow++) {
            const pt_vec8 d = dys[oh * wo + ow], *p = xs + oh * sh * pitch + ow * sw;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) a[ky * 3 + kx] += d * p[ky * pitch + kx];
        }
    for (int i = 0; i < 9; i++) acc[i] = a[i];
}

#define CB_WEIGHT_BLOCKS 16 /* channel blocks whose sums stay on the stack while the images go by */

static void grad_weight_blocks(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, pitch = W + 2 * g->pad_w;
    const int64_t blocks = (C + CB_LANES - 1) / CB_LANES;
    _Alignas(32) pt_vec8 xs[CB_MAX_PIXELS], dys[CB_MAX_PIXELS];
    int32_t map[CB_MAX_PLANE];
    block_map(H, W, g->pad_h, g->pad_w, 1, 1, pitch, map);
    for (int64_t i = 0; i < (H + 2 * g->pad_h) * pitch; i++) xs[i] = (pt_vec8){0};
    int64_t b0, b1;
    pt_chunk(blocks, 1, &b0, &b1);
    /* Images outside the blocks of one group, so memory is read in its own order; each lane still sums
     * images, then pixels, in order. */
    for (int64_t bg = b0; bg < b1; bg += CB_WEIGHT_BLOCKS) {
        const int64_t bend = bg + CB_WEIGHT_BLOCKS < b1 ? bg + CB_WEIGHT_BLOCKS : b1;
        pt_vec8 acc[CB_WEIGHT_BLOCKS][9];
        for (int64_t b = bg; b < bend; b++)
            for (int i = 0; i < 9; i++) acc[b - bg][i] = (pt_vec8){0};
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t b = bg; b < bend; b++) {
                const int64_t c0 = b * CB_LANES;
                const int lanes = block_lanes(C, c0);
                const float *x = t->b + (n * C + c0) * H * W, *dy = t->a + (n * C + c0) * Ho * Wo;
                if (b + 1 < bend) { /* the next block of this image */
                    prefetch_block(x + lanes * H * W, block_lanes(C, c0 + CB_LANES), H * W);
                    prefetch_block(dy + lanes * Ho * Wo, block_lanes(C, c0 + CB_LANES), Ho * Wo);
                }
                gather_block(x, lanes, H * W, map, xs);
                gather_block(dy, lanes, Ho * Wo, NULL, dys);
                if (sh == 1 && sw == 1)
                    weight_taps_block(xs, dys, pitch, 1, 1, Ho, Wo, acc[b - bg]);
                else if (sh == 2 && sw == 2)
                    weight_taps_block(xs, dys, pitch, 2, 2, Ho, Wo, acc[b - bg]);
                else
                    weight_taps_block(xs, dys, pitch, sh, sw, Ho, Wo, acc[b - bg]);
            }
        for (int64_t b = bg; b < bend; b++) {
            const int64_t c0 = b * CB_LANES;
            const int lanes = block_lanes(C, c0);
            for (int l = 0; l < lanes; l++) {
                float *dw = t->out + (c0 + l) * 9;
                for (int i = 0; i < 9; i++) dw[i] = t->accumulate ? dw[i] + acc[b - bg][i][l] : acc[b - bg][i][l];
            }
        }
    }
}
#endif /* DW_CHANNEL_BLOCKS */

#if DW_CHANNEL_BLOCKS
#define BLOCKS(fn) fn
#else
#define BLOCKS(fn) NULL /* never chosen: the tier is not built */
#endif
const dw_kernel_set DW_KERNELS(PT_DEPTHWISE_LEVEL) = {
    {forward_worker, forward_direct, BLOCKS(forward_blocks)},
    {grad_input_worker, grad_input_direct, BLOCKS(grad_input_blocks)},
    {grad_weight_worker, grad_weight_direct, BLOCKS(grad_weight_blocks)},
};

#if PT_DEPTHWISE_API
#if PT_ARCH_X86
extern const dw_kernel_set pt_depthwise_kernels_avx2, pt_depthwise_kernels_avx512;
#endif

/* The kernel set of a team's ISA level. */
static const dw_kernel_set *level_kernels(const pt_team *team)
{
    switch (pt_isa_resolve(team->isa_level)) {
#if PT_ARCH_X86
    case PT_ISA_AVX512: return &pt_depthwise_kernels_avx512;
    case PT_ISA_AVX2: return &pt_depthwise_kernels_avx2;
#endif
    default: return &pt_depthwise_kernels_generic;
    }
}

static pt_status run(const pt_team *team, pt_task_fn fn, const pt_conv_geometry *g, const float *a, const float *b,
                     const float *bias, float *out, int accumulate)
{
    pt_status st = check(g, a, b, out);
    if (st != PT_OK) return st;
    dw_task t = {g, a, b, bias, out, accumulate};
    /* A call this small costs less than forking the team: core 0 runs it alone (the split changes no value). */
    if (g->n * g->c_out * g->h_out * g->w_out * g->kh * g->kw < SERIAL_MAX_MACS)
        fn(&t);
    else
        pt_parallel(team, fn, &t);
    return PT_OK;
}

/* The tiers (depthwise_conv2d.h), most general first. A shape runs the fastest tier that supports it, up to the
 * team's cap; never depends on the thread count. */
enum { TIER_GENERIC, TIER_PLANE, TIER_CHANNEL_BLOCKS };
static const char *const tier_names[] = {"generic", "plane", "channel-blocks"};
#define NUM_TIERS (DW_CHANNEL_BLOCKS ? 3 : 2)
static int default_tier = PT_DEPTHWISE_AUTO; /* pt_team_default's choice; no kernel reads it */

const char *pt_depthwise_tier_name(int index) { return index >= 0 && index < NUM_TIERS ? tier_names[index] : NULL; }

pt_status pt_depthwise_set_default_tier(int tier)
{
    if (tier != PT_DEPTHWISE_AUTO && pt_depthwise_tier_name(tier) == NULL) return PT_ERR_UNKNOWN_VARIANT;
    default_tier = tier;
    return PT_OK;
}

int pt_depthwise_get_default_tier(void) { return default_tier; }

static int tier_supported(int tier, const pt_conv_geometry *g)
{
#if DW_CHANNEL_BLOCKS
    if (tier == TIER_CHANNEL_BLOCKS) return channel_blocks_supported(g);
#endif
    return tier == TIER_PLANE ? direct_supported(g) : 1;
}

static int tier_for(const pt_team *team, const pt_conv_geometry *g)
{
    if (g == NULL) return TIER_GENERIC; /* run() refuses the call */
    int tier = team->depthwise_tier == PT_DEPTHWISE_AUTO ? NUM_TIERS - 1 : team->depthwise_tier;
    while (tier > TIER_GENERIC && !tier_supported(tier, g)) tier--;
    return tier;
}

static pt_task_fn kernel_for(const pt_team *team, const pt_conv_geometry *g, const step_kernels *k)
{
    switch (tier_for(team, g)) {
    case TIER_CHANNEL_BLOCKS: return k->channel_blocks;
    case TIER_PLANE: return k->plane;
    default: return k->generic;
    }
}

pt_status pt_depthwise_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, const float *w,
                                      const float *bias, float *y)
{
    PT_RETURN_IF_BAD_TEAM(team);
    return run(team, kernel_for(team, g, &level_kernels(team)->forward), g, x, w, bias, y, 0);
}

pt_status pt_depthwise_conv2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                         const float *w, float *dx, int accumulate)
{
    PT_RETURN_IF_BAD_TEAM(team);
    return run(team, kernel_for(team, g, &level_kernels(team)->grad_input), g, dy, w, NULL, dx, accumulate);
}

pt_status pt_depthwise_conv2d_grad_weight(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                          const float *x, float *dw, int accumulate)
{
    PT_RETURN_IF_BAD_TEAM(team);
    return run(team, kernel_for(team, g, &level_kernels(team)->grad_weight), g, dy, x, NULL, dw, accumulate);
}
#endif /* PT_DEPTHWISE_API */
