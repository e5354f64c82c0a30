# Declarations of the C API in csrc/ (see csrc/core/pulptrain.h). No logic here.
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "pulptrain.h" nogil:
    ctypedef enum pt_status:
        PT_OK
        PT_ERR_WORKSPACE_TOO_SMALL
        PT_ERR_VALUE_OUT_OF_RANGE
    const char *pt_status_str(pt_status status)

    int PT_MAX_THREADS
    ctypedef struct pt_team:
        int num_threads
        int matmul_variant
        int int8_microkernel
        int depthwise_tier
        int isa_level
    pt_team pt_team_default()
    pt_team pt_team_of(int num_threads)

    int PT_ISA_AUTO
    int PT_CPU_AVX2, PT_CPU_FMA, PT_CPU_AVX512F, PT_CPU_AVX512BW, PT_CPU_AVX512VL, PT_CPU_AVX512VNNI, PT_CPU_AVXVNNI
    unsigned pt_isa_features()
    int pt_isa_detected()
    const char *pt_isa_name(int level)
    int pt_isa_find(const char *name)
    int pt_isa_resolve(int level)
    pt_status pt_isa_set_default(int level)
    int pt_isa_get_default()
    pt_status pt_set_num_threads(int n)
    int pt_get_num_threads()
    const char *pt_parallel_backend()

    ctypedef struct pt_matmul_variant:
        const char *name
        int mr
        int nr
    int PT_MATMUL_AUTO
    int pt_matmul_num_variants()
    const pt_matmul_variant *pt_matmul_variant_info(int id)
    int pt_matmul_variant_find(const char *name)
    int pt_matmul_pick(const pt_team *team, int64_t M, int64_t N, int64_t K)
    pt_status pt_matmul_set_preferred(int variant)
    int pt_matmul_get_preferred()
    int64_t pt_matmul_view_workspace_floats(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K)
    pt_status pt_matmul(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K, const float *A,
                        const float *B, float *C, int accumulate, float *workspace, int64_t workspace_floats)

    ctypedef struct pt_conv_geometry:
        int64_t n, c_in, h_in, w_in, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w, h_out, w_out
    pt_status pt_conv_geometry_init(pt_conv_geometry *g, int64_t n, int64_t c_in, int64_t h_in, int64_t w_in,
                                    int64_t c_out, int64_t kh, int64_t kw, int64_t stride_h, int64_t stride_w,
                                    int64_t pad_h, int64_t pad_w)

    int64_t pt_conv2d_forward_workspace_floats(const pt_team *team, const pt_conv_geometry *g)
    pt_status pt_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, const float *w,
                                const float *bias, float *y, float *workspace, int64_t workspace_floats)
    int64_t pt_conv2d_grad_input_workspace_floats(const pt_team *team, const pt_conv_geometry *g)
    pt_status pt_conv2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *w,
                                   float *dx, int accumulate, float *workspace, int64_t workspace_floats)
    int64_t pt_conv2d_grad_weight_workspace_floats(const pt_team *team, const pt_conv_geometry *g)
    pt_status pt_conv2d_grad_weight(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *x,
                                    float *dw, int accumulate, float *workspace, int64_t workspace_floats)

    int PT_DEPTHWISE_AUTO
    const char *pt_depthwise_tier_name(int index)
    pt_status pt_depthwise_set_default_tier(int tier)
    int pt_depthwise_get_default_tier()
    pt_status pt_depthwise_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x,
                                          const float *w, const float *bias, float *y)
    pt_status pt_depthwise_conv2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                             const float *w, float *dx, int accumulate)
    pt_status pt_depthwise_conv2d_grad_weight(const pt_team *team, const pt_conv_geometry *g, const float *dy,
                                              const float *x, float *dw, int accumulate)

    int64_t pt_pointwise_conv2d_forward_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                         int64_t hw)
    pt_status pt_pointwise_conv2d_forward(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                          const float *x, const float *w, const float *bias, float *y, float *workspace,
                                          int64_t workspace_floats)
    int64_t pt_pointwise_conv2d_grad_input_workspace_floats(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out,
                                                            int64_t hw)
    pt_status pt_pointwise_conv2d_grad_input(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                             const float *dy, const float *w, float *dx, int accumulate,
                                             float *workspace, int64_t workspace_floats)
    int64_t pt_pointwise_conv2d_grad_weight_workspace_floats(const pt_team *team, int64_t n, int64_t c_in,
                                                             int64_t c_out, int64_t hw)
    pt_status pt_pointwise_conv2d_grad_weight(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                              const float *dy, const float *x, float *dw, int accumulate,
                                              float *workspace, int64_t workspace_floats)

    int64_t pt_linear_forward_workspace_floats(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out)
    pt_status pt_linear_forward(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out, const float *x,
                                const float *w, const float *bias, float *y, float *workspace, int64_t workspace_floats)
    int64_t pt_linear_grad_input_workspace_floats(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out)
    pt_status pt_linear_grad_input(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out, const float *dy,
                                   const float *w, float *dx, int accumulate, float *workspace,
                                   int64_t workspace_floats)
    int64_t pt_linear_grad_weight_workspace_floats(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out)
    pt_status pt_linear_grad_weight(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out, const float *dy,
                                    const float *x, float *dw, int accumulate, float *workspace,
                                    int64_t workspace_floats)

    pt_status pt_bias_grad(const pt_team *team, int64_t n, int64_t c, int64_t inner, const float *dy, float *db,
                           int accumulate)

    # activations, pooling, BatchNorm, losses, optimizers
    float PT_RELU_NO_CLIP
    pt_status pt_relu_forward(const pt_team *team, int64_t count, const float *x, float *y, float upper)
    pt_status pt_relu_grad_input(const pt_team *team, int64_t count, const float *y, const float *dy, float *dx,
                                 float upper, int accumulate)

    pt_status pt_avg_pool2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, float *y)
    pt_status pt_avg_pool2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, float *dx,
                                       int accumulate)
    pt_status pt_max_pool2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, float *y)
    pt_status pt_max_pool2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *x,
                                       float *dx, int accumulate)

    ctypedef struct pt_batchnorm_config:
        float eps, momentum, r_max, d_max
    pt_status pt_batchnorm2d_forward_train(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                           const float *gamma, const float *beta, const pt_batchnorm_config *cfg,
                                           float *running_mean, float *running_var, float *saved, float *y)
    pt_status pt_batchnorm2d_forward_eval(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                          const float *gamma, const float *beta, float eps, const float *running_mean,
                                          const float *running_var, float *saved, float *y)
    pt_status pt_batchnorm2d_backward(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                      const float *dy, const float *gamma, const float *saved, int batch_stats,
                                      float *dx, float *dgamma, float *dbeta, int accumulate_params)

    int64_t pt_cross_entropy_workspace_floats(int64_t n)
    pt_status pt_cross_entropy(const pt_team *team, int64_t n, int64_t classes, const float *logits,
                               const int64_t *labels, float *loss, float *dlogits, float *workspace,
                               int64_t workspace_floats)
    int64_t pt_mse_loss_workspace_floats(int64_t count)
    pt_status pt_mse_loss(const pt_team *team, int64_t count, const float *pred, const float *target, float *loss,
                          float *dpred, float *workspace, int64_t workspace_floats)

    ctypedef struct pt_sgd_config:
        float lr, momentum, dampening, weight_decay
        int nesterov
    ctypedef struct pt_adam_config:
        float lr, beta1, beta2, eps, weight_decay
        int decoupled
    pt_status pt_sgd_step(const pt_team *team, int64_t count, float *param, const float *grad, float *momentum_buffer,
                          const pt_sgd_config *cfg, int first_step)
    pt_status pt_adam_step(const pt_team *team, int64_t count, float *param, const float *grad, float *exp_avg,
                           float *exp_avg_sq, const pt_adam_config *cfg, int64_t step)

