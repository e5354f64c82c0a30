/* The latent-replay learning step over a layer table: mini-batch assembly, forward / backward / SGD through the
 * csrc kernels (the same calls, arguments and order as pulptrain.nn and pulptrain.optim.SGD), CWR*. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pt_cl.h"
#include "activation.h"
#include "batchnorm.h"
#include "bias.h"
#include "conv2d.h"
#include "conv_geometry.h"
#include "depthwise_conv2d.h"
#include "linear.h"
#include "loss.h"
#include "optim.h"
#include "pointwise_conv2d.h"
#include "pooling.h"
#include "quant.h"

#define PT_CL_MAX_CLASSES 32768

static int64_t align_up(int64_t bytes) { return (bytes + PT_CL_ALIGN - 1) / PT_CL_ALIGN * PT_CL_ALIGN; }
static int64_t in_elements(const pt_cl_layer *L) { return (int64_t)L->c_in * L->h_in * L->w_in; }
static int64_t out_elements(const pt_cl_layer *L) { return (int64_t)L->c_out * L->h_out * L->w_out; }
static int in_place(const pt_cl_layer *L) { return L->kind == PT_CL_RELU || L->kind == PT_CL_FLATTEN; }
static int has_params(const pt_cl_layer *L) {
    return L->kind == PT_CL_CONV2D || L->kind == PT_CL_DEPTHWISE || L->kind == PT_CL_POINTWISE ||
           L->kind == PT_CL_BATCHNORM || L->kind == PT_CL_LINEAR;
}
static int weight_trained(const pt_cl_layer *L) { return has_params(L) && L->weight != NULL && L->weight_trainable; }
static int bias_trained(const pt_cl_layer *L) { return has_params(L) && L->bias != NULL && L->bias_trainable; }

static int64_t weight_count(const pt_cl_layer *L) {
    switch (L->kind) {
    case PT_CL_CONV2D: return (int64_t)L->c_out * L->c_in * L->kh * L->kw;
    case PT_CL_DEPTHWISE: return (int64_t)L->c_out * L->kh * L->kw;
    case PT_CL_POINTWISE: return (int64_t)L->c_out * L->c_in;
    case PT_CL_BATCHNORM: return L->c_out;
    case PT_CL_LINEAR: return (int64_t)L->c_out * in_elements(L);
    default: return 0;
    }
}

/* The window geometry of a convolution / pooling layer for n samples, checked against the table's output shape. */
static pt_status geometry(const pt_cl_layer *L, int64_t n, pt_conv_geometry *g) {
    const int64_t c_out = L->kind == PT_CL_CONV2D ? L->c_out : L->c_in;
    const pt_status st = pt_conv_geometry_init(g, n, L->c_in, L->h_in, L->w_in, c_out, L->kh, L->kw, L->stride_h,
                                               L->stride_w, L->pad_h, L->pad_w);
    if (st != PT_OK) return st;
    if (g->c_out != L->c_out || g->h_out != L->h_out || g->w_out != L->w_out) return PT_ERR_BAD_SHAPE;
    return PT_OK;
}

/* ------------------------------------------------------------------------------------------ validation */

static int finite_real(float v) { return isfinite(v); }

static pt_status check_settings(const pt_cl_settings *s) {
    if (s == NULL) return PT_ERR_NULL_POINTER;
    if (!(finite_real(s->lr) && s->lr > 0) || !(finite_real(s->first_lr) && s->first_lr > 0) ||
        !(finite_real(s->momentum) && s->momentum >= 0) || !(finite_real(s->weight_decay) && s->weight_decay >= 0) ||
        s->epochs < 1 || s->first_epochs < 1 || s->minibatch < 1 || s->num_classes < 1 ||
        s->num_classes > PT_CL_MAX_CLASSES || s->max_new < 1 || s->min_new < 0 || s->min_new > s->max_new) {
        return PT_ERR_BAD_ARGUMENT;
    }
    return PT_OK;
}

static pt_status check_param(const float *data, const float *grad, const float *momentum, int trainable,
                             const pt_cl_settings *s) {
    if (data == NULL || !trainable) return PT_OK;
    if (grad == NULL || (s->momentum != 0.0f && momentum == NULL)) return PT_ERR_NULL_POINTER;
    return PT_OK;
}

