#include <string.h>
#include "arch.h"
#include "int8.h"
#include "parallel.h"

/* This file compiles once as itself (the portable worker and the API) and once more per x86 ISA level from
 * csrc/arch/x86/int8_depthwise_conv2d_<level>.c, under that level's target flags with PT_INT8_DW_LEVEL set:
 * the same integer loops then vectorise to its width. The API runs the worker of its team's ISA level (isa.h);
 * the integers are the same at every level. */
#ifndef PT_INT8_DW_LEVEL
#define PT_INT8_DW_LEVEL generic
#define PT_INT8_DW_API 1
#else
#define PT_INT8_DW_API 0
#endif
#define DW_CAT2(a, b) a##b
#define DW_CAT(a, b) DW_CAT2(a, b)
#define DW_WORKER(level) DW_CAT(pt_int8_depthwise_worker_, level) /* a level's worker, for the API */

#define PT_DW_MAX_STRIDE 64 /* column strides above this are refused (a stack array per phase) */

static inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
/* ceil(a / b) for b > 0 and any sign of a (C division truncates toward zero) */
static inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); }

/* Per-core scratch: the zero-padded plane as int16, split by column phase (stride_w planes; plane q holds
 * the padded columns j with j % stride_w == q, at column j / stride_w), plus kw - 1 trailing zeros read
 * past the end by the flattened stride-1 loop, and one int32 sum per (output row, phase column). */
typedef struct {
    int64_t hp, wq, plane_elems, acc_elems, per_core_bytes;
} dw_plan;

#if PT_INT8_DW_API && PT_ARCH_X86
#include "int8_depthwise_x86.h"
#include "int8_gemm.h"

/* The x86 worker for a team (the one of its INT8 microkernel family, AVX2 or AVX512-VNNI) with t's layout
 * filled, or NULL where the portable worker runs (the portable family, or a shape the x86 kernels leave). */
static pt_task_fn x86_worker(const pt_team *team, const pt_conv_geometry *g, pt_int8_dw_x86_task *t)
{
    const int family = pt_int8_team_microkernel(team);
    if (family == PT_INT8_MK_PORTABLE || !pt_int8_dw_x86_plan(g, t)) return NULL;
    return family == PT_INT8_MK_VNNI ? pt_int8_dw_x86_worker_avx512vnni : pt_int8_dw_x86_worker_avx2;
}
#endif

#if PT_INT8_DW_API
static dw_plan make_plan(const pt_conv_geometry *g)
{
    dw_plan p;
    p.hp = g->h_in + 2 * g->pad_h;
    p.wq = (g->w_in + 2 * g->pad_w + g->stride_w - 1) / g->stride_w;
    p.plane_elems = round_up(g->stride_w * p.hp * p.wq + g->kw, 32);
    p.acc_elems = round_up(g->h_out * p.wq, 16);
    p.per_core_bytes = p.plane_elems * 2 + p.acc_elems * 4;
    return p;
}

int64_t pt_int8_depthwise_conv2d_forward_workspace_bytes(const pt_team *team, const pt_conv_geometry *g)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (g == NULL) return 0;
#if PT_ARCH_X86
    pt_int8_dw_x86_task t;
    if (x86_worker(team, g, &t)) return t.per_core_bytes * team->num_threads;
#endif
    return make_plan(g).per_core_bytes * team->num_threads;
}
#endif

typedef struct {
    const pt_conv_geometry *g;
    dw_plan plan;
    const uint8_t *x;
    const int8_t *w;
    const pt_requant *rq;
    uint8_t *y;
    uint8_t *workspace;
} dw_task;

/* One (image, channel) plane per unit: pad it into the int16 phase planes, then add each kernel tap times
 * the shifted plane into acc[oh * wq + ow]. Tap (ky, kx) reads phase kx % sw from column kx / sw on, so
 * every inner loop is contiguous. With stride 1 the shift is one offset over the flattened plane, a single
 * long loop (the columns ow >= W_out computed on the way are ignored); otherwise it runs row by row. */
/* acc[oh * wq + ow] = sum over the taps of w * (padded input), any kernel: tap by tap over the plane. Tap
 * (ky, kx) reads phase kx % sw from column kx / sw on, so every inner loop is contiguous. With stride 1 the
 * shift is one offset over the flattened plane, a single long loop (the columns ow >= W_out computed on
 * the way are ignored); otherwise it runs row by row. */