cdef extern from "quant.h" nogil:
    int64_t pt_packed_bytes(int64_t count, int bits)
    pt_status pt_quantize(const pt_team *team, int64_t count, const float *x, float scale, int bits, uint8_t *codes)
    pt_status pt_dequantize(const pt_team *team, int64_t count, const uint8_t *codes, float scale, float *x)
    pt_status pt_pack_bits(const pt_team *team, int64_t count, const uint8_t *codes, int bits, uint8_t *packed)
    pt_status pt_unpack_bits(const pt_team *team, int64_t count, const uint8_t *packed, int bits, uint8_t *codes)

cdef extern from "int8.h" nogil:
    int PT_INT8_MAX_K
    int PT_INT8_MAX_SHIFT
    ctypedef struct pt_requant:
        const int32_t *bias
        const int32_t *multiplier
        const int32_t *shift
        int32_t clip_min, clip_max
    int64_t pt_int8_conv2d_forward_workspace_bytes(const pt_team *team, const pt_conv_geometry *g)
    pt_status pt_int8_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x, const int8_t *w,
                                     const pt_requant *rq, uint8_t *y, void *workspace, int64_t workspace_bytes)
    int64_t pt_int8_pointwise_conv2d_forward_workspace_bytes(const pt_team *team, int64_t n, int64_t c_in,
                                                             int64_t c_out, int64_t hw)
    pt_status pt_int8_pointwise_conv2d_forward(const pt_team *team, int64_t n, int64_t c_in, int64_t c_out, int64_t hw,
                                               const uint8_t *x, const int8_t *w, const pt_requant *rq, uint8_t *y,
                                               void *workspace, int64_t workspace_bytes)
    int64_t pt_int8_linear_forward_workspace_bytes(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out)
    pt_status pt_int8_linear_forward(const pt_team *team, int64_t n, int64_t n_in, int64_t n_out, const uint8_t *x,
                                     const int8_t *w, const pt_requant *rq, uint8_t *y, void *workspace,
                                     int64_t workspace_bytes)
    int64_t pt_int8_depthwise_conv2d_forward_workspace_bytes(const pt_team *team, const pt_conv_geometry *g)
    pt_status pt_int8_depthwise_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x,
                                               const int8_t *w, const pt_requant *rq, uint8_t *y, void *workspace,
                                               int64_t workspace_bytes)
    pt_status pt_int8_avg_pool2d(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x, uint8_t *y)