static pt_status check_layer(const pt_cl_layer *L, const pt_cl_settings *s) {
    pt_conv_geometry g;
    pt_status st;
    if (L->c_in < 1 || L->h_in < 1 || L->w_in < 1 || L->c_out < 1 || L->h_out < 1 || L->w_out < 1) {
        return PT_ERR_BAD_SHAPE;
    }
    const int same_shape = L->c_out == L->c_in && L->h_out == L->h_in && L->w_out == L->w_in;
    switch (L->kind) {
    case PT_CL_CONV2D:
    case PT_CL_DEPTHWISE:
    case PT_CL_AVG_POOL:
        if ((st = geometry(L, 1, &g)) != PT_OK) return st;
        break;
    case PT_CL_POINTWISE:
        if (L->h_out != L->h_in || L->w_out != L->w_in) return PT_ERR_BAD_SHAPE;
        break;
    case PT_CL_BATCHNORM:
        if (!same_shape) return PT_ERR_BAD_SHAPE;
        if (L->running_mean == NULL || L->running_var == NULL || L->bias == NULL) return PT_ERR_NULL_POINTER;
        if (!(L->eps > 0 && finite_real(L->eps)) || !(L->bn_momentum >= 0 && L->bn_momentum <= 1) ||
            !(L->r_max == 0 || (L->r_max >= 1 && finite_real(L->r_max) && L->d_max >= 0 && finite_real(L->d_max)))) {
            return PT_ERR_BAD_ARGUMENT;
        }
        break;
    case PT_CL_RELU:
        if (!same_shape) return PT_ERR_BAD_SHAPE;
        if (!(L->upper == PT_RELU_NO_CLIP || L->upper > 0)) return PT_ERR_BAD_ARGUMENT;
        return PT_OK;
    case PT_CL_FLATTEN:
        if (out_elements(L) != in_elements(L) || L->h_out != 1 || L->w_out != 1) return PT_ERR_BAD_SHAPE;
        return PT_OK;
    case PT_CL_LINEAR:
        if (L->h_out != 1 || L->w_out != 1) return PT_ERR_BAD_SHAPE;
        break;
    default:
        return PT_ERR_BAD_ARGUMENT;
    }
    if (L->kind == PT_CL_AVG_POOL) return 2 * L->pad_h > L->kh || 2 * L->pad_w > L->kw ? PT_ERR_BAD_ARGUMENT : PT_OK;
    if (L->weight == NULL) return PT_ERR_NULL_POINTER;
    if ((st = check_param(L->weight, L->weight_grad, L->weight_momentum, L->weight_trainable, s)) != PT_OK) return st;
    return check_param(L->bias, L->bias_grad, L->bias_momentum, L->bias_trainable, s);
}

/* Checks the table: each layer, the shapes chain, the logits; finds the classifier and the first trained layer. */
static pt_status check_layers(const pt_cl_settings *s, const pt_cl_layer *layers, int32_t num_layers,
                              int32_t *classifier, int32_t *first_trained) {
    if (layers == NULL) return PT_ERR_NULL_POINTER;
    if (num_layers < 1) return PT_ERR_BAD_SHAPE;
    *classifier = *first_trained = -1;
    for (int32_t i = 0; i < num_layers; i++) {
        const pt_cl_layer *L = &layers[i];
        const pt_status st = check_layer(L, s);
        if (st != PT_OK) return st;
        if (i > 0) {
            const pt_cl_layer *P = &layers[i - 1];
            if (L->c_in != P->c_out || L->h_in != P->h_out || L->w_in != P->w_out) return PT_ERR_BAD_SHAPE;
        }
        if (L->kind == PT_CL_LINEAR && L->c_out == s->num_classes) *classifier = i;
        if (*first_trained < 0 && (weight_trained(L) || bias_trained(L))) *first_trained = i;
    }
    if (out_elements(&layers[num_layers - 1]) != s->num_classes) return PT_ERR_BAD_SHAPE;
    return *first_trained < 0 ? PT_ERR_BAD_ARGUMENT : PT_OK;
}

/* --------------------------------------------------------------------------------------------- arena */

static int32_t rows_max_of(const pt_cl_settings *s, int32_t capacity) {
    const int64_t mb = s->minibatch;
    int64_t rows = mb;
    for (int64_t n = s->min_new > 1 ? s->min_new : 1; n <= s->max_new; n++) {
        /* the fewest groups (n + stored) / minibatch a stored count in [1, capacity] gives */
        int64_t groups = (n + 1) / mb;
        if (groups == 0) {
            if (n + capacity < mb) continue; /* every plan of n: new = n < minibatch rows */
            groups = 1;
        }
        if (n / groups > rows) rows = n / groups;
    }
    return (int32_t)rows;
}

