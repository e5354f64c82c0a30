/* Sanitizer fuzz driver: csrc/ linked directly, built with AddressSanitizer + UBSan (see the Makefile).
 *
 * Usage: fuzz_kernels [SEED [ROUNDS [RACE_SECONDS]]]
 *
 * Each round draws random shapes, strides and paddings, a random team (1..8 cores, any matmul variant or
 * the automatic one, any INT8 microkernel or the automatic one) and runs conv2d, depthwise, pointwise and
 * linear (forward, grad_input, grad_weight, sometimes accumulating), matmul and the INT8 conv / depthwise /
 * pointwise / linear layers. Every operand and workspace is its own heap block of exactly the queried size,
 * so a write past any of them is an ASan report. Each result is compared with naive loops in double (float
 * kernels: within the worst-case float summation error of their reduction; INT8: exactly). Then a few
 * deliberately bad arguments (bad team, one float too little workspace, NULL operands, bad requant
 * parameters, mismatched shapes) must be refused with the right status. Last, RACE_SECONDS of pthreads
 * calling kernels with their own teams while another thread keeps changing the process-wide defaults.
 * Ends with "N passed, M failed"; the exit status is non-zero on any failure.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "pulptrain.h"
#include "int8_gemm.h"

static int passed, failed;
static char current[256]; /* what the round is testing, for failure messages */

static void expect(int ok, const char *what)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (failed <= 30) printf("FAIL %s: %s\n", current, what);
}

/* ---- random numbers (xorshift64*, fixed seed) ---- */

static uint64_t rng_state;

static uint32_t next_u32(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static int64_t rand_int(int64_t lo, int64_t hi) { return lo + (int64_t)(next_u32() % (uint32_t)(hi - lo + 1)); }

/* ---- operands: one exact-size heap block each ---- */

static float *random_floats(int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)next_u32() / 2147483648.0f - 1.0f;
    return p;
}

