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
 * The INT8 inference and latent-code cases (golden_typed_cases) run on a team of 1, then on each requested team
 * size, and check:
 *   - the status is PT_OK and the output equals the golden data byte for byte (integer arithmetic and
 *     correctly rounded float operations: every target must reproduce the host exactly, for every team size);
 *   - nothing is written past the output or the workspace, and every output byte is written (the output starts
 *     as the bitwise complement of the expected bytes);
 *   - a NULL input, a workspace one byte too small, invalid requantization parameters, a code above
 *     2^bits - 1 (pack_bits) and a NaN (quantize) are refused with the right status (the refusals that
 *     happen before any work leave the output untouched).
 * The activation, pooling, BatchNorm, loss and optimizer cases (golden_args_cases: operands in the order of the
 * C signature) run the same way and check status, every output and in-place operand against the golden data
 * (float tolerance), bitwise identity with the 1-core result, guards, and the refusal of a NULL operand and a
 * short workspace. Every op of rv_ops must have a golden case, and every case must name an op of rv_ops.
 * Before the cases it checks the parallel runtime itself: a team of T really forms T cores with distinct ids,
 * and the serial backend's core hook sees every virtual core begin and end in order.
 * Prints one line per failure and a final "N passed, N failed"; exits non-zero when anything failed.
 * Float only: no double arithmetic (soft-float on rv32).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel_step.h"

/* Each golden case names its op (rv_ops, pulptrain/ops.py); the driver fills step.op and step.step from it. */
typedef struct {
    const char *name;
    rv_kernel_step step;
    const float *a; int64_t a_len;
    const float *b; int64_t b_len;
    const float *bias; int64_t bias_len;
    const float *init; int64_t init_len;          /* output's content before an accumulating step */
    const float *expected; int64_t expected_len;
} golden_case;

/* INT8 inference and latent codes: operands in bytes, compared bit-exactly (rv_typed_step_run). */
typedef struct {
    const char *name;
    rv_kernel_step step;
    const void *a; int64_t a_bytes;
    const void *b; int64_t b_bytes;
    const int32_t *bias, *multiplier, *shift; int64_t channels; /* requantization (INT8 conv/pw/linear) */
    int32_t clip_min, clip_max;
    const void *expected; int64_t expected_bytes;
} golden_typed_case;

/* Activations, pooling, BatchNorm, losses, optimizers (rv_args_step_run): operands in the order of the C
 * signature; an input has data only, an output expected only, in-place state both (before and after). */
typedef struct {
    const void *data;
    const void *expected;
    int64_t bytes;
} golden_arg;

typedef struct {
    const char *name;
    rv_kernel_step step;
    int num_args;
    golden_arg args[RV_MAX_ARGS];
} golden_args_case;

#include "golden_data.h"

