#include <string.h>
#include "int8_gemm.h"
#include "int_math.h"
#include "parallel.h"
#include "isa.h"

#include "int8_gemm_x86.h"

#define TARGET_UNITS 16        /* enough independent units to keep an 8-core team busy at N = 1 */
#define PANEL_BYTES 65536      /* bounds one core's activation panel (int16), so it stays in L2 */
#define MAX_PANEL_PIXELS 256

/* The microkernels, by internal id (the PT_INT8_MK_* order). */
enum {
    MK_PORTABLE = PT_INT8_MK_PORTABLE,
    MK_AVX2 = PT_INT8_MK_AVX2,
    MK_AVXVNNI = PT_INT8_MK_AVXVNNI,
    MK_VNNI = PT_INT8_MK_VNNI
};
static const char *const microkernel_names[] = {"portable-4x2", "avx2-4x16", "avxvnni-6x16", "avx512vnni-8x32"};
#define NUM_MICROKERNELS ((int)(sizeof(microkernel_names) / sizeof(microkernel_names[0])))
/* the default of pt_team_default() only: kernels use their team's choice */
static int default_microkernel = PT_INT8_MICROKERNEL_AUTO;

/* Whether this CPU can run microkernel `id` (AVX-VNNI and AVX512-VNNI come apart: Ice Lake and Zen 4 have only
 * the second, Alder Lake only the first). */
static int runs_here(int id)
{
#if PT_ARCH_X86
    const unsigned f = pt_isa_features();
    const int level = pt_isa_detected();
    switch (id) {
    case MK_AVX2: return level >= PT_ISA_AVX2;
    case MK_AVXVNNI: return level >= PT_ISA_AVX2 && (f & PT_CPU_AVXVNNI);
    case MK_VNNI: return level >= PT_ISA_AVX512 && (f & PT_CPU_AVX512VNNI);
    default: break;
    }
#endif
    return id == MK_PORTABLE;
}

/* The internal id of entry `index` of the list of runnable microkernels (pt_int8_microkernel_name), or -1. */
static int runnable_id(int index)
{
    for (int id = 0; id < NUM_MICROKERNELS && index >= 0; id++)
        if (runs_here(id) && index-- == 0) return id;
    return -1;
}

/* The best microkernel of an ISA level (isa.h) on this CPU. */
static int level_microkernel(int level)
{
#if PT_ARCH_X86
    if (level >= PT_ISA_AVX512 && runs_here(MK_VNNI)) return MK_VNNI;
    if (level >= PT_ISA_AVX2 && runs_here(MK_AVXVNNI)) return MK_AVXVNNI;
    if (level >= PT_ISA_AVX2) return MK_AVX2;
#endif
    (void)level;
    return MK_PORTABLE;
}

/* The microkernel (internal id) a choice stands for (checked: AUTO or a valid index), with the team's ISA
 * level. */
static int resolve_microkernel(int choice, int isa_level)
{
    return choice == PT_INT8_MICROKERNEL_AUTO ? level_microkernel(pt_isa_resolve(isa_level)) : runnable_id(choice);
}

#if PT_ARCH_X86 /* only the x86 dispatch of the depthwise kernel asks (elsewhere it is always the portable one) */
int pt_int8_team_microkernel(const pt_team *team)
{
    return resolve_microkernel(team->int8_microkernel, team->isa_level);
}
#endif

pt_status pt_int8_set_microkernel(const char *name)
{
    if (name == NULL) return PT_ERR_NULL_POINTER;
    if (strcmp(name, "auto") == 0) {
        default_microkernel = PT_INT8_MICROKERNEL_AUTO;
        return PT_OK;
    }
    for (int i = 0; pt_int8_microkernel_name(i) != NULL; i++)
        if (strcmp(name, pt_int8_microkernel_name(i)) == 0) {
            default_microkernel = i;
            return PT_OK;
        }
    return PT_ERR_UNKNOWN_VARIANT;
}

const char *pt_int8_get_microkernel(void)
{
    return microkernel_names[resolve_microkernel(default_microkernel, pt_isa_get_default())];
}

int pt_int8_get_default_microkernel(void) { return default_microkernel; }

const char *pt_int8_microkernel_name(int index)
{
    const int id = runnable_id(index);
    return id < 0 ? NULL : microkernel_names[id];
}