static float *copy_floats(const float *src, int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

/* Exactly `n` floats (a zero-size request still gets a distinct block that no write may touch). */
static float *workspace_floats(int64_t n) { return malloc(n > 0 ? (size_t)n * sizeof(float) : 1); }

/* A float result against its double reference: the worst-case error of a float sum of `terms` products is
 * about terms * 2^-24 * sum|products|; allow twice that (plus the bias and accumulate additions). */
static int close_enough(const float *got, const double *ref, const double *abs_sum, int64_t n, int64_t terms)
{
    for (int64_t i = 0; i < n; i++) {
        const double tol = (double)(terms + 4) * 0x1p-23 * abs_sum[i] + 1e-30;
        if (!(fabs((double)got[i] - ref[i]) <= tol)) return 0;
    }
    return 1;
}

static pt_team random_team(void)
{
    int microkernels = 0, depthwise_tiers = 0;
    while (pt_int8_microkernel_name(microkernels) != NULL) microkernels++;
    while (pt_depthwise_tier_name(depthwise_tiers) != NULL) depthwise_tiers++;
    pt_team team = pt_team_of((int)rand_int(1, 8));
    team.matmul_variant = (int)rand_int(-1, pt_matmul_num_variants() - 1);
    team.int8_microkernel = (int)rand_int(-1, microkernels - 1);
    team.depthwise_tier = (int)rand_int(-1, depthwise_tiers - 1);
    return team;
}

static void describe_team(char *buf, size_t size, const pt_team *t)
{
    snprintf(buf, size, "team %d variant %s int8 %s depthwise %s", t->num_threads,
             t->matmul_variant < 0 ? "auto" : pt_matmul_variant_info(t->matmul_variant)->name,
             t->int8_microkernel < 0 ? "auto" : pt_int8_microkernel_name(t->int8_microkernel),
             t->depthwise_tier < 0 ? "auto" : pt_depthwise_tier_name(t->depthwise_tier));
}

/* ---- float convolution (dense when groups == 1, depthwise when groups == C) ---- */

typedef struct {
    pt_conv_geometry g;
    int depthwise;
} conv_case;

static int64_t x_len(const pt_conv_geometry *g) { return g->n * g->c_in * g->h_in * g->w_in; }
static int64_t y_len(const pt_conv_geometry *g) { return g->n * g->c_out * g->h_out * g->w_out; }
static int64_t cin_per_group(const conv_case *c) { return c->depthwise ? 1 : c->g.c_in; }
static int64_t w_len(const conv_case *c) { return c->g.c_out * cin_per_group(c) * c->g.kh * c->g.kw; }

/* Visits every (output element, input element, weight element) triple of the convolution. */
#define FOR_EACH_TAP(c, body)                                                                                  \
    do {                                                                                                        \
        const pt_conv_geometry *g_ = &(c)->g;                                                                   \
        const int64_t cpg_ = cin_per_group(c);                                                                  \
        for (int64_t n = 0; n < g_->n; n++)                                                                     \
            for (int64_t co = 0; co < g_->c_out; co++)                                                          \
                for (int64_t oh = 0; oh < g_->h_out; oh++)                                                      \
                    for (int64_t ow = 0; ow < g_->w_out; ow++)                                                  \
                        for (int64_t cg = 0; cg < cpg_; cg++)                                                   \
                            for (int64_t ky = 0; ky < g_->kh; ky++)                                             \
                                for (int64_t kx = 0; kx < g_->kw; kx++) {                                       \
                                    const int64_t ci = (c)->depthwise ? co : cg;                                \
                                    const int64_t ih = oh * g_->stride_h - g_->pad_h + ky;                      \
                                    const int64_t iw = ow * g_->stride_w - g_->pad_w + kx;                      \
                                    if (ih < 0 || ih >= g_->h_in || iw < 0 || iw >= g_->w_in) continue;         \
                                    const int64_t yi = ((n * g_->c_out + co) * g_->h_out + oh) * g_->w_out + ow; \
                                    const int64_t xi = ((n * g_->c_in + ci) * g_->h_in + ih) * g_->w_in + iw;   \
                                    const int64_t wi = ((co * cpg_ + cg) * g_->kh + ky) * g_->kw + kx;          \
                                    body;                                                                       \
                                }                                                                               \
    } while (0)

static int random_conv(conv_case *c, int depthwise)
{
    const int64_t c_in = rand_int(1, depthwise ? 40 : 14);
    const int64_t c_out = depthwise ? c_in : rand_int(1, 18);
    const int64_t kh = rand_int(1, 5), kw = rand_int(1, 5);
    c->depthwise = depthwise;
    return pt_conv_geometry_init(&c->g, rand_int(1, 3), c_in, rand_int(1, 16), rand_int(1, 16), c_out, kh, kw,
                                 rand_int(1, 3), rand_int(1, 3), rand_int(0, kh), rand_int(0, kw)) == PT_OK;
}

/* The three steps of one convolution against the double reference; pointwise == 1 runs the 1x1 kernels. */
static void check_conv(const pt_team *team, const conv_case *c, int pointwise)
{
    const pt_conv_geometry *g = &c->g;
    const int64_t xn = x_len(g), yn = y_len(g), wn = w_len(c), hw = g->h_in * g->w_in;
    const int64_t terms_fw = cin_per_group(c) * g->kh * g->kw;
    const int64_t terms_ig = g->c_out * g->kh * g->kw, terms_wg = g->n * g->h_out * g->w_out;
    float *x = random_floats(xn), *w = random_floats(wn), *bias = rand_int(0, 1) ? random_floats(g->c_out) : NULL;
    float *dy = random_floats(yn);
    double *ref = calloc((size_t)(xn > yn ? (xn > wn ? xn : wn) : (yn > wn ? yn : wn)), sizeof(double));
    double *abs_sum = calloc((size_t)(xn > yn ? (xn > wn ? xn : wn) : (yn > wn ? yn : wn)), sizeof(double));
    const int acc_ig = (int)rand_int(0, 1), acc_wg = (int)rand_int(0, 1);
    float *y = random_floats(yn), *dx = random_floats(xn), *dw = random_floats(wn);
    float *dx0 = copy_floats(dx, xn), *dw0 = copy_floats(dw, wn);
    int64_t wsf;
    float *ws;
    pt_status st;

    /* forward */
    for (int64_t i = 0; i < yn; i++) {
        const int64_t co = (i / (g->h_out * g->w_out)) % g->c_out;
        ref[i] = bias ? bias[co] : 0.0;
        abs_sum[i] = fabs(ref[i]);
    }
    FOR_EACH_TAP(c, { ref[yi] += (double)x[xi] * w[wi]; abs_sum[yi] += fabs((double)x[xi] * w[wi]); });
    if (pointwise) {
        wsf = pt_pointwise_conv2d_forward_workspace_floats(team, g->n, g->c_in, g->c_out, hw);
        ws = workspace_floats(wsf);
        st = pt_pointwise_conv2d_forward(team, g->n, g->c_in, g->c_out, hw, x, w, bias, y, ws, wsf);
    } else if (c->depthwise) {
        ws = workspace_floats(0);
        st = pt_depthwise_conv2d_forward(team, g, x, w, bias, y);
    } else {
        wsf = pt_conv2d_forward_workspace_floats(team, g);
        ws = workspace_floats(wsf);
        st = pt_conv2d_forward(team, g, x, w, bias, y, ws, wsf);
    }
    free(ws);
    expect(st == PT_OK && close_enough(y, ref, abs_sum, yn, terms_fw), "forward");

    /* grad_input */
    for (int64_t i = 0; i < xn; i++) {
        ref[i] = acc_ig ? dx0[i] : 0.0;
        abs_sum[i] = fabs(ref[i]);
    }
    FOR_EACH_TAP(c, { ref[xi] += (double)dy[yi] * w[wi]; abs_sum[xi] += fabs((double)dy[yi] * w[wi]); });
    if (pointwise) {
        wsf = pt_pointwise_conv2d_grad_input_workspace_floats(team, g->n, g->c_in, g->c_out, hw);
        ws = workspace_floats(wsf);
        st = pt_pointwise_conv2d_grad_input(team, g->n, g->c_in, g->c_out, hw, dy, w, dx, acc_ig, ws, wsf);
    } else if (c->depthwise) {
        ws = workspace_floats(0);
        st = pt_depthwise_conv2d_grad_input(team, g, dy, w, dx, acc_ig);
    } else {
        wsf = pt_conv2d_grad_input_workspace_floats(team, g);
        ws = workspace_floats(wsf);
        st = pt_conv2d_grad_input(team, g, dy, w, dx, acc_ig, ws, wsf);
    }
    free(ws);
    expect(st == PT_OK && close_enough(dx, ref, abs_sum, xn, terms_ig), "grad_input");

    /* grad_weight */
    for (int64_t i = 0; i < wn; i++) {
        ref[i] = acc_wg ? dw0[i] : 0.0;
        abs_sum[i] = fabs(ref[i]);
    }
    FOR_EACH_TAP(c, { ref[wi] += (double)dy[yi] * x[xi]; abs_sum[wi] += fabs((double)dy[yi] * x[xi]); });
    if (pointwise) {
        wsf = pt_pointwise_conv2d_grad_weight_workspace_floats(team, g->n, g->c_in, g->c_out, hw);
        ws = workspace_floats(wsf);
        st = pt_pointwise_conv2d_grad_weight(team, g->n, g->c_in, g->c_out, hw, dy, x, dw, acc_wg, ws, wsf);
    } else if (c->depthwise) {
        ws = workspace_floats(0);
        st = pt_depthwise_conv2d_grad_weight(team, g, dy, x, dw, acc_wg);
    } else {
        wsf = pt_conv2d_grad_weight_workspace_floats(team, g);
        ws = workspace_floats(wsf);
        st = pt_conv2d_grad_weight(team, g, dy, x, dw, acc_wg, ws, wsf);
    }
    free(ws);
    expect(st == PT_OK && close_enough(dw, ref, abs_sum, wn, terms_wg), "grad_weight");

    free(x); free(w); free(bias); free(dy); free(y); free(dx); free(dw); free(dx0); free(dw0);
    free(ref); free(abs_sum);
}

/* ---- linear and matmul: C = A . B with any strides, in double ---- */

static void ref_product(int64_t M, int64_t N, int64_t K, const float *a, int64_t a_rs, int64_t a_cs, const float *b,
                        int64_t b_rs, int64_t b_cs, const float *row_bias, double *ref, double *abs_sum)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = row_bias ? row_bias[j] : 0.0, s_abs = fabs(s);
            for (int64_t k = 0; k < K; k++) {
                const double p = (double)a[i * a_rs + k * a_cs] * b[k * b_rs + j * b_cs];
                s += p;
                s_abs += fabs(p);
            }
            ref[i * N + j] = s;
            abs_sum[i * N + j] = s_abs;
        }
}

