/* The C continual-learning step used from C alone, as a bare-metal application would: static arrays, one
 * arena sized by pt_cl_learner_arena_bytes, a few learning events, prediction. Built by test_cl_runtime.py under
 * AddressSanitizer + UndefinedBehaviorSanitizer with the serial team backend; runs the same stream with teams of
 * 1 and 3 virtual cores and checks that the weights, statistics, buffer and predictions are bitwise equal, and
 * that bad calls are refused. Prints "ok" and exits 0, or names the failed check and exits 1. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pulptrain.h"

enum { C_IN = 3, HW = 4, C_MID = 6, CLASSES = 4, CAPACITY = 20, MAX_NEW = 24, MINIBATCH = 8, BITS = 6 };
enum { ELEMENTS = C_IN * HW * HW };

typedef struct {
    float pw_w[C_MID * C_IN], pw_g[C_MID * C_IN], pw_m[C_MID * C_IN];
    float bn_w[C_MID], bn_b[C_MID], bn_gw[C_MID], bn_gb[C_MID], bn_mw[C_MID], bn_mb[C_MID];
    float bn_mean[C_MID], bn_var[C_MID];
    int64_t bn_tracked;
    float fc_w[CLASSES * C_MID], fc_b[CLASSES], fc_gw[CLASSES * C_MID], fc_gb[CLASSES];
    float fc_mw[CLASSES * C_MID], fc_mb[CLASSES];
    float cw[CLASSES * C_MID], cb[CLASSES];
    uint8_t cw_set[CLASSES];
    int64_t past[CLASSES];
    uint8_t storage[CAPACITY * ((ELEMENTS * BITS + 7) / 8)];
    int16_t labels[CAPACITY];
    int64_t class_seen[CLASSES];
    int32_t class_count[CLASSES], order[CAPACITY];
    uint8_t row_codes[ELEMENTS];
    pt_cl_layer layers[6];
    pt_cl_buffer buffer;
    pt_cl_learner learner;
    _Alignas(PT_CL_ALIGN) uint8_t arena[1 << 20];
} app;

static app runs[2];
static int failures = 0;

#define CHECK(cond)                                              \
    do {                                                         \
        if (!(cond)) {                                           \
            printf("check failed, line %d: %s\n", __LINE__, #cond); \
            failures++;                                          \
        }                                                        \
    } while (0)

static float uniform(uint32_t *s) { /* deterministic data, independent of the runtime's generator */
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f;
}

static void set_up(app *a) {
    uint32_t s = 7;
    memset(a, 0, sizeof *a);
    for (int i = 0; i < C_MID * C_IN; i++) a->pw_w[i] = uniform(&s) - 0.5f;
    for (int i = 0; i < CLASSES * C_MID; i++) a->fc_w[i] = uniform(&s) - 0.5f;
    for (int c = 0; c < C_MID; c++) a->bn_w[c] = 1.0f, a->bn_var[c] = 1.0f;
    pt_cl_layer *L = a->layers;
    L[0] = (pt_cl_layer){.kind = PT_CL_POINTWISE, .c_in = C_IN, .h_in = HW, .w_in = HW, .c_out = C_MID, .h_out = HW,
                         .w_out = HW, .weight_trainable = 1, .weight = a->pw_w, .weight_grad = a->pw_g,
                         .weight_momentum = a->pw_m};
    L[1] = (pt_cl_layer){.kind = PT_CL_BATCHNORM, .c_in = C_MID, .h_in = HW, .w_in = HW, .c_out = C_MID, .h_out = HW,
                         .w_out = HW, .eps = 1e-5f, .bn_momentum = 0.01f, .r_max = 1.25f, .d_max = 0.5f,
                         .weight_trainable = 1, .bias_trainable = 1, .weight = a->bn_w, .weight_grad = a->bn_gw,
                         .weight_momentum = a->bn_mw, .bias = a->bn_b, .bias_grad = a->bn_gb,
                         .bias_momentum = a->bn_mb, .running_mean = a->bn_mean, .running_var = a->bn_var,
                         .num_batches_tracked = &a->bn_tracked};
    L[2] = (pt_cl_layer){.kind = PT_CL_RELU, .c_in = C_MID, .h_in = HW, .w_in = HW, .c_out = C_MID, .h_out = HW,
                         .w_out = HW, .upper = PT_RELU_NO_CLIP};
    L[3] = (pt_cl_layer){.kind = PT_CL_AVG_POOL, .c_in = C_MID, .h_in = HW, .w_in = HW, .c_out = C_MID, .h_out = 1,
                         .w_out = 1, .kh = HW, .kw = HW, .stride_h = HW, .stride_w = HW};
    L[4] = (pt_cl_layer){.kind = PT_CL_FLATTEN, .c_in = C_MID, .h_in = 1, .w_in = 1, .c_out = C_MID, .h_out = 1,
                         .w_out = 1};
    L[5] = (pt_cl_layer){.kind = PT_CL_LINEAR, .c_in = C_MID, .h_in = 1, .w_in = 1, .c_out = CLASSES, .h_out = 1,
                         .w_out = 1, .weight_trainable = 1, .bias_trainable = 1, .weight = a->fc_w,
                         .weight_grad = a->fc_gw, .weight_momentum = a->fc_mw, .bias = a->fc_b,
                         .bias_grad = a->fc_gb, .bias_momentum = a->fc_mb};
    a->buffer = (pt_cl_buffer){.capacity = CAPACITY, .elements = ELEMENTS, .bits = BITS,
                               .policy = PT_CL_POLICY_CLASS_BALANCED, .num_classes = CLASSES,
                               .storage = a->storage, .labels = a->labels, .class_seen = a->class_seen,
                               .class_count = a->class_count, .order = a->order, .row_codes = a->row_codes};
}