static int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The kernels' workspace (floats) for every mini-batch size up to rows. */
static int64_t workspace_floats_of(const pt_team *team, const pt_cl_layer *layers, int32_t num_layers, int32_t rows) {
    int64_t most = 0;
    for (int32_t i = 0; i < num_layers; i++) {
        const pt_cl_layer *L = &layers[i];
        for (int64_t n = 1; n <= rows; n++) {
            pt_conv_geometry g;
            const int64_t hw = (int64_t)L->h_in * L->w_in, in = in_elements(L);
            switch (L->kind) {
            case PT_CL_CONV2D:
                if (geometry(L, n, &g) != PT_OK) return -1;
                most = max_i64(most, pt_conv2d_forward_workspace_floats(team, &g));
                most = max_i64(most, pt_conv2d_grad_input_workspace_floats(team, &g));
                most = max_i64(most, pt_conv2d_grad_weight_workspace_floats(team, &g));
                break;
            case PT_CL_POINTWISE:
                most = max_i64(most, pt_pointwise_conv2d_forward_workspace_floats(team, n, L->c_in, L->c_out, hw));
                most = max_i64(most, pt_pointwise_conv2d_grad_input_workspace_floats(team, n, L->c_in, L->c_out, hw));
                most = max_i64(most, pt_pointwise_conv2d_grad_weight_workspace_floats(team, n, L->c_in, L->c_out, hw));
                break;
            case PT_CL_LINEAR:
                most = max_i64(most, pt_linear_forward_workspace_floats(team, n, in, L->c_out));
                most = max_i64(most, pt_linear_grad_input_workspace_floats(team, n, in, L->c_out));
                most = max_i64(most, pt_linear_grad_weight_workspace_floats(team, n, in, L->c_out));
                break;
            default:
                n = rows; /* no workspace */
                break;
            }
        }
    }
    return most;
}

typedef struct {
    uint8_t *base; /* NULL: only count */
    int64_t used;
} carver;

static void *carve(carver *c, int64_t bytes) {
    const int64_t at = c->used;
    c->used = at + align_up(bytes);
    return c->base == NULL ? NULL : (void *)(c->base + at);
}

/* Lays the arena out (counting only when base is NULL; else also setting the learner's and layers' pointers). */
static int64_t layout(const pt_team *team, const pt_cl_settings *s, pt_cl_layer *layers, int32_t num_layers,
                      int32_t capacity, pt_cl_learner *learner, uint8_t *base) {
    const int32_t rows = rows_max_of(s, capacity);
    const int64_t ws = workspace_floats_of(team, layers, num_layers, rows);
    if (ws < 0) return -1;
    carver c = {base, 0};
    float *batch_x = carve(&c, 4 * rows * in_elements(&layers[0]));
    int64_t *batch_labels = carve(&c, 8 * (int64_t)rows);
    float *prev = batch_x;
    int64_t widest = in_elements(&layers[0]);
    for (int32_t i = 0; i < num_layers; i++) {
        pt_cl_layer *L = &layers[i];
        float *out = in_place(L) ? prev : carve(&c, 4 * rows * out_elements(L));
        float *saved = L->kind == PT_CL_BATCHNORM ? carve(&c, 4 * (int64_t)PT_BN_SAVED_ROWS * L->c_out) : NULL;
        if (base != NULL) L->out = out, L->saved = saved;
        prev = out;
        widest = max_i64(widest, out_elements(L));
    }
    float *grad0 = carve(&c, 4 * rows * widest);
    float *grad1 = carve(&c, 4 * rows * widest);
    const int64_t loss_floats = pt_cross_entropy_workspace_floats(rows);
    float *loss_ws = carve(&c, 4 * loss_floats);
    float *workspace = carve(&c, 4 * ws);
    int32_t *new_order = carve(&c, 4 * (int64_t)s->max_new);
    int64_t *class_counts = carve(&c, 8 * (int64_t)s->num_classes);
    if (learner != NULL) {
        learner->rows_max = rows;
        learner->batch_x = batch_x;
        learner->batch_labels = batch_labels;
        learner->grad[0] = grad0;
        learner->grad[1] = grad1;
        learner->loss_workspace = loss_ws;
        learner->workspace = workspace;
        learner->workspace_floats = ws;
        learner->new_order = new_order;
        learner->class_counts = class_counts;
    }
    return c.used;
}

int64_t pt_cl_learner_arena_bytes(const pt_team *team, const pt_cl_settings *settings, const pt_cl_layer *layers,
                                  int32_t num_layers, int32_t capacity) {
    int32_t classifier, first_trained;
    if (pt_team_check(team) != PT_OK || check_settings(settings) != PT_OK || capacity < 1 ||
        check_layers(settings, layers, num_layers, &classifier, &first_trained) != PT_OK) {
        return -1;
    }
    /* layout only writes through the table when given an arena */
    return layout(team, settings, (pt_cl_layer *)layers, num_layers, capacity, NULL, NULL);
}

static pt_status place(pt_cl_learner *l, const pt_team *team, uint8_t *arena, int64_t arena_bytes) {
    const int64_t need =
        pt_cl_learner_arena_bytes(team, &l->settings, l->layers, l->num_layers, l->buffer->capacity);
    if (need < 0) return PT_ERR_BAD_ARGUMENT;
    if (arena == NULL) return PT_ERR_NULL_POINTER;
    if ((uintptr_t)arena % PT_CL_ALIGN != 0) return PT_ERR_BAD_ARGUMENT;
    if (arena_bytes < need) return PT_ERR_WORKSPACE_TOO_SMALL;
    layout(team, &l->settings, l->layers, l->num_layers, l->buffer->capacity, l, arena);
    l->arena = arena;
    l->arena_bytes = arena_bytes;
    return PT_OK;
}