static void check_linear(const pt_team *team)
{
    const int64_t n = rand_int(1, 40), in = rand_int(1, 300), out = rand_int(1, 100);
    float *x = random_floats(n * in), *w = random_floats(out * in), *bias = rand_int(0, 1) ? random_floats(out) : NULL;
    float *dy = random_floats(n * out), *y = random_floats(n * out), *dx = random_floats(n * in);
    float *dw = random_floats(out * in);
    const int64_t most = (n * in > out * in ? n * in : out * in) > n * out ? (n * in > out * in ? n * in : out * in)
                                                                           : n * out;
    double *ref = malloc((size_t)most * sizeof(double)), *abs_sum = malloc((size_t)most * sizeof(double));
    snprintf(current + strlen(current), sizeof current - strlen(current), " linear n %d in %d out %d", (int)n,
             (int)in, (int)out);
    int64_t wsf = pt_linear_forward_workspace_floats(team, n, in, out);
    float *ws = workspace_floats(wsf);
    pt_status st = pt_linear_forward(team, n, in, out, x, w, bias, y, ws, wsf);
    free(ws);
    ref_product(n, out, in, x, in, 1, w, 1, in, bias, ref, abs_sum);
    expect(st == PT_OK && close_enough(y, ref, abs_sum, n * out, in), "linear forward");
    wsf = pt_linear_grad_input_workspace_floats(team, n, in, out);
    ws = workspace_floats(wsf);
    st = pt_linear_grad_input(team, n, in, out, dy, w, dx, 0, ws, wsf);
    free(ws);
    ref_product(n, in, out, dy, out, 1, w, in, 1, NULL, ref, abs_sum);
    expect(st == PT_OK && close_enough(dx, ref, abs_sum, n * in, out), "linear grad_input");
    wsf = pt_linear_grad_weight_workspace_floats(team, n, in, out);
    ws = workspace_floats(wsf);
    st = pt_linear_grad_weight(team, n, in, out, dy, x, dw, 0, ws, wsf);
    free(ws);
    ref_product(out, in, n, dy, 1, out, x, in, 1, NULL, ref, abs_sum);
    expect(st == PT_OK && close_enough(dw, ref, abs_sum, out * in, n), "linear grad_weight");
    free(x); free(w); free(bias); free(dy); free(y); free(dx); free(dw); free(ref); free(abs_sum);
}