static const pt_cl_settings SETTINGS = {.lr = 0.05f, .first_lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f,
                                        .epochs = 2, .first_epochs = 3, .minibatch = MINIBATCH, .cwr = 1,
                                        .num_classes = CLASSES, .max_new = MAX_NEW};

static void run(app *a, int threads, int32_t *predicted) {
    const pt_team team = pt_team_of(threads);
    set_up(a);
    const pt_cl_cwr cwr = {a->cw, a->cb, a->cw_set, a->past};
    const int64_t need = pt_cl_learner_arena_bytes(&team, &SETTINGS, a->layers, 6, CAPACITY);
    CHECK(need > 0 && need <= (int64_t)sizeof a->arena);
    CHECK(pt_cl_buffer_init(&a->buffer, 0.05f, 7, 1) == PT_OK);
    CHECK(pt_cl_learner_init(&a->learner, &team, &SETTINGS, a->layers, 6, &a->buffer, &cwr, a->arena, need - 1, 3,
                             0) == PT_ERR_WORKSPACE_TOO_SMALL);
    CHECK(pt_cl_learner_init(&a->learner, &team, &SETTINGS, a->layers, 6, &a->buffer, &cwr, a->arena, need, 3, 0) ==
          PT_OK);
    static float latents[MAX_NEW * ELEMENTS];
    static int16_t labels[MAX_NEW];
    uint32_t s = 11;
    for (int batch = 0; batch < 5; batch++) {
        const int n = batch == 0 ? MAX_NEW : 9 + batch;
        for (int k = 0; k < n; k++) {
            labels[k] = (int16_t)((batch + k % 2) % CLASSES);
            for (int i = 0; i < ELEMENTS; i++) latents[k * ELEMENTS + i] = uniform(&s) + 0.3f * labels[k] * (i % 3);
        }
        CHECK(pt_cl_learner_begin_batch(&team, &a->learner, latents, NULL, labels, n) == PT_OK);
        CHECK(pt_cl_learner_end_batch(&team, &a->learner) == PT_ERR_BAD_ARGUMENT); /* steps left */
        pt_cl_step_result r;
        while (a->learner.step_index < a->learner.plan.total_steps) {
            CHECK(pt_cl_learner_train_step(&team, &a->learner, &r) == PT_OK);
            CHECK(isfinite(r.loss) && r.rows >= 1 && r.rows <= a->learner.rows_max && r.correct <= r.rows);
        }
        CHECK(pt_cl_learner_train_step(&team, &a->learner, &r) == PT_ERR_BAD_ARGUMENT);
        CHECK(pt_cl_learner_end_batch(&team, &a->learner) == PT_OK);
        CHECK(pt_cl_buffer_check(&a->buffer) == PT_OK);
    }
    CHECK(a->learner.batches_seen == 5 && a->buffer.size == CAPACITY && a->bn_tracked > 0);
    labels[0] = CLASSES; /* out of range */
    CHECK(pt_cl_learner_begin_batch(&team, &a->learner, latents, NULL, labels, 3) == PT_ERR_VALUE_OUT_OF_RANGE);
    CHECK(pt_cl_learner_begin_batch(&team, &a->learner, latents, NULL, labels, MAX_NEW + 1) == PT_ERR_BAD_SHAPE);
    labels[0] = 0;
    a->learner.settings.min_new = 5; /* as if the arena were sized for batches of 5..MAX_NEW */
    CHECK(pt_cl_learner_begin_batch(&team, &a->learner, latents, NULL, labels, 4) == PT_ERR_BAD_SHAPE);
    a->learner.settings.min_new = 0;
    CHECK(pt_cl_learner_predict(&team, &a->learner, latents, MAX_NEW, predicted) == PT_OK);
    for (int k = 0; k < MAX_NEW; k++) CHECK(predicted[k] >= 0 && predicted[k] < CLASSES);
}

int main(void) {
    static int32_t predicted[2][MAX_NEW];
    run(&runs[0], 1, predicted[0]);
    run(&runs[1], 3, predicted[1]);
    /* everything but the pointers into each run's own memory */
    CHECK(memcmp(runs[0].pw_w, runs[1].pw_w, sizeof runs[0].pw_w) == 0);
    CHECK(memcmp(runs[0].bn_mean, runs[1].bn_mean, sizeof runs[0].bn_mean) == 0);
    CHECK(memcmp(runs[0].bn_var, runs[1].bn_var, sizeof runs[0].bn_var) == 0);
    CHECK(memcmp(runs[0].fc_w, runs[1].fc_w, sizeof runs[0].fc_w) == 0);
    CHECK(memcmp(runs[0].cw, runs[1].cw, sizeof runs[0].cw) == 0);
    CHECK(memcmp(runs[0].storage, runs[1].storage, sizeof runs[0].storage) == 0);
    CHECK(memcmp(runs[0].labels, runs[1].labels, sizeof runs[0].labels) == 0);
    CHECK(memcmp(predicted[0], predicted[1], sizeof predicted[0]) == 0);
    CHECK(runs[0].learner.rng.state == runs[1].learner.rng.state && runs[0].buffer.rng.state == runs[1].buffer.rng.state);
    if (failures) return 1;
    printf("ok\n");
    return 0;
}
