/* One training step of one kernel, described as data, so that the RISC-V test driver (golden data) and the
 * instruction counter (MobileNetV1 shapes) call the csrc kernels through the same code.
 *
 * Operands per op and step (all C-contiguous float32, shapes as in the csrc headers):
 *   matmul         forward      a = A (m, k), b = B (k, n)                   -> out = C (m, n)
 *   conv2d,        forward      a = x (batch, c_in, h, w), b = w, bias       -> out = y
 *   depthwise,     grad_input   a = dy, b = w                                -> out = dx
 *   pointwise,     grad_weight  a = dy, b = x                                -> out = dw
 *   linear         (x (batch, c_in), w (c_out, c_in), y (batch, c_out))
 *   bias           grad_bias    a = dy (batch, c_out, h, w)                  -> out = db (c_out)
 * Depthwise uses c_out == c_in; pointwise uses kh = kw = 1, stride 1, no padding.
 *
 * The INT8 and latent-code ops (rv_op_is_typed) take typed operands through rv_typed_step_run; step is
 * STEP_FORWARD and sizes are in bytes:
 *   int8_conv2d, int8_depthwise,  a = x uint8, b = w int8, rq (requantization,  -> out = y uint8
 *   int8_pointwise, int8_linear   per output channel)                             (shapes as the float forward)
 *   int8_avg_pool                 a = x uint8 (batch, c_in, h, w), kh x kw window, stride, no padding -> y uint8
 *   quantize                      a = x float (count), scale, bits             -> out = codes uint8 (count)
 *   dequantize                    a = codes uint8 (count), scale                -> out = x float (count)
 *   pack_bits                     a = codes uint8 (count), bits                 -> out = packed (ceil(count*bits/8))
 *   unpack_bits                   a = packed, bits                              -> out = codes uint8 (count)
 *
 * The other ops (kind RV_ARGS: activations, pooling, BatchNorm, losses, optimizers) take their operands as a
 * list in the order of their C signature (pulptrain/ops.py: c_args) through rv_args_step_run; shapes:
 *   relu, mse_loss, sgd_step, adam_step    count elements
 *   avg_pool2d, max_pool2d                 batch, c_in, h, w, kh x kw window, stride, padding (c_out = c_in)
 *   batchnorm2d                            batch, c_in (channels), h, w
 *   cross_entropy                          batch samples, c_out classes
 *
 * rv_ops is the table of every op by its canonical name (the names of pulptrain/ops.py; tests/test_ops.py
 * checks that the two lists agree): name -> (op, step) and the calling convention. Every kernel call of the
 * RISC-V tools goes through rv_step_run, rv_typed_step_run or rv_args_step_run below.
 */
#ifndef RV_KERNEL_STEP_H
#define RV_KERNEL_STEP_H

#include <stdint.h>
#include "pulptrain.h"

typedef enum {
    OP_MATMUL, OP_CONV2D, OP_DEPTHWISE, OP_POINTWISE, OP_LINEAR, OP_BIAS,
    OP_INT8_CONV2D, OP_INT8_DEPTHWISE, OP_INT8_POINTWISE, OP_INT8_LINEAR, OP_INT8_AVG_POOL,
    OP_QUANTIZE, OP_DEQUANTIZE, OP_PACK_BITS, OP_UNPACK_BITS,
    OP_RELU, OP_AVG_POOL2D, OP_MAX_POOL2D, OP_BATCHNORM2D, OP_CROSS_ENTROPY, OP_MSE_LOSS, OP_SGD, OP_ADAM
} rv_op;
typedef enum {
    STEP_FORWARD, STEP_GRAD_INPUT, STEP_GRAD_WEIGHT, STEP_GRAD_BIAS,
    STEP_FORWARD_EVAL, STEP_BACKWARD /* batchnorm2d (STEP_FORWARD is its training forward) */
} rv_step;
typedef enum { ROLE_A, ROLE_B, ROLE_BIAS, ROLE_OUT } rv_role;