/* ---- portable microkernels: int32 dot products of int8 weight rows (stride ldw) with int16 pixel rows
 * (stride ldx, zero beyond K) ---------------------------------------------------------------------------- */

static void dot_4x2(int64_t K, const int8_t *w, int64_t ldw, const int16_t *x, int64_t ldx, int32_t acc[8])
{
    const int8_t *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    const int16_t *x0 = x, *x1 = x + ldx;
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0, a20 = 0, a21 = 0, a30 = 0, a31 = 0;
    for (int64_t k = 0; k < K; k++) {
        const int32_t u = x0[k], v = x1[k];
        a00 += w0[k] * u; a01 += w0[k] * v;
        a10 += w1[k] * u; a11 += w1[k] * v;
        a20 += w2[k] * u; a21 += w2[k] * v;
        a30 += w3[k] * u; a31 += w3[k] * v;
    }
    acc[0] = a00; acc[1] = a01; acc[2] = a10; acc[3] = a11;
    acc[4] = a20; acc[5] = a21; acc[6] = a30; acc[7] = a31;
}

static void dot_4x1(int64_t K, const int8_t *w, int64_t ldw, const int16_t *x, int32_t acc[4])
{
    const int8_t *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int64_t k = 0; k < K; k++) {
        const int32_t u = x[k];
        a0 += w0[k] * u; a1 += w1[k] * u; a2 += w2[k] * u; a3 += w3[k] * u;
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

static int32_t dot_1x1(int64_t K, const int8_t *w, const int16_t *x)
{
    int32_t a = 0;
    for (int64_t k = 0; k < K; k++) a += w[k] * (int32_t)x[k];
    return a;
}

/* Output channels [c0, c1) x panel pixels [0, np) of one image; y points at (channel 0, panel pixel 0). */
static void portable_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const int16_t *panel,
                           int64_t ldx, int64_t np, uint8_t *y)
{
    const int64_t K = pr->K, cs = pr->y_channel_stride, ps = pr->y_pixel_stride;
    const pt_requant *rq = pr->rq;
    int64_t c = c0;
    for (; c + 4 <= c1; c += 4) {
        const int8_t *w = pr->w + c * K;
        int64_t p = 0;
        for (; p + 2 <= np; p += 2) {
            int32_t acc[8];
            dot_4x2(K, w, K, panel + p * ldx, ldx, acc);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 2; j++)
                    y[(c + i) * cs + (p + j) * ps] = pt_requantize(rq, c + i, acc[2 * i + j]);
        }
        if (p < np) {
            int32_t acc[4];
            dot_4x1(K, w, K, panel + p * ldx, acc);
            for (int i = 0; i < 4; i++) y[(c + i) * cs + p * ps] = pt_requantize(rq, c + i, acc[i]);
        }
    }
    for (; c < c1; c++)
        for (int64_t p = 0; p < np; p++)
            y[c * cs + p * ps] = pt_requantize(rq, c, dot_1x1(K, pr->w + c * K, panel + p * ldx));
}

/* Packed weights: for each block of 4 output channels and each k pair, 4 int32 words, word i holding
 * (w[c+i][2kp], w[c+i][2kp+1]) as two int16 (zero beyond C_out or K). */
static inline int32_t weight_pair(int32_t lo, int32_t hi)
{
    return (int32_t)((uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16));
}


/* Packs the weight blocks [b0, b1) for the x86 microkernels (only they use packed weights: the CPU has AVX2). */
static void pack_weights(const pt_int8_gemm_problem *pr, int64_t kpairs, int64_t b0, int64_t b1, int32_t *wp)
{
    const int64_t K = pr->K, full_pairs = K / 2;
    for (int64_t b = b0; b < b1; b++) {
        int32_t *dst = wp + b * kpairs * 4;
        int64_t kp0 = 0; /* pairs packed by the AVX2 path */
#if PT_ARCH_X86
        if (4 * b + 4 <= pr->c_out) {
            kp0 = full_pairs / 8 * 8;
            pt_int8_pack_rows_avx2(pr->w + 4 * b * K, K, kp0 / 8, dst);
        }
#endif
        for (int64_t i = 0; i < 4; i++) {
            const int64_t c = 4 * b + i;
            if (c >= pr->c_out) {
                for (int64_t kp = 0; kp < kpairs; kp++) dst[kp * 4 + i] = 0;
                continue;
            }
            const int8_t *row = pr->w + c * K;
            for (int64_t kp = kp0; kp < full_pairs; kp++) dst[kp * 4 + i] = weight_pair(row[2 * kp], row[2 * kp + 1]);
            if (K & 1) dst[full_pairs * 4 + i] = weight_pair(row[K - 1], 0);
        }
    }
}


