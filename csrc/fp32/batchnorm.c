#include <math.h>
#include <stddef.h>
#include "batchnorm.h"
#include "parallel.h"

typedef struct {
    int64_t n, c, hw;
    const float *x, *dy, *gamma, *beta;
    pt_batchnorm_config cfg;
    float *running_mean, *running_var;
    const float *running_mean_in, *running_var_in, *saved_in;
    float *saved, *y, *dx, *dgamma, *dbeta;
    int batch_stats, accumulate_params;
} bn_task;

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Sum over the channel's M values of f(v), image by image (a partial sum per image keeps the float
 * error small for large M), in a fixed order. */
static float channel_mean(const bn_task *t, int64_t ch)
{
    float total = 0.0f;
    for (int64_t i = 0; i < t->n; i++) {
        const float *x = t->x + (i * t->c + ch) * t->hw;
        float part = 0.0f;
        for (int64_t k = 0; k < t->hw; k++) part += x[k];
        total += part;
    }
    return total / (float)(t->n * t->hw);
}

static float channel_biased_var(const bn_task *t, int64_t ch, float mean)
{
    float total = 0.0f;
    for (int64_t i = 0; i < t->n; i++) {
        const float *x = t->x + (i * t->c + ch) * t->hw;
        float part = 0.0f;
        for (int64_t k = 0; k < t->hw; k++) {
            const float d = x[k] - mean;
            part += d * d;
        }
        total += part;
    }
    return total / (float)(t->n * t->hw);
}

/* y = scale * x + shift over the channel. */
static void channel_affine(const bn_task *t, int64_t ch, float scale, float shift)
{
    for (int64_t i = 0; i < t->n; i++) {
        const float *x = t->x + (i * t->c + ch) * t->hw;
        float *y = t->y + (i * t->c + ch) * t->hw;
        for (int64_t k = 0; k < t->hw; k++) y[k] = scale * x[k] + shift;
    }
}

static void store_saved(float *saved, int64_t c, int64_t ch, float mean, float invstd, float r, float d)
{
    if (saved == NULL) return;
    saved[PT_BN_SAVED_MEAN * c + ch] = mean;
    saved[PT_BN_SAVED_INVSTD * c + ch] = invstd;
    saved[PT_BN_SAVED_R * c + ch] = r;
    saved[PT_BN_SAVED_D * c + ch] = d;
}

static void forward_train_worker(void *arg)
{
    const bn_task *t = (const bn_task *)arg;
    const pt_batchnorm_config *cfg = &t->cfg;
    const int64_t m = t->n * t->hw;
    int64_t c0, c1;
    pt_chunk(t->c, 1, &c0, &c1);
    for (int64_t ch = c0; ch < c1; ch++) {
        const float mean = channel_mean(t, ch);
        const float var = channel_biased_var(t, ch, mean);
        const float sigma = sqrtf(var + cfg->eps), invstd = 1.0f / sigma;
        float r = 1.0f, d = 0.0f;
        if (cfg->r_max > 0.0f) {
            const float sigma_run = sqrtf(t->running_var[ch] + cfg->eps);
            r = clampf(sigma / sigma_run, 1.0f / cfg->r_max, cfg->r_max);
            d = clampf((mean - t->running_mean[ch]) / sigma_run, -cfg->d_max, cfg->d_max);
        }
        /* y = gamma * ((x - mean) * invstd * r + d) + beta */
        const float scale = t->gamma[ch] * invstd * r;
        channel_affine(t, ch, scale, t->beta[ch] + t->gamma[ch] * d - scale * mean);
        store_saved(t->saved, t->c, ch, mean, invstd, r, d);
        const float unbiased = m > 1 ? var * (float)m / (float)(m - 1) : var;
        t->running_mean[ch] = (1.0f - cfg->momentum) * t->running_mean[ch] + cfg->momentum * mean;
        t->running_var[ch] = (1.0f - cfg->momentum) * t->running_var[ch] + cfg->momentum * unbiased;
    }
}

static void forward_eval_worker(void *arg)
{
    const bn_task *t = (const bn_task *)arg;
    int64_t c0, c1;
    pt_chunk(t->c, 1, &c0, &c1);
    for (int64_t ch = c0; ch < c1; ch++) {
        const float mean = t->running_mean_in[ch];
        const float invstd = 1.0f / sqrtf(t->running_var_in[ch] + t->cfg.eps);
        const float scale = t->gamma[ch] * invstd;
        channel_affine(t, ch, scale, t->beta[ch] - scale * mean);
        store_saved(t->saved, t->c, ch, mean, invstd, 1.0f, 0.0f);
    }
}