#define GUARD 16
#define GUARD_BITS 0x7fc0dead /* a NaN no kernel produces: marks floats the kernel must not touch */
#define MAX_TEAMS 8
#define MAX_OPS 128

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
    printf("FAIL %s (batch %d c_in %d %dx%d c_out %d k %dx%d stride %d,%d pad %d,%d | m %d n %d k %d) "
           "variant %s team %d: %s\n", gc->name, (int)s->batch, (int)s->c_in,
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

/* Runs one case on `settings` with a team of `team` cores; returns the output (caller frees) or NULL when
 * the call failed. */
static float *run_case(const golden_case *gc, const char *variant, const pt_team *settings, int team)
{
    const rv_kernel_step *s = &gc->step;
    pt_team t = *settings;
    t.num_threads = team;
    int64_t wsf = rv_step_workspace_floats(&t, s);
    float *ws = guarded(wsf, NULL);
    float *out = guarded(gc->expected_len, gc->init);
    pt_status st = rv_step_run(&t, s, gc->a, gc->b, gc->bias, out, ws, wsf);
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
static void check_refusals(const golden_case *gc, const char *variant, const pt_team *team)
{
    const rv_kernel_step *s = &gc->step;
    int64_t wsf = rv_step_workspace_floats(team, s);
    float *ws = guarded(wsf, NULL);
    float *out = guarded(gc->expected_len, gc->init);
    int untouched = 1;
    pt_status st = rv_step_run(team, s, NULL, gc->b, gc->bias, out, ws, wsf);
    check(st == PT_ERR_NULL_POINTER, gc, variant, 1, "NULL input not refused with PT_ERR_NULL_POINTER");
    if (wsf > 0) {
        st = rv_step_run(team, s, gc->a, gc->b, gc->bias, out, ws, wsf - 1);
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
        pt_team settings = pt_team_of(1);
        settings.matmul_variant = uses_matmul ? v : PT_MATMUL_AUTO;
        float *single = run_case(gc, variant, &settings, 1);
        check_refusals(gc, variant, &settings);
        for (int t = 0; t < num_teams; t++) {
            if (teams[t] == 1) continue;
            float *team = run_case(gc, variant, &settings, teams[t]);
            if (single && team)
                check(memcmp(single, team, (size_t)gc->expected_len * sizeof(float)) == 0, gc, variant, teams[t],
                      "not bitwise identical to the 1-core result");
            free(team);
        }
        free(single);
    }
}

/* ---- INT8 inference and latent codes: bit-exact ---- */

static void check_typed(int ok, const golden_typed_case *gc, int team, const char *what)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    const rv_kernel_step *s = &gc->step;
    if (s->op >= OP_QUANTIZE)
        printf("FAIL %s (count %d bits %d) team %d: %s\n", gc->name, (int)s->count, s->bits, team, what);
    else
        printf("FAIL %s (batch %d c_in %d %dx%d c_out %d k %dx%d stride %d,%d pad %d,%d) team %d: %s\n",
               gc->name, (int)s->batch, (int)s->c_in, (int)s->h, (int)s->w, (int)s->c_out, (int)s->kh,
               (int)s->kw, (int)s->stride_h, (int)s->stride_w, (int)s->pad_h, (int)s->pad_w, team, what);
}

#define GUARD_BYTE 0xa5

/* n bytes, then GUARD guard bytes. The n bytes hold the bitwise complement of `expected` (an unwritten byte
 * can never match it), or zeros when expected is NULL. */
static uint8_t *guarded_bytes(int64_t n, const void *expected)
{
    uint8_t *p = malloc((size_t)(n + GUARD));
    if (p == NULL) {
        printf("out of memory (%ld bytes)\n", (long)n);
        exit(2);
    }
    const uint8_t *e = (const uint8_t *)expected;
    for (int64_t i = 0; i < n + GUARD; i++) p[i] = i >= n ? GUARD_BYTE : e ? (uint8_t)~e[i] : 0;
    return p;
}

static int guard_bytes_intact(const uint8_t *p, int64_t n)
{
    for (int i = 0; i < GUARD; i++)
        if (p[n + i] != GUARD_BYTE) return 0;
    return 1;
}

static int untouched(const uint8_t *out, const golden_typed_case *gc)
{
    const uint8_t *e = (const uint8_t *)gc->expected;
    for (int64_t i = 0; i < gc->expected_bytes; i++)
        if (out[i] != (uint8_t)~e[i]) return 0;
    return guard_bytes_intact(out, gc->expected_bytes);
}

/* Runs the case with input a and requantization rq (the caller may pass bad ones) and a fresh workspace of
 * wsb bytes; *ws_intact tells whether the workspace's guard survived. */
static pt_status run_typed(const pt_team *team, const golden_typed_case *gc, const void *a, const pt_requant *rq,
                           uint8_t *out, int64_t wsb, int *ws_intact)
{
    uint8_t *ws = guarded_bytes(wsb, NULL);
    const pt_status st = rv_typed_step_run(team, &gc->step, a, gc->b, rq, out, ws, wsb);
    *ws_intact = guard_bytes_intact(ws, wsb);
    free(ws);
    return st;
}

static void test_typed_team(const golden_typed_case *gc, const pt_requant *rq, int team)
{
    const pt_team t = pt_team_of(team);
    uint8_t *out = guarded_bytes(gc->expected_bytes, gc->expected);
    int ws_intact;
    const pt_status st = run_typed(&t, gc, gc->a, rq, out, rv_step_workspace_bytes(&t, &gc->step), &ws_intact);
    char msg[64];
    snprintf(msg, sizeof msg, "status %s", pt_status_str(st));
    check_typed(st == PT_OK, gc, team, msg);
    check_typed(guard_bytes_intact(out, gc->expected_bytes), gc, team, "wrote past the output");
    check_typed(ws_intact, gc, team, "wrote past the workspace");
    check_typed(st == PT_OK && memcmp(out, gc->expected, (size_t)gc->expected_bytes) == 0, gc, team,
                "output differs from the golden data (must be bit-exact)");
    free(out);
}

/* One refused call: expect status `want`; when `clean`, the output must be untouched. */
static void expect_refusal(const golden_typed_case *gc, const void *a, const pt_requant *rq, int64_t wsb,
                           pt_status want, int clean, const char *what)
{
    uint8_t *out = guarded_bytes(gc->expected_bytes, gc->expected);
    int ws_intact;
    const pt_team one = pt_team_of(1);
    const pt_status st = run_typed(&one, gc, a, rq, out, wsb, &ws_intact);
    char msg[128];
    snprintf(msg, sizeof msg, "%s: status %s, expected %s", what, pt_status_str(st), pt_status_str(want));
    check_typed(st == want, gc, 1, msg);
    if (clean) check_typed(untouched(out, gc) && ws_intact, gc, 1, "a refused call wrote to the output");
    free(out);
}

static void check_typed_refusals(const golden_typed_case *gc, const pt_requant *rq)
{
    const rv_kernel_step *s = &gc->step;
    const pt_team one = pt_team_of(1);
    const int64_t wsb = rv_step_workspace_bytes(&one, s);
    expect_refusal(gc, NULL, rq, wsb, PT_ERR_NULL_POINTER, 1, "NULL input");
    if (wsb > 0) expect_refusal(gc, gc->a, rq, wsb - 1, PT_ERR_WORKSPACE_TOO_SMALL, 1, "short workspace");
    if (gc->channels > 0) {
        int32_t *shift = malloc((size_t)gc->channels * sizeof(int32_t));
        memcpy(shift, gc->shift, (size_t)gc->channels * sizeof(int32_t));
        shift[gc->channels - 1] = PT_INT8_MAX_SHIFT + 1;
        pt_requant bad = *rq;
        bad.shift = shift;
        expect_refusal(gc, gc->a, &bad, wsb, PT_ERR_BAD_ARGUMENT, 1, "shift above PT_INT8_MAX_SHIFT");
        free(shift);
    }
    if ((s->op == OP_PACK_BITS && s->bits < 8) || s->op == OP_QUANTIZE) {
        /* One bad value in the middle: a code one above the top (pack) or a NaN (quantize); output unspecified. */
        uint8_t *a = malloc((size_t)gc->a_bytes);
        memcpy(a, gc->a, (size_t)gc->a_bytes);
        if (s->op == OP_PACK_BITS) {
            a[s->count / 2] = (uint8_t)(1u << s->bits);
        } else {
            const uint32_t nan_bits = 0x7fc00000u;
            memcpy(a + (s->count / 2) * sizeof(float), &nan_bits, sizeof nan_bits);
        }
        expect_refusal(gc, a, rq, wsb, PT_ERR_VALUE_OUT_OF_RANGE, 0,
                       s->op == OP_PACK_BITS ? "code above 2^bits - 1" : "NaN input");
        free(a);
    }
}

static int typed_sizes_agree(const golden_typed_case *gc)
{
    const rv_kernel_step *s = &gc->step;
    return gc->a_bytes == rv_step_bytes(s, ROLE_A) && gc->b_bytes == rv_step_bytes(s, ROLE_B) &&
           gc->expected_bytes == rv_step_bytes(s, ROLE_OUT) && gc->channels == rv_step_channels(s);
}

static void test_typed_case(const golden_typed_case *gc, const int *teams, int num_teams)
{
    check_typed(typed_sizes_agree(gc), gc, 0, "golden operand sizes disagree with the C shapes");
    if (!typed_sizes_agree(gc)) return;
    const pt_requant rq = {gc->bias, gc->multiplier, gc->shift, gc->clip_min, gc->clip_max};
    test_typed_team(gc, &rq, 1);
    check_typed_refusals(gc, &rq);
    for (int t = 0; t < num_teams; t++)
        if (teams[t] != 1) test_typed_team(gc, &rq, teams[t]);
}

/* ---- activations, pooling, BatchNorm, losses, optimizers: operand lists, float outputs ---- */

static void check_args(int ok, const golden_args_case *gc, int team, const char *what)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    const rv_kernel_step *s = &gc->step;
    printf("FAIL %s (batch %d c_in %d %dx%d c_out %d k %dx%d stride %d,%d pad %d,%d count %d) team %d: %s\n", gc->name,
           (int)s->batch, (int)s->c_in, (int)s->h, (int)s->w, (int)s->c_out, (int)s->kh, (int)s->kw, (int)s->stride_h,
           (int)s->stride_w, (int)s->pad_h, (int)s->pad_w, (int)s->count, team, what);
}

