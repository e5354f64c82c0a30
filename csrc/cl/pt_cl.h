/* On-device continual learning with latent replays: the whole learning step as portable C.
 *
 * Three parts, all over caller memory (no allocation), all plain-data structs (so an application can declare
 * them as static C initializers), every error a pt_status:
 *
 *  1. pt_rng: PCG32 (XSH-RR output, 64-bit LCG state, odd increment), the one generator of every random decision
 *     of the continual-learning loop (new-sample shuffles, replay sampling, buffer replacement), on the host
 *     (through the Python binding) and on the target alike.
 *  2. pt_cl_buffer: the latent-replay memory. `capacity` rows of `elements` values, bit-packed at `bits` in 1..8
 *     (row k = bytes [k * row_bytes, (k + 1) * row_bytes), codes packed as pt_pack_bits) or FP32 (bits = 32),
 *     int16 labels, the replacement policies and the epoch replay sampler.
 *  3. pt_cl_learner: the adaptive stage (a table of pt_cl_layer entries, NCHW float32) trained by SGD with
 *     momentum and weight decay on mini-batches of new latents + replays, CWR* consolidation of the classifier,
 *     BatchNorm / Batch Renorm statistics, all scratch in one arena whose size pt_cl_learner_arena_bytes gives
 *     before anything runs.
 *
 * One learning event (a batch of N new samples):
 *     pt_cl_learner_begin_batch(team, learner, latents or codes, labels, N);   plan + CWR* set-up
 *     while (learner->step_index < learner->plan.total_steps) pt_cl_learner_train_step(team, learner, &result);
 *     pt_cl_learner_end_batch(team, learner);                                   CWR* + buffer update
 * and pt_cl_learner_predict() classifies latents in evaluation mode between events.
 *
 * Results are bitwise identical for every team size: every arithmetic step is one of the csrc kernels (which
 * are), called with the same arguments and in the same order as the pulptrain.nn layers and
 * pulptrain.optim.SGD call them; the bookkeeping here is serial.
 */
#ifndef PT_CL_H
#define PT_CL_H

#include <stddef.h>
#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

/* ================================================================================================ PCG32 */

/* PCG32 state: state advances as state = state * 6364136223846793005 + inc (mod 2^64), inc odd. */
typedef struct {
    uint64_t state;
    uint64_t inc;
} pt_rng;

/* pcg32_srandom: inc = (stream << 1) | 1, state = 0; advance; state += seed; advance. */
void pt_rng_seed(pt_rng *rng, uint64_t seed, uint64_t stream);
/* The next 32-bit output: xorshift-high of the old state rotated right by its top 5 bits (XSH-RR). */
uint32_t pt_rng_next(pt_rng *rng);
/* Uniform in [0, bound), bound >= 1, unbiased: draws until r >= (2^32 - bound) % bound, returns r % bound.
 * bound == 0 returns 0 without drawing. */
uint32_t pt_rng_below(pt_rng *rng, uint32_t bound);
/* A uniform permutation of 0..n-1 into out[n] (Fisher-Yates from the top: out[i] = i, then for
 * i = n-1 down to 1 swap out[i] with out[below(i + 1)]). n in [0, 2^31). */
pt_status pt_rng_permutation(pt_rng *rng, int32_t n, int32_t *out);
/* k distinct values of 0..n-1 in uniform random order (partial Fisher-Yates from the bottom over
 * scratch[n]: scratch[i] = i, then for i = 0..k-1 swap scratch[i] with scratch[i + below(n - i)];
 * the sample is scratch[0..k-1]). 0 <= k <= n. */
pt_status pt_rng_sample(pt_rng *rng, int32_t n, int32_t k, int32_t *scratch);

/* ======================================================================================== replay buffer */

#define PT_CL_FP32_BITS 32

typedef enum {
    /* after batch i (0-based), h = min(capacity / (i + 1), n) samples drawn without replacement from the
     * batch go in: the first fill the empty slots, the rest overwrite h - fill distinct random occupied
     * slots (pt_rng_sample over the occupied slots) */
    PT_CL_POLICY_REFERENCE = 0,
    /* reservoir sampling over every sample ever offered: while there is room a sample takes the next slot,
     * then sample number t (1-based, over all batches) draws j = below(t) and replaces slot j when j < capacity */
    PT_CL_POLICY_RESERVOIR = 1,
    /* fill while there is room; when full, a sample of class c evicts, when count[c] < the largest count, a
     * random sample (the below(count)-th slot holding it, in slot order) of a random largest class (the
     * below(#largest)-th in ascending class order); else it replaces a random sample of its own class when
     * below(seen[c]) < count[c] */
    PT_CL_POLICY_CLASS_BALANCED = 2
} pt_cl_policy;