static void check_matmul(const pt_team *team)
{
    const int64_t M = rand_int(1, 150), N = rand_int(1, 150), K = rand_int(1, 300);
    float *a = random_floats(M * K), *b = random_floats(K * N), *c = random_floats(M * N);
    double *ref = malloc((size_t)(M * N) * sizeof(double)), *abs_sum = malloc((size_t)(M * N) * sizeof(double));
    snprintf(current + strlen(current), sizeof current - strlen(current), " matmul %dx%dx%d", (int)M, (int)N,
             (int)K);
    const int64_t wsf = pt_matmul_view_workspace_floats(team, team->matmul_variant, M, N, K);
    float *ws = workspace_floats(wsf);
    const pt_status st = pt_matmul(team, team->matmul_variant, M, N, K, a, b, c, 0, ws, wsf);
    free(ws);
    ref_product(M, N, K, a, K, 1, b, N, 1, NULL, ref, abs_sum);
    expect(st == PT_OK && close_enough(c, ref, abs_sum, M * N, K), "matmul");
    free(a); free(b); free(c); free(ref); free(abs_sum);
}

/* ---- INT8 layers: exact integer reference ---- */

typedef struct {
    int32_t *bias, *multiplier, *shift;
    pt_requant rq;
} requant_params;

static requant_params random_requant(int64_t channels)
{
    requant_params p;
    p.bias = malloc((size_t)channels * sizeof(int32_t));
    p.multiplier = malloc((size_t)channels * sizeof(int32_t));
    p.shift = malloc((size_t)channels * sizeof(int32_t));
    for (int64_t c = 0; c < channels; c++) {
        p.bias[c] = (int32_t)rand_int(-4096, 4096);
        p.multiplier[c] = (int32_t)rand_int(1 << 29, (1 << 30) - 1);
        p.shift[c] = (int32_t)rand_int(36, 44); /* spreads sums of a few thousand over the uint8 range */
    }
    const int32_t lo = (int32_t)rand_int(0, 20);
    p.rq = (pt_requant){rand_int(0, 3) ? p.bias : NULL, p.multiplier, p.shift, lo, (int32_t)rand_int(lo + 1, 255)};
    return p;
}