/* The operands of one call: each a copy of its data (outputs: guard words, so an element the kernel forgets to
 * write shows up as a mismatch), followed by GUARD guard words. */
static void *args_alloc(const golden_arg *arg)
{
    const int64_t floats = (arg->bytes + (int64_t)sizeof(float) - 1) / (int64_t)sizeof(float);
    float *p = guarded(floats, NULL);
    if (arg->data) memcpy(p, arg->data, (size_t)arg->bytes);
    return p;
}

static int args_guards_intact(const golden_args_case *gc, void *const *bufs)
{
    for (int i = 0; i < gc->num_args; i++)
        if (!guard_intact(bufs[i], (gc->args[i].bytes + (int64_t)sizeof(float) - 1) / (int64_t)sizeof(float)))
            return 0;
    return 1;
}

static void args_free(const golden_args_case *gc, void **bufs)
{
    for (int i = 0; i < gc->num_args; i++) free(bufs[i]);
}

/* Runs the case on a team; *bufs receives the operands after the call (the caller frees them). */
static pt_status run_args(const golden_args_case *gc, int team, void **bufs, int null_first, int64_t short_by)
{
    const pt_team t = pt_team_of(team);
    const int64_t wsb = rv_args_workspace_bytes(&t, &gc->step);
    float *ws = guarded(wsb / (int64_t)sizeof(float), NULL);
    for (int i = 0; i < gc->num_args; i++) bufs[i] = args_alloc(&gc->args[i]);
    void *call[RV_MAX_ARGS];
    memcpy(call, bufs, sizeof call);
    if (null_first) call[0] = NULL;
    const pt_status st = rv_args_step_run(&t, &gc->step, call, ws, wsb - short_by);
    if (!guard_intact(ws, wsb / (int64_t)sizeof(float))) check_args(0, gc, team, "wrote past the workspace");
    free(ws);
    return st;
}