typedef struct {
    /* ---- configuration (fixed) ---- */
    int32_t capacity;    /* rows, >= 1 */
    int64_t elements;    /* values per latent, >= 1 */
    int32_t bits;        /* 1..8 (codes, zero point 0) or PT_CL_FP32_BITS */
    int32_t policy;      /* pt_cl_policy */
    int32_t num_classes; /* labels are in [0, num_classes), 1..32768 */
    /* ---- caller memory ---- */
    uint8_t *storage;    /* capacity * pt_cl_buffer_row_bytes(elements, bits) bytes (FP32: floats, aligned to 4) */
    int16_t *labels;     /* capacity */
    int64_t *class_seen; /* num_classes: samples offered so far per class (state) */
    int32_t *class_count;/* num_classes: scratch, stored samples per class during an update */
    int32_t *order;      /* capacity: scratch, the epoch permutation of the replay sampler and update sampling */
    uint8_t *row_codes;  /* elements: scratch, one row of codes (unused by FP32 buffers) */
    /* ---- state ---- */
    float scale;         /* quantization step (> 0, finite) for bits <= 8: x = scale * code; 0 = not set yet */
    int32_t size;        /* occupied slots 0..size-1 */
    int64_t batches_seen;
    int64_t samples_seen;
    pt_rng rng;
    /* replay sampler position in `order` (set by pt_cl_buffer_epoch_begin) */
    int32_t order_len, order_pos;
} pt_cl_buffer;

/* Bytes of one stored row: ceil(elements * bits / 8), or 4 * elements at FP32; -1 for bad arguments. */
int64_t pt_cl_buffer_row_bytes(int64_t elements, int bits);
/* Bytes of every caller array of a buffer (storage, labels, class_seen, class_count, order, row_codes), each
 * rounded up to PT_CL_ALIGN; -1 for bad arguments. */
int64_t pt_cl_buffer_memory_bytes(int32_t capacity, int64_t elements, int bits, int32_t num_classes);
/* Checks the configuration and pointers (PT_ERR_BAD_ARGUMENT for bits / policy / num_classes out of range,
 * PT_ERR_BAD_SHAPE for sizes, PT_ERR_NULL_POINTER) and starts empty: size, counters, class_seen = 0,
 * scale as given (0 = unset; needed > 0 by the first write of a quantized buffer), rng seeded by (seed, stream). */
pt_status pt_cl_buffer_init(pt_cl_buffer *buf, float scale, uint64_t seed, uint64_t stream);
/* PT_OK when the buffer's configuration, pointers and state are consistent (size <= capacity, stored labels
 * in range, scale valid once something is stored, class_seen adding up to samples_seen). */
pt_status pt_cl_buffer_check(const pt_cl_buffer *buf);

/* Offers n samples (one batch) by the policy; counts the batch (batches_seen, samples_seen, class_seen).
 * Exactly one of `latents` (n x elements floats: quantized with the buffer's scale, or copied at FP32) and
 * `codes` (n x elements codes at the buffer's bits and scale, unpacked: stored as they are) is non-NULL.
 * labels: n values in [0, num_classes). pick_scratch: n int32 (the reference policy's draw from the batch).
 * slots_written (NULL or n int32): receives, per write in order, the slot written (a slot may repeat: the
 * later sample is the one kept); *num_written (may be NULL) their number. */
pt_status pt_cl_buffer_update(const pt_team *team, pt_cl_buffer *buf, const float *latents, const uint8_t *codes,
                              const int16_t *labels, int32_t n, int32_t *pick_scratch, int32_t *slots_written,
                              int32_t *num_written);
/* Rows of slots[0..n-1] (each < size) decoded to float32 (scale * code, or the stored FP32 values) into
 * out (n x elements), labels into labels_out (int64, may be NULL). */
pt_status pt_cl_buffer_read(const pt_team *team, pt_cl_buffer *buf, const int32_t *slots, int32_t n, float *out,
                            int64_t *labels_out);
/* Codes of slots[0..n-1] unpacked into out (n x elements bytes); quantized buffers only. */
pt_status pt_cl_buffer_read_codes(const pt_team *team, pt_cl_buffer *buf, const int32_t *slots, int32_t n,
                                  uint8_t *out);