static void free_requant(requant_params *p)
{
    free(p->bias); free(p->multiplier); free(p->shift);
}

/* floor(acc * m / 2^s + 1/2) clipped: the formula of int8_requant.h, in plain int64 arithmetic. */
static uint8_t ref_requant(const pt_requant *rq, int64_t c, int64_t dot)
{
    const int64_t acc = dot + (rq->bias ? rq->bias[c] : 0);
    const int64_t p = acc * rq->multiplier[c];
    int64_t r = 0;
    if (p > 0) r = rq->shift[c] ? (p + ((int64_t)1 << (rq->shift[c] - 1))) >> rq->shift[c] : p;
    return (uint8_t)(r < rq->clip_min ? rq->clip_min : r > rq->clip_max ? rq->clip_max : r);
}

static uint8_t *random_codes(int64_t n)
{
    uint8_t *p = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = (uint8_t)next_u32();
    return p;
}

static int8_t *random_weights(int64_t n)
{
    int8_t *p = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = (int8_t)(next_u32() & 0xff);
    return p;
}

/* kind: 0 conv, 1 depthwise, 2 pointwise, 3 linear (pointwise and linear are 1x1 geometries). */
static void check_int8(const pt_team *team, int kind)
{
    conv_case c;
    if (kind <= 1) {
        if (!random_conv(&c, kind == 1)) return;
    } else {
        const int64_t hw = kind == 3 ? 1 : rand_int(1, 120);
        c.depthwise = 0;
        pt_conv_geometry_init(&c.g, rand_int(1, kind == 3 ? 40 : 3), rand_int(1, 150), hw, 1, rand_int(1, 60), 1, 1,
                              1, 1, 0, 0);
    }
    const pt_conv_geometry *g = &c.g;
    const int64_t xn = x_len(g), yn = y_len(g), wn = w_len(&c);
    static const char *const names[] = {"int8 conv", "int8 depthwise", "int8 pointwise", "int8 linear"};
    snprintf(current + strlen(current), sizeof current - strlen(current),
             " %s n %d c_in %d c_out %d %dx%d k %dx%d s %d,%d p %d,%d", names[kind], (int)g->n, (int)g->c_in,
             (int)g->c_out, (int)g->h_in, (int)g->w_in, (int)g->kh, (int)g->kw, (int)g->stride_h, (int)g->stride_w,
             (int)g->pad_h, (int)g->pad_w);
    uint8_t *x = random_codes(xn), *y = random_codes(yn), *ref = malloc((size_t)yn);
    int8_t *w = random_weights(wn);
    int64_t *dot = calloc((size_t)yn, sizeof(int64_t));
    requant_params rp = random_requant(g->c_out);
    FOR_EACH_TAP(&c, { dot[yi] += (int64_t)x[xi] * w[wi]; });
    for (int64_t i = 0; i < yn; i++) ref[i] = ref_requant(&rp.rq, (i / (g->h_out * g->w_out)) % g->c_out, dot[i]);
    int64_t wsb;
    pt_status st;
    void *ws;
    switch (kind) {
    case 0:
        wsb = pt_int8_conv2d_forward_workspace_bytes(team, g);
        ws = malloc(wsb > 0 ? (size_t)wsb : 1);
        st = pt_int8_conv2d_forward(team, g, x, w, &rp.rq, y, ws, wsb);
        break;
    case 1:
        wsb = pt_int8_depthwise_conv2d_forward_workspace_bytes(team, g);
        ws = malloc(wsb > 0 ? (size_t)wsb : 1);
        st = pt_int8_depthwise_conv2d_forward(team, g, x, w, &rp.rq, y, ws, wsb);
        break;
    case 2:
        wsb = pt_int8_pointwise_conv2d_forward_workspace_bytes(team, g->n, g->c_in, g->c_out, g->h_in * g->w_in);
        ws = malloc(wsb > 0 ? (size_t)wsb : 1);
        st = pt_int8_pointwise_conv2d_forward(team, g->n, g->c_in, g->c_out, g->h_in * g->w_in, x, w, &rp.rq, y, ws,
                                              wsb);
        break;
    default:
        wsb = pt_int8_linear_forward_workspace_bytes(team, g->n, g->c_in, g->c_out);
        ws = malloc(wsb > 0 ? (size_t)wsb : 1);
        st = pt_int8_linear_forward(team, g->n, g->c_in, g->c_out, x, w, &rp.rq, y, ws, wsb);
        break;
    }
    free(ws);
    expect(st == PT_OK && memcmp(y, ref, (size_t)yn) == 0, "output differs from the integer reference");
    free(x); free(y); free(ref); free(w); free(dot);
    free_requant(&rp);
}

