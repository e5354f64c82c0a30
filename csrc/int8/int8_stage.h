/* The INT8 frozen stage as one call: a table of INT8 layers (conv2d, depthwise, pointwise, average pool)
 * run in order over a batch of uint8 input codes, ping-ponging between two activation buffers in the
 * caller's workspace, the last layer writing the latent codes. The same table drives the Python
 * QuantizedFrozenStage (pulptrain/frozen_int8.py) and an exported bundle on the target, so both run this
 * one code path.
 *
 * A layer's `pad_value` is the code its zero padding stands for: the input zero point of the first layer
 * (an asymmetric input), 0 elsewhere. With pad_value != 0 and padding > 0 the input is copied into a
 * padded plane of that code and the kernel runs with padding 0 (the int32 bias already holds the zero
 * point correction, see pulptrain/frozen_int8.py).
 *
 * Below 8 latent bits with a trailing average pool, the pool output is brought to `lr_bits` codes of the
 * latent scale: codes = quantize(dequantize(pool codes, lr_in_scale), lr_out_scale, lr_bits) (quant.h,
 * float32 product and division); lr_in_scale = 0 means no such step.
 */
#ifndef PT_INT8_STAGE_H
#define PT_INT8_STAGE_H

#include <stdint.h>
#include "int8.h"
#include "parallel.h"

typedef enum {
    PT_INT8_LAYER_CONV2D = 0,
    PT_INT8_LAYER_DEPTHWISE = 1,
    PT_INT8_LAYER_POINTWISE = 2,
    PT_INT8_LAYER_AVG_POOL = 3
} pt_int8_layer_kind;

/* One layer for one image: its input (c_in, h_in, w_in), its window, and its parameters (weight and rq
 * unused by a pool; a global pool is kh = h_in, kw = w_in). */
typedef struct {
    int32_t kind; /* pt_int8_layer_kind */
    int32_t c_in, h_in, w_in, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w;
    int32_t pad_value;    /* code of the padding, 0..255 */
    const int8_t *weight; /* the kernel's layout: (C_out, C_in, kh, kw), (C, 1, kh, kw) or (C_out, C_in) */
    pt_requant rq;
} pt_int8_layer;

typedef struct {
    int32_t num_layers;
    const pt_int8_layer *layers;
    float lr_in_scale, lr_out_scale; /* the sub-byte latent step (header comment); lr_in_scale 0: none */
    int32_t lr_bits;
} pt_int8_stage;

/* Codes per image at the stage's input and at its output (the latent); 0 for a malformed stage. */
int64_t pt_int8_stage_input_size(const pt_int8_stage *stage);
int64_t pt_int8_stage_output_size(const pt_int8_stage *stage);

/* PT_OK when the layers chain (each input shape is the previous output shape) and every layer is valid. */
pt_status pt_int8_stage_check(const pt_int8_stage *stage);

/* Workspace bytes of pt_int8_stage_forward for a batch of n images on `team` (0 for a bad stage or team). */
int64_t pt_int8_stage_workspace_bytes(const pt_team *team, const pt_int8_stage *stage, int64_t n);

/* latent (n, output size) = the stage applied to x (n, input size) uint8 codes. */
pt_status pt_int8_stage_forward(const pt_team *team, const pt_int8_stage *stage, int64_t n, const uint8_t *x,
                                uint8_t *latent, void *workspace, int64_t workspace_bytes);

#endif