/* The replay sampler: epoch_begin draws a permutation of the occupied slots; each replay call takes the next
 * min(per_step, size) of them, drawing a fresh permutation first when fewer than that are left (so replays are
 * without replacement within an epoch), and decodes them into out / labels_out as pt_cl_buffer_read.
 * *taken (may be NULL) = rows written. */
pt_status pt_cl_buffer_epoch_begin(pt_cl_buffer *buf);
pt_status pt_cl_buffer_replay(const pt_team *team, pt_cl_buffer *buf, int32_t per_step, float *out,
                              int64_t *labels_out, int32_t *taken);

/* ============================================================================================ adaptive stage */

typedef enum {
    PT_CL_CONV2D = 0,    /* pt_conv2d_*: weight (c_out, c_in, kh, kw), bias (c_out) or NULL */
    PT_CL_DEPTHWISE = 1, /* pt_depthwise_conv2d_*: weight (c, 1, kh, kw), bias (c) or NULL */
    PT_CL_POINTWISE = 2, /* pt_pointwise_conv2d_*: weight (c_out, c_in, 1, 1), bias (c_out) or NULL */
    PT_CL_BATCHNORM = 3, /* pt_batchnorm2d_*: weight = gamma (c), bias = beta (c), running_mean / running_var (c),
                          * num_batches_tracked; r_max > 0 for Batch Renormalization (r_max, d_max) */
    PT_CL_RELU = 4,      /* pt_relu_*, in place; upper = PT_RELU_NO_CLIP or 6 (ReLU6) */
    PT_CL_AVG_POOL = 5,  /* pt_avg_pool2d_* with the window (kh, kw, stride, pad); global pooling is the
                          * window of the whole plane with stride = window */
    PT_CL_FLATTEN = 6,   /* a view: (c, h, w) -> (c * h * w, 1, 1) */
    PT_CL_LINEAR = 7     /* pt_linear_*: weight (c_out, in = c_in * h_in * w_in), bias (c_out) or NULL */
} pt_cl_layer_kind;

/* One layer of the adaptive stage. Shapes are per sample (the batch axis is the mini-batch). The parameter,
 * gradient and momentum arrays are caller memory (on the host: the pulptrain.nn modules' arrays). `out` and
 * `saved` are set by pt_cl_learner_init (arena pointers); leave them NULL. */
typedef struct {
    int32_t kind;                        /* pt_cl_layer_kind */
    int32_t c_in, h_in, w_in;            /* input (C, H, W) of one sample */
    int32_t c_out, h_out, w_out;         /* output (C, H, W) of one sample */
    int32_t kh, kw, stride_h, stride_w, pad_h, pad_w; /* convolution / pooling window */
    float upper;                         /* ReLU clip (PT_RELU_NO_CLIP: none) */
    float eps, bn_momentum, r_max, d_max; /* BatchNorm (r_max = 0: plain BatchNorm) */
    int32_t weight_trainable, bias_trainable; /* requires_grad of weight and bias */
    float *weight, *weight_grad, *weight_momentum; /* momentum NULL when the SGD momentum is 0 */
    float *bias, *bias_grad, *bias_momentum;       /* all NULL when the layer has no bias */
    float *running_mean, *running_var;   /* BatchNorm */
    int64_t *num_batches_tracked;        /* BatchNorm, may be NULL; +1 per training-mode forward */
    float *out;                          /* set by init: the output (rows x c_out*h_out*w_out) in the arena */
    float *saved;                        /* set by init: BatchNorm statistics (4 x c) in the arena */
} pt_cl_layer;

/* CWR* state of the classifier (the last PT_CL_LINEAR layer, c_out = num_classes): consolidated rows cw
 * (num_classes x features), biases cb (num_classes; used when the classifier has a bias), cw_set (0/1) and
 * past (samples counted per class). Caller memory (on the host: the learner's numpy arrays). */
typedef struct {
    float *cw;
    float *cb;
    uint8_t *cw_set;
    int64_t *past;
} pt_cl_cwr;

typedef struct {
    float lr, first_lr;       /* SGD learning rates of batches >= 1 and of batch 0, > 0 */
    float momentum;           /* SGD momentum >= 0 (buffer = the gradient at a fresh optimizer's first step) */
    float weight_decay;       /* L2, added to the gradient */
    int32_t epochs, first_epochs; /* epochs of batches >= 1 and of batch 0 */
    int32_t minibatch;        /* rows per mini-batch (new + replays) */
    int32_t cwr;              /* CWR* consolidation of the classifier */
    int32_t freeze_bn;        /* BatchNorm in evaluation mode (frozen statistics) while training */
    int32_t num_classes;      /* classifier outputs; labels in [0, num_classes) */
    int32_t max_new;          /* the most new samples one batch may have (sizes the arena) */
    int32_t min_new;          /* the fewest new samples one batch may have, 1..max_new (0 means 1): a stream of
                               * batches of one size N sets min_new = max_new = N and gets the smallest arena */
} pt_cl_settings;

