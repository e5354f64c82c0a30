/* Instruction counts of every kernel step on bare-metal rv32imfc (run under qemu-system-riscv32 -icount
 * shift=0, where the instret CSR counts retired instructions exactly and reproducibly).
 *
 * Usage: count_kernels [CORES [VARIANTS]]   (default 8 all; VARIANTS = auto: only the automatic matmul choice)
 * For each MobileNetV1 layer shape (batch 1) and step it runs the kernel
 *   1. on one core: `instret` = retired instructions of the whole call;
 *   2. on a team of CORES virtual cores (serial backend): a hook around every core's share of every fork
 *      measures each core. `critical` = instructions outside the forks + the slowest core of each fork (the
 *      time an SPMD cluster would take), `core_max` = the largest per-core total, `core_sum` = all cores.
 * Prints one "COUNT key=value ..." line per measurement (tools/riscv/count_table.py turns them into JSON and a
 * table). Inputs are pseudo-random: the float kernels have no data-dependent branches, so their counts depend on
 * shapes only; the INT8 requantization and the quantize clip branch on the value (an output <= 0 takes a short
 * path), so those counts are for random data (about half the accumulators negative, as after a ReLU-trained layer).
 * `macs` is the work unit of the row: MACs for the layers (additions for pooling), codes for the latent codes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel_step.h"

#define MAX_CORES 64

#include "pt_counter.h" /* instret on rv32, the CMSDK timers on the Cortex-M4F (tools/arm) */

/* Empty markers around each measured call: tools/arm/insn_classes.c (a QEMU plugin) counts the instruction
 * classes between the first instructions of the two (noipa: the calls stay, at addresses nm shows). */
__attribute__((noipa)) void pt_region_begin(void) { __asm__ volatile(""); }
__attribute__((noipa)) void pt_region_end(void) { __asm__ volatile(""); }

/* ---- per-core accounting through the serial backend's hook ---- */
static uint64_t core_start, fork_slowest, in_forks, forks_critical, core_total[MAX_CORES];
static int forks;

static void core_hook(int core_id, int begin)
{
    const uint64_t now = pt_counter_read();
    if (begin) {
        if (core_id == 0) {
            forks++;
            fork_slowest = 0;
        }
        core_start = now;
        return;
    }
    const uint64_t spent = now - core_start;
    core_total[core_id] += spent;
    in_forks += spent;
    if (spent > fork_slowest) {
        forks_critical += spent - fork_slowest;
        fork_slowest = spent;
    }
}

static void reset_accounting(void)
{
    in_forks = forks_critical = 0;
    forks = 0;
    for (int i = 0; i < MAX_CORES; i++) core_total[i] = 0;
}

/* ---- the layers measured: MobileNetV1 (width 1, 128x128 input) at batch 1 ---- */
typedef struct {
    const char *layer;
    rv_kernel_step step;
    int every_variant; /* measure every matmul variant, not only the automatic choice */
} count_entry;

#define CONV(L, OP, ST, CI, HW, CO, K, S, P, V) \
    {L, {.op = OP, .step = ST, .batch = 1, .c_in = CI, .h = HW, .w = HW, .c_out = CO, .kh = K, .kw = K, \
         .stride_h = S, .stride_w = S, .pad_h = P, .pad_w = P, .has_bias = (ST) == STEP_FORWARD}, V}
#define TRIAD(L, OP, CI, HW, CO, K, S, P, V) \
    CONV(L, OP, STEP_FORWARD, CI, HW, CO, K, S, P, V), CONV(L, OP, STEP_GRAD_INPUT, CI, HW, CO, K, S, P, V), \
    CONV(L, OP, STEP_GRAD_WEIGHT, CI, HW, CO, K, S, P, V)
#define INT8(L, OP, CI, HW, CO, K, S, P) CONV(L, OP, STEP_FORWARD, CI, HW, CO, K, S, P, 0)
#define LR_CODES (512 * 8 * 8)
#define LATENT(OP, BITS) \
    {"LR conv5_4/dw", {.op = OP, .step = STEP_FORWARD, .count = LR_CODES, .bits = BITS, .scale = 0.05f}, 0}