/* Every output and in-place operand within GOLDEN_TOLERANCE * (1 + max|expected|) of the golden data. */
static int args_match_golden(const golden_args_case *gc, void *const *bufs)
{
    for (int i = 0; i < gc->num_args; i++) {
        if (gc->args[i].expected == NULL) continue;
        golden_case view = {0};
        view.expected = gc->args[i].expected;
        view.expected_len = gc->args[i].bytes / (int64_t)sizeof(float);
        if (!matches_golden(bufs[i], &view)) return 0;
    }
    return 1;
}

static int args_equal(const golden_args_case *gc, void *const *x, void *const *y)
{
    for (int i = 0; i < gc->num_args; i++)
        if (gc->args[i].expected && memcmp(x[i], y[i], (size_t)gc->args[i].bytes) != 0) return 0;
    return 1;
}

/* After a refused call every operand still holds its data (outputs: their guard words). */
static int args_untouched(const golden_args_case *gc, void *const *bufs)
{
    for (int i = 0; i < gc->num_args; i++) {
        const golden_arg *arg = &gc->args[i];
        if (arg->data ? memcmp(bufs[i], arg->data, (size_t)arg->bytes) != 0 : !is_guard(((float *)bufs[i])[0]))
            return 0;
    }
    return 1;
}

static void test_args_case(const golden_args_case *gc, const rv_op_entry *e, const int *teams, int num_teams)
{
    check_args(gc->num_args == e->num_args, gc, 0, "golden operand count disagrees with the C signature");
    if (gc->num_args != e->num_args) return;
    void *single[RV_MAX_ARGS], *team[RV_MAX_ARGS];
    char msg[96];
    pt_status st = run_args(gc, 1, single, 0, 0);
    snprintf(msg, sizeof msg, "status %s", pt_status_str(st));
    check_args(st == PT_OK, gc, 1, msg);
    check_args(args_guards_intact(gc, single), gc, 1, "wrote past an operand");
    check_args(st == PT_OK && args_match_golden(gc, single), gc, 1, "output differs from the golden data");
    /* refusals: a NULL first operand, and a workspace one float too small */
    st = run_args(gc, 1, team, 1, 0);
    check_args(st == PT_ERR_NULL_POINTER, gc, 1, "NULL operand not refused with PT_ERR_NULL_POINTER");
    check_args(args_untouched(gc, team), gc, 1, "a refused call wrote to an operand");
    args_free(gc, team);
    const pt_team single_core = pt_team_of(1);
    if (rv_args_workspace_bytes(&single_core, &gc->step) > 0) {
        st = run_args(gc, 1, team, 0, (int64_t)sizeof(float));
        check_args(st == PT_ERR_WORKSPACE_TOO_SMALL, gc, 1, "short workspace not refused");
        check_args(args_untouched(gc, team), gc, 1, "a refused call wrote to an operand");
        args_free(gc, team);
    }
    for (int t = 0; t < num_teams; t++) {
        if (teams[t] == 1) continue;
        st = run_args(gc, teams[t], team, 0, 0);
        snprintf(msg, sizeof msg, "status %s", pt_status_str(st));
        check_args(st == PT_OK, gc, teams[t], msg);
        check_args(args_guards_intact(gc, team), gc, teams[t], "wrote past an operand");
        check_args(args_equal(gc, single, team), gc, teams[t], "not bitwise identical to the 1-core result");
        args_free(gc, team);
    }
    args_free(gc, single);
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
    pt_team t = pt_team_of(team);
    pt_parallel(&t, probe_task, &probe);
    int ok = 1;
    for (int c = 0; c < PT_MAX_THREADS; c++)
        ok &= c < team ? probe.cores_seen[c] == 1 && probe.team_size[c] == team : probe.cores_seen[c] == 0;
    report(ok, "the team does not form exactly one core per id", team);
    if (strcmp(pt_parallel_backend(), "serial") == 0) {
        hook_calls = 0;
        t.serial_core_hook = log_hook;
        pt_parallel(&t, probe_task, &probe);
        ok = hook_calls == 2 * team;
        for (int i = 0; ok && i < hook_calls; i++) ok = hook_log[i] == i; /* core 0 begin, end, core 1 begin, ... */
        report(ok, "the serial core hook is not called around each core in order", team);
    }
}

