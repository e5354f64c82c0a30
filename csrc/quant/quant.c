#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "parallel.h"
#include "quant.h"

#define ELEMENT_GRANULE 256 /* elements per core slice unit for quantize / dequantize */
#define GROUP_GRANULE 64    /* groups of 8 codes per core slice unit for pack / unpack */
#define SERIAL_BELOW 16384  /* elements: smaller jobs run on one core (the fork costs more than it saves) */

static int bits_ok(int bits) { return bits >= 1 && bits <= 8; }

int64_t pt_packed_bytes(int64_t count, int bits)
{
    if (count < 0 || !bits_ok(bits)) return -1;
    return (count / 8) * bits + ((count % 8) * bits + 7) / 8;
}

typedef struct {
    int64_t count;
    const float *x;
    float *xf;
    const uint8_t *codes;
    uint8_t *out;
    float scale;
    int bits;
    pt_team_status status;
} quant_task;

static void run(const pt_team *team, pt_task_fn fn, quant_task *t)
{
    pt_team_status_clear(&t->status);
    if (t->count < SERIAL_BELOW)
        fn(t); /* outside a fork pt_chunk sees a team of one */
    else
        pt_parallel(team, fn, t);
}

/* round_half_even(q) clipped to [0, maxcode] for maxcode <= 255, as the float -> code step of quantize.
 * Clipping first gives the same code as rounding first (the ends are integers) and maps NaN to 0 (a NaN
 * fails both comparisons; the caller reports it). For 0 <= q <= 255, q + 1.5 * 2^23 lies in [2^23, 2^24),
 * where the float spacing is exactly 1, so the addition itself rounds q half to even (the default rounding
 * mode) and the integer is the low mantissa bits of the sum. One addition, no libm call: picolibc's
 * nearbyintf saves and restores the FP environment per element. There is no multiplication to contract
 * with -ffp-contract, and float arithmetic is IEEE single on the targets (FLT_EVAL_METHOD 0, checked
 * below), so the sum is rounded to float as written. */
#define ROUND_MAGIC 0x1.8p23f
#define ROUND_MAGIC_BITS 0x4B400000u /* the bit pattern of ROUND_MAGIC */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != -1
#error "quantize needs float arithmetic evaluated in float (FLT_EVAL_METHOD 0)"
#endif
static inline uint8_t round_clip_code(float q, float maxcode)
{
    q = q > 0.0f ? q : 0.0f;
    q = q < maxcode ? q : maxcode;
    const float sum = q + ROUND_MAGIC;
    uint32_t bits;
    memcpy(&bits, &sum, sizeof bits);
    return (uint8_t)(bits - ROUND_MAGIC_BITS);
}

/* The workers copy their range and pointers into locals first: stores through a uint8_t pointer may alias
 * anything, and the loops only vectorize when the compiler knows the bounds and pointers stay put. */
static void quantize_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    const float maxcode = (float)((1 << t->bits) - 1), scale = t->scale;
    int64_t i0, i1;
    pt_chunk(t->count, ELEMENT_GRANULE, &i0, &i1);
    const int64_t n = i1 - i0;
    const float *x = t->x + i0;
    uint8_t *out = t->out + i0;
    int nan_seen = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        nan_seen |= v != v; /* a NaN gives code 0 and is reported */
        out[i] = round_clip_code(v / scale, maxcode);
    }
    if (nan_seen) pt_team_status_report(&t->status, PT_ERR_VALUE_OUT_OF_RANGE);
}

