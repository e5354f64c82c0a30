#include <stddef.h>
#include <string.h>
#include "kernel_step.h"

/* Every op by its canonical name (pulptrain/ops.py, same order; tests/test_ops.py checks the names). */
const rv_op_entry rv_ops[] = {
    {"matmul", OP_MATMUL, STEP_FORWARD, RV_FLOAT, 0},
    {"conv2d.forward", OP_CONV2D, STEP_FORWARD, RV_FLOAT, 0},
    {"conv2d.grad_input", OP_CONV2D, STEP_GRAD_INPUT, RV_FLOAT, 0},
    {"conv2d.grad_weight", OP_CONV2D, STEP_GRAD_WEIGHT, RV_FLOAT, 0},
    {"depthwise_conv2d.forward", OP_DEPTHWISE, STEP_FORWARD, RV_FLOAT, 0},
    {"depthwise_conv2d.grad_input", OP_DEPTHWISE, STEP_GRAD_INPUT, RV_FLOAT, 0},
    {"depthwise_conv2d.grad_weight", OP_DEPTHWISE, STEP_GRAD_WEIGHT, RV_FLOAT, 0},
    {"pointwise_conv2d.forward", OP_POINTWISE, STEP_FORWARD, RV_FLOAT, 0},
    {"pointwise_conv2d.grad_input", OP_POINTWISE, STEP_GRAD_INPUT, RV_FLOAT, 0},
    {"pointwise_conv2d.grad_weight", OP_POINTWISE, STEP_GRAD_WEIGHT, RV_FLOAT, 0},
    {"linear.forward", OP_LINEAR, STEP_FORWARD, RV_FLOAT, 0},
    {"linear.grad_input", OP_LINEAR, STEP_GRAD_INPUT, RV_FLOAT, 0},
    {"linear.grad_weight", OP_LINEAR, STEP_GRAD_WEIGHT, RV_FLOAT, 0},
    {"bias_grad", OP_BIAS, STEP_GRAD_BIAS, RV_FLOAT, 0},
    {"relu.forward", OP_RELU, STEP_FORWARD, RV_ARGS, 2},
    {"relu.grad_input", OP_RELU, STEP_GRAD_INPUT, RV_ARGS, 3},
    {"relu6.forward", OP_RELU, STEP_FORWARD, RV_ARGS, 2},
    {"relu6.grad_input", OP_RELU, STEP_GRAD_INPUT, RV_ARGS, 3},
    {"avg_pool2d.forward", OP_AVG_POOL2D, STEP_FORWARD, RV_ARGS, 2},
    {"avg_pool2d.grad_input", OP_AVG_POOL2D, STEP_GRAD_INPUT, RV_ARGS, 2},
    {"global_avg_pool2d.forward", OP_AVG_POOL2D, STEP_FORWARD, RV_ARGS, 2},
    {"global_avg_pool2d.grad_input", OP_AVG_POOL2D, STEP_GRAD_INPUT, RV_ARGS, 2},
    {"max_pool2d.forward", OP_MAX_POOL2D, STEP_FORWARD, RV_ARGS, 2},
    {"max_pool2d.grad_input", OP_MAX_POOL2D, STEP_GRAD_INPUT, RV_ARGS, 3},
    {"batchnorm2d.forward_train", OP_BATCHNORM2D, STEP_FORWARD, RV_ARGS, 7},
    {"batchnorm2d.forward_renorm", OP_BATCHNORM2D, STEP_FORWARD, RV_ARGS, 7},
    {"batchnorm2d.forward_eval", OP_BATCHNORM2D, STEP_FORWARD_EVAL, RV_ARGS, 7},
    {"batchnorm2d.backward", OP_BATCHNORM2D, STEP_BACKWARD, RV_ARGS, 7},
    {"batchnorm2d.backward_eval", OP_BATCHNORM2D, STEP_BACKWARD, RV_ARGS, 7},
    {"cross_entropy", OP_CROSS_ENTROPY, STEP_FORWARD, RV_ARGS, 4},
    {"mse_loss", OP_MSE_LOSS, STEP_FORWARD, RV_ARGS, 4},
    {"sgd_step", OP_SGD, STEP_FORWARD, RV_ARGS, 3},
    {"adam_step", OP_ADAM, STEP_FORWARD, RV_ARGS, 4},
    {"int8_conv2d.forward", OP_INT8_CONV2D, STEP_FORWARD, RV_TYPED, 0},
    {"int8_depthwise_conv2d.forward", OP_INT8_DEPTHWISE, STEP_FORWARD, RV_TYPED, 0},
    {"int8_pointwise_conv2d.forward", OP_INT8_POINTWISE, STEP_FORWARD, RV_TYPED, 0},
    {"int8_linear.forward", OP_INT8_LINEAR, STEP_FORWARD, RV_TYPED, 0},
    {"int8_avg_pool2d.forward", OP_INT8_AVG_POOL, STEP_FORWARD, RV_TYPED, 0},
    {"int8_global_avg_pool2d.forward", OP_INT8_AVG_POOL, STEP_FORWARD, RV_TYPED, 0},
    {"quant.quantize", OP_QUANTIZE, STEP_FORWARD, RV_TYPED, 0},
    {"quant.dequantize", OP_DEQUANTIZE, STEP_FORWARD, RV_TYPED, 0},
    {"quant.pack_bits", OP_PACK_BITS, STEP_FORWARD, RV_TYPED, 0},
    {"quant.unpack_bits", OP_UNPACK_BITS, STEP_FORWARD, RV_TYPED, 0},
};
const int rv_num_ops = (int)(sizeof(rv_ops) / sizeof(rv_ops[0]));

