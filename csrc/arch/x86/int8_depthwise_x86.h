/* The x86 INT8 depthwise kernels (int8_depthwise_conv2d.c runs them on x86 CPUs for kw <= 4 and a column
 * stride of 1 or 2; other shapes take the portable worker). One (image, channel) plane per work unit:
 *
 * 1. The plane goes into a zero-padded uint8 copy P whose rows are stored by row phase: padded row r at
 *    slot (r % stride_h) * rows_per_phase + r / stride_h, each slot `pitch` = stride_w * wq bytes long.
 * 2. Each slot's wq columns become int32 words T[slot * wq + c] = the 4 bytes P[slot][stride_w * c + 0..3]:
 *    the inputs of one kernel row (kx = 0..3) for output column c, one word per output.
 * 3. An output (oh, ow) is the flat index i = oh * wq + ow, and kernel row ky reads T[i + tap_offset(ky)]
 *    with tap_offset(ky) = ((ky % stride_h) * rows_per_phase + ky / stride_h) * wq for every i: so the sum
 *    is a dot product of 4 bytes per kernel row over contiguous vectors of T (vpdpbusd with AVX512-VNNI,
 *    vpmaddwd on byte pairs with AVX2). The columns ow >= W_out computed on the way are ignored.
 * 4. The sums are requantized (exactly as int8_requant.h) and the valid W_out columns of each row stored.
 * The integers are those of the portable worker at every level. */
#ifndef PT_INT8_DEPTHWISE_X86_H
#define PT_INT8_DEPTHWISE_X86_H

#include "arch.h"
#include "conv_geometry.h"
#include "int8_requant.h"

#define PT_INT8_DW_X86_VECTOR 16 /* the widest vector (int32 lanes): sizes below are rounded up to it */
#define PT_INT8_DW_X86_MAX_KH 16 /* taller kernels take the portable worker */

typedef struct {
    const pt_conv_geometry *g;
    const uint8_t *x;
    const int8_t *w;
    const pt_requant *rq;
    uint8_t *y;
    uint8_t *workspace;
    /* layout (32-bit: checked by the caller to fit) */
    int32_t rows_per_phase, slots, wq, pitch;
    int32_t outputs;     /* h_out * wq flat outputs, rounded up to PT_INT8_DW_X86_VECTOR */
    int32_t words;       /* T words built: outputs + the largest tap offset, rounded up likewise */
    int32_t plane_bytes; /* P, with room for the widest reads past the last word */
    int32_t tap_offset[PT_INT8_DW_X86_MAX_KH];
    int64_t per_core_bytes; /* P, T as two arrays of `words` int32 (the AVX2 worker's), `outputs` codes */
} pt_int8_dw_x86_task;

/* Fills the layout of *t for g (the other fields are the caller's); 0 when g is not for these kernels
 * (kh > PT_INT8_DW_X86_MAX_KH, kw > 4, stride_w > 2, or a per-core workspace of 2 GiB or more). */
int pt_int8_dw_x86_plan(const pt_conv_geometry *g, pt_int8_dw_x86_task *t);
/* A worker's copy of n bytes (short rows: the library memcpy's call costs more than the copy). */
typedef void (*pt_int8_dw_x86_copy_fn)(uint8_t *dst, const uint8_t *src, int32_t n);

/* Step 1 for one input plane x (H x W): its rows into P (the padding stays zero from the worker's start). */
static inline __attribute__((always_inline)) void pt_int8_dw_x86_pad_plane(const pt_int8_dw_x86_task *t,
                                                                          const uint8_t *x, uint8_t *plane,
                                                                          pt_int8_dw_x86_copy_fn copy)
{
    const int32_t H = (int32_t)t->g->h_in, W = (int32_t)t->g->w_in, sh = (int32_t)t->g->stride_h;
    const int32_t ph = (int32_t)t->g->pad_h, pw = (int32_t)t->g->pad_w;
    int32_t phase = ph % sh, row = ph / sh; /* padded row ih + ph: slot phase * rows_per_phase + row */
    for (int32_t ih = 0; ih < H; ih++) {
        copy(plane + (int64_t)(phase * t->rows_per_phase + row) * t->pitch + pw, x + (int64_t)ih * W, W);
        if (++phase == sh) phase = 0, row++;
    }
}

/* Step 4's stores: the valid columns of the flat codes (h_out rows of wq) into y (h_out x w_out). */
static inline __attribute__((always_inline)) void pt_int8_dw_x86_store_rows(const pt_int8_dw_x86_task *t,
                                                                           const uint8_t *codes, uint8_t *y,
                                                                           pt_int8_dw_x86_copy_fn copy)
{
    const int32_t Ho = (int32_t)t->g->h_out, Wo = (int32_t)t->g->w_out;
    for (int32_t oh = 0; oh < Ho; oh++) copy(y + (int64_t)oh * Wo, codes + (int64_t)oh * t->wq, Wo);
}

#if PT_ARCH_X86
/* The workers (pt_parallel task functions, argument a pt_int8_dw_x86_task): AVX2 (vpmaddwd), and
 * AVX512-VNNI (vpdpbusd) for CPUs with AVX512F/BW/VL and AVX512-VNNI. */
void pt_int8_dw_x86_worker_avx2(void *task);
void pt_int8_dw_x86_worker_avx512vnni(void *task);
#endif

#endif