pt_status pt_cl_learner_init(pt_cl_learner *learner, const pt_team *team, const pt_cl_settings *settings,
                             pt_cl_layer *layers, int32_t num_layers, pt_cl_buffer *buffer, const pt_cl_cwr *cwr,
                             uint8_t *arena, int64_t arena_bytes, uint64_t seed, uint64_t stream) {
    PT_RETURN_IF_BAD_TEAM(team);
    if (learner == NULL || buffer == NULL) return PT_ERR_NULL_POINTER;
    pt_status st = check_settings(settings);
    if (st != PT_OK) return st;
    int32_t classifier, first_trained;
    if ((st = check_layers(settings, layers, num_layers, &classifier, &first_trained)) != PT_OK) return st;
    if ((st = pt_cl_buffer_check(buffer)) != PT_OK) return st;
    if (buffer->elements != in_elements(&layers[0])) return PT_ERR_BAD_SHAPE;
    if (settings->cwr) {
        if (classifier < 0) return PT_ERR_BAD_ARGUMENT;
        if (cwr == NULL || cwr->cw == NULL || cwr->cb == NULL || cwr->cw_set == NULL || cwr->past == NULL) {
            return PT_ERR_NULL_POINTER;
        }
    }
    memset(learner, 0, sizeof *learner);
    learner->settings = *settings;
    learner->layers = layers;
    learner->num_layers = num_layers;
    learner->classifier = classifier;
    learner->first_trained = first_trained;
    learner->buffer = buffer;
    if (settings->cwr) learner->cwr = *cwr;
    learner->elements = buffer->elements;
    learner->optimizer_phase = -1;
    pt_rng_seed(&learner->rng, seed, stream);
    return place(learner, team, arena, arena_bytes);
}

pt_status pt_cl_learner_set_arena(pt_cl_learner *learner, const pt_team *team, int32_t max_new, uint8_t *arena,
                                  int64_t arena_bytes) {
    PT_RETURN_IF_BAD_TEAM(team);
    if (learner == NULL) return PT_ERR_NULL_POINTER;
    if (learner->in_batch) return PT_ERR_BAD_ARGUMENT;
    if (max_new < 1 || max_new < learner->settings.min_new) return PT_ERR_BAD_ARGUMENT;
    const pt_cl_settings kept = learner->settings;
    learner->settings.max_new = max_new;
    const pt_status st = place(learner, team, arena, arena_bytes);
    if (st != PT_OK) learner->settings = kept;
    return st;
}

/* -------------------------------------------------------------------------------------- forward / backward */

static pt_status forward(const pt_team *team, pt_cl_learner *l, int64_t n, int training) {
    const float *x = l->batch_x;
    for (int32_t i = 0; i < l->num_layers; i++) {
        pt_cl_layer *L = &l->layers[i];
        pt_conv_geometry g;
        pt_status st = PT_OK;
        const int64_t hw = (int64_t)L->h_in * L->w_in;
        switch (L->kind) {
        case PT_CL_CONV2D:
            if ((st = geometry(L, n, &g)) == PT_OK) {
                st = pt_conv2d_forward(team, &g, x, L->weight, L->bias, L->out, l->workspace, l->workspace_floats);
            }
            break;
        case PT_CL_DEPTHWISE:
            if ((st = geometry(L, n, &g)) == PT_OK) st = pt_depthwise_conv2d_forward(team, &g, x, L->weight, L->bias, L->out);
            break;
        case PT_CL_POINTWISE:
            st = pt_pointwise_conv2d_forward(team, n, L->c_in, L->c_out, hw, x, L->weight, L->bias, L->out,
                                             l->workspace, l->workspace_floats);
            break;
        case PT_CL_BATCHNORM:
            if (training) {
                const pt_batchnorm_config cfg = {L->eps, L->bn_momentum, L->r_max, L->d_max};
                st = pt_batchnorm2d_forward_train(team, n, L->c_in, hw, x, L->weight, L->bias, &cfg, L->running_mean,
                                                  L->running_var, L->saved, L->out);
                if (st == PT_OK && L->num_batches_tracked != NULL) (*L->num_batches_tracked)++;
            } else {
                st = pt_batchnorm2d_forward_eval(team, n, L->c_in, hw, x, L->weight, L->bias, L->eps, L->running_mean,
                                                 L->running_var, L->saved, L->out);
            }
            break;
        case PT_CL_RELU:
            st = pt_relu_forward(team, n * in_elements(L), x, L->out, L->upper);
            break;
        case PT_CL_AVG_POOL:
            if ((st = geometry(L, n, &g)) == PT_OK) st = pt_avg_pool2d_forward(team, &g, x, L->out);
            break;
        case PT_CL_FLATTEN:
            break;
        case PT_CL_LINEAR:
            st = pt_linear_forward(team, n, in_elements(L), L->c_out, x, L->weight, L->bias, L->out, l->workspace,
                                   l->workspace_floats);
            break;
        default:
            st = PT_ERR_BAD_ARGUMENT;
        }
        if (st != PT_OK) return st;
        x = L->out;
    }
    return PT_OK;
}

