#include "int8.h"
#include "parallel.h"

#define ROW_CHUNK 256 /* output columns accumulated at once in registers / stack */

static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
/* floor(a / b) for b > 0 and any sign of a (C division truncates toward zero) */
static inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

typedef struct {
    const pt_conv_geometry *g;
    const uint8_t *x;
    const int8_t *w;
    const pt_requant *rq;
    uint8_t *y;
} dw_task;

/* One (image, channel) plane per unit. For each output row chunk, every kernel tap (ky, kx) adds
 * w * x over the contiguous range of output columns whose input column is inside the image, so the inner
 * loop has no bounds test (and vectorizes for stride 1). */
static void forward_worker(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out;
    const int64_t sh = g->stride_h, sw = g->stride_w, ph = g->pad_h, pw = g->pad_w, kh = g->kh, kw = g->kw;
    int32_t acc[ROW_CHUNK];
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t c = u % C;
        const uint8_t *x = t->x + u * H * W;
        const int8_t *w = t->w + c * kh * kw;
        uint8_t *y = t->y + u * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t o0 = 0; o0 < Wo; o0 += ROW_CHUNK) {
                const int64_t o1 = min64(Wo, o0 + ROW_CHUNK);
                for (int64_t o = 0; o < o1 - o0; o++) acc[o] = 0;
                for (int64_t ky = 0; ky < kh; ky++) {
                    const int64_t ih = oh * sh - ph + ky;
                    if (ih < 0 || ih >= H) continue;
                    const uint8_t *row = x + ih * W;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        const int32_t wv = w[ky * kw + kx];
                        /* output columns ow with 0 <= ow*sw - pw + kx < W */
                        const int64_t lo = max64(o0, -floor_div(kx - pw, sw));
                        const int64_t hi = min64(o1, floor_div(W - 1 + pw - kx, sw) + 1);
                        const uint8_t *src = row - pw + kx;
                        for (int64_t ow = lo; ow < hi; ow++) acc[ow - o0] += wv * (int32_t)src[ow * sw];
                    }
                }
                pt_requantize_row(t->rq, c, acc, o1 - o0, y + oh * Wo + o0, 1);
            }
        }
    }
}

pt_status pt_int8_depthwise_conv2d_forward(const pt_conv_geometry *g, const uint8_t *x, const int8_t *w,
                                           const pt_requant *rq, uint8_t *y)
{
    if (g == NULL || x == NULL || w == NULL || y == NULL) return PT_ERR_NULL_POINTER;
    if (g->c_out != g->c_in) return PT_ERR_BAD_SHAPE;
    if (g->kh * g->kw > PT_INT8_MAX_K) return PT_ERR_BAD_SHAPE;
    pt_status st = pt_requant_check(rq, g->c_out);
    if (st != PT_OK) return st;
    dw_task t = {g, x, w, rq, y};
    pt_parallel(forward_worker, &t);
    return PT_OK;
}
