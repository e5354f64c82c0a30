/* RISC-V test driver: every kernel step against golden data produced on the host by the Python package.
 *
 * Usage: test_kernels [TEAM_SIZE ...]. Without arguments the team size comes from OMP_NUM_THREADS (rv64
 * Linux); on bare metal the Makefile passes the sizes as semihosting arguments and the serial backend runs
 * the virtual cores one after another. Every case runs with every matmul variant (steps that use no matmul
 * run once) on a team of 1 first, then on each requested team size, and checks:
 *   - the status is PT_OK and the output matches the golden data within GOLDEN_TOLERANCE * (1 + max|ref|),
 *   - the output is bitwise identical to the 1-core result (cores never split a reduction),
 *   - nothing is written past the output or the workspace (guard words),
 *   - a NULL operand and a workspace one float too small are refused without touching the output.
 * Before the cases it checks the parallel runtime itself: a team of T really forms T cores with distinct ids,
 * and the serial backend's core hook sees every virtual core begin and end in order.
 * Prints one line per failure and a final "N passed, N failed"; exits non-zero when anything failed.
 * Float only: no double arithmetic (soft-float on rv32).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel_step.h"

typedef struct {
    rv_kernel_step step;
    const float *a; int64_t a_len;
    const float *b; int64_t b_len;
    const float *bias; int64_t bias_len;
    const float *init; int64_t init_len;          /* output's content before an accumulating step */
    const float *expected; int64_t expected_len;
} golden_case;

#include "golden_data.h"

#define GUARD 16
#define GUARD_BITS 0x7fc0dead /* a NaN no kernel produces: marks floats the kernel must not touch */
#define MAX_TEAMS 8

static int passed, failed;

static void report(int ok, const char *what, int team)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL runtime team %d: %s\n", team, what);
}

static float guard_value(void)
{
    const uint32_t bits = GUARD_BITS;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static int is_guard(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits == GUARD_BITS;
}

static void check(int ok, const golden_case *gc, const char *variant, int team, const char *what)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    const rv_kernel_step *s = &gc->step;
    printf("FAIL %s %s (batch %d c_in %d %dx%d c_out %d k %dx%d stride %d,%d pad %d,%d | m %d n %d k %d) "
           "variant %s team %d: %s\n", rv_op_name(s->op), rv_step_name(s->step), (int)s->batch, (int)s->c_in,
           (int)s->h, (int)s->w, (int)s->c_out, (int)s->kh, (int)s->kw, (int)s->stride_h, (int)s->stride_w,
           (int)s->pad_h, (int)s->pad_w, (int)s->m, (int)s->n, (int)s->k, variant, team, what);
}

/* A buffer of n floats followed by GUARD guard words; the first n hold init (or guards when init is NULL,
 * so an element the kernel forgets to write shows up as a mismatch). */
static float *guarded(int64_t n, const float *init)
{
    float *p = malloc((size_t)(n + GUARD) * sizeof(float));
    if (p == NULL) {
        printf("out of memory (%ld floats)\n", (long)n);
        exit(2);
    }
    for (int64_t i = 0; i < n + GUARD; i++) p[i] = (init && i < n) ? init[i] : guard_value();
    return p;
}

static int guard_intact(const float *p, int64_t n)
{
    for (int i = 0; i < GUARD; i++)
        if (!is_guard(p[n + i])) return 0;
    return 1;
}

static int matches_golden(const float *got, const golden_case *gc)
{
    float ref_max = 0.0f, err_max = 0.0f;
    for (int64_t i = 0; i < gc->expected_len; i++) {
        float r = gc->expected[i] < 0 ? -gc->expected[i] : gc->expected[i];
        float e = got[i] - gc->expected[i];
        e = e < 0 ? -e : e;
        if (r > ref_max) ref_max = r;
        if (!(e <= err_max)) err_max = e; /* a NaN sticks */
    }
    return err_max <= GOLDEN_TOLERANCE * (1.0f + ref_max);
}

/* Runs one case on a team; returns the output (caller frees) or NULL when the call failed. */
static float *run_case(const golden_case *gc, const char *variant, int team)
{
    const rv_kernel_step *s = &gc->step;
    pt_set_num_threads(team);
    int64_t wsf = rv_step_workspace_floats(s, team);
    float *ws = guarded(wsf, NULL);
    float *out = guarded(gc->expected_len, gc->init);
    pt_status st = rv_step_run(s, gc->a, gc->b, gc->bias, out, ws, wsf);
    char msg[96];
    snprintf(msg, sizeof msg, "status %s", pt_status_str(st));
    check(st == PT_OK, gc, variant, team, msg);
    check(guard_intact(out, gc->expected_len), gc, variant, team, "wrote past the output");
    check(guard_intact(ws, wsf), gc, variant, team, "wrote past the workspace");
    free(ws);
    if (st != PT_OK) {
        free(out);
        return NULL;
    }
    check(matches_golden(out, gc), gc, variant, team, "output differs from the golden data");
    return out;
}

/* A missing operand and (when a workspace is needed) one float too little must be refused before any
 * output element is written. */