static void taps_generic(const int16_t *xp, const int8_t *w, const pt_conv_geometry *g, int32_t phase_elems,
                         int32_t wq, int32_t *acc)
{
    const int32_t Ho = (int32_t)g->h_out, Wo = (int32_t)g->w_out, kh = (int32_t)g->kh, kw = (int32_t)g->kw;
    const int32_t sh = (int32_t)g->stride_h, sw = (int32_t)g->stride_w, span = Ho * wq;
    for (int32_t i = 0; i < span; i++) acc[i] = 0;
    for (int32_t ky = 0; ky < kh; ky++) {
        for (int32_t kx = 0; kx < kw; kx++) {
            const int32_t wv = w[ky * kw + kx];
            const int16_t *phase = xp + (kx % sw) * phase_elems + kx / sw;
            if (sh == 1 && sw == 1) {
                const int16_t *src = phase + ky * wq;
                for (int32_t i = 0; i < span; i++) acc[i] += wv * src[i];
            } else {
                for (int32_t oh = 0; oh < Ho; oh++) {
                    const int16_t *src = phase + (oh * sh + ky) * wq;
                    int32_t *row = acc + oh * wq;
                    for (int32_t ow = 0; ow < Wo; ow++) row[ow] += wv * src[ow];
                }
            }
        }
    }
}

/* The same for a 3x3 kernel in one pass: nine weights in registers, each sum written once (tap_offset[t]:
 * where tap t = 3 ky + kx reads for output (0, 0)). Stride 1 runs over the flattened plane as above. */
static void taps_3x3(const int16_t *xp, const int8_t *w, const int32_t *tap_offset, int32_t Ho, int32_t Wo,
                     int32_t wq, int32_t sh, int32_t sw, int32_t *restrict acc)
{
    const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8];
    const int flat = sh == 1 && sw == 1;
    const int32_t rows = flat ? 1 : Ho, n = flat ? Ho * wq : Wo;
    for (int32_t oh = 0; oh < rows; oh++) {
        const int16_t *restrict base = xp + oh * sh * wq;
        const int16_t *restrict s0 = base + tap_offset[0], *restrict s1 = base + tap_offset[1];
        const int16_t *restrict s2 = base + tap_offset[2], *restrict s3 = base + tap_offset[3];
        const int16_t *restrict s4 = base + tap_offset[4], *restrict s5 = base + tap_offset[5];
        const int16_t *restrict s6 = base + tap_offset[6], *restrict s7 = base + tap_offset[7];
        const int16_t *restrict s8 = base + tap_offset[8];
        int32_t *restrict row = acc + oh * wq;
        for (int32_t i = 0; i < n; i++)
            row[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i] + w4 * s4[i] + w5 * s5[i] + w6 * s6[i] +
                     w7 * s7[i] + w8 * s8[i];
    }
}

