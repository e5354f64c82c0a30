#include <math.h>
#include <stddef.h>
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

static void run(pt_task_fn fn, quant_task *t)
{
    pt_team_status_clear(&t->status);
    if (t->count < SERIAL_BELOW)
        fn(t); /* outside a fork pt_chunk sees a team of one */
    else
        pt_parallel(fn, t);
}

static void quantize_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    const float maxcode = (float)((1 << t->bits) - 1), scale = t->scale;
    int64_t i0, i1;
    pt_chunk(t->count, ELEMENT_GRANULE, &i0, &i1);
    int nan_seen = 0;
    for (int64_t i = i0; i < i1; i++) {
        const float v = t->x[i];
        nan_seen |= v != v;
        /* nearbyintf rounds half to even in the default rounding mode, like numpy's rint. */
        float r = nearbyintf(v / scale);
        r = r < 0.0f ? 0.0f : r;
        r = r > maxcode ? maxcode : r;
        t->out[i] = (uint8_t)(v != v ? 0.0f : r); /* a NaN is reported, never cast */
    }
    if (nan_seen) pt_team_status_report(&t->status, PT_ERR_VALUE_OUT_OF_RANGE);
}

pt_status pt_quantize(int64_t count, const float *x, float scale, int bits, uint8_t *codes)
{
    if (count > 0 && (x == NULL || codes == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!bits_ok(bits) || !(scale > 0.0f) || isinf(scale)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {count, x, NULL, NULL, codes, scale, bits};
    run(quantize_worker, &t);
    return pt_team_status_result(&t.status);
}

static void dequantize_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    int64_t i0, i1;
    pt_chunk(t->count, ELEMENT_GRANULE, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) t->xf[i] = t->scale * (float)t->codes[i];
}

pt_status pt_dequantize(int64_t count, const uint8_t *codes, float scale, float *x)
{
    if (count > 0 && (x == NULL || codes == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!(scale > 0.0f) || isinf(scale)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {count, NULL, x, codes, NULL, scale, 0};
    run(dequantize_worker, &t);
    return PT_OK;
}

/* Group g = codes [8g, 8g + n) (n = 8 except for the last group) <-> bytes [g*bits, ...). */
static void pack_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    const int bits = t->bits;
    int64_t g0, g1;
    pt_chunk((t->count + 7) / 8, GROUP_GRANULE, &g0, &g1);
    unsigned seen = 0;
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *c = t->codes + 8 * g;
        const int n = t->count - 8 * g < 8 ? (int)(t->count - 8 * g) : 8;
        uint64_t word = 0;
        for (int j = 0; j < n; j++) {
            seen |= c[j];
            word |= (uint64_t)c[j] << (j * bits);
        }
        uint8_t *p = t->out + g * bits;
        const int nbytes = (n * bits + 7) / 8;
        for (int b = 0; b < nbytes; b++) p[b] = (uint8_t)(word >> (8 * b));
    }
    if (seen >> bits) pt_team_status_report(&t->status, PT_ERR_VALUE_OUT_OF_RANGE);
}

pt_status pt_pack_bits(int64_t count, const uint8_t *codes, int bits, uint8_t *packed)
{
    if (count > 0 && (codes == NULL || packed == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!bits_ok(bits)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {count, NULL, NULL, codes, packed, 0.0f, bits};
    run(pack_worker, &t);
    return pt_team_status_result(&t.status);
}

static void unpack_worker(void *arg)
{
    quant_task *t = (quant_task *)arg;
    const int bits = t->bits;
    const uint64_t mask = (1u << bits) - 1u;
    int64_t g0, g1;
    pt_chunk((t->count + 7) / 8, GROUP_GRANULE, &g0, &g1);
    for (int64_t g = g0; g < g1; g++) {
        const int n = t->count - 8 * g < 8 ? (int)(t->count - 8 * g) : 8;
        const uint8_t *p = t->codes + g * bits;
        const int nbytes = (n * bits + 7) / 8;
        uint64_t word = 0;
        for (int b = 0; b < nbytes; b++) word |= (uint64_t)p[b] << (8 * b);
        uint8_t *c = t->out + 8 * g;
        for (int j = 0; j < n; j++) c[j] = (uint8_t)((word >> (j * bits)) & mask);
    }
}

pt_status pt_unpack_bits(int64_t count, const uint8_t *packed, int bits, uint8_t *codes)
{
    if (count > 0 && (codes == NULL || packed == NULL)) return PT_ERR_NULL_POINTER;
    if (count < 0) return PT_ERR_BAD_SHAPE;
    if (!bits_ok(bits)) return PT_ERR_BAD_ARGUMENT;
    quant_task t = {count, NULL, NULL, packed, codes, 0.0f, bits};
    run(unpack_worker, &t);
    return PT_OK;
}