cdef extern from "int8_gemm.h" nogil:
    pt_status pt_int8_set_microkernel(const char *name)
    const char *pt_int8_get_microkernel()
    const char *pt_int8_microkernel_name(int index)

cdef extern from "conv_geometry.h" nogil:
    int64_t PT_CONV_MAX_EXTENT
    int64_t PT_CONV_MAX_ELEMENTS

cdef extern from "int8_stage.h" nogil:
    ctypedef struct pt_int8_layer:
        int32_t kind
        int32_t c_in, h_in, w_in, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w
        int32_t pad_value
        const int8_t *weight
        pt_requant rq
    ctypedef struct pt_int8_stage:
        int32_t num_layers
        const pt_int8_layer *layers
        float lr_in_scale, lr_out_scale
        int32_t lr_bits
    pt_status pt_int8_stage_check(const pt_int8_stage *stage)
    int64_t pt_int8_stage_output_size(const pt_int8_stage *stage)
    int64_t pt_int8_stage_workspace_bytes(const pt_team *team, const pt_int8_stage *stage, int64_t n)
    pt_status pt_int8_stage_forward(const pt_team *team, const pt_int8_stage *stage, int64_t n, const uint8_t *x,
                                    uint8_t *latent, void *workspace, int64_t workspace_bytes)