static pt_status bias_grad(const pt_team *team, const pt_cl_layer *L, int64_t n, const float *dy) {
    if (!bias_trained(L)) return PT_OK;
    return pt_bias_grad(team, n, L->c_out, (int64_t)L->h_out * L->w_out, dy, L->bias_grad, 1);
}

/* dy = the logits' gradient in grad[0]; down to first_trained, which computes no input gradient. */
static pt_status backward(const pt_team *team, pt_cl_learner *l, int64_t n, int training) {
    float *dy = l->grad[0];
    for (int32_t i = l->num_layers - 1; i >= l->first_trained; i--) {
        pt_cl_layer *L = &l->layers[i];
        const int need = i > l->first_trained;
        const float *x = i == 0 ? l->batch_x : l->layers[i - 1].out;
        float *dx = dy == l->grad[0] ? l->grad[1] : l->grad[0];
        const int64_t hw = (int64_t)L->h_in * L->w_in;
        float *ws = l->workspace;
        const int64_t wsf = l->workspace_floats;
        pt_conv_geometry g;
        pt_status st = PT_OK;
        switch (L->kind) {
        case PT_CL_CONV2D:
            if ((st = geometry(L, n, &g)) != PT_OK) break;
            if (weight_trained(L) && (st = pt_conv2d_grad_weight(team, &g, dy, x, L->weight_grad, 1, ws, wsf)) != PT_OK) break;
            if ((st = bias_grad(team, L, n, dy)) != PT_OK) break;
            if (need) st = pt_conv2d_grad_input(team, &g, dy, L->weight, dx, 0, ws, wsf);
            break;
        case PT_CL_DEPTHWISE:
            if ((st = geometry(L, n, &g)) != PT_OK) break;
            if (weight_trained(L) && (st = pt_depthwise_conv2d_grad_weight(team, &g, dy, x, L->weight_grad, 1)) != PT_OK) break;
            if ((st = bias_grad(team, L, n, dy)) != PT_OK) break;
            if (need) st = pt_depthwise_conv2d_grad_input(team, &g, dy, L->weight, dx, 0);
            break;
        case PT_CL_POINTWISE:
            if (weight_trained(L) &&
                (st = pt_pointwise_conv2d_grad_weight(team, n, L->c_in, L->c_out, hw, dy, x, L->weight_grad, 1, ws,
                                                      wsf)) != PT_OK) {
                break;
            }
            if ((st = bias_grad(team, L, n, dy)) != PT_OK) break;
            if (need) st = pt_pointwise_conv2d_grad_input(team, n, L->c_in, L->c_out, hw, dy, L->weight, dx, 0, ws, wsf);
            break;
        case PT_CL_LINEAR:
            if (weight_trained(L) &&
                (st = pt_linear_grad_weight(team, n, in_elements(L), L->c_out, dy, x, L->weight_grad, 1, ws, wsf)) !=
                    PT_OK) {
                break;
            }
            if ((st = bias_grad(team, L, n, dy)) != PT_OK) break;
            if (need) st = pt_linear_grad_input(team, n, in_elements(L), L->c_out, dy, L->weight, dx, 0, ws, wsf);
            break;
        case PT_CL_BATCHNORM:
            st = pt_batchnorm2d_backward(team, n, L->c_in, hw, x, dy, L->weight, L->saved, training, need ? dx : NULL,
                                         weight_trained(L) ? L->weight_grad : NULL,
                                         bias_trained(L) ? L->bias_grad : NULL, 1);
            break;
        case PT_CL_RELU:
            if (need) st = pt_relu_grad_input(team, n * in_elements(L), L->out, dy, dx, L->upper, 0);
            break;
        case PT_CL_AVG_POOL:
            if (need && (st = geometry(L, n, &g)) == PT_OK) st = pt_avg_pool2d_grad_input(team, &g, dy, dx, 0);
            break;
        case PT_CL_FLATTEN:
            dx = dy; /* a view */
            break;
        default:
            st = PT_ERR_BAD_ARGUMENT;
        }
        if (st != PT_OK) return st;
        dy = dx;
    }
    return PT_OK;
}

static void zero_grads(pt_cl_learner *l) {
    for (int32_t i = 0; i < l->num_layers; i++) {
        const pt_cl_layer *L = &l->layers[i];
        if (weight_trained(L)) memset(L->weight_grad, 0, (size_t)weight_count(L) * sizeof(float));
        if (bias_trained(L)) memset(L->bias_grad, 0, (size_t)L->c_out * sizeof(float));
    }
}