static const count_entry entries[] = {
    {"matmul 128^3", {.op = OP_MATMUL, .step = STEP_FORWARD, .m = 128, .n = 128, .k = 128}, 1},
    TRIAD("conv1", OP_CONV2D, 3, 128, 32, 3, 2, 1, 0),
    TRIAD("conv5_x/dw", OP_DEPTHWISE, 512, 8, 512, 3, 1, 1, 0),
    TRIAD("conv5_x/pw", OP_POINTWISE, 512, 8, 512, 1, 1, 0, 1),
    CONV("conv5_x/pw", OP_BIAS, STEP_GRAD_BIAS, 512, 8, 512, 1, 1, 0, 0),
    TRIAD("conv5_6/dw", OP_DEPTHWISE, 512, 8, 512, 3, 2, 1, 0),
    TRIAD("conv5_6/pw", OP_POINTWISE, 512, 4, 1024, 1, 1, 0, 0),
    TRIAD("conv6/dw", OP_DEPTHWISE, 1024, 4, 1024, 3, 1, 1, 0),
    TRIAD("conv6/pw", OP_POINTWISE, 1024, 4, 1024, 1, 1, 0, 0),
    TRIAD("fc", OP_LINEAR, 1024, 1, 50, 1, 1, 0, 0),
    /* INT8 frozen stage (every distinct layer shape up to conv6; the default LR layer is conv5_4/dw) */
    INT8("conv1", OP_INT8_CONV2D, 3, 128, 32, 3, 2, 1),
    INT8("conv2_1/dw", OP_INT8_DEPTHWISE, 32, 64, 32, 3, 1, 1),
    INT8("conv2_1/pw", OP_INT8_POINTWISE, 32, 64, 64, 1, 1, 0),
    INT8("conv2_2/dw", OP_INT8_DEPTHWISE, 64, 64, 64, 3, 2, 1),
    INT8("conv2_2/pw", OP_INT8_POINTWISE, 64, 32, 128, 1, 1, 0),
    INT8("conv3_1/dw", OP_INT8_DEPTHWISE, 128, 32, 128, 3, 1, 1),
    INT8("conv3_1/pw", OP_INT8_POINTWISE, 128, 32, 128, 1, 1, 0),
    INT8("conv3_2/dw", OP_INT8_DEPTHWISE, 128, 32, 128, 3, 2, 1),
    INT8("conv3_2/pw", OP_INT8_POINTWISE, 128, 16, 256, 1, 1, 0),
    INT8("conv4_1/dw", OP_INT8_DEPTHWISE, 256, 16, 256, 3, 1, 1),
    INT8("conv4_1/pw", OP_INT8_POINTWISE, 256, 16, 256, 1, 1, 0),
    INT8("conv4_2/dw", OP_INT8_DEPTHWISE, 256, 16, 256, 3, 2, 1),
    INT8("conv4_2/pw", OP_INT8_POINTWISE, 256, 8, 512, 1, 1, 0),
    INT8("conv5_x/dw", OP_INT8_DEPTHWISE, 512, 8, 512, 3, 1, 1),
    INT8("conv5_x/pw", OP_INT8_POINTWISE, 512, 8, 512, 1, 1, 0),
    INT8("conv5_6/dw", OP_INT8_DEPTHWISE, 512, 8, 512, 3, 2, 1),
    INT8("conv5_6/pw", OP_INT8_POINTWISE, 512, 4, 1024, 1, 1, 0),
    INT8("conv6/dw", OP_INT8_DEPTHWISE, 1024, 4, 1024, 3, 1, 1),
    INT8("conv6/pw", OP_INT8_POINTWISE, 1024, 4, 1024, 1, 1, 0),
    INT8("pool6", OP_INT8_AVG_POOL, 1024, 4, 1024, 4, 4, 0),
    INT8("fc", OP_INT8_LINEAR, 1024, 1, 50, 1, 1, 0),
    /* latent codes at the default LR layer (conv5_4/dw output, 512x8x8) */
    LATENT(OP_QUANTIZE, 8), LATENT(OP_DEQUANTIZE, 8),
    LATENT(OP_PACK_BITS, 1), LATENT(OP_PACK_BITS, 2), LATENT(OP_PACK_BITS, 3), LATENT(OP_PACK_BITS, 4),
    LATENT(OP_PACK_BITS, 5), LATENT(OP_PACK_BITS, 6), LATENT(OP_PACK_BITS, 7), LATENT(OP_PACK_BITS, 8),
    LATENT(OP_UNPACK_BITS, 1), LATENT(OP_UNPACK_BITS, 2), LATENT(OP_UNPACK_BITS, 3), LATENT(OP_UNPACK_BITS, 4),
    LATENT(OP_UNPACK_BITS, 5), LATENT(OP_UNPACK_BITS, 6), LATENT(OP_UNPACK_BITS, 7), LATENT(OP_UNPACK_BITS, 8),
};
#define NUM_ENTRIES ((int)(sizeof(entries) / sizeof(entries[0])))

