#include <stddef.h>
#include "pooling.h"
#include "parallel.h"

typedef struct {
    const pt_conv_geometry *g;
    const float *a, *b; /* the operands of the step (see each worker) */
    float *out;
    int accumulate;
} pool_task;

/* Clipped window rows/columns of output position o: [lo, hi) within the input extent. */
static inline void window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t extent, int64_t *lo,
                          int64_t *hi)
{
    int64_t s = o * stride - pad, e = s + k;
    *lo = s < 0 ? 0 : s;
    *hi = e > extent ? extent : e;
}

static void zero_plane(float *p, int64_t count)
{
    for (int64_t i = 0; i < count; i++) p[i] = 0.0f;
}

/* a = x. */
static void avg_forward_worker(void *arg)
{
    const pool_task *t = (const pool_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const float divisor = (float)(g->kh * g->kw);
    int64_t u0, u1;
    pt_chunk(g->n * g->c_in, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const float *x = t->a + u * H * W;
        float *y = t->out + u * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            window(oh, g->stride_h, g->pad_h, g->kh, H, &h0, &h1);
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0, w1;
                window(ow, g->stride_w, g->pad_w, g->kw, W, &w0, &w1);
                float acc = 0.0f;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) acc += x[ih * W + iw];
                y[oh * Wo + ow] = acc / divisor;
            }
        }
    }
}

/* a = dy. */
static void avg_grad_input_worker(void *arg)
{
    const pool_task *t = (const pool_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const float divisor = (float)(g->kh * g->kw);
    int64_t u0, u1;
    pt_chunk(g->n * g->c_in, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const float *dy = t->a + u * Ho * Wo;
        float *dx = t->out + u * H * W;
        if (!t->accumulate) zero_plane(dx, H * W);
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            window(oh, g->stride_h, g->pad_h, g->kh, H, &h0, &h1);
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0, w1;
                window(ow, g->stride_w, g->pad_w, g->kw, W, &w0, &w1);
                const float share = dy[oh * Wo + ow] / divisor;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) dx[ih * W + iw] += share;
            }
        }
    }
}

/* Index (ih * W + iw) of the first maximum of a window of x; like PyTorch, a NaN beats everything and a
 * later NaN beats an earlier one. */
static inline int64_t window_argmax(const float *x, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1)
{
    int64_t best = h0 * W + w0;
    float best_value = x[best];
    for (int64_t ih = h0; ih < h1; ih++) {
        for (int64_t iw = w0; iw < w1; iw++) {
            const float v = x[ih * W + iw];
            if (v > best_value || v != v) {
                best = ih * W + iw;
                best_value = v;
            }
        }
    }
    return best;
}

/* a = x. */
static void max_forward_worker(void *arg)
{
    const pool_task *t = (const pool_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    int64_t u0, u1;
    pt_chunk(g->n * g->c_in, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const float *x = t->a + u * H * W;
        float *y = t->out + u * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            window(oh, g->stride_h, g->pad_h, g->kh, H, &h0, &h1);
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0, w1;
                window(ow, g->stride_w, g->pad_w, g->kw, W, &w0, &w1);
                y[oh * Wo + ow] = x[window_argmax(x, W, h0, h1, w0, w1)];
            }
        }
    }
}

/* a = dy, b = x. */
static void max_grad_input_worker(void *arg)
{
    const pool_task *t = (const pool_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    int64_t u0, u1;
    pt_chunk(g->n * g->c_in, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const float *dy = t->a + u * Ho * Wo, *x = t->b + u * H * W;
        float *dx = t->out + u * H * W;
        if (!t->accumulate) zero_plane(dx, H * W);
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            window(oh, g->stride_h, g->pad_h, g->kh, H, &h0, &h1);
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0, w1;
                window(ow, g->stride_w, g->pad_w, g->kw, W, &w0, &w1);
                dx[window_argmax(x, W, h0, h1, w0, w1)] += dy[oh * Wo + ow];
            }
        }
    }
}

static pt_status run(const pt_team *team, pt_task_fn fn, const pt_conv_geometry *g, const float *a, const float *b,
                     float *out, int accumulate)
{
    if (g == NULL || a == NULL || out == NULL || (fn == max_grad_input_worker && b == NULL))
        return PT_ERR_NULL_POINTER;
    if (g->c_out != g->c_in || g->n < 1 || g->c_in < 1 || g->h_out < 1 || g->w_out < 1) return PT_ERR_BAD_SHAPE;
    /* PyTorch's padding limit, for average and max pooling alike */
    if (2 * g->pad_h > g->kh || 2 * g->pad_w > g->kw) return PT_ERR_BAD_ARGUMENT;
    pool_task t = {g, a, b, out, accumulate};
    pt_parallel(team, fn, &t);
    return PT_OK;
}

pt_status pt_avg_pool2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, float *y)
{
    PT_RETURN_IF_BAD_TEAM(team);
    return run(team, avg_forward_worker, g, x, NULL, y, 0);
}

pt_status pt_avg_pool2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, float *dx,
                                   int accumulate)
{
    PT_RETURN_IF_BAD_TEAM(team);
    return run(team, avg_grad_input_worker, g, dy, NULL, dx, accumulate);
}

pt_status pt_max_pool2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, float *y)
{
    PT_RETURN_IF_BAD_TEAM(team);
    return run(team, max_forward_worker, g, x, NULL, y, 0);
}

pt_status pt_max_pool2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *x,
                                   float *dx, int accumulate)
{
    PT_RETURN_IF_BAD_TEAM(team);
    return run(team, max_grad_input_worker, g, dy, x, dx, accumulate);
}