/* The mini-batch plan of one batch (pulptrain.cl.LatentReplayLearner.minibatch_plan). */
typedef struct {
    int32_t new_per_step;     /* new rows per mini-batch (the last mini-batch of a batch 0 may have fewer) */
    int32_t replays_per_step; /* the plan's replays (the rows taken are min(replays_per_step, buffer size)) */
    int32_t steps_per_epoch;
    int32_t epochs;
    int32_t total_steps;      /* steps_per_epoch * epochs */
} pt_cl_plan;

/* What one train step reports. */
typedef struct {
    float loss;      /* the mini-batch's mean cross-entropy (pt_cross_entropy) */
    int32_t correct; /* rows whose logits' first maximum is at the label */
    int32_t rows;    /* rows in the mini-batch */
} pt_cl_step_result;

#define PT_CL_ALIGN 16 /* every array carved from an arena starts at a multiple of this many bytes */

typedef struct {
    /* ---- configuration (set by init) ---- */
    pt_cl_settings settings;
    pt_cl_layer *layers;
    int32_t num_layers;
    int32_t classifier;    /* index of the last PT_CL_LINEAR layer */
    int32_t first_trained; /* the first layer with a trainable parameter: the backward stops there */
    pt_cl_buffer *buffer;
    pt_cl_cwr cwr;         /* all NULL without CWR* */
    int64_t elements;      /* values of one latent (the first layer's input) */
    int32_t rows_max;      /* rows of the largest mini-batch any plan can make */
    /* ---- state ---- */
    pt_rng rng;            /* shuffles the new samples */
    int64_t batches_seen;
    int32_t optimizer_phase;   /* -1: no optimizer yet, 0: batch 0's, 1: the one made at batch 1 */
    int32_t optimizer_started; /* the current optimizer has stepped (its momentum buffers are set) */
    /* ---- the batch in progress (begin_batch .. end_batch) ---- */
    int32_t in_batch;
    const float *new_latents;  /* caller memory, valid until end_batch */
    const uint8_t *new_codes;
    const int16_t *new_labels;
    int32_t num_new;
    pt_cl_plan plan;
    int32_t step_index;        /* steps run so far, 0..plan.total_steps */
    /* ---- arena ---- */
    uint8_t *arena;
    int64_t arena_bytes;
    float *batch_x;            /* rows_max x elements: the mini-batch (new rows, then replays) */
    int64_t *batch_labels;     /* rows_max */
    int32_t *new_order;        /* max_new: the epoch's shuffle of the new samples; the reference policy's draw */
    int64_t *class_counts;     /* num_classes: CWR* counts of the batch */
    float *grad[2];            /* ping-pong gradient buffers, rows_max x the largest layer output */
    float *loss_workspace;
    float *workspace;          /* the kernels' workspace */
    int64_t workspace_floats;
} pt_cl_learner;

/* Bytes of arena that pt_cl_learner_init needs for these settings, layer table and team (the kernels'
 * workspace depends on the team size and matmul variant), with a buffer of `capacity` rows: the mini-batch
 * (rows_max x elements floats + rows_max int64 labels), every layer's output (rows_max x its output; ReLU and
 * flatten none: they reuse their input), BatchNorm statistics (4 x C), two gradient buffers of rows_max x the
 * largest layer output, the loss and kernel workspaces, the new-sample permutation (max_new int32) and the
 * CWR* counts (num_classes int64), each rounded up to PT_CL_ALIGN. -1 for bad arguments.
 * rows_max = max(minibatch, the largest n / groups over min_new <= n <= max_new, where groups = max(1, (n + 1) /
 * minibatch) is the fewest a buffer of 1..capacity latents gives (batches with n + capacity < minibatch make
 * mini-batches of n + replays <= minibatch rows)): a plan's mini-batch never has more rows. */
int64_t pt_cl_learner_arena_bytes(const pt_team *team, const pt_cl_settings *settings, const pt_cl_layer *layers,
                                  int32_t num_layers, int32_t capacity);