/* ---- plan and parallel driver ------------------------------------------------------------------------ */

typedef struct {
    int microkernel, simd; /* simd: an x86 microkernel (k-pair-major panel, packed weights) */
    int64_t kpairs, panel_pixels, padded_pixels, panels_per_image, channel_block, channel_blocks;
    int64_t weight_bytes, per_core_bytes;
#if PT_ARCH_X86
    int64_t quad_bytes; /* the VNNI kernels' uint8 k-quad copy of the panel (they read the weights unpacked) */
#endif
} gemm_plan;

#if PT_ARCH_X86
/* The VNNI kernels: a uint8 k-quad copy of the panel, the weights read unpacked. */
static int reads_quads(int microkernel) { return microkernel == MK_VNNI || microkernel == MK_AVXVNNI; }
#endif

static gemm_plan make_plan(const pt_team *team, int64_t images, int64_t pixels, int64_t K, int64_t c_out)
{
    gemm_plan p;
    p.microkernel = resolve_microkernel(team->int8_microkernel, team->isa_level);
    p.simd = p.microkernel != MK_PORTABLE;
    p.kpairs = cdiv(K, 2);
    const int64_t granule = p.microkernel == MK_VNNI      ? PT_INT8_VNNI_PIXELS
                            : p.microkernel == MK_AVXVNNI ? PT_INT8_AVXVNNI_PIXELS
                            : p.simd                      ? PT_INT8_AVX2_PIXELS
                                                          : 2;
    int64_t pp = max64(granule, min64(MAX_PANEL_PIXELS, PANEL_BYTES / (4 * p.kpairs)) / granule * granule);
    p.panel_pixels = min64(pixels, pp);
    p.padded_pixels = p.simd ? cdiv(p.panel_pixels, granule) * granule : p.panel_pixels;
    p.panels_per_image = cdiv(pixels, p.panel_pixels);
    const int64_t want = max64(1, min64(cdiv(c_out, 4), cdiv(TARGET_UNITS, images * p.panels_per_image)));
    p.channel_block = cdiv(cdiv(c_out, want), 4) * 4;
    p.channel_blocks = cdiv(c_out, p.channel_block);
    p.weight_bytes = p.simd ? cdiv(cdiv(c_out, 4) * p.kpairs * 16, 64) * 64 : 0;
    p.per_core_bytes = p.weight_bytes + cdiv(p.padded_pixels * p.kpairs * 4, 64) * 64;
#if PT_ARCH_X86
    p.quad_bytes = 0;
    if (reads_quads(p.microkernel)) {
        p.per_core_bytes -= p.weight_bytes;
        p.weight_bytes = 0;
        p.quad_bytes = cdiv(p.padded_pixels * cdiv(K, 4) * 4, 64) * 64;
        p.per_core_bytes += p.quad_bytes;
    }
#endif
    return p;
}

int64_t pt_int8_gemm_workspace_bytes(const pt_team *team, int64_t images, int64_t pixels, int64_t K, int64_t c_out)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (images < 1 || pixels < 1 || K < 1 || c_out < 1) return 0;
    const gemm_plan p = make_plan(team, images, pixels, K, c_out);
    return p.per_core_bytes * team->num_threads;
}

typedef struct {
    const pt_int8_gemm_problem *pr;
    gemm_plan plan;
    uint8_t *workspace;
} gemm_task;