static void forward_worker(void *arg)
{
    const dw_task *t = (const dw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const dw_plan *p = &t->plan;
    const int64_t C = g->c_in, H = g->h_in, W = g->w_in, Ho = g->h_out, Wo = g->w_out, wq = p->wq;
    const int64_t sh = g->stride_h, sw = g->stride_w, kh = g->kh, kw = g->kw, phase_elems = p->hp * wq;
    int16_t *xp = (int16_t *)(t->workspace + pt_core_id() * p->per_core_bytes);
    int32_t *acc = (int32_t *)(xp + p->plane_elems);
    memset(xp, 0, (size_t)(p->plane_elems * 2)); /* the padding stays zero: only the interior is rewritten */
    /* 32-bit copies of the sizes (checked to fit) and the valid column range of each phase, which does not
     * depend on the row: rv32 does 64-bit multiplications and divisions in software. */
    const int32_t H32 = (int32_t)H, W32 = (int32_t)W, sw32 = (int32_t)sw, pw32 = (int32_t)g->pad_w;
    const int32_t pad_h32 = (int32_t)g->pad_h, wq32 = (int32_t)wq, phase_elems32 = (int32_t)phase_elems;
    int32_t phase_first[PT_DW_MAX_STRIDE], phase_count[PT_DW_MAX_STRIDE];
    for (int64_t q = 0; q < sw; q++) {
        phase_first[q] = (int32_t)ceil_div(g->pad_w - q, sw);
        phase_count[q] = (int32_t)(ceil_div(W + g->pad_w - q, sw) - phase_first[q]);
    }
    const int unrolled_3x3 = kh == 3 && kw == 3;
    int32_t tap_offset[9];
    for (int32_t tap = 0; tap < 9; tap++) {
        const int32_t ky = tap / 3, kx = tap % 3;
        tap_offset[tap] = (kx % sw32) * phase_elems32 + kx / sw32 + ky * wq32;
    }
    const int64_t out_plane = Ho * Wo;
    int64_t u0, u1;
    pt_chunk(g->n * C, 1, &u0, &u1);
    int64_t c = u0 % C;
    for (int64_t u = u0; u < u1; u++, c = c + 1 == C ? 0 : c + 1) {
        const uint8_t *x = t->x + u * H * W;
        const int8_t *w = t->w + c * kh * kw;
        for (int32_t q = 0; q < sw32; q++) { /* phase q: padded columns jj * sw + q, input iw = that - pad_w */
            const int32_t first = phase_first[q], count = phase_count[q];
            const uint8_t *src = x + first * sw32 + q - pw32;
            int16_t *out = xp + pad_h32 * wq32 + q * phase_elems32 + first;
            for (int32_t ih = 0; ih < H32; ih++, src += W32, out += wq32)
                for (int32_t jj = 0; jj < count; jj++) out[jj] = src[jj * sw32];
        }
        if (unrolled_3x3)
            taps_3x3(xp, w, tap_offset, Ho, Wo, wq32, (int32_t)sh, (int32_t)sw, acc);
        else
            taps_generic(xp, w, g, phase_elems32, wq32, acc);
        /* requantization of channel c, its parameters hoisted (y, a uint8 pointer, may alias them) */
        const int64_t bias = t->rq->bias ? t->rq->bias[c] : 0, m = t->rq->multiplier[c];
        const int s = t->rq->shift[c];
        const uint64_t half = s ? (uint64_t)1 << (s - 1) : 0;
        const int32_t lo = t->rq->clip_min, hi = t->rq->clip_max;
        uint8_t *y = t->y + u * out_plane;
        const int32_t *row = acc;
        for (int32_t oh = 0; oh < Ho; oh++, row += wq32, y += Wo)
            for (int32_t ow = 0; ow < Wo; ow++)
                y[ow] = pt_requant_one(((int64_t)row[ow] + bias) * m, half, s, lo, hi);
    }
}

#if !PT_INT8_DW_API
const pt_task_fn DW_WORKER(PT_INT8_DW_LEVEL) = forward_worker; /* for the API of the generic build */
#else
#if PT_ARCH_X86
extern const pt_task_fn pt_int8_depthwise_worker_avx2, pt_int8_depthwise_worker_avx512;
#endif

/* The worker of a team's ISA level. */
static pt_task_fn level_worker(const pt_team *team)
{
    switch (pt_isa_resolve(team->isa_level)) {
#if PT_ARCH_X86
    case PT_ISA_AVX512: return pt_int8_depthwise_worker_avx512;
    case PT_ISA_AVX2: return pt_int8_depthwise_worker_avx2;
#endif
    default: return forward_worker;
    }
}

pt_status pt_int8_depthwise_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const uint8_t *x,
                                           const int8_t *w, const pt_requant *rq, uint8_t *y, void *workspace,
                                           int64_t workspace_bytes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (g == NULL || x == NULL || w == NULL || y == NULL || workspace == NULL) return PT_ERR_NULL_POINTER;
    if (g->c_out != g->c_in) return PT_ERR_BAD_SHAPE;
    if (g->kh * g->kw > PT_INT8_MAX_K) return PT_ERR_BAD_SHAPE;
    if (g->stride_w > PT_DW_MAX_STRIDE) return PT_ERR_BAD_SHAPE;
    {
        const dw_plan p = make_plan(g); /* the worker's in-plane indices are 32-bit */
        if (p.plane_elems > INT32_MAX || g->h_in * g->w_in > INT32_MAX) return PT_ERR_BAD_SHAPE;
    }
    pt_status st = pt_requant_check(rq, g->c_out);
    if (st != PT_OK) return st;
#if PT_ARCH_X86
    {
        pt_int8_dw_x86_task xt;
        const pt_task_fn worker = x86_worker(team, g, &xt);
        if (worker) {
            if (workspace_bytes < xt.per_core_bytes * team->num_threads) return PT_ERR_WORKSPACE_TOO_SMALL;
            xt.g = g, xt.x = x, xt.w = w, xt.rq = rq, xt.y = y, xt.workspace = (uint8_t *)workspace;
            pt_parallel(team, worker, &xt);
            return PT_OK;
        }
    }
#endif
    dw_task t = {g, make_plan(g), x, w, rq, y, (uint8_t *)workspace};
    if (workspace_bytes < t.plan.per_core_bytes * team->num_threads) return PT_ERR_WORKSPACE_TOO_SMALL;
    pt_parallel(team, level_worker(team), &t);
    return PT_OK;
}
#endif
