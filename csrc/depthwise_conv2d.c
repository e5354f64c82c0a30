#include <stddef.h>
#include "depthwise_conv2d.h"
#include "parallel.h"

typedef struct {
    const pt_conv_geometry *g;
    const float *a, *b, *bias; /* the two operands of the step (see each worker) */
    float *out;
    int accumulate;
} dw_task;

static pt_status check(const pt_conv_geometry *g, const void *a, const void *b, const void *out)
{
    if (g == NULL || a == NULL || b == NULL || out == NULL) return PT_ERR_NULL_POINTER;
    if (g->c_out != g->c_in) return PT_ERR_BAD_SHAPE;
    return PT_OK;
}

/* a = x, b = w: y[n,c,oh,ow] = bias[c] + sum_{ky,kx} w[c,ky,kx] * x[n,c,ih,iw] (padding contributes 0). */
static void forward_worker(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, ph = g->pad_h, pw = g->pad_w, kh = g->kh, kw = g->kw;
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t c = u % C;
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
    for (int64_t u = u0; u < u1; u++) {
        const int64_t c = u % C;
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

static pt_status run(pt_task_fn fn, const pt_conv_geometry *g, const float *a, const float *b,
                     const float *bias, float *out, int accumulate)
{
    pt_status st = check(g, a, b, out);
    if (st != PT_OK) return st;
    dw_task t = {g, a, b, bias, out, accumulate};
    pt_parallel(fn, &t);
    return PT_OK;
}

pt_status pt_depthwise_conv2d_forward(const pt_conv_geometry *g, const float *x, const float *w,
                                      const float *bias, float *y)
{
    return run(forward_worker, g, x, w, bias, y, 0);
}

pt_status pt_depthwise_conv2d_grad_input(const pt_conv_geometry *g, const float *dy, const float *w, float *dx,
                                         int accumulate)
{
    return run(grad_input_worker, g, dy, w, NULL, dx, accumulate);
}

pt_status pt_depthwise_conv2d_grad_weight(const pt_conv_geometry *g, const float *dy, const float *x, float *dw,
                                          int accumulate)
{
    return run(grad_weight_worker, g, dy, x, NULL, dw, accumulate);
}
