/* Instruction counts of every kernel step on bare-metal rv32imfc (run under qemu-system-riscv32 -icount
 * shift=0, where the instret CSR counts retired instructions exactly and reproducibly).
 *
 * Usage: count_kernels [CORES]   (default 8)
 * For each MobileNetV1 layer shape (batch 1) and step it runs the kernel
 *   1. on one core: `instret` = retired instructions of the whole call;
 *   2. on a team of CORES virtual cores (serial backend): a hook around every core's share of every fork
 *      measures each core. `critical` = instructions outside the forks + the slowest core of each fork (the
 *      time an SPMD cluster would take), `core_max` = the largest per-core total, `core_sum` = all cores.
 * Prints one "COUNT key=value ..." line per measurement (tools/riscv/count_table.py turns them into JSON and a
 * table). Inputs are pseudo-random: the kernels have no data-dependent branches, so counts depend on shapes only.
 */
#include <stdio.h>
#include <stdlib.h>
#include "kernel_step.h"

#define MAX_CORES 64

static inline uint64_t read_instret(void)
{
#if __riscv_xlen == 32
    uint32_t hi, lo, hi2;
    do {
        __asm__ volatile("rdinstreth %0" : "=r"(hi));
        __asm__ volatile("rdinstret %0" : "=r"(lo));
        __asm__ volatile("rdinstreth %0" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
#else
    uint64_t v;
    __asm__ volatile("rdinstret %0" : "=r"(v));
    return v;
#endif
}

/* ---- per-core accounting through the serial backend's hook ---- */
static uint64_t core_start, fork_slowest, in_forks, forks_critical, core_total[MAX_CORES];
static int forks;

static void core_hook(int core_id, int begin)
{
    const uint64_t now = read_instret();
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
};
#define NUM_ENTRIES ((int)(sizeof(entries) / sizeof(entries[0])))

static float *random_floats(int64_t n, uint32_t *state)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (p == NULL) {
        printf("out of memory (%ld floats)\n", (long)n);
        exit(2);
    }
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        p[i] = (float)(int32_t)(*state >> 8) * (1.0f / 8388608.0f) - 1.0f;
    }
    return p;
}

/* Retired instructions of one call on a team of `cores`; fills the per-core accounting when cores > 1. */
static pt_status measure(const rv_kernel_step *s, int cores, const float *a, const float *b, const float *bias,
                         float *out, uint64_t *instret)
{
    pt_set_num_threads(cores);
    const int64_t wsf = rv_step_workspace_floats(s, cores);
    float *ws = malloc((size_t)(wsf > 0 ? wsf : 1) * sizeof(float));
    if (ws == NULL) return PT_ERR_WORKSPACE_TOO_SMALL;
    reset_accounting();
    pt_set_serial_core_hook(cores > 1 ? core_hook : NULL);
    (void)read_instret(); /* warm-up read */
    const uint64_t t0 = read_instret();
    const pt_status st = rv_step_run(s, a, b, bias, out, ws, wsf);
    const uint64_t t1 = read_instret();
    pt_set_serial_core_hook(NULL);
    free(ws);
    *instret = t1 - t0;
    return st;
}

static void shape_text(const rv_kernel_step *s, char *buf, size_t size)
{
    if (s->op == OP_MATMUL)
        snprintf(buf, size, "%dx%dx%d", (int)s->m, (int)s->n, (int)s->k);
    else if (s->op == OP_LINEAR)
        snprintf(buf, size, "%d->%d", (int)s->c_in, (int)s->c_out);
    else if (s->op == OP_DEPTHWISE || s->op == OP_CONV2D)
        snprintf(buf, size, "%d->%d %dx%d k%d s%d p%d", (int)s->c_in, (int)(s->op == OP_DEPTHWISE ? s->c_in : s->c_out),
                 (int)s->h, (int)s->w, (int)s->kh, (int)s->stride_h, (int)s->pad_h);
    else
        snprintf(buf, size, "%d->%d %dx%d", (int)s->c_in, (int)s->c_out, (int)s->h, (int)s->w);
}

static int count_entry_variant(const count_entry *e, const char *variant, int cores, uint32_t *rng)
{
    const rv_kernel_step *s = &e->step;
    float *a = random_floats(rv_step_floats(s, ROLE_A), rng);
    float *b = random_floats(rv_step_floats(s, ROLE_B), rng);
    float *bias = s->has_bias ? random_floats(rv_step_floats(s, ROLE_BIAS), rng) : NULL;
    float *out = random_floats(rv_step_floats(s, ROLE_OUT), rng);
    uint64_t single, team;
    pt_status st = measure(s, 1, a, b, bias, out, &single);
    if (st == PT_OK) st = measure(s, cores, a, b, bias, out, &team);
    uint64_t core_max = 0;
    for (int c = 0; c < cores; c++) core_max = core_total[c] > core_max ? core_total[c] : core_max;
    char shape[64];
    shape_text(s, shape, sizeof shape);
    printf("COUNT layer=\"%s\" op=%s step=%s variant=%s shape=\"%s\" macs=%lld instret=%lld cores=%d team_instret=%lld "
           "critical=%lld core_max=%lld core_sum=%lld forks=%d status=%s\n",
           e->layer, rv_op_name(s->op), rv_step_name(s->step), variant, shape, (long long)rv_step_macs(s),
           (long long)single, cores, (long long)team, (long long)(team - in_forks + forks_critical),
           (long long)core_max, (long long)in_forks, forks, st == PT_OK ? "ok" : pt_status_str(st));
    free(a);
    free(b);
    free(bias);
    free(out);
    return st == PT_OK;
}

int main(int argc, char **argv)
{
    const int cores = argc > 1 ? atoi(argv[1]) : 8;
    if (cores < 2 || cores > MAX_CORES) {
        printf("cores must be 2..%d\n", MAX_CORES);
        return 2;
    }
    int ok = 1;
    uint32_t rng = 12345;
    for (int i = 0; i < NUM_ENTRIES; i++) {
        const count_entry *e = &entries[i];
        const int uses_matmul = e->step.op != OP_DEPTHWISE && e->step.op != OP_BIAS;
        /* v = -1: the automatic choice (what the layers use), then every variant when asked for. */
        const int last = e->every_variant ? pt_matmul_num_variants() - 1 : -1;
        for (int v = -1; v <= last; v++) {
            pt_matmul_set_preferred(v < 0 ? PT_MATMUL_AUTO : v);
            const char *name = !uses_matmul ? "-" : v < 0 ? "auto" : pt_matmul_variant_info(v)->name;
            ok &= count_entry_variant(e, name, cores, &rng);
        }
    }
    pt_matmul_set_preferred(PT_MATMUL_AUTO);
    return ok ? 0 : 1;
}