typedef struct {
    rv_op op;
    rv_step step;
    int64_t m, n, k;                              /* matmul */
    int64_t batch, c_in, h, w, c_out, kh, kw;     /* layers */
    int64_t stride_h, stride_w, pad_h, pad_w;
    int has_bias;                                 /* forward only */
    int accumulate;                               /* gradients only: add into out */
    int64_t count;                                /* latent codes: number of codes */
    int bits;                                     /* quantize, pack_bits, unpack_bits: 1..8 */
    float scale;                                  /* quantize, dequantize */
    /* RV_ARGS ops */
    float upper;                                  /* relu: PT_RELU_NO_CLIP, or the clip (relu6: 6) */
    pt_batchnorm_config bn;                       /* batchnorm2d forward (forward_eval uses eps only) */
    int batch_stats;                              /* batchnorm2d backward: 1 after the training forward */
    pt_sgd_config sgd;
    int first_step;                               /* sgd_step */
    pt_adam_config adam;
    int64_t adam_step;                            /* adam_step: updates so far including this one */
} rv_kernel_step;

/* How an op takes its operands: rv_step_run (float a, b, bias, out), rv_typed_step_run (INT8 and latent
 * codes) or rv_args_step_run (a list in the order of the C signature). */
typedef enum { RV_FLOAT, RV_TYPED, RV_ARGS } rv_op_kind;
#define RV_MAX_ARGS 8

typedef struct {
    const char *name; /* canonical name, as in pulptrain/ops.py */
    rv_op op;
    rv_step step;
    rv_op_kind kind;
    int num_args;     /* operands of the C call (RV_ARGS ops) */
} rv_op_entry;

extern const rv_op_entry rv_ops[];
extern const int rv_num_ops;
/* The table row called name, or NULL. */
const rv_op_entry *rv_find_op(const char *name);

const char *rv_op_name(rv_op op);
const char *rv_step_name(rv_step step);

/* Number of floats of an operand (0 when the step has no such operand). */
int64_t rv_step_floats(const rv_kernel_step *s, rv_role role);
/* Multiply-accumulates of the step (the arithmetic work; additions for grad_bias and int8_avg_pool; codes for
 * the latent-code ops). */
int64_t rv_step_macs(const rv_kernel_step *s);
/* Workspace the step needs on `team` (its size and matmul variant). */
int64_t rv_step_workspace_floats(const pt_team *team, const rv_kernel_step *s);
/* Runs the step on `team`. */
pt_status rv_step_run(const pt_team *team, const rv_kernel_step *s, const float *a, const float *b, const float *bias,
                      float *out, float *workspace, int64_t workspace_floats);

/* ---- INT8 inference and latent codes (typed operands, sizes in bytes) ---- */

/* 1 for the INT8 and latent-code ops, 0 for the float ops above. */
int rv_op_is_typed(rv_op op);
/* Bytes of an operand (ROLE_A, ROLE_B, ROLE_OUT; 0 when the step has no such operand). */
int64_t rv_step_bytes(const rv_kernel_step *s, rv_role role);
/* Output channels of the requantization (length of its bias, multiplier and shift; 0 without one). */
int64_t rv_step_channels(const rv_kernel_step *s);
/* Workspace bytes the step needs on `team` (its size and INT8 microkernel). */
int64_t rv_step_workspace_bytes(const pt_team *team, const rv_kernel_step *s);
/* Runs a typed step on `team`. rq is used by the INT8 conv / depthwise / pointwise / linear ops. */
pt_status rv_typed_step_run(const pt_team *team, const rv_kernel_step *s, const void *a, const void *b,
                            const pt_requant *rq, void *out, void *workspace, int64_t workspace_bytes);

/* ---- RV_ARGS ops: operands in the order of the C signature (inputs, in-place state and outputs) ---- */

/* Workspace bytes the step needs for a team of num_threads cores. */
int64_t rv_args_workspace_bytes(const pt_team *team, const rv_kernel_step *s);
/* Runs an RV_ARGS step on the current team; args[i] is the i-th pointer operand of the C function. */
pt_status rv_args_step_run(const pt_team *team, const rv_kernel_step *s, void *const *args, void *workspace,
                           int64_t workspace_bytes);

#endif
