#include <string.h>
#include "int8_stage.h"
#include "quant.h"

#define ALIGN 16

static int64_t align_up(int64_t bytes) { return (bytes + ALIGN - 1) / ALIGN * ALIGN; }

/* The kernel geometry of layer l for n images: padding moved into the input when pad_value != 0. */
static pt_status layer_geometry(const pt_int8_layer *l, int64_t n, int padded_copy, pt_conv_geometry *g)
{
    const int64_t ph = padded_copy ? 0 : l->pad_h, pw = padded_copy ? 0 : l->pad_w;
    const int64_t h = l->h_in + (padded_copy ? 2 * l->pad_h : 0), w = l->w_in + (padded_copy ? 2 * l->pad_w : 0);
    return pt_conv_geometry_init(g, n, l->c_in, h, w, l->c_out, l->kh, l->kw, l->stride_h, l->stride_w, ph, pw);
}

static int needs_padded_copy(const pt_int8_layer *l)
{
    return l->pad_value != 0 && (l->pad_h > 0 || l->pad_w > 0);
}

static int64_t layer_output_size(const pt_int8_layer *l)
{
    pt_conv_geometry g;
    if (layer_geometry(l, 1, 0, &g) != PT_OK) return 0;
    return g.c_out * g.h_out * g.w_out;
}

static pt_status check_layer(const pt_int8_layer *l)
{
    pt_conv_geometry g;
    const pt_status st = layer_geometry(l, 1, 0, &g);
    if (st != PT_OK) return st;
    if (l->pad_value < 0 || l->pad_value > 255) return PT_ERR_BAD_ARGUMENT;
    switch (l->kind) {
    case PT_INT8_LAYER_CONV2D:
        break;
    case PT_INT8_LAYER_DEPTHWISE:
        if (l->c_out != l->c_in) return PT_ERR_BAD_SHAPE;
        break;
    case PT_INT8_LAYER_POINTWISE:
        if (l->kh != 1 || l->kw != 1 || l->stride_h != 1 || l->stride_w != 1 || l->pad_h || l->pad_w)
            return PT_ERR_BAD_ARGUMENT;
        break;
    case PT_INT8_LAYER_AVG_POOL:
        if (l->c_out != l->c_in) return PT_ERR_BAD_SHAPE;
        return l->pad_h || l->pad_w ? PT_ERR_BAD_ARGUMENT : PT_OK;
    default:
        return PT_ERR_BAD_ARGUMENT;
    }
    if (l->weight == NULL) return PT_ERR_NULL_POINTER;
    return pt_requant_check(&l->rq, l->c_out);
}

pt_status pt_int8_stage_check(const pt_int8_stage *stage)
{
    if (stage == NULL || stage->layers == NULL) return PT_ERR_NULL_POINTER;
    if (stage->num_layers < 1) return PT_ERR_BAD_ARGUMENT;
    for (int32_t i = 0; i < stage->num_layers; i++) {
        const pt_int8_layer *l = &stage->layers[i];
        const pt_status st = check_layer(l);
        if (st != PT_OK) return st;
        if (i > 0) {
            const pt_int8_layer *prev = &stage->layers[i - 1];
            pt_conv_geometry g;
            layer_geometry(prev, 1, 0, &g);
            if (l->c_in != g.c_out || l->h_in != g.h_out || l->w_in != g.w_out) return PT_ERR_BAD_SHAPE;
        }
    }
    if (stage->lr_in_scale != 0.0f) {
        const pt_int8_layer *last = &stage->layers[stage->num_layers - 1];
        if (last->kind != PT_INT8_LAYER_AVG_POOL || stage->lr_bits < 1 || stage->lr_bits > 7) return PT_ERR_BAD_ARGUMENT;
        if (!(stage->lr_in_scale > 0.0f) || !(stage->lr_out_scale > 0.0f)) return PT_ERR_BAD_ARGUMENT;
    }
    return PT_OK;
}

int64_t pt_int8_stage_input_size(const pt_int8_stage *stage)
{
    if (pt_int8_stage_check(stage) != PT_OK) return 0;
    const pt_int8_layer *l = &stage->layers[0];
    return (int64_t)l->c_in * l->h_in * l->w_in;
}

int64_t pt_int8_stage_output_size(const pt_int8_stage *stage)
{
    if (pt_int8_stage_check(stage) != PT_OK) return 0;
    return layer_output_size(&stage->layers[stage->num_layers - 1]);
}

static int64_t kernel_workspace_bytes(const pt_team *team, const pt_int8_layer *l, int64_t n)
{
    pt_conv_geometry g;
    if (layer_geometry(l, n, needs_padded_copy(l), &g) != PT_OK) return 0;
    switch (l->kind) {
    case PT_INT8_LAYER_CONV2D:
        return pt_int8_conv2d_forward_workspace_bytes(team, &g);
    case PT_INT8_LAYER_DEPTHWISE:
        return pt_int8_depthwise_conv2d_forward_workspace_bytes(team, &g);
    case PT_INT8_LAYER_POINTWISE:
        return pt_int8_pointwise_conv2d_forward_workspace_bytes(team, n, l->c_in, l->c_out, l->h_in * l->w_in);
    default:
        return 0;
    }
}

/* Workspace layout: two activation buffers (the largest intermediate output), the padded input copy, the
 * float latents of the sub-byte step, then the kernels' own workspace (the largest of any layer). */