cdef extern from "pt_cl.h" nogil:
    ctypedef struct pt_rng:
        uint64_t state
        uint64_t inc
    void pt_rng_seed(pt_rng *rng, uint64_t seed, uint64_t stream)
    uint32_t pt_rng_next(pt_rng *rng)
    uint32_t pt_rng_below(pt_rng *rng, uint32_t bound)
    pt_status pt_rng_permutation(pt_rng *rng, int32_t n, int32_t *out)
    pt_status pt_rng_sample(pt_rng *rng, int32_t n, int32_t k, int32_t *scratch)

    int PT_CL_FP32_BITS
    int PT_CL_ALIGN
    ctypedef struct pt_cl_buffer:
        int32_t capacity
        int64_t elements
        int32_t bits
        int32_t policy
        int32_t num_classes
        uint8_t *storage
        int16_t *labels
        int64_t *class_seen
        int32_t *class_count
        int32_t *order
        uint8_t *row_codes
        float scale
        int32_t size
        int64_t batches_seen
        int64_t samples_seen
        pt_rng rng
        int32_t order_len, order_pos
    int64_t pt_cl_buffer_row_bytes(int64_t elements, int bits)
    int64_t pt_cl_buffer_memory_bytes(int32_t capacity, int64_t elements, int bits, int32_t num_classes)
    pt_status pt_cl_buffer_init(pt_cl_buffer *buf, float scale, uint64_t seed, uint64_t stream)
    pt_status pt_cl_buffer_check(const pt_cl_buffer *buf)
    pt_status pt_cl_buffer_update(const pt_team *team, pt_cl_buffer *buf, const float *latents, const uint8_t *codes,
                                  const int16_t *labels, int32_t n, int32_t *pick_scratch, int32_t *slots_written,
                                  int32_t *num_written)
    pt_status pt_cl_buffer_read(const pt_team *team, pt_cl_buffer *buf, const int32_t *slots, int32_t n, float *out,
                                int64_t *labels_out)
    pt_status pt_cl_buffer_read_codes(const pt_team *team, pt_cl_buffer *buf, const int32_t *slots, int32_t n,
                                      uint8_t *out)
    pt_status pt_cl_buffer_epoch_begin(pt_cl_buffer *buf)
    pt_status pt_cl_buffer_replay(const pt_team *team, pt_cl_buffer *buf, int32_t per_step, float *out,
                                  int64_t *labels_out, int32_t *taken)

    ctypedef struct pt_cl_layer:
        int32_t kind
        int32_t c_in, h_in, w_in
        int32_t c_out, h_out, w_out
        int32_t kh, kw, stride_h, stride_w, pad_h, pad_w
        float upper
        float eps, bn_momentum, r_max, d_max
        int32_t weight_trainable, bias_trainable
        float *weight
        float *weight_grad
        float *weight_momentum
        float *bias
        float *bias_grad
        float *bias_momentum
        float *running_mean
        float *running_var
        int64_t *num_batches_tracked
        float *out
        float *saved
    ctypedef struct pt_cl_cwr:
        float *cw
        float *cb
        uint8_t *cw_set
        int64_t *past
    ctypedef struct pt_cl_settings:
        float lr, first_lr, momentum, weight_decay
        int32_t epochs, first_epochs, minibatch, cwr, freeze_bn, num_classes, max_new, min_new
    ctypedef struct pt_cl_plan:
        int32_t new_per_step, replays_per_step, steps_per_epoch, epochs, total_steps
    ctypedef struct pt_cl_step_result:
        float loss
        int32_t correct
        int32_t rows
    ctypedef struct pt_cl_learner:
        pt_cl_settings settings
        int32_t num_layers
        int32_t classifier
        int32_t first_trained
        int64_t elements
        int32_t rows_max
        pt_rng rng
        int64_t batches_seen
        int32_t optimizer_phase
        int32_t optimizer_started
        int32_t in_batch
        pt_cl_plan plan
        int32_t step_index
        uint8_t *arena
        int64_t arena_bytes
        float *batch_x
        int64_t *batch_labels
    int64_t pt_cl_learner_arena_bytes(const pt_team *team, const pt_cl_settings *settings, const pt_cl_layer *layers,
                                      int32_t num_layers, int32_t capacity)
    pt_status pt_cl_learner_init(pt_cl_learner *learner, const pt_team *team, const pt_cl_settings *settings,
                                 pt_cl_layer *layers, int32_t num_layers, pt_cl_buffer *buffer, const pt_cl_cwr *cwr,
                                 uint8_t *arena, int64_t arena_bytes, uint64_t seed, uint64_t stream)
    pt_status pt_cl_learner_set_arena(pt_cl_learner *learner, const pt_team *team, int32_t max_new, uint8_t *arena,
                                      int64_t arena_bytes)
    pt_cl_plan pt_cl_learner_plan(const pt_cl_learner *learner, int32_t n)
    pt_status pt_cl_learner_begin_batch(const pt_team *team, pt_cl_learner *learner, const float *latents,
                                        const uint8_t *codes, const int16_t *labels, int32_t n)
    pt_status pt_cl_learner_train_step(const pt_team *team, pt_cl_learner *learner, pt_cl_step_result *result)
    pt_status pt_cl_learner_end_batch(const pt_team *team, pt_cl_learner *learner)
    pt_status pt_cl_learner_abort_batch(pt_cl_learner *learner)
    pt_status pt_cl_learner_predict(const pt_team *team, pt_cl_learner *learner, const float *latents, int64_t n,
                                    int32_t *classes)
    pt_status pt_cl_cwr_reset(pt_cl_learner *learner, const int64_t *counts)
    pt_status pt_cl_cwr_consolidate(pt_cl_learner *learner, const int64_t *counts)
    pt_status pt_cl_cwr_load_all(pt_cl_learner *learner)
