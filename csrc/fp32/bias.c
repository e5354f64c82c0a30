#include <stddef.h>
#include "bias.h"
#include "parallel.h"

typedef struct {
    int64_t n, c, inner;
    const float *dy;
    float *db;
    int accumulate;
} bias_task;

static void bias_grad_worker(void *arg)
{
    const bias_task *t = (const bias_task *)arg;
    int64_t c0, c1;
    pt_chunk(t->c, 1, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
        float acc = 0.0f;
        for (int64_t n = 0; n < t->n; n++) {
            const float *row = t->dy + (n * t->c + c) * t->inner;
            for (int64_t i = 0; i < t->inner; i++) acc += row[i];
        }
        t->db[c] = t->accumulate ? t->db[c] + acc : acc;
    }
}

pt_status pt_bias_grad(const pt_team *team, int64_t n, int64_t c, int64_t inner, const float *dy, float *db,
                       int accumulate)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (dy == NULL || db == NULL) return PT_ERR_NULL_POINTER;
    if (n < 1 || c < 1 || inner < 1) return PT_ERR_BAD_SHAPE;
    bias_task t = {n, c, inner, dy, db, accumulate};
    pt_parallel(team, bias_grad_worker, &t);
    return PT_OK;
}