/* ---- one fuzz round ---- */

static void fuzz_round(int round)
{
    const pt_team team = random_team();
    char team_text[96];
    describe_team(team_text, sizeof team_text, &team);
    for (int kind = 0; kind < 3; kind++) {
        conv_case c;
        if (kind == 2) {
            c.depthwise = 0;
            pt_conv_geometry_init(&c.g, rand_int(1, 3), rand_int(1, 60), rand_int(1, 12), rand_int(1, 12),
                                  rand_int(1, 60), 1, 1, 1, 1, 0, 0);
        } else if (!random_conv(&c, kind == 1)) {
            continue;
        }
        const pt_conv_geometry *g = &c.g;
        snprintf(current, sizeof current, "round %d %s %s n %d c_in %d c_out %d %dx%d k %dx%d s %d,%d p %d,%d",
                 round, team_text, kind == 0 ? "conv2d" : kind == 1 ? "depthwise" : "pointwise", (int)g->n,
                 (int)g->c_in, (int)g->c_out, (int)g->h_in, (int)g->w_in, (int)g->kh, (int)g->kw, (int)g->stride_h,
                 (int)g->stride_w, (int)g->pad_h, (int)g->pad_w);
        check_conv(&team, &c, kind == 2);
    }
    snprintf(current, sizeof current, "round %d %s", round, team_text);
    check_linear(&team);
    snprintf(current, sizeof current, "round %d %s", round, team_text);
    check_matmul(&team);
    for (int kind = 0; kind < 4; kind++) {
        snprintf(current, sizeof current, "round %d %s", round, team_text);
        check_int8(&team, kind);
    }
}

/* ---- deliberately bad arguments ---- */