static void backward_worker(void *arg)
{
    const bn_task *t = (const bn_task *)arg;
    const int64_t m = t->n * t->hw;
    int64_t c0, c1;
    pt_chunk(t->c, 1, &c0, &c1);
    for (int64_t ch = c0; ch < c1; ch++) {
        const float mean = t->saved_in[PT_BN_SAVED_MEAN * t->c + ch];
        const float invstd = t->saved_in[PT_BN_SAVED_INVSTD * t->c + ch];
        const float r = t->saved_in[PT_BN_SAVED_R * t->c + ch], d = t->saved_in[PT_BN_SAVED_D * t->c + ch];
        float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
        for (int64_t i = 0; i < t->n; i++) {
            const int64_t off = (i * t->c + ch) * t->hw;
            const float *x = t->x + off, *dy = t->dy + off;
            float part_dy = 0.0f, part_dy_xhat = 0.0f;
            for (int64_t k = 0; k < t->hw; k++) {
                part_dy += dy[k];
                part_dy_xhat += dy[k] * ((x[k] - mean) * invstd);
            }
            sum_dy += part_dy;
            sum_dy_xhat += part_dy_xhat;
        }
        if (t->dbeta) t->dbeta[ch] = t->accumulate_params ? t->dbeta[ch] + sum_dy : sum_dy;
        if (t->dgamma) {
            const float g = r * sum_dy_xhat + d * sum_dy;
            t->dgamma[ch] = t->accumulate_params ? t->dgamma[ch] + g : g;
        }
        if (t->dx == NULL) continue;
        const float scale = t->gamma[ch] * r * invstd;
        const float mean_dy = t->batch_stats ? sum_dy / (float)m : 0.0f;
        const float mean_dy_xhat = t->batch_stats ? sum_dy_xhat / (float)m : 0.0f;
        for (int64_t i = 0; i < t->n; i++) {
            const int64_t off = (i * t->c + ch) * t->hw;
            const float *x = t->x + off, *dy = t->dy + off;
            float *dx = t->dx + off;
            for (int64_t k = 0; k < t->hw; k++)
                dx[k] = scale * (dy[k] - mean_dy - (x[k] - mean) * invstd * mean_dy_xhat);
        }
    }
}

/* Sizes below 1, or a tensor of more than 2^62 elements (its indices would overflow int64). */
static int bad_sizes(int64_t n, int64_t c, int64_t hw)
{
    const int64_t limit = INT64_C(1) << 62;
    return n < 1 || c < 1 || hw < 1 || c > limit / n || hw > limit / (n * c);
}

pt_status pt_batchnorm2d_forward_train(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                       const float *gamma, const float *beta, const pt_batchnorm_config *cfg,
                                       float *running_mean, float *running_var, float *saved, float *y)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL || gamma == NULL || beta == NULL || cfg == NULL || running_mean == NULL ||
        running_var == NULL || saved == NULL || y == NULL)
        return PT_ERR_NULL_POINTER;
    /* batch statistics need more than one value per channel (PyTorch refuses it too) */
    if (bad_sizes(n, c, hw) || n * hw < 2) return PT_ERR_BAD_SHAPE;
    if (!(cfg->eps > 0.0f) || !(cfg->momentum >= 0.0f && cfg->momentum <= 1.0f) || !(cfg->r_max >= 0.0f) ||
        (cfg->r_max > 0.0f && !(cfg->r_max >= 1.0f && cfg->d_max >= 0.0f)))
        return PT_ERR_BAD_ARGUMENT;
    bn_task t = {n, c, hw, x, NULL, gamma, beta, *cfg, running_mean, running_var, NULL, NULL, NULL, saved, y,
                 NULL, NULL, NULL, 1, 0};
    pt_parallel(team, forward_train_worker, &t);
    return PT_OK;
}

pt_status pt_batchnorm2d_forward_eval(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                      const float *gamma, const float *beta, float eps, const float *running_mean,
                                      const float *running_var, float *saved, float *y)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL || gamma == NULL || beta == NULL || running_mean == NULL || running_var == NULL || y == NULL)
        return PT_ERR_NULL_POINTER;
    if (bad_sizes(n, c, hw)) return PT_ERR_BAD_SHAPE;
    if (!(eps > 0.0f)) return PT_ERR_BAD_ARGUMENT;
    const pt_batchnorm_config cfg = {eps, 0.0f, 0.0f, 0.0f};
    bn_task t = {n, c, hw, x, NULL, gamma, beta, cfg, NULL, NULL, running_mean, running_var, NULL, saved, y,
                 NULL, NULL, NULL, 0, 0};
    pt_parallel(team, forward_eval_worker, &t);
    return PT_OK;
}

pt_status pt_batchnorm2d_backward(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                  const float *dy, const float *gamma, const float *saved, int batch_stats, float *dx,
                                  float *dgamma, float *dbeta, int accumulate_params)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (x == NULL || dy == NULL || gamma == NULL || saved == NULL) return PT_ERR_NULL_POINTER;
    if (bad_sizes(n, c, hw)) return PT_ERR_BAD_SHAPE;
    const pt_batchnorm_config cfg = {1.0f, 0.0f, 0.0f, 0.0f};
    bn_task t = {n, c, hw, x, dy, gamma, NULL, cfg, NULL, NULL, NULL, NULL, saved, NULL, NULL,
                 dx, dgamma, dbeta, batch_stats, accumulate_params};
    pt_parallel(team, backward_worker, &t);
    return PT_OK;
}
