#include "int8.h"
#include "parallel.h"

typedef struct {
    const pt_conv_geometry *g;
    const uint8_t *x;
    uint8_t *y;
} pool_task;

/* One (image, channel) plane per unit; every window is whole (no padding), so the divisor is kh*kw. */
static void avg_pool_worker(void *arg)
{
    const pool_task *t = (const pool_task *)arg;
    const pt_conv_geometry *g = t->g;
    const int64_t H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out, kh = g->kh, kw = g->kw;
    const uint64_t count = (uint64_t)(kh * kw);
    int64_t u0, u1;
    pt_chunk(g->n * g->c_in, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const uint8_t *x = t->x + u * H * W;
        uint8_t *y = t->y + u * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < Wo; ow++) {
                const uint8_t *win = x + oh * g->stride_h * W + ow * g->stride_w;
                uint64_t sum = 0;
                for (int64_t ky = 0; ky < kh; ky++)
                    for (int64_t kx = 0; kx < kw; kx++) sum += win[ky * W + kx];
                y[oh * Wo + ow] = (uint8_t)((sum + count / 2) / count); /* the mean, rounded half up */
            }
        }
    }
}

pt_status pt_int8_avg_pool2d(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x, uint8_t *y)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (g == NULL || x == NULL || y == NULL) return PT_ERR_NULL_POINTER;
    if (g->c_out != g->c_in) return PT_ERR_BAD_SHAPE;
    if (g->pad_h != 0 || g->pad_w != 0) return PT_ERR_BAD_ARGUMENT;
    pool_task t = {g, x, y};
    pt_parallel(team, avg_pool_worker, &t);
    return PT_OK;
}