static void check_refusals(void)
{
    pt_conv_geometry g;
    pt_conv_geometry_init(&g, 2, 5, 9, 7, 6, 3, 3, 1, 2, 1, 1);
    const conv_case c = {g, 0};
    float *x = random_floats(x_len(&g)), *w = random_floats(w_len(&c)), *y = random_floats(y_len(&g));
    const pt_team good = pt_team_of(3);
    pt_team bad = good;
    const int64_t wsf = pt_conv2d_forward_workspace_floats(&good, &g);
    float *ws = workspace_floats(wsf);
    snprintf(current, sizeof current, "bad arguments");

    expect(pt_conv2d_forward(NULL, &g, x, w, NULL, y, ws, wsf) == PT_ERR_NULL_POINTER, "NULL team accepted");
    bad.num_threads = 0;
    expect(pt_conv2d_forward(&bad, &g, x, w, NULL, y, ws, wsf) == PT_ERR_BAD_ARGUMENT, "team of 0 accepted");
    expect(pt_conv2d_forward_workspace_floats(&bad, &g) == 0, "workspace query of a team of 0 is not 0");
    bad.num_threads = PT_MAX_THREADS + 1;
    expect(pt_relu_forward(&bad, 4, x, y, PT_RELU_NO_CLIP) == PT_ERR_BAD_ARGUMENT, "team above the maximum accepted");
    bad = good;
    bad.matmul_variant = pt_matmul_num_variants();
    expect(pt_conv2d_forward(&bad, &g, x, w, NULL, y, ws, wsf) == PT_ERR_UNKNOWN_VARIANT, "unknown variant accepted");
    bad = good;
    bad.int8_microkernel = 99;
    expect(pt_linear_forward(&bad, 2, 3, 4, x, w, NULL, y, ws, wsf) == PT_ERR_UNKNOWN_VARIANT,
           "unknown INT8 microkernel accepted");
    bad = good;
    bad.depthwise_tier = 99;
    expect(pt_relu_forward(&bad, 4, x, y, PT_RELU_NO_CLIP) == PT_ERR_UNKNOWN_VARIANT, "unknown depthwise tier accepted");
    /* exactly one float short: refused before anything is written */
    expect(pt_conv2d_forward(&good, &g, x, w, NULL, y, ws, wsf - 1) == PT_ERR_WORKSPACE_TOO_SMALL,
           "short workspace accepted");
    expect(pt_conv2d_forward(&good, &g, NULL, w, NULL, y, ws, wsf) == PT_ERR_NULL_POINTER, "NULL x accepted");
    pt_conv_geometry dw_bad = g; /* depthwise needs c_out == c_in */
    expect(pt_depthwise_conv2d_forward(&good, &dw_bad, x, w, NULL, y) == PT_ERR_BAD_SHAPE,
           "depthwise with c_out != c_in accepted");
    expect(pt_matmul(&good, PT_MATMUL_AUTO, 0, 3, 3, x, w, y, 0, ws, wsf) == PT_ERR_BAD_SHAPE, "M = 0 accepted");
    expect(pt_conv_geometry_init(&dw_bad, 1, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0) != PT_OK, "kernel above the input accepted");

    requant_params rp = random_requant(g.c_out);
    uint8_t *xq = random_codes(x_len(&g)), *yq = random_codes(y_len(&g));
    int8_t *wq = random_weights(w_len(&c));
    const int64_t wsb = pt_int8_conv2d_forward_workspace_bytes(&good, &g);
    void *wsq = malloc((size_t)wsb);
    rp.shift[g.c_out - 1] = PT_INT8_MAX_SHIFT + 1;
    expect(pt_int8_conv2d_forward(&good, &g, xq, wq, &rp.rq, yq, wsq, wsb) == PT_ERR_BAD_ARGUMENT,
           "shift above PT_INT8_MAX_SHIFT accepted");
    rp.shift[g.c_out - 1] = 3;
    expect(pt_int8_conv2d_forward(&good, &g, xq, wq, &rp.rq, yq, wsq, wsb - 1) == PT_ERR_WORKSPACE_TOO_SMALL,
           "short INT8 workspace accepted");
    free(wsq); free(xq); free(yq); free(wq);
    free_requant(&rp);
    free(x); free(w); free(y); free(ws);
}