static void check_refusals(const golden_case *gc, const char *variant)
{
    const rv_kernel_step *s = &gc->step;
    int64_t wsf = rv_step_workspace_floats(s, pt_get_num_threads());
    float *ws = guarded(wsf, NULL);
    float *out = guarded(gc->expected_len, gc->init);
    int untouched = 1;
    pt_status st = rv_step_run(s, NULL, gc->b, gc->bias, out, ws, wsf);
    check(st == PT_ERR_NULL_POINTER, gc, variant, 1, "NULL input not refused with PT_ERR_NULL_POINTER");
    if (wsf > 0) {
        st = rv_step_run(s, gc->a, gc->b, gc->bias, out, ws, wsf - 1);
        check(st == PT_ERR_WORKSPACE_TOO_SMALL, gc, variant, 1, "short workspace not refused");
    }
    for (int64_t i = 0; i < gc->expected_len; i++)
        untouched &= gc->init ? memcmp(&out[i], &gc->init[i], sizeof(float)) == 0 : is_guard(out[i]);
    check(untouched, gc, variant, 1, "a refused call wrote to the output");
    free(ws);
    free(out);
}

static int operand_sizes_agree(const golden_case *gc)
{
    const rv_kernel_step *s = &gc->step;
    return gc->a_len == rv_step_floats(s, ROLE_A) && gc->b_len == rv_step_floats(s, ROLE_B) &&
           gc->bias_len == rv_step_floats(s, ROLE_BIAS) && gc->expected_len == rv_step_floats(s, ROLE_OUT) &&
           (gc->init == NULL || gc->init_len == gc->expected_len);
}

static void test_case(const golden_case *gc, const int *teams, int num_teams)
{
    const rv_op op = gc->step.op;
    const int uses_matmul = op != OP_DEPTHWISE && op != OP_BIAS;
    const int num_variants = uses_matmul ? pt_matmul_num_variants() : 1;
    check(operand_sizes_agree(gc), gc, "-", 0, "golden operand sizes disagree with the C shapes");
    if (!operand_sizes_agree(gc)) return;
    for (int v = 0; v < num_variants; v++) {
        const char *variant = uses_matmul ? pt_matmul_variant_info(v)->name : "-";
        pt_matmul_set_preferred(uses_matmul ? v : PT_MATMUL_AUTO);
        float *single = run_case(gc, variant, 1);
        check_refusals(gc, variant);
        for (int t = 0; t < num_teams; t++) {
            if (teams[t] == 1) continue;
            float *team = run_case(gc, variant, teams[t]);
            if (single && team)
                check(memcmp(single, team, (size_t)gc->expected_len * sizeof(float)) == 0, gc, variant, teams[t],
                      "not bitwise identical to the 1-core result");
            free(team);
        }
        free(single);
    }
    pt_matmul_set_preferred(PT_MATMUL_AUTO);
}

/* ---- the parallel runtime ---- */
typedef struct {
    int cores_seen[PT_MAX_THREADS]; /* each core writes only its own slot */
    int team_size[PT_MAX_THREADS];
} team_probe;

static void probe_task(void *arg)
{
    team_probe *p = (team_probe *)arg;
    p->cores_seen[pt_core_id()]++;
    p->team_size[pt_core_id()] = pt_num_cores();
}

static int hook_log[2 * PT_MAX_THREADS], hook_calls;

static void log_hook(int core_id, int begin)
{
    if (hook_calls < 2 * PT_MAX_THREADS) hook_log[hook_calls] = 2 * core_id + (begin ? 0 : 1);
    hook_calls++;
}

static void test_runtime(int team)
{
    team_probe probe;
    memset(&probe, 0, sizeof probe);
    pt_set_num_threads(team);
    pt_parallel(probe_task, &probe);
    int ok = 1;
    for (int c = 0; c < PT_MAX_THREADS; c++)
        ok &= c < team ? probe.cores_seen[c] == 1 && probe.team_size[c] == team : probe.cores_seen[c] == 0;
    report(ok, "the team does not form exactly one core per id", team);
    if (strcmp(pt_parallel_backend(), "serial") == 0) {
        hook_calls = 0;
        pt_set_serial_core_hook(log_hook);
        pt_parallel(probe_task, &probe);
        pt_set_serial_core_hook(NULL);
        ok = hook_calls == 2 * team;
        for (int i = 0; ok && i < hook_calls; i++) ok = hook_log[i] == i; /* core 0 begin, end, core 1 begin, ... */
        report(ok, "the serial core hook is not called around each core in order", team);
    }
    pt_set_num_threads(1);
}

int main(int argc, char **argv)
{
    int teams[MAX_TEAMS], num_teams = 0;
    for (int i = 1; i < argc && num_teams < MAX_TEAMS; i++) teams[num_teams++] = atoi(argv[i]);
    if (num_teams == 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        teams[num_teams++] = env ? atoi(env) : 1;
    }
    printf("test_kernels: backend %s, %d golden cases, %d matmul variants, teams", pt_parallel_backend(),
           GOLDEN_NUM_CASES, pt_matmul_num_variants());
    for (int t = 0; t < num_teams; t++) {
        if (teams[t] < 1 || teams[t] > PT_MAX_THREADS) {
            printf("\nbad team size %d\n", teams[t]);
            return 2;
        }
        printf(" %d", teams[t]);
    }
    printf("\n");
    for (int t = 0; t < num_teams; t++) test_runtime(teams[t]);
    for (int i = 0; i < GOLDEN_NUM_CASES; i++) test_case(&golden_cases[i], teams, num_teams);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
