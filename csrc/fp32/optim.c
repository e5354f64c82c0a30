#include <math.h>
#include <stddef.h>
#include "optim.h"
#include "parallel.h"

#define GRANULE 64

typedef struct {
    int64_t count;
    float *param, *buf, *buf2;
    const float *grad;
    pt_sgd_config sgd;
    pt_adam_config adam;
    int first_step;
    float step_size, bias_correction2_sqrt;
} optim_task;

static void sgd_worker(void *arg)
{
    const optim_task *t = (const optim_task *)arg;
    const pt_sgd_config *c = &t->sgd;
    int64_t i0, i1;
    pt_chunk(t->count, GRANULE, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        float g = t->grad[i] + c->weight_decay * t->param[i];
        if (c->momentum != 0.0f) {
            const float b = t->first_step ? g : c->momentum * t->buf[i] + (1.0f - c->dampening) * g;
            t->buf[i] = b;
            g = c->nesterov ? g + c->momentum * b : b;
        }
        t->param[i] -= c->lr * g;
    }
}

static void adam_worker(void *arg)
{
    const optim_task *t = (const optim_task *)arg;
    const pt_adam_config *c = &t->adam;
    int64_t i0, i1;
    pt_chunk(t->count, GRANULE, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        float p = t->param[i], g = t->grad[i];
        if (c->decoupled)
            p *= 1.0f - c->lr * c->weight_decay;
        else
            g += c->weight_decay * p;
        const float m = c->beta1 * t->buf[i] + (1.0f - c->beta1) * g;
        const float v = c->beta2 * t->buf2[i] + (1.0f - c->beta2) * g * g;
        t->buf[i] = m;
        t->buf2[i] = v;
        t->param[i] = p - t->step_size * m / (sqrtf(v) / t->bias_correction2_sqrt + c->eps);
    }
}

static int finite_nonneg(float v) { return v >= 0.0f && v < 3.0e38f; }

pt_status pt_sgd_step(const pt_team *team, int64_t count, float *param, const float *grad, float *momentum_buffer,
                      const pt_sgd_config *cfg, int first_step)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (param == NULL || grad == NULL || cfg == NULL) return PT_ERR_NULL_POINTER;
    if (cfg->momentum != 0.0f && momentum_buffer == NULL) return PT_ERR_NULL_POINTER;
    if (count < 1) return PT_ERR_BAD_SHAPE;
    if (!finite_nonneg(cfg->lr) || !finite_nonneg(cfg->momentum) || !finite_nonneg(cfg->weight_decay) ||
        !(cfg->dampening >= 0.0f && cfg->dampening <= 1.0f) ||
        (cfg->nesterov && !(cfg->momentum > 0.0f && cfg->dampening == 0.0f)))
        return PT_ERR_BAD_ARGUMENT;
    optim_task t = {count, param, momentum_buffer, NULL, grad, *cfg, {0}, first_step, 0.0f, 0.0f};
    pt_parallel(team, sgd_worker, &t);
    return PT_OK;
}

pt_status pt_adam_step(const pt_team *team, int64_t count, float *param, const float *grad, float *exp_avg,
                       float *exp_avg_sq, const pt_adam_config *cfg, int64_t step)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (param == NULL || grad == NULL || exp_avg == NULL || exp_avg_sq == NULL || cfg == NULL)
        return PT_ERR_NULL_POINTER;
    if (count < 1) return PT_ERR_BAD_SHAPE;
    if (step < 1 || !finite_nonneg(cfg->lr) || !finite_nonneg(cfg->weight_decay) || !(cfg->eps > 0.0f) ||
        !(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f) || !(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f))
        return PT_ERR_BAD_ARGUMENT;
    /* The bias corrections are scalars: computed once in double, as PyTorch does in Python. */
    const double bc1 = 1.0 - pow((double)cfg->beta1, (double)step);
    const double bc2 = 1.0 - pow((double)cfg->beta2, (double)step);
    optim_task t = {count, param, exp_avg, exp_avg_sq, grad, {0}, *cfg, 0, (float)(cfg->lr / bc1),
                    (float)sqrt(bc2)};
    pt_parallel(team, adam_worker, &t);
    return PT_OK;
}
