# Declarations of the C API in csrc/ (see csrc/pulptrain.h). No logic here.
from libc.stdint cimport int64_t

cdef extern from "pulptrain.h" nogil:
    ctypedef enum pt_status:
        PT_OK
    const char *pt_status_str(pt_status status)

    int PT_MAX_THREADS
    ctypedef struct pt_team:
        int num_threads
        int matmul_variant
        int int8_microkernel
    pt_team pt_team_default()
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
