#include <stddef.h>
#include "activation.h"
#include "parallel.h"

#define GRANULE 64 /* elements per chunk unit: keeps neighbouring cores off the same cache lines */

typedef struct {
    int64_t count;
    const float *a, *b;
    float *out;
    float upper;
    int clip, accumulate;
} relu_task;

static void forward_worker(void *arg)
{
    const relu_task *t = (const relu_task *)arg;
    int64_t i0, i1;
    pt_chunk(t->count, GRANULE, &i0, &i1);
    const float *x = t->a;
    float *y = t->out;
    /* Tests written so that a NaN fails them and passes through (as in PyTorch; -0.0 stays -0.0 too). */
    if (t->clip) {
        const float upper = t->upper;
        for (int64_t i = i0; i < i1; i++) {
            const float v = x[i] < 0.0f ? 0.0f : x[i];
            y[i] = v > upper ? upper : v;
        }
    } else {
        for (int64_t i = i0; i < i1; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
    }
}

/* a = y (forward output), b = dy. The gradient is blocked only where y <= 0 or y >= upper, so a NaN y
 * passes dy, as PyTorch's threshold_backward / hardtanh_backward do. */
static void grad_input_worker(void *arg)
{
    const relu_task *t = (const relu_task *)arg;
    int64_t i0, i1;
    pt_chunk(t->count, GRANULE, &i0, &i1);
    const float *y = t->a, *dy = t->b;
    float *dx = t->out;
    const float upper = t->clip ? t->upper : 0.0f;
    for (int64_t i = i0; i < i1; i++) {
        const int pass = !(y[i] <= 0.0f) && !(t->clip && y[i] >= upper);
        const float g = pass ? dy[i] : 0.0f;
        dx[i] = t->accumulate ? dx[i] + g : g;
    }
}

static pt_status check_upper(float upper)
{
    /* PT_RELU_NO_CLIP, or a positive finite clip value (NaN fails both tests). */
    if (upper == PT_RELU_NO_CLIP) return PT_OK;
    return (upper > 0.0f && upper < 3.0e38f) ? PT_OK : PT_ERR_BAD_ARGUMENT;
}

pt_status pt_relu_forward(const pt_team *team, int64_t count, const float *x, float *y, float upper)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL || y == NULL) return PT_ERR_NULL_POINTER;
    if (count < 1) return PT_ERR_BAD_SHAPE;
    if (check_upper(upper) != PT_OK) return PT_ERR_BAD_ARGUMENT;
    relu_task t = {count, x, NULL, y, upper, upper != PT_RELU_NO_CLIP, 0};
    pt_parallel(team, forward_worker, &t);
    return PT_OK;
}

pt_status pt_relu_grad_input(const pt_team *team, int64_t count, const float *y, const float *dy, float *dx,
                             float upper, int accumulate)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (y == NULL || dy == NULL || dx == NULL) return PT_ERR_NULL_POINTER;
    if (count < 1) return PT_ERR_BAD_SHAPE;
    if (check_upper(upper) != PT_OK) return PT_ERR_BAD_ARGUMENT;
    relu_task t = {count, y, dy, dx, upper, upper != PT_RELU_NO_CLIP, accumulate};
    pt_parallel(team, grad_input_worker, &t);
    return PT_OK;
}