/* pulptrain.optim.SGD(params, lr, momentum=momentum, weight_decay=weight_decay).step(), parameters in order. */
static pt_status sgd_step(const pt_team *team, pt_cl_learner *l) {
    const pt_cl_settings *s = &l->settings;
    const pt_sgd_config cfg = {l->optimizer_phase == 0 ? s->first_lr : s->lr, s->momentum, 0.0f, s->weight_decay, 0};
    const int first = !l->optimizer_started;
    for (int32_t i = 0; i < l->num_layers; i++) {
        const pt_cl_layer *L = &l->layers[i];
        pt_status st;
        if (weight_trained(L) &&
            (st = pt_sgd_step(team, weight_count(L), L->weight, L->weight_grad,
                              s->momentum != 0.0f ? L->weight_momentum : NULL, &cfg, first)) != PT_OK) {
            return st;
        }
        if (bias_trained(L) &&
            (st = pt_sgd_step(team, L->c_out, L->bias, L->bias_grad, s->momentum != 0.0f ? L->bias_momentum : NULL,
                              &cfg, first)) != PT_OK) {
            return st;
        }
    }
    l->optimizer_started = 1;
    return PT_OK;
}

/* numpy.argmax: the first maximum, a NaN counting as the maximum. */
static int32_t argmax(const float *v, int32_t k) {
    int32_t best = 0;
    for (int32_t j = 1; j < k; j++) {
        if (isnan(v[best])) break;
        if (v[j] > v[best] || isnan(v[j])) best = j;
    }
    return best;
}

/* ---------------------------------------------------------------------------------------------- the batch */

pt_cl_plan pt_cl_learner_plan(const pt_cl_learner *l, int32_t n) {
    pt_cl_plan p = {0, 0, 0, 0, 0};
    if (l == NULL || n < 1) return p;
    const int32_t mb = l->settings.minibatch, stored = l->buffer->size;
    if (l->batches_seen == 0 || stored == 0) {
        p.new_per_step = mb < n ? mb : n;
        p.steps_per_epoch = (n + p.new_per_step - 1) / p.new_per_step;
    } else {
        const int64_t groups = ((int64_t)n + stored) / mb;
        int32_t fresh = groups > 0 ? (int32_t)(n / groups) : n;
        p.new_per_step = fresh > 1 ? fresh : 1;
        p.replays_per_step = mb > p.new_per_step ? mb - p.new_per_step : 0;
        p.steps_per_epoch = n / p.new_per_step;
    }
    p.epochs = l->batches_seen == 0 ? l->settings.first_epochs : l->settings.epochs;
    p.total_steps = p.steps_per_epoch * p.epochs;
    return p;
}

pt_status pt_cl_learner_begin_batch(const pt_team *team, pt_cl_learner *l, const float *latents, const uint8_t *codes,
                                    const int16_t *labels, int32_t n) {
    PT_RETURN_IF_BAD_TEAM(team);
    if (l == NULL) return PT_ERR_NULL_POINTER;
    if (l->in_batch) return PT_ERR_BAD_ARGUMENT;
    if (n < 1 || n < l->settings.min_new || n > l->settings.max_new) return PT_ERR_BAD_SHAPE;
    if ((latents == NULL) == (codes == NULL) || labels == NULL) return PT_ERR_NULL_POINTER;
    const pt_cl_buffer *buf = l->buffer;
    if (codes != NULL && (buf->bits == PT_CL_FP32_BITS || !(buf->scale > 0 && isfinite(buf->scale)))) {
        return PT_ERR_BAD_ARGUMENT;
    }
    const int64_t values = (int64_t)n * l->elements;
    for (int32_t k = 0; k < n; k++) {
        if (labels[k] < 0 || labels[k] >= l->settings.num_classes || labels[k] >= buf->num_classes) {
            return PT_ERR_VALUE_OUT_OF_RANGE;
        }
    }
    if (latents != NULL) {
        for (int64_t i = 0; i < values; i++) {
            if (!isfinite(latents[i])) return PT_ERR_VALUE_OUT_OF_RANGE;
        }
    } else {
        for (int64_t i = 0; i < values; i++) {
            if (codes[i] >> buf->bits) return PT_ERR_VALUE_OUT_OF_RANGE;
        }
    }
    const int with_buffer = l->batches_seen > 0 && buf->size > 0;
    if (l->settings.cwr) {
        for (int32_t c = 0; c < l->settings.num_classes; c++) l->class_counts[c] = 0;
        for (int32_t k = 0; k < n; k++) l->class_counts[labels[k]]++;
        for (int32_t s = 0; with_buffer && s < buf->size; s++) {
            if (buf->labels[s] < 0 || buf->labels[s] >= l->settings.num_classes) return PT_ERR_VALUE_OUT_OF_RANGE;
            l->class_counts[buf->labels[s]]++;
        }
    }
    const int32_t phase = l->batches_seen == 0 ? 0 : 1;
    if (l->optimizer_phase != phase) {
        l->optimizer_phase = phase; /* a fresh optimizer: its first step sets the momentum buffers */
        l->optimizer_started = 0;
    }
    if (l->settings.cwr) {
        const pt_status st = pt_cl_cwr_reset(l, l->class_counts);
        if (st != PT_OK) return st;
    }
    l->plan = pt_cl_learner_plan(l, n);
    l->new_latents = latents;
    l->new_codes = codes;
    l->new_labels = labels;
    l->num_new = n;
    l->step_index = 0;
    l->in_batch = 1;
    return PT_OK;
}