/* Checks everything (settings, the layer table's shapes chain and pointers, the buffer (pt_cl_buffer_init'ed or
 * restored so that pt_cl_buffer_check passes), the classifier for CWR*) and carves the arena
 * (PT_ERR_WORKSPACE_TOO_SMALL when arena_bytes < pt_cl_learner_arena_bytes; the arena must be PT_CL_ALIGN-aligned).
 * State starts at batch 0, rng seeded by (seed, stream). cwr may be NULL without CWR*.
 * To resume a saved learner (pulptrain.cl.LatentReplayLearner.state_dict: meta "rng" = [state, inc],
 * "batches_seen", "optimizer_phase" (null = -1), "optimizer_started"), assign rng, batches_seen,
 * optimizer_phase and optimizer_started after init; the momentum arrays ("optim/momentum/<j>", trainable
 * parameters in table order, weight before bias) and the CWR* arrays are caller memory and keep their values. */
pt_status pt_cl_learner_init(pt_cl_learner *learner, const pt_team *team, const pt_cl_settings *settings,
                             pt_cl_layer *layers, int32_t num_layers, pt_cl_buffer *buffer, const pt_cl_cwr *cwr,
                             uint8_t *arena, int64_t arena_bytes, uint64_t seed, uint64_t stream);
/* Moves the learner to another arena (same layout rules), for another team or a larger max_new; not between
 * begin_batch and end_batch. The state (rng, counters, optimizer phase) is kept. */
pt_status pt_cl_learner_set_arena(pt_cl_learner *learner, const pt_team *team, int32_t max_new, uint8_t *arena,
                                  int64_t arena_bytes);
/* The plan for n new samples at the learner's next batch. */
pt_cl_plan pt_cl_learner_plan(const pt_cl_learner *learner, int32_t n);
/* Starts a batch of n (min_new..max_new) new samples: exactly one of latents (n x elements floats) and codes (n x
 * elements codes at the buffer's bits and scale: trained on as scale * code, stored as they are) is non-NULL;
 * labels in [0, num_classes). The arrays are read until end_batch. Makes the plan, a fresh optimizer at batch
 * 0 and batch 1, the CWR* counts (the classes of the new samples, and at batches >= 1 of the buffer too) and
 * loads the consolidated rows of the present classes into the zeroed classifier. */
pt_status pt_cl_learner_begin_batch(const pt_team *team, pt_cl_learner *learner, const float *latents,
                                    const uint8_t *codes, const int16_t *labels, int32_t n);
/* One mini-batch: at the first step of an epoch a fresh shuffle of the new samples (pt_rng_permutation of the
 * learner's rng) and of the replays (pt_cl_buffer_epoch_begin); then the next new_per_step shuffled new rows
 * and min(replays_per_step, size) replays decoded into the mini-batch, gradients zeroed, forward (BatchNorm
 * in training mode unless freeze_bn), cross-entropy, backward down to first_trained (whose input gradient is
 * not computed), and an SGD step of every trainable parameter. result may be NULL. */
pt_status pt_cl_learner_train_step(const pt_team *team, pt_cl_learner *learner, pt_cl_step_result *result);
/* Ends the batch (after every step): CWR* consolidation of the present classes, the buffer update with the new
 * samples (pt_cl_buffer_update, the learner's new_order as pick scratch), CWR* load of every consolidated row,
 * batches_seen + 1. */
pt_status pt_cl_learner_end_batch(const pt_team *team, pt_cl_learner *learner);
/* Drops the batch in progress after a failed step (the steps already run stay in the weights; the buffer is
 * not updated and the batch is not counted). */
pt_status pt_cl_learner_abort_batch(pt_cl_learner *learner);
/* Classes (first maximum of the logits) of n latents (n x elements floats), forward in evaluation mode,
 * rows_max latents at a time. Not between begin_batch and end_batch. */
pt_status pt_cl_learner_predict(const pt_team *team, pt_cl_learner *learner, const float *latents, int64_t n,
                                int32_t *classes);

/* CWR* pieces (used by the steps above; exposed for tests). counts: num_classes samples per class of the
 * batch, a class is present when its count > 0. reset: zero the classifier, load cw / cb of the present classes
 * that have them. consolidate: avg = mean of every weight of the present rows (a double sum in row order),
 * cw[c] = (cw[c] * wpast + (w[c] - avg)) / (wpast + 1) with wpast = (float) sqrt(past[c] / counts[c]) (just
 * w[c] - avg the first time), the same for the bias; past += counts. load_all: every consolidated row into the
 * classifier. */
pt_status pt_cl_cwr_reset(pt_cl_learner *learner, const int64_t *counts);
pt_status pt_cl_cwr_consolidate(pt_cl_learner *learner, const int64_t *counts);
pt_status pt_cl_cwr_load_all(pt_cl_learner *learner);

#endif