const rv_op_entry *rv_find_op(const char *name)
{
    for (int i = 0; i < rv_num_ops; i++)
        if (strcmp(rv_ops[i].name, name) == 0) return &rv_ops[i];
    return NULL;
}

const char *rv_op_name(rv_op op)
{
    static const char *names[] = {"matmul", "conv2d", "depthwise", "pointwise", "linear", "bias",
                                  "int8_conv2d", "int8_depthwise", "int8_pointwise", "int8_linear", "int8_avg_pool",
                                  "quantize", "dequantize", "pack_bits", "unpack_bits",
                                  "relu", "avg_pool2d", "max_pool2d", "batchnorm2d", "cross_entropy", "mse_loss",
                                  "sgd", "adam"};
    return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

const char *rv_step_name(rv_step step)
{
    static const char *names[] = {"forward", "grad_input", "grad_weight", "grad_bias", "forward_eval", "backward"};
    return (unsigned)step < sizeof(names) / sizeof(names[0]) ? names[step] : "?";
}

/* Geometry of the conv-family ops (depthwise: c_out = c_in; pointwise: 1x1, stride 1, no padding). */
static pt_status geometry(const rv_kernel_step *s, pt_conv_geometry *g)
{
    if (s->op == OP_POINTWISE)
        return pt_conv_geometry_init(g, s->batch, s->c_in, s->h, s->w, s->c_out, 1, 1, 1, 1, 0, 0);
    int64_t c_out = s->op == OP_DEPTHWISE ? s->c_in : s->c_out;
    return pt_conv_geometry_init(g, s->batch, s->c_in, s->h, s->w, c_out, s->kh, s->kw, s->stride_h, s->stride_w,
                                 s->pad_h, s->pad_w);
}

int64_t rv_step_floats(const rv_kernel_step *s, rv_role role)
{
    if (s->op == OP_MATMUL) {
        const int64_t sizes[] = {s->m * s->k, s->k * s->n, 0, s->m * s->n};
        return sizes[role];
    }
    if (s->op == OP_LINEAR) {
        const int64_t x = s->batch * s->c_in, w = s->c_out * s->c_in, y = s->batch * s->c_out;
        const int64_t sizes[3][4] = {{x, w, s->has_bias ? s->c_out : 0, y}, {y, w, 0, x}, {y, x, 0, w}};
        return s->step <= STEP_GRAD_WEIGHT ? sizes[s->step][role] : 0;
    }
    if (s->op == OP_BIAS) return role == ROLE_A ? s->batch * s->c_out * s->h * s->w : role == ROLE_OUT ? s->c_out : 0;
    pt_conv_geometry g;
    if (geometry(s, &g) != PT_OK) return 0;
    const int64_t x = g.n * g.c_in * g.h_in * g.w_in, y = g.n * g.c_out * g.h_out * g.w_out;
    const int64_t w = g.c_out * (s->op == OP_DEPTHWISE ? 1 : g.c_in) * g.kh * g.kw;
    const int64_t sizes[3][4] = {{x, w, s->has_bias ? g.c_out : 0, y}, {y, w, 0, x}, {y, x, 0, w}};
    return s->step <= STEP_GRAD_WEIGHT ? sizes[s->step][role] : 0;
}

/* The float op whose forward has the same shapes as an INT8 op (average pooling: a depthwise window). */
static rv_kernel_step float_twin(const rv_kernel_step *s)
{
    static const rv_op twins[] = {OP_CONV2D, OP_DEPTHWISE, OP_POINTWISE, OP_LINEAR, OP_DEPTHWISE};
    rv_kernel_step t = *s;
    t.op = twins[s->op - OP_INT8_CONV2D];
    t.step = STEP_FORWARD;
    t.has_bias = 0;
    return t;
}

int64_t rv_step_macs(const rv_kernel_step *s)
{
    if (s->op >= OP_QUANTIZE) return s->count;
    if (s->op >= OP_INT8_CONV2D) {
        const rv_kernel_step t = float_twin(s);
        return rv_step_macs(&t);
    }
    switch (s->op) {
    case OP_MATMUL: return s->m * s->n * s->k;
    case OP_LINEAR: return s->batch * s->c_in * s->c_out;
    case OP_BIAS: return s->batch * s->c_out * s->h * s->w;
    default: break;
    }
    pt_conv_geometry g;
    if (geometry(s, &g) != PT_OK) return 0;
    /* Every step of a convolution does the forward's MACs (the im2col/col2im copies are not MACs). */
    int64_t per_output = (s->op == OP_DEPTHWISE ? 1 : g.c_in) * g.kh * g.kw;
    return g.n * g.c_out * g.h_out * g.w_out * per_output;
}

int64_t rv_step_workspace_floats(const pt_team *team, const rv_kernel_step *s)
{
    const int64_t hw = s->h * s->w;
    pt_conv_geometry g;
    switch (s->op) {
    case OP_MATMUL:
        return pt_matmul_view_workspace_floats(team, PT_MATMUL_AUTO, s->m, s->n, s->k);
    case OP_CONV2D:
        if (geometry(s, &g) != PT_OK) return 0;
        if (s->step == STEP_FORWARD) return pt_conv2d_forward_workspace_floats(team, &g);
        if (s->step == STEP_GRAD_INPUT) return pt_conv2d_grad_input_workspace_floats(team, &g);
        return pt_conv2d_grad_weight_workspace_floats(team, &g);
    case OP_POINTWISE:
        if (s->step == STEP_FORWARD)
            return pt_pointwise_conv2d_forward_workspace_floats(team, s->batch, s->c_in, s->c_out, hw);
        if (s->step == STEP_GRAD_INPUT)
            return pt_pointwise_conv2d_grad_input_workspace_floats(team, s->batch, s->c_in, s->c_out, hw);
        return pt_pointwise_conv2d_grad_weight_workspace_floats(team, s->batch, s->c_in, s->c_out, hw);
    case OP_LINEAR:
        if (s->step == STEP_FORWARD) return pt_linear_forward_workspace_floats(team, s->batch, s->c_in, s->c_out);
        if (s->step == STEP_GRAD_INPUT)
            return pt_linear_grad_input_workspace_floats(team, s->batch, s->c_in, s->c_out);
        return pt_linear_grad_weight_workspace_floats(team, s->batch, s->c_in, s->c_out);
    default:
        return 0; /* depthwise and bias need none */
    }
}

pt_status rv_step_run(const pt_team *team, const rv_kernel_step *s, const float *a, const float *b, const float *bias,
                      float *out, float *ws, int64_t wsf)
{
    const int64_t hw = s->h * s->w;
    const int acc = s->accumulate;
    pt_conv_geometry g;
    if (s->op == OP_CONV2D || s->op == OP_DEPTHWISE) {
        pt_status st = geometry(s, &g);
        if (st != PT_OK) return st;
    }
    switch (s->op * 4 + s->step) {
    case OP_MATMUL * 4 + STEP_FORWARD:
        return pt_matmul(team, PT_MATMUL_AUTO, s->m, s->n, s->k, a, b, out, acc, ws, wsf);
    case OP_CONV2D * 4 + STEP_FORWARD: return pt_conv2d_forward(team, &g, a, b, bias, out, ws, wsf);
    case OP_CONV2D * 4 + STEP_GRAD_INPUT: return pt_conv2d_grad_input(team, &g, a, b, out, acc, ws, wsf);
    case OP_CONV2D * 4 + STEP_GRAD_WEIGHT: return pt_conv2d_grad_weight(team, &g, a, b, out, acc, ws, wsf);
    case OP_DEPTHWISE * 4 + STEP_FORWARD: return pt_depthwise_conv2d_forward(team, &g, a, b, bias, out);
    case OP_DEPTHWISE * 4 + STEP_GRAD_INPUT: return pt_depthwise_conv2d_grad_input(team, &g, a, b, out, acc);
    case OP_DEPTHWISE * 4 + STEP_GRAD_WEIGHT: return pt_depthwise_conv2d_grad_weight(team, &g, a, b, out, acc);
    case OP_POINTWISE * 4 + STEP_FORWARD:
        return pt_pointwise_conv2d_forward(team, s->batch, s->c_in, s->c_out, hw, a, b, bias, out, ws, wsf);
    case OP_POINTWISE * 4 + STEP_GRAD_INPUT:
        return pt_pointwise_conv2d_grad_input(team, s->batch, s->c_in, s->c_out, hw, a, b, out, acc, ws, wsf);
    case OP_POINTWISE * 4 + STEP_GRAD_WEIGHT:
        return pt_pointwise_conv2d_grad_weight(team, s->batch, s->c_in, s->c_out, hw, a, b, out, acc, ws, wsf);
    case OP_LINEAR * 4 + STEP_FORWARD: return pt_linear_forward(team, s->batch, s->c_in, s->c_out, a, b, bias, out, ws,
                                                                wsf);
    case OP_LINEAR * 4 + STEP_GRAD_INPUT: return pt_linear_grad_input(team, s->batch, s->c_in, s->c_out, a, b, out, acc,
                                                                      ws, wsf);
    case OP_LINEAR * 4 + STEP_GRAD_WEIGHT:
        return pt_linear_grad_weight(team, s->batch, s->c_in, s->c_out, a, b, out, acc, ws, wsf);
    case OP_BIAS * 4 + STEP_GRAD_BIAS: return pt_bias_grad(team, s->batch, s->c_out, hw, a, out, acc);
    default: return PT_ERR_BAD_ARGUMENT;
    }
}

/* ---- INT8 inference and latent codes ---- */

int rv_op_is_typed(rv_op op) { return op >= OP_INT8_CONV2D && op <= OP_UNPACK_BITS; }

int64_t rv_step_bytes(const rv_kernel_step *s, rv_role role)
{
    if (role == ROLE_BIAS) return 0;
    switch (s->op) {
    case OP_QUANTIZE: return role == ROLE_A ? s->count * (int64_t)sizeof(float) : role == ROLE_OUT ? s->count : 0;
    case OP_DEQUANTIZE: return role == ROLE_A ? s->count : role == ROLE_OUT ? s->count * (int64_t)sizeof(float) : 0;
    case OP_PACK_BITS: return role == ROLE_A ? s->count : role == ROLE_OUT ? pt_packed_bytes(s->count, s->bits) : 0;
    case OP_UNPACK_BITS: return role == ROLE_A ? pt_packed_bytes(s->count, s->bits) : role == ROLE_OUT ? s->count : 0;
    default: break;
    }
    if (!rv_op_is_typed(s->op) || (s->op == OP_INT8_AVG_POOL && role == ROLE_B)) return 0;
    const rv_kernel_step t = float_twin(s);
    return rv_step_floats(&t, role); /* one byte per element */
}

int64_t rv_step_channels(const rv_kernel_step *s)
{
    switch (s->op) {
    case OP_INT8_CONV2D: case OP_INT8_POINTWISE: case OP_INT8_LINEAR: return s->c_out;
    case OP_INT8_DEPTHWISE: return s->c_in;
    default: return 0;
    }
}

int64_t rv_step_workspace_bytes(const pt_team *team, const rv_kernel_step *s)
{
    pt_conv_geometry g;
    switch (s->op) {
    case OP_INT8_CONV2D:
    case OP_INT8_DEPTHWISE: {
        const rv_kernel_step t = float_twin(s);
        if (geometry(&t, &g) != PT_OK) return 0;
        return s->op == OP_INT8_CONV2D ? pt_int8_conv2d_forward_workspace_bytes(team, &g)
                                       : pt_int8_depthwise_conv2d_forward_workspace_bytes(team, &g);
    }
    case OP_INT8_POINTWISE:
        return pt_int8_pointwise_conv2d_forward_workspace_bytes(team, s->batch, s->c_in, s->c_out, s->h * s->w);
    case OP_INT8_LINEAR: return pt_int8_linear_forward_workspace_bytes(team, s->batch, s->c_in, s->c_out);
    default: return 0; /* pooling and the latent codes need none */
    }
}

pt_status rv_typed_step_run(const pt_team *team, const rv_kernel_step *s, const void *a, const void *b,
                            const pt_requant *rq, void *out, void *ws, int64_t wsb)
{
    pt_conv_geometry g;
    if (s->op == OP_INT8_CONV2D || s->op == OP_INT8_DEPTHWISE || s->op == OP_INT8_AVG_POOL) {
        const rv_kernel_step t = float_twin(s);
        pt_status st = geometry(&t, &g);
        if (st != PT_OK) return st;
    }
    switch (s->op) {
    case OP_INT8_CONV2D: return pt_int8_conv2d_forward(team, &g, a, b, rq, out, ws, wsb);
    case OP_INT8_DEPTHWISE: return pt_int8_depthwise_conv2d_forward(team, &g, a, b, rq, out, ws, wsb);
    case OP_INT8_POINTWISE:
        return pt_int8_pointwise_conv2d_forward(team, s->batch, s->c_in, s->c_out, s->h * s->w, a, b, rq, out, ws, wsb);
    case OP_INT8_LINEAR: return pt_int8_linear_forward(team, s->batch, s->c_in, s->c_out, a, b, rq, out, ws, wsb);
    case OP_INT8_AVG_POOL: return pt_int8_avg_pool2d(team, &g, a, out);
    case OP_QUANTIZE: return pt_quantize(team, s->count, a, s->scale, s->bits, out);
    case OP_DEQUANTIZE: return pt_dequantize(team, s->count, a, s->scale, out);
    case OP_PACK_BITS: return pt_pack_bits(team, s->count, a, s->bits, out);
    case OP_UNPACK_BITS: return pt_unpack_bits(team, s->count, a, s->bits, out);
    default: return PT_ERR_BAD_ARGUMENT;
    }
}

/* ---- RV_ARGS ops: activations, pooling, BatchNorm, losses, optimizers ---- */
/* count_kernels measures none of them and builds with RV_NO_ARGS_OPS: without these calls the linker drops their
 * kernels (--gc-sections), so its memory layout, and with it every counted instruction, stays as it was (the
 * rv32 linker turns an address load into one gp-relative instruction only where the layout allows). */
#ifndef RV_NO_ARGS_OPS

/* A pooling window over the input planes (c_out = c_in). */
static pt_status window_geometry(const rv_kernel_step *s, pt_conv_geometry *g)
{
    return pt_conv_geometry_init(g, s->batch, s->c_in, s->h, s->w, s->c_in, s->kh, s->kw, s->stride_h, s->stride_w,
                                 s->pad_h, s->pad_w);
}

int64_t rv_args_workspace_bytes(const pt_team *team, const rv_kernel_step *s)
{
    (void)team; /* the loss workspaces do not depend on the team */
    switch (s->op) {
    case OP_CROSS_ENTROPY: return pt_cross_entropy_workspace_floats(s->batch) * (int64_t)sizeof(float);
    case OP_MSE_LOSS: return pt_mse_loss_workspace_floats(s->count) * (int64_t)sizeof(float);
    default: return 0;
    }
}

pt_status rv_args_step_run(const pt_team *team, const rv_kernel_step *s, void *const *args, void *ws, int64_t wsb)
{
    float *const *f = (float *const *)args; /* every operand is float but cross_entropy's labels */
    const int64_t hw = s->h * s->w, wsf = wsb / (int64_t)sizeof(float);
    const int acc = s->accumulate;
    pt_conv_geometry g;
    if (s->op == OP_AVG_POOL2D || s->op == OP_MAX_POOL2D) {
        pt_status st = window_geometry(s, &g);
        if (st != PT_OK) return st;
    }
    switch (s->op * 8 + s->step) {
    case OP_RELU * 8 + STEP_FORWARD: return pt_relu_forward(team, s->count, f[0], f[1], s->upper);
    case OP_RELU * 8 + STEP_GRAD_INPUT: return pt_relu_grad_input(team, s->count, f[0], f[1], f[2], s->upper, acc);
    case OP_AVG_POOL2D * 8 + STEP_FORWARD: return pt_avg_pool2d_forward(team, &g, f[0], f[1]);
    case OP_AVG_POOL2D * 8 + STEP_GRAD_INPUT: return pt_avg_pool2d_grad_input(team, &g, f[0], f[1], acc);
    case OP_MAX_POOL2D * 8 + STEP_FORWARD: return pt_max_pool2d_forward(team, &g, f[0], f[1]);
    case OP_MAX_POOL2D * 8 + STEP_GRAD_INPUT: return pt_max_pool2d_grad_input(team, &g, f[0], f[1], f[2], acc);
    case OP_BATCHNORM2D * 8 + STEP_FORWARD:
        return pt_batchnorm2d_forward_train(team, s->batch, s->c_in, hw, f[0], f[1], f[2], &s->bn, f[3], f[4], f[5], f[6]);
    case OP_BATCHNORM2D * 8 + STEP_FORWARD_EVAL:
        return pt_batchnorm2d_forward_eval(team, s->batch, s->c_in, hw, f[0], f[1], f[2], s->bn.eps, f[3], f[4], f[5], f[6]);
    case OP_BATCHNORM2D * 8 + STEP_BACKWARD:
        return pt_batchnorm2d_backward(team, s->batch, s->c_in, hw, f[0], f[1], f[2], f[3], s->batch_stats, f[4], f[5],
                                       f[6], acc);
    case OP_CROSS_ENTROPY * 8 + STEP_FORWARD:
        return pt_cross_entropy(team, s->batch, s->c_out, f[0], (const int64_t *)args[1], f[2], f[3], ws, wsf);
    case OP_MSE_LOSS * 8 + STEP_FORWARD: return pt_mse_loss(team, s->count, f[0], f[1], f[2], f[3], ws, wsf);
    case OP_SGD * 8 + STEP_FORWARD: return pt_sgd_step(team, s->count, f[0], f[1], f[2], &s->sgd, s->first_step);
    case OP_ADAM * 8 + STEP_FORWARD: return pt_adam_step(team, s->count, f[0], f[1], f[2], f[3], &s->adam, s->adam_step);
    default: return PT_ERR_BAD_ARGUMENT;
    }
}
#endif /* RV_NO_ARGS_OPS */