/* ---- pthreads: kernels on their own teams while the defaults keep changing ---- */

typedef struct {
    int id;
    volatile int *stop;
    int calls, mismatches;
} race_worker;

static const pt_conv_geometry *race_geometry(void)
{
    static pt_conv_geometry g;
    static int ready;
    if (!ready) pt_conv_geometry_init(&g, 1, 16, 24, 20, 24, 3, 3, 1, 1, 1, 1), ready = 1;
    return &g;
}

static float race_x[16 * 24 * 20], race_w[24 * 16 * 9], race_expected[24 * 24 * 20];

static void *race_caller(void *arg)
{
    race_worker *r = (race_worker *)arg;
    const pt_conv_geometry *g = race_geometry();
    float *y = malloc(sizeof race_expected);
    while (!*r->stop) {
        pt_team team = pt_team_of(r->id % 2 ? 8 : 1 + r->calls % 3);
        team.matmul_variant = PT_MATMUL_AUTO;
        const int64_t wsf = pt_conv2d_forward_workspace_floats(&team, g);
        float *ws = workspace_floats(wsf);
        const pt_status st = pt_conv2d_forward(&team, g, race_x, race_w, NULL, y, ws, wsf);
        free(ws);
        r->mismatches += st != PT_OK || memcmp(y, race_expected, sizeof race_expected) != 0;
        r->calls++;
    }
    free(y);
    return NULL;
}

static void *race_flipper(void *arg)
{
    volatile int *stop = (volatile int *)arg;
    for (int i = 0; !*stop; i++) {
        pt_set_num_threads(i % 2 ? 8 : 1);
        pt_matmul_set_preferred(i % 3 == 0 ? PT_MATMUL_AUTO : i % pt_matmul_num_variants());
        pt_int8_set_microkernel(i % 2 ? "auto" : "portable-4x2");
    }
    return NULL;
}

static void race(double seconds)
{
    if (seconds <= 0) return;
    const pt_conv_geometry *g = race_geometry();
    for (size_t i = 0; i < sizeof race_x / sizeof race_x[0]; i++) race_x[i] = (float)next_u32() / 4294967296.0f;
    for (size_t i = 0; i < sizeof race_w / sizeof race_w[0]; i++) race_w[i] = (float)next_u32() / 4294967296.0f;
    const pt_team one = pt_team_of(1);
    const int64_t wsf = pt_conv2d_forward_workspace_floats(&one, g);
    float *ws = workspace_floats(wsf);
    pt_conv2d_forward(&one, g, race_x, race_w, NULL, race_expected, ws, wsf);
    free(ws);
    volatile int stop = 0;
    race_worker workers[2] = {{0, &stop, 0, 0}, {1, &stop, 0, 0}};
    pthread_t threads[3];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, race_caller, &workers[i]);
    pthread_create(&threads[2], NULL, race_flipper, (void *)&stop);
    const struct timespec pause = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&pause, NULL);
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    snprintf(current, sizeof current, "pthread race");
    for (int i = 0; i < 2; i++) {
        expect(workers[i].calls > 0 && workers[i].mismatches == 0, "a call on its own team was disturbed");
        printf("race thread %d: %d calls, %d mismatches\n", i, workers[i].calls, workers[i].mismatches);
    }
    pt_set_num_threads(1);
    pt_matmul_set_preferred(PT_MATMUL_AUTO);
    pt_int8_set_microkernel("auto");
}

int main(int argc, char **argv)
{
    const uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 20261130;
    const int rounds = argc > 2 ? atoi(argv[2]) : 120;
    const double race_seconds = argc > 3 ? atof(argv[3]) : 2.0;
    rng_state = seed ? seed : 1;
    printf("fuzz_kernels: seed %llu, %d rounds, %d matmul variants, backend %s\n", (unsigned long long)seed,
           rounds, pt_matmul_num_variants(), pt_parallel_backend());
    for (int r = 0; r < rounds; r++) fuzz_round(r);
    check_refusals();
    race(race_seconds);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