pt_status pt_cl_learner_train_step(const pt_team *team, pt_cl_learner *l, pt_cl_step_result *result) {
    PT_RETURN_IF_BAD_TEAM(team);
    if (l == NULL) return PT_ERR_NULL_POINTER;
    if (!l->in_batch || l->step_index >= l->plan.total_steps) return PT_ERR_BAD_ARGUMENT;
    const pt_cl_plan *p = &l->plan;
    pt_cl_buffer *buf = l->buffer;
    const int64_t e = l->elements;
    const int32_t step = l->step_index % p->steps_per_epoch;
    pt_status st;
    if (step == 0) {
        if ((st = pt_rng_permutation(&l->rng, l->num_new, l->new_order)) != PT_OK) return st;
        if (p->replays_per_step > 0 && (st = pt_cl_buffer_epoch_begin(buf)) != PT_OK) return st;
    }
    const int32_t start = step * p->new_per_step;
    const int32_t left = l->num_new - start;
    int32_t rows = left < p->new_per_step ? left : p->new_per_step;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t k = l->new_order[start + r];
        if (l->new_latents != NULL) {
            memcpy(l->batch_x + r * e, l->new_latents + k * e, (size_t)e * sizeof(float));
        } else if ((st = pt_dequantize(team, e, l->new_codes + k * e, buf->scale, l->batch_x + r * e)) != PT_OK) {
            return st;
        }
        l->batch_labels[r] = l->new_labels[k];
    }
    if (p->replays_per_step > 0) {
        int32_t taken = 0;
        st = pt_cl_buffer_replay(team, buf, p->replays_per_step, l->batch_x + rows * e, l->batch_labels + rows, &taken);
        if (st != PT_OK) return st;
        rows += taken;
    }
    const int training = !l->settings.freeze_bn;
    const int32_t k = l->settings.num_classes;
    float loss = 0.0f;
    zero_grads(l);
    if ((st = forward(team, l, rows, training)) != PT_OK) return st;
    const float *logits = l->layers[l->num_layers - 1].out;
    st = pt_cross_entropy(team, rows, k, logits, l->batch_labels, &loss, l->grad[0], l->loss_workspace,
                          pt_cross_entropy_workspace_floats(l->rows_max));
    if (st != PT_OK) return st;
    int32_t correct = 0;
    for (int32_t r = 0; r < rows; r++) correct += argmax(logits + (int64_t)r * k, k) == l->batch_labels[r];
    if ((st = backward(team, l, rows, training)) != PT_OK) return st;
    if ((st = sgd_step(team, l)) != PT_OK) return st;
    l->step_index++;
    if (result != NULL) {
        result->loss = loss;
        result->correct = correct;
        result->rows = rows;
    }
    return PT_OK;
}

pt_status pt_cl_learner_end_batch(const pt_team *team, pt_cl_learner *l) {
    PT_RETURN_IF_BAD_TEAM(team);
    if (l == NULL) return PT_ERR_NULL_POINTER;
    if (!l->in_batch || l->step_index != l->plan.total_steps) return PT_ERR_BAD_ARGUMENT;
    pt_status st;
    if (l->settings.cwr && (st = pt_cl_cwr_consolidate(l, l->class_counts)) != PT_OK) return st;
    st = pt_cl_buffer_update(team, l->buffer, l->new_latents, l->new_codes, l->new_labels, l->num_new, l->new_order,
                             NULL, NULL);
    if (st != PT_OK) return st;
    if (l->settings.cwr && (st = pt_cl_cwr_load_all(l)) != PT_OK) return st;
    l->batches_seen++;
    l->in_batch = 0;
    l->new_latents = NULL;
    l->new_codes = NULL;
    l->new_labels = NULL;
    return PT_OK;
}

pt_status pt_cl_learner_abort_batch(pt_cl_learner *l) {
    if (l == NULL) return PT_ERR_NULL_POINTER;
    l->in_batch = 0;
    l->new_latents = NULL;
    l->new_codes = NULL;
    l->new_labels = NULL;
    return PT_OK;
}