static void gemm_worker(void *arg)
{
    const gemm_task *t = (const gemm_task *)arg;
    const pt_int8_gemm_problem *pr = t->pr;
    const gemm_plan *p = &t->plan;
    uint8_t *mine = t->workspace + pt_core_id() * p->per_core_bytes;
    int32_t *wpack = (int32_t *)mine;
    int16_t *panel = (int16_t *)(mine + p->weight_bytes);
#if PT_ARCH_X86
    uint8_t *quads = mine + p->per_core_bytes - p->quad_bytes;
#endif
    /* element strides of the panel: k-pair-major for the simd kernel, pixel-major for the portable one */
    const int64_t pixel_stride = p->simd ? 2 : 2 * p->kpairs, kpair_stride = p->simd ? 2 * p->padded_pixels : 2;
    int64_t u0, u1, built = -1;
    pt_chunk(pr->images * p->panels_per_image * p->channel_blocks, 1, &u0, &u1);
    /* Each core packs the channel blocks its units use into its own copy, so the fork needs no barrier:
     * the first channel_blocks units of the range meet every block the core will need. */
#if PT_ARCH_X86
    if (p->simd && !reads_quads(p->microkernel))
#else
    if (p->simd)
#endif
        for (int64_t u = u0; u < u1 && u < u0 + p->channel_blocks; u++) {
            const int64_t b0 = (u % p->channel_blocks) * p->channel_block / 4;
            const int64_t b1 = min64(cdiv(pr->c_out, 4), b0 + p->channel_block / 4);
            pack_weights(pr, p->kpairs, b0, b1, wpack);
        }
    for (int64_t u = u0; u < u1; u++) {
        const int64_t image_panel = u / p->channel_blocks, cb = u % p->channel_blocks;
        const int64_t img = image_panel / p->panels_per_image;
        const int64_t p0 = (image_panel % p->panels_per_image) * p->panel_pixels;
        const int64_t p1 = min64(pr->pixels, p0 + p->panel_pixels);
        if (image_panel != built) { /* consecutive units share a panel: build it once */
            if ((pr->K & 1) || p1 - p0 < p->padded_pixels) /* padding must read as 0 */
                memset(panel, 0, (size_t)(p->padded_pixels * p->kpairs * 4));
            pr->build_panel(pr->ctx, img, p0, p1, panel, pixel_stride, kpair_stride);
#if PT_ARCH_X86
            if (reads_quads(p->microkernel))
                pt_int8_vnni_quads(panel, kpair_stride, p->kpairs, p->padded_pixels, quads);
#endif
            built = image_panel;
        }
        const int64_t c0 = cb * p->channel_block, c1 = min64(pr->c_out, c0 + p->channel_block);
        uint8_t *y = pr->y + img * pr->y_img_stride + p0 * pr->y_pixel_stride;
#if PT_ARCH_X86
        if (p->microkernel == MK_VNNI) {
            pt_int8_avx512vnni_tiles(pr, c0, c1, quads, 4 * p->padded_pixels, p1 - p0, y);
            continue;
        }
        if (p->microkernel == MK_AVXVNNI) {
            pt_int8_avxvnni_tiles(pr, c0, c1, quads, 4 * p->padded_pixels, p1 - p0, y);
            continue;
        }
        if (p->microkernel == MK_AVX2) {
            pt_int8_avx2_tiles(pr, c0, c1, wpack, p->kpairs, panel, kpair_stride, p1 - p0, y);
            continue;
        }
#endif
        portable_tiles(pr, c0, c1, panel, pixel_stride, p1 - p0, y);
    }
}

pt_status pt_int8_gemm_run(const pt_team *team, const pt_int8_gemm_problem *pr, void *workspace,
                           int64_t workspace_bytes)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (pr == NULL || pr->w == NULL || pr->y == NULL || pr->build_panel == NULL) return PT_ERR_NULL_POINTER;
    if (pr->images < 1 || pr->pixels < 1 || pr->K < 1 || pr->c_out < 1) return PT_ERR_BAD_SHAPE;
    if (pr->K > PT_INT8_MAX_K) return PT_ERR_BAD_SHAPE;
    pt_status st = pt_requant_check(pr->rq, pr->c_out);
    if (st != PT_OK) return st;
    if (workspace == NULL) return PT_ERR_NULL_POINTER;
    gemm_task t = {pr, make_plan(team, pr->images, pr->pixels, pr->K, pr->c_out), (uint8_t *)workspace};
    if (workspace_bytes < t.plan.per_core_bytes * team->num_threads) return PT_ERR_WORKSPACE_TOO_SMALL;
    pt_parallel(team, gemm_worker, &t);
    return PT_OK;
}