pt_status pt_quantize(const pt_team *team, int64_t count, const float *x, float scale, int bits, uint8_t *codes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (count > 0 && (x == NULL || codes == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!bits_ok(bits) || !(scale > 0.0f) || isinf(scale)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {.count = count, .x = x, .out = codes, .scale = scale, .bits = bits};
    run(team, quantize_worker, &t);
    return pt_team_status_result(&t.status);
}

static void dequantize_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    int64_t i0, i1;
    pt_chunk(t->count, ELEMENT_GRANULE, &i0, &i1);
    const int64_t n = i1 - i0;
    const uint8_t *codes = t->codes + i0;
    float *x = t->xf + i0;
    const float scale = t->scale;
    for (int64_t i = 0; i < n; i++) x[i] = scale * (float)codes[i];
}

pt_status pt_dequantize(const pt_team *team, int64_t count, const uint8_t *codes, float scale, float *x)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (count > 0 && (x == NULL || codes == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!(scale > 0.0f) || isinf(scale)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {.count = count, .xf = x, .codes = codes, .scale = scale};
    run(team, dequantize_worker, &t);
    return PT_OK;
}

/* Group g = codes [8g, 8g + n) (n = 8 except for the last group) <-> bytes [g*bits, ...). */
static inline uint64_t pack_group(const uint8_t *c, int n, int bits, unsigned *seen)
{
    uint64_t word = 0;
    for (int j = 0; j < n; j++) {
        *seen |= c[j];
        word |= (uint64_t)c[j] << (j * bits);
    }
    return word;
}

/* Full groups [g0, g1); `bits` is a constant at every call site below, so both loops unroll. */
static inline __attribute__((always_inline)) unsigned pack_full_groups(const uint8_t *codes, uint8_t *packed,
                                                                      int64_t g0, int64_t g1, const int bits)
{
    unsigned seen = 0;
    for (int64_t g = g0; g < g1; g++) {
        const uint64_t word = pack_group(codes + 8 * g, 8, bits, &seen);
        for (int b = 0; b < bits; b++) packed[g * bits + b] = (uint8_t)(word >> (8 * b));
    }
    return seen;
}

static void pack_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    const int bits = t->bits;
    const uint8_t *codes = t->codes;
    uint8_t *packed = t->out;
    const int64_t full = t->count / 8;
    int64_t g0, g1;
    pt_chunk((t->count + 7) / 8, GROUP_GRANULE, &g0, &g1);
    const int64_t f1 = g1 < full ? g1 : full;
    unsigned seen = 0;
    switch (bits) {
    case 1: seen = pack_full_groups(codes, packed, g0, f1, 1); break;
    case 2: seen = pack_full_groups(codes, packed, g0, f1, 2); break;
    case 3: seen = pack_full_groups(codes, packed, g0, f1, 3); break;
    case 4: seen = pack_full_groups(codes, packed, g0, f1, 4); break;
    case 5: seen = pack_full_groups(codes, packed, g0, f1, 5); break;
    case 6: seen = pack_full_groups(codes, packed, g0, f1, 6); break;
    case 7: seen = pack_full_groups(codes, packed, g0, f1, 7); break;
    default: seen = pack_full_groups(codes, packed, g0, f1, 8); break;
    }
    if (g1 > full) { /* the last, partial group */
        const int n = (int)(t->count - 8 * full);
        const uint64_t word = pack_group(codes + 8 * full, n, bits, &seen);
        for (int b = 0; b < (n * bits + 7) / 8; b++) packed[full * bits + b] = (uint8_t)(word >> (8 * b));
    }
    if (seen >> bits) pt_team_status_report(&t->status, PT_ERR_VALUE_OUT_OF_RANGE);
}

pt_status pt_pack_bits(const pt_team *team, int64_t count, const uint8_t *codes, int bits, uint8_t *packed)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (count > 0 && (codes == NULL || packed == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!bits_ok(bits)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {.count = count, .codes = codes, .out = packed, .bits = bits};
    run(team, pack_worker, &t);
    return pt_team_status_result(&t.status);
}

static inline void unpack_group(const uint8_t *p, int nbytes, int n, int bits, uint8_t *c)
{
    uint64_t word = 0;
    for (int b = 0; b < nbytes; b++) word |= (uint64_t)p[b] << (8 * b);
    for (int j = 0; j < n; j++) c[j] = (uint8_t)((word >> (j * bits)) & ((1u << bits) - 1u));
}

static inline __attribute__((always_inline)) void unpack_full_groups(const uint8_t *packed, uint8_t *codes,
                                                                    int64_t g0, int64_t g1, const int bits)
{
    for (int64_t g = g0; g < g1; g++) unpack_group(packed + g * bits, bits, 8, bits, codes + 8 * g);
}

static void unpack_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    const int bits = t->bits;
    const uint8_t *packed = t->codes;
    uint8_t *codes = t->out;
    const int64_t full = t->count / 8;
    int64_t g0, g1;
    pt_chunk((t->count + 7) / 8, GROUP_GRANULE, &g0, &g1);
    const int64_t f1 = g1 < full ? g1 : full;
    switch (bits) {
    case 1: unpack_full_groups(packed, codes, g0, f1, 1); break;
    case 2: unpack_full_groups(packed, codes, g0, f1, 2); break;
    case 3: unpack_full_groups(packed, codes, g0, f1, 3); break;
    case 4: unpack_full_groups(packed, codes, g0, f1, 4); break;
    case 5: unpack_full_groups(packed, codes, g0, f1, 5); break;
    case 6: unpack_full_groups(packed, codes, g0, f1, 6); break;
    case 7: unpack_full_groups(packed, codes, g0, f1, 7); break;
    default: unpack_full_groups(packed, codes, g0, f1, 8); break;
    }
    if (g1 > full) { /* the last, partial group */
        const int n = (int)(t->count - 8 * full);
        unpack_group(packed + full * bits, (n * bits + 7) / 8, n, bits, codes + 8 * full);
    }
}

pt_status pt_unpack_bits(const pt_team *team, int64_t count, const uint8_t *packed, int bits, uint8_t *codes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (count > 0 && (codes == NULL || packed == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!bits_ok(bits)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {.count = count, .codes = packed, .out = codes, .bits = bits};
    run(team, unpack_worker, &t);
    return PT_OK;
}
