/* INT8 inference (PULP-NN scheme): shared requantization of an int32 accumulator to a uint8 code.
 *
 * Activations are uint8 codes with zero point 0, weights int8 per output channel, accumulation exact in
 * int32. For output channel c:
 *
 *   acc = bias[c] + sum_k x[k] * w[c, k]        (the sum is int32; bias is added in 64 bits)
 *   p   = acc * multiplier[c]                   (exact in int64: |acc| < 2^32, multiplier < 2^31)
 *   y   = clip(floor(p / 2^shift[c] + 1/2), clip_min, clip_max)
 *       = clip((p + (1 << (shift - 1))) >> shift, ...) for shift >= 1; p <= 0 gives y = clip_min (the
 *         result is <= 0 <= clip_min), so no negative value is ever shifted.
 *
 * BN is folded into the weights and bias beforehand; multiplier / 2^shift stands for the real factor
 * in_scale * w_scale[c] / out_scale (see pulptrain/quant.py). clip_max = 255 is a ReLU on the uint8
 * range, a smaller clip_max a ReLU6. Ranges: multiplier[c] in [0, 2^31 - 1], shift[c] in [0, 62],
 * 0 <= clip_min <= clip_max <= 255, and a reduction length K <= PT_INT8_MAX_K so the int32 sum of
 * products (each at most 255 * 128 in magnitude) cannot overflow.
 */
#ifndef PT_INT8_REQUANT_H
#define PT_INT8_REQUANT_H

#include <stddef.h>
#include <stdint.h>
#include "pt_status.h"

#define PT_INT8_MAX_K 65793 /* floor((2^31 - 1) / (255 * 128)) */
#define PT_INT8_MAX_SHIFT 62

typedef struct {
    const int32_t *bias;       /* (C_out) or NULL */
    const int32_t *multiplier; /* (C_out) */
    const int32_t *shift;      /* (C_out) */
    int32_t clip_min, clip_max;
} pt_requant;

/* PT_OK when rq holds valid parameters for `channels` output channels. O(channels). */
static inline pt_status pt_requant_check(const pt_requant *rq, int64_t channels)
{
    if (rq == NULL || rq->multiplier == NULL || rq->shift == NULL) return PT_ERR_NULL_POINTER;
    if (rq->clip_min < 0 || rq->clip_min > rq->clip_max || rq->clip_max > 255) return PT_ERR_BAD_ARGUMENT;
    for (int64_t c = 0; c < channels; c++)
        if (rq->multiplier[c] < 0 || rq->shift[c] < 0 || rq->shift[c] > PT_INT8_MAX_SHIFT)
            return PT_ERR_BAD_ARGUMENT;
    return PT_OK;
}

/* One requantized code: the formula above. p > 0 is rounded in unsigned arithmetic, where adding half a
 * step cannot overflow (p < 2^63, half <= 2^61). */
static inline uint8_t pt_requant_one(int64_t p, uint64_t half, int shift, int32_t lo, int32_t hi)
{
    const uint64_t r = p > 0 ? ((uint64_t)p + half) >> shift : 0;
    return (uint8_t)(r < (uint64_t)lo ? lo : r > (uint64_t)hi ? hi : (int32_t)r);
}

/* The uint8 code of an int32 sum of products `dot` in output channel c. */
static inline uint8_t pt_requantize(const pt_requant *rq, int64_t c, int32_t dot)
{
    const int s = rq->shift[c];
    const int64_t acc = (int64_t)dot + (rq->bias ? rq->bias[c] : 0);
    return pt_requant_one(acc * rq->multiplier[c], s ? (uint64_t)1 << (s - 1) : 0, s, rq->clip_min, rq->clip_max);
}

/* y[j * y_stride] = code of dot[j], j < n, all in output channel c (parameters hoisted: y, a uint8
 * pointer, may alias anything, so the compiler would otherwise reload them for every element). */
static inline void pt_requantize_row(const pt_requant *rq, int64_t c, const int32_t *dot, int64_t n, uint8_t *y,
                                     int64_t y_stride)
{
    const int64_t bias = rq->bias ? rq->bias[c] : 0, m = rq->multiplier[c];
    const int s = rq->shift[c];
    const uint64_t half = s ? (uint64_t)1 << (s - 1) : 0;
    const int32_t lo = rq->clip_min, hi = rq->clip_max;
    for (int64_t j = 0; j < n; j++) y[j * y_stride] = pt_requant_one(((int64_t)dot[j] + bias) * m, half, s, lo, hi);
}

#endif