/* The rv_ops row of a golden case (its op and step go into *step); a failure when the name is unknown or
 * the row takes its operands another way. */
static const rv_op_entry *op_of(const char *name, rv_kernel_step *step, rv_op_kind kind, int *cases_of)
{
    const rv_op_entry *e = rv_find_op(name);
    char msg[96];
    snprintf(msg, sizeof msg, "golden case of unknown op %s (or one of another kind)", name);
    report(e != NULL && e->kind == kind, msg, 0);
    if (e == NULL || e->kind != kind) return NULL;
    step->op = e->op;
    step->step = e->step;
    cases_of[e - rv_ops]++;
    return e;
}

int main(int argc, char **argv)
{
    int teams[MAX_TEAMS], num_teams = 0;
    for (int i = 1; i < argc && num_teams < MAX_TEAMS; i++) teams[num_teams++] = atoi(argv[i]);
    if (num_teams == 0) {
        const char *env = getenv("OMP_NUM_THREADS");
        teams[num_teams++] = env ? atoi(env) : 1;
    }
    printf("test_kernels: backend %s, %d ops, %d golden cases + %d INT8 / latent-code cases + %d activation, pooling, "
           "BatchNorm, loss and optimizer cases, %d matmul variants, teams", pt_parallel_backend(), rv_num_ops,
           GOLDEN_NUM_CASES, GOLDEN_NUM_TYPED_CASES, GOLDEN_NUM_ARGS_CASES, pt_matmul_num_variants());
    for (int t = 0; t < num_teams; t++) {
        if (teams[t] < 1 || teams[t] > PT_MAX_THREADS) {
            printf("\nbad team size %d\n", teams[t]);
            return 2;
        }
        printf(" %d", teams[t]);
    }
    printf("\n");
    for (int t = 0; t < num_teams; t++) test_runtime(teams[t]);
    int cases_of[MAX_OPS] = {0}; /* golden cases per row of rv_ops */
    if (rv_num_ops > MAX_OPS) {
        printf("more than %d ops in rv_ops\n", MAX_OPS);
        return 2;
    }
    for (int i = 0; i < GOLDEN_NUM_CASES; i++) {
        golden_case gc = golden_cases[i];
        const rv_op_entry *e = op_of(gc.name, &gc.step, RV_FLOAT, cases_of);
        if (e) test_case(&gc, teams, num_teams);
    }
    for (int i = 0; i < GOLDEN_NUM_TYPED_CASES; i++) {
        golden_typed_case gc = golden_typed_cases[i];
        const rv_op_entry *e = op_of(gc.name, &gc.step, RV_TYPED, cases_of);
        if (e) test_typed_case(&gc, teams, num_teams);
    }
    for (int i = 0; i < GOLDEN_NUM_ARGS_CASES; i++) {
        golden_args_case gc = golden_args_cases[i];
        const rv_op_entry *e = op_of(gc.name, &gc.step, RV_ARGS, cases_of);
        if (e) test_args_case(&gc, e, teams, num_teams);
    }
    for (int i = 0; i < rv_num_ops; i++) {
        char msg[96];
        snprintf(msg, sizeof msg, "op %s has no golden case", rv_ops[i].name);
        report(cases_of[i] > 0, msg, 0);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
