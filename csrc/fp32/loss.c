#include <math.h>
#include <stddef.h>
#include "loss.h"
#include "parallel.h"

typedef struct {
    int64_t n, k;
    const float *a, *b;
    const int64_t *labels;
    float *grad, *partial;
} loss_task;

static void cross_entropy_worker(void *arg)
{
    const loss_task *t = (const loss_task *)arg;
    const float inv_n = 1.0f / (float)t->n;
    int64_t i0, i1;
    pt_chunk(t->n, 1, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const float *z = t->a + i * t->k;
        float zmax = z[0];
        for (int64_t j = 1; j < t->k; j++) zmax = z[j] > zmax ? z[j] : zmax;
        float sum = 0.0f;
        for (int64_t j = 0; j < t->k; j++) sum += expf(z[j] - zmax);
        const int64_t label = t->labels[i];
        t->partial[i] = zmax + logf(sum) - z[label];
        if (t->grad == NULL) continue;
        float *g = t->grad + i * t->k;
        const float inv_sum = 1.0f / sum;
        for (int64_t j = 0; j < t->k; j++) g[j] = expf(z[j] - zmax) * inv_sum * inv_n;
        g[label] -= inv_n;
    }
}

/* Adds the partials in index order (the caller's thread: no dependence on the team size). */
static float ordered_sum(const float *partial, int64_t count)
{
    float total = 0.0f;
    for (int64_t i = 0; i < count; i++) total += partial[i];
    return total;
}

int64_t pt_cross_entropy_workspace_floats(int64_t n) { return n < 1 ? 0 : n; }

pt_status pt_cross_entropy(const pt_team *team, int64_t n, int64_t classes, const float *logits, const int64_t *labels,
                           float *loss, float *dlogits, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (logits == NULL || labels == NULL || loss == NULL || workspace == NULL) return PT_ERR_NULL_POINTER;
    if (n < 1 || classes < 1) return PT_ERR_BAD_SHAPE;
    if (workspace_floats < pt_cross_entropy_workspace_floats(n)) return PT_ERR_WORKSPACE_TOO_SMALL;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) return PT_ERR_VALUE_OUT_OF_RANGE;
    loss_task t = {n, classes, logits, NULL, labels, dlogits, workspace};
    pt_parallel(team, cross_entropy_worker, &t);
    *loss = ordered_sum(workspace, n) / (float)n;
    return PT_OK;
}

/* n = element count, a = pred, b = target; one partial sum of squares per block. */
static void mse_worker(void *arg)
{
    const loss_task *t = (const loss_task *)arg;
    const int64_t blocks = (t->n + PT_MSE_BLOCK - 1) / PT_MSE_BLOCK;
    const float scale = 2.0f / (float)t->n;
    int64_t b0, b1;
    pt_chunk(blocks, 1, &b0, &b1);
    for (int64_t b = b0; b < b1; b++) {
        const int64_t e0 = b * PT_MSE_BLOCK, e1 = e0 + PT_MSE_BLOCK < t->n ? e0 + PT_MSE_BLOCK : t->n;
        float acc = 0.0f;
        for (int64_t e = e0; e < e1; e++) {
            const float d = t->a[e] - t->b[e];
            acc += d * d;
            if (t->grad) t->grad[e] = scale * d;
        }
        t->partial[b] = acc;
    }
}

int64_t pt_mse_loss_workspace_floats(int64_t count)
{
    return count < 1 ? 0 : (count + PT_MSE_BLOCK - 1) / PT_MSE_BLOCK;
}

pt_status pt_mse_loss(const pt_team *team, int64_t count, const float *pred, const float *target, float *loss,
                      float *dpred, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (pred == NULL || target == NULL || loss == NULL || workspace == NULL) return PT_ERR_NULL_POINTER;
    if (count < 1) return PT_ERR_BAD_SHAPE;
    const int64_t blocks = pt_mse_loss_workspace_floats(count);
    if (workspace_floats < blocks) return PT_ERR_WORKSPACE_TOO_SMALL;
    loss_task t = {count, 0, pred, target, NULL, dpred, workspace};
    pt_parallel(team, mse_worker, &t);
    *loss = ordered_sum(workspace, blocks) / (float)count;
    return PT_OK;
}