pt_status pt_cl_learner_predict(const pt_team *team, pt_cl_learner *l, const float *latents, int64_t n,
                                int32_t *classes) {
    PT_RETURN_IF_BAD_TEAM(team);
    if (l == NULL) return PT_ERR_NULL_POINTER;
    if (l->in_batch) return PT_ERR_BAD_ARGUMENT;
    if (n < 0) return PT_ERR_BAD_SHAPE;
    if (n > 0 && (latents == NULL || classes == NULL)) return PT_ERR_NULL_POINTER;
    const int64_t e = l->elements;
    const int32_t k = l->settings.num_classes;
    for (int64_t s = 0; s < n; s += l->rows_max) {
        const int64_t rows = n - s < l->rows_max ? n - s : l->rows_max;
        memcpy(l->batch_x, latents + s * e, (size_t)(rows * e) * sizeof(float));
        const pt_status st = forward(team, l, rows, 0);
        if (st != PT_OK) return st;
        const float *logits = l->layers[l->num_layers - 1].out;
        for (int64_t r = 0; r < rows; r++) classes[s + r] = argmax(logits + r * k, k);
    }
    return PT_OK;
}

/* ------------------------------------------------------------------------------------------------- CWR* */

static pt_status cwr_ready(const pt_cl_learner *l, const int64_t *counts) {
    if (l == NULL || counts == NULL) return PT_ERR_NULL_POINTER;
    if (!l->settings.cwr || l->classifier < 0) return PT_ERR_BAD_ARGUMENT;
    return PT_OK;
}

pt_status pt_cl_cwr_reset(pt_cl_learner *l, const int64_t *counts) {
    const pt_status st = cwr_ready(l, counts);
    if (st != PT_OK) return st;
    const pt_cl_layer *fc = &l->layers[l->classifier];
    const int64_t f = in_elements(fc);
    for (int32_t c = 0; c < l->settings.num_classes; c++) {
        const int load = counts[c] > 0 && l->cwr.cw_set[c];
        for (int64_t j = 0; j < f; j++) fc->weight[c * f + j] = load ? l->cwr.cw[c * f + j] : 0.0f;
        if (fc->bias != NULL) fc->bias[c] = load ? l->cwr.cb[c] : 0.0f;
    }
    return PT_OK;
}

pt_status pt_cl_cwr_consolidate(pt_cl_learner *l, const int64_t *counts) {
    const pt_status st = cwr_ready(l, counts);
    if (st != PT_OK) return st;
    const pt_cl_layer *fc = &l->layers[l->classifier];
    const int64_t f = in_elements(fc);
    const int32_t classes = l->settings.num_classes;
    double sum = 0.0, bias_sum = 0.0;
    int64_t present = 0;
    for (int32_t c = 0; c < classes; c++) {
        if (counts[c] < 0) return PT_ERR_VALUE_OUT_OF_RANGE;
        if (counts[c] == 0) continue;
        present++;
        for (int64_t j = 0; j < f; j++) sum += fc->weight[c * f + j];
        if (fc->bias != NULL) bias_sum += fc->bias[c];
    }
    if (present > 0) {
        const float avg = (float)(sum / (double)(present * f));
        const float bias_avg = (float)(bias_sum / (double)present);
        for (int32_t c = 0; c < classes; c++) {
            if (counts[c] == 0) continue;
            float *cw = l->cwr.cw + c * f;
            const float *w = fc->weight + c * f;
            const float new_b = fc->bias != NULL ? fc->bias[c] - bias_avg : 0.0f;
            if (l->cwr.cw_set[c]) {
                const float wpast = (float)sqrt((double)l->cwr.past[c] / (double)counts[c]);
                for (int64_t j = 0; j < f; j++) cw[j] = (cw[j] * wpast + (w[j] - avg)) / (wpast + 1.0f);
                l->cwr.cb[c] = (l->cwr.cb[c] * wpast + new_b) / (wpast + 1.0f);
            } else {
                for (int64_t j = 0; j < f; j++) cw[j] = w[j] - avg;
                l->cwr.cb[c] = new_b;
                l->cwr.cw_set[c] = 1;
            }
        }
    }
    for (int32_t c = 0; c < classes; c++) l->cwr.past[c] += counts[c];
    return PT_OK;
}

pt_status pt_cl_cwr_load_all(pt_cl_learner *l) {
    if (l == NULL) return PT_ERR_NULL_POINTER;
    if (!l->settings.cwr || l->classifier < 0) return PT_ERR_BAD_ARGUMENT;
    const pt_cl_layer *fc = &l->layers[l->classifier];
    const int64_t f = in_elements(fc);
    for (int32_t c = 0; c < l->settings.num_classes; c++) {
        if (!l->cwr.cw_set[c]) continue;
        memcpy(fc->weight + c * f, l->cwr.cw + c * f, (size_t)f * sizeof(float));
        if (fc->bias != NULL) fc->bias[c] = l->cwr.cb[c];
    }
    return PT_OK;
}