typedef struct {
    int64_t activation, padded, lr_floats, kernel, total;
} stage_plan;

static stage_plan make_plan(const pt_team *team, const pt_int8_stage *stage, int64_t n)
{
    stage_plan p = {0, 0, 0, 0, 0};
    const int32_t last = stage->num_layers - 1;
    for (int32_t i = 0; i <= last; i++) {
        const pt_int8_layer *l = &stage->layers[i];
        const int64_t out = n * layer_output_size(l);
        if (i < last || stage->lr_in_scale != 0.0f) p.activation = out > p.activation ? out : p.activation;
        if (needs_padded_copy(l)) {
            const int64_t padded = n * l->c_in * (l->h_in + 2 * l->pad_h) * (l->w_in + 2 * l->pad_w);
            p.padded = padded > p.padded ? padded : p.padded;
        }
        const int64_t ws = kernel_workspace_bytes(team, l, n);
        p.kernel = ws > p.kernel ? ws : p.kernel;
    }
    if (stage->lr_in_scale != 0.0f) p.lr_floats = n * layer_output_size(&stage->layers[last]) * (int64_t)sizeof(float);
    p.total = 2 * align_up(p.activation) + align_up(p.padded) + align_up(p.lr_floats) + align_up(p.kernel);
    return p;
}

int64_t pt_int8_stage_workspace_bytes(const pt_team *team, const pt_int8_stage *stage, int64_t n)
{
    if (pt_team_check(team) != PT_OK || pt_int8_stage_check(stage) != PT_OK || n < 1) return 0;
    return make_plan(team, stage, n).total;
}

/* x (n, C, H, W) copied into the middle of planes of (H + 2 ph, W + 2 pw) filled with `value`. */
static void pad_copy(const pt_int8_layer *l, int64_t n, const uint8_t *x, uint8_t *out)
{
    const int64_t H = l->h_in, W = l->w_in, Hp = H + 2 * l->pad_h, Wp = W + 2 * l->pad_w;
    memset(out, l->pad_value, (size_t)(n * l->c_in * Hp * Wp));
    for (int64_t plane = 0; plane < n * l->c_in; plane++)
        for (int64_t h = 0; h < H; h++)
            memcpy(out + (plane * Hp + h + l->pad_h) * Wp + l->pad_w, x + (plane * H + h) * W, (size_t)W);
}

static pt_status run_layer(const pt_team *team, const pt_int8_layer *l, int64_t n, const uint8_t *x, uint8_t *y,
                           uint8_t *padded, void *ws, int64_t ws_bytes)
{
    const int padded_copy = needs_padded_copy(l);
    pt_conv_geometry g;
    const pt_status st = layer_geometry(l, n, padded_copy, &g);
    if (st != PT_OK) return st;
    if (padded_copy) {
        pad_copy(l, n, x, padded);
        x = padded;
    }
    switch (l->kind) {
    case PT_INT8_LAYER_CONV2D:
        return pt_int8_conv2d_forward(team, &g, x, l->weight, &l->rq, y, ws, ws_bytes);
    case PT_INT8_LAYER_DEPTHWISE:
        return pt_int8_depthwise_conv2d_forward(team, &g, x, l->weight, &l->rq, y, ws, ws_bytes);
    case PT_INT8_LAYER_POINTWISE:
        return pt_int8_pointwise_conv2d_forward(team, n, l->c_in, l->c_out, l->h_in * l->w_in, x, l->weight, &l->rq,
                                                y, ws, ws_bytes);
    default:
        return pt_int8_avg_pool2d(team, &g, x, y);
    }
}

pt_status pt_int8_stage_forward(const pt_team *team, const pt_int8_stage *stage, int64_t n, const uint8_t *x,
                                uint8_t *latent, void *workspace, int64_t workspace_bytes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    pt_status st = pt_int8_stage_check(stage);
    if (st != PT_OK) return st;
    if (x == NULL || latent == NULL || workspace == NULL) return PT_ERR_NULL_POINTER;
    if (n < 1) return PT_ERR_BAD_SHAPE;
    const stage_plan p = make_plan(team, stage, n);
    if (workspace_bytes < p.total) return PT_ERR_WORKSPACE_TOO_SMALL;
    uint8_t *base = (uint8_t *)workspace;
    uint8_t *act[2] = {base, base + align_up(p.activation)};
    uint8_t *padded = act[1] + align_up(p.activation);
    float *lr_floats = (float *)(padded + align_up(p.padded));
    void *kernel_ws = (uint8_t *)lr_floats + align_up(p.lr_floats);
    const int32_t last = stage->num_layers - 1;
    const int lr_step = stage->lr_in_scale != 0.0f;
    const uint8_t *in = x;
    for (int32_t i = 0; i <= last; i++) {
        uint8_t *out = (i == last && !lr_step) ? latent : act[i % 2];
        st = run_layer(team, &stage->layers[i], n, in, out, padded, kernel_ws, p.kernel);
        if (st != PT_OK) return st;
        in = out;
    }
    if (lr_step) {
        const int64_t count = n * layer_output_size(&stage->layers[last]);
        st = pt_dequantize(team, count, in, stage->lr_in_scale, lr_floats);
        if (st == PT_OK) st = pt_quantize(team, count, lr_floats, stage->lr_out_scale, stage->lr_bits, latent);
    }
    return st;
}