static uint32_t next_random(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void *allocate(int64_t bytes)
{
    void *p = malloc((size_t)(bytes > 0 ? bytes : 1));
    if (p == NULL) {
        printf("out of memory (%ld bytes)\n", (long)bytes);
        exit(2);
    }
    return p;
}

static float *random_floats(int64_t n, uint32_t *state)
{
    float *p = allocate(n * (int64_t)sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)(int32_t)next_random(state) * (1.0f / 8388608.0f) - 1.0f;
    return p;
}

/* n random bytes, each masked with `mask` (pack_bits needs codes below 2^bits). */
static uint8_t *random_bytes(int64_t n, uint8_t mask, uint32_t *state)
{
    uint8_t *p = allocate(n);
    for (int64_t i = 0; i < n; i++) p[i] = (uint8_t)next_random(state) & mask;
    return p;
}

/* The operands of one step: float arrays for the float ops, typed ones (sizes in bytes) for the others. */
typedef struct {
    void *a, *b, *bias, *out;
    pt_requant rq;
    int32_t *rq_bias, *multiplier, *shift;
} operands;

static operands random_operands(const rv_kernel_step *s, uint32_t *rng)
{
    operands o = {0};
    if (!rv_op_is_typed(s->op)) {
        o.a = random_floats(rv_step_floats(s, ROLE_A), rng);
        o.b = random_floats(rv_step_floats(s, ROLE_B), rng);
        o.bias = s->has_bias ? random_floats(rv_step_floats(s, ROLE_BIAS), rng) : NULL;
        o.out = random_floats(rv_step_floats(s, ROLE_OUT), rng);
        return o;
    }
    const uint8_t code_mask = s->op == OP_PACK_BITS ? (uint8_t)((1u << s->bits) - 1u) : 0xff;
    o.a = s->op == OP_QUANTIZE ? (void *)random_floats(s->count, rng)
                               : (void *)random_bytes(rv_step_bytes(s, ROLE_A), code_mask, rng);
    o.b = random_bytes(rv_step_bytes(s, ROLE_B), 0xff, rng);
    o.out = random_bytes(rv_step_bytes(s, ROLE_OUT), 0xff, rng);
    /* Requantization as quantize_frozen makes it: multipliers in [2^30, 2^31), shifts that map the int32
     * accumulators onto the uint8 range, small biases. */
    const int64_t channels = rv_step_channels(s);
    o.rq_bias = allocate(channels * (int64_t)sizeof(int32_t));
    o.multiplier = allocate(channels * (int64_t)sizeof(int32_t));
    o.shift = allocate(channels * (int64_t)sizeof(int32_t));
    for (int64_t c = 0; c < channels; c++) {
        o.rq_bias[c] = (int32_t)(next_random(rng) & 0xfff) - 0x800;
        o.multiplier[c] = (int32_t)((1u << 30) | (next_random(rng) << 6));
        o.shift[c] = 40;
    }
    const pt_requant rq = {o.rq_bias, o.multiplier, o.shift, 0, 255};
    o.rq = rq;
    return o;
}

static void free_operands(operands *o)
{
    free(o->a);
    free(o->b);
    free(o->bias);
    free(o->out);
    free(o->rq_bias);
    free(o->multiplier);
    free(o->shift);
}

/* Retired instructions of one call with `matmul_variant` on a team of `cores`; fills the per-core accounting
 * when cores > 1. */
static pt_status measure(const rv_kernel_step *s, int matmul_variant, int cores, operands *o, uint64_t *instret)
{
    pt_team team = pt_team_of(cores);
    team.matmul_variant = matmul_variant;
    team.serial_core_hook = cores > 1 ? core_hook : NULL;
    const int typed = rv_op_is_typed(s->op);
    /* workspace: floats for the float ops, bytes for the typed ones */
    const int64_t ws_size = typed ? rv_step_workspace_bytes(&team, s) : rv_step_workspace_floats(&team, s);
    void *ws = allocate(ws_size * (typed ? 1 : (int64_t)sizeof(float)));
    reset_accounting();
    (void)pt_counter_read(); /* warm-up read */
    const uint64_t t0 = pt_counter_read();
    pt_region_begin();
    const pt_status st = typed ? rv_typed_step_run(&team, s, o->a, o->b, &o->rq, o->out, ws, ws_size)
                               : rv_step_run(&team, s, o->a, o->b, o->bias, o->out, ws, ws_size);
    pt_region_end();
    const uint64_t t1 = pt_counter_read();
    free(ws);
    *instret = t1 - t0;
    return st;
}

static void shape_text(const rv_kernel_step *s, char *buf, size_t size)
{
    const rv_op op = s->op;
    const int windowed = op == OP_CONV2D || op == OP_DEPTHWISE || op == OP_INT8_CONV2D || op == OP_INT8_DEPTHWISE ||
                         op == OP_INT8_AVG_POOL;
    const int64_t c_out = op == OP_DEPTHWISE || op == OP_INT8_DEPTHWISE || op == OP_INT8_AVG_POOL ? s->c_in : s->c_out;
    if (op == OP_MATMUL)
        snprintf(buf, size, "%dx%dx%d", (int)s->m, (int)s->n, (int)s->k);
    else if (op >= OP_QUANTIZE)
        snprintf(buf, size, "%d codes", (int)s->count);
    else if (op == OP_LINEAR || op == OP_INT8_LINEAR)
        snprintf(buf, size, "%d->%d", (int)s->c_in, (int)s->c_out);
    else if (windowed)
        snprintf(buf, size, "%d->%d %dx%d k%d s%d p%d", (int)s->c_in, (int)c_out, (int)s->h, (int)s->w, (int)s->kh,
                 (int)s->stride_h, (int)s->pad_h);
    else
        snprintf(buf, size, "%d->%d %dx%d", (int)s->c_in, (int)s->c_out, (int)s->h, (int)s->w);
}

/* Operands come from a generator seeded by the entry alone, so every variant of an entry sees the same data and
 * no row's data (INT8 requantization clips with branches: counts depend on the data) shifts when the number of
 * variants or entries before it changes. */
static int count_entry_variant(const count_entry *e, int entry_index, int matmul_variant, const char *variant,
                               int cores)
{
    const rv_kernel_step *s = &e->step;
    uint32_t rng = 12345u + 2654435761u * (uint32_t)entry_index;
    operands o = random_operands(s, &rng);
    uint64_t single, team;
    pt_status st = measure(s, matmul_variant, 1, &o, &single);
    if (st == PT_OK) st = measure(s, matmul_variant, cores, &o, &team);
    uint64_t core_max = 0;
    for (int c = 0; c < cores; c++) core_max = core_total[c] > core_max ? core_total[c] : core_max;
    char shape[64];
    shape_text(s, shape, sizeof shape);
    printf("COUNT layer=\"%s\" op=%s step=%s variant=%s shape=\"%s\" bits=%d unit=%s macs=%lld instret=%lld cores=%d "
           "team_instret=%lld critical=%lld core_max=%lld core_sum=%lld forks=%d status=%s\n",
           e->layer, rv_op_name(s->op), rv_step_name(s->step), variant, shape, s->bits,
           s->op >= OP_QUANTIZE ? "code" : "MAC", (long long)rv_step_macs(s), (long long)single, cores,
           (long long)team, (long long)(team - in_forks + forks_critical), (long long)core_max, (long long)in_forks,
           forks, st == PT_OK ? "ok" : pt_status_str(st));
    free_operands(&o);
    return st == PT_OK;
}

int main(int argc, char **argv)
{
    const int cores = argc > 1 ? atoi(argv[1]) : 8;
    if (cores < 2 || cores > MAX_CORES) {
        printf("cores must be 2..%d\n", MAX_CORES);
        return 2;
    }
    const int every_variant = argc > 2 ? strcmp(argv[2], "auto") != 0 : 1;
    int ok = 1;
    for (int i = 0; i < NUM_ENTRIES; i++) {
        const count_entry *e = &entries[i];
        const int uses_matmul = e->step.op <= OP_LINEAR && e->step.op != OP_DEPTHWISE;
        /* v = -1: the automatic choice (what the layers use), then every variant when asked for. */
        const int last = e->every_variant && every_variant ? pt_matmul_num_variants() - 1 : -1;
        for (int v = -1; v <= last; v++) {
            const char *name = !uses_matmul ? "-" : v < 0 ? "auto" : pt_matmul_variant_info(v)->name;
            ok &= count_entry_variant(e, i, v < 0 ? PT_MATMUL_AUTO : v, name, cores);
        }
    }
    return ok ? 0 : 1;
}
