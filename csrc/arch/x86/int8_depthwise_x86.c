/* The layout and the plain steps of the x86 INT8 depthwise kernels (int8_depthwise_x86.h). */
#include "int8_depthwise_x86.h"

#if PT_ARCH_X86

static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

int pt_int8_dw_x86_plan(const pt_conv_geometry *g, pt_int8_dw_x86_task *t)
{
    const int64_t sh = g->stride_h, sw = g->stride_w, V = PT_INT8_DW_X86_VECTOR;
    if (g->kh > PT_INT8_DW_X86_MAX_KH || g->kw > 4 || sw > 2) return 0;
    const int64_t wq = (g->w_in + 2 * g->pad_w + sw - 1) / sw, rows_per_phase = (g->h_in + 2 * g->pad_h + sh - 1) / sh;
    int64_t largest_offset = 0;
    for (int64_t ky = 0; ky < g->kh; ky++) {
        const int64_t offset = ((ky % sh) * rows_per_phase + ky / sh) * wq;
        if (offset > largest_offset) largest_offset = offset;
    }
    const int64_t outputs = round_up(g->h_out * wq, V), words = round_up(outputs + largest_offset, V);
    /* building the words reads 64 bytes from byte stride_w * t, t < words (a multiple of 16) */
    int64_t plane_bytes = sh * rows_per_phase * sw * wq;
    if (plane_bytes < sw * words + 64) plane_bytes = sw * words + 64;
    plane_bytes = round_up(plane_bytes, 64);
    const int64_t per_core_bytes = round_up(plane_bytes + 2 * 4 * words + outputs, 64);
    if (per_core_bytes >= INT32_MAX) return 0;
    t->rows_per_phase = (int32_t)rows_per_phase;
    t->slots = (int32_t)(sh * rows_per_phase);
    t->wq = (int32_t)wq;
    t->pitch = (int32_t)(sw * wq);
    t->outputs = (int32_t)outputs;
    t->words = (int32_t)words;
    t->plane_bytes = (int32_t)plane_bytes;
    for (int64_t ky = 0; ky < g->kh; ky++) t->tap_offset[ky] = (int32_t)(((ky % sh) * rows_per_phase + ky / sh) * wq);
    t->per_core_bytes = per_core_bytes;
    return 1;
}
#endif
