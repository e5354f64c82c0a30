/* GCC turns short copy / fill loops (a 16-float panel row, an 8-float plane row) into memcpy / memset
 * calls that cost more than the loop; keep them inline. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "arch.h"
#include "conv2d.h"
#include "int_math.h"
#include "isa.h"
#include "matmul.h"
#include "parallel.h"

#define TARGET_UNITS 16       /* enough independent units to keep an 8-core team busy at N = 1 */
#define MAX_UNIT_PIXELS 1024  /* bounds the im2col block of one forward unit */
#define FW_COL_FLOATS 65536   /* ... and keeps it in L2 (K x cols floats) */
#define PANEL PT_IM2COL_PANEL /* im2col panel width: the 6x16 tile's NR, so its panels are read in place */
#define WG_PIXEL_CHUNK 256    /* a multiple of the matmul K block, so chunking never changes a sum */
#define WG_K_BLOCK 256
#define WG_SHARED_FLOATS 262144 /* bounds the shared columns of a grad_weight round (1 MiB, to stay in L2) */
#define IG_DCOL_FLOATS 262144 /* bounds the dcol block of one grad_input unit */


/* A core's share of the workspace starts its panels on a 64-byte line (a caller's buffer need not be
 * aligned): a 16-float panel row is then one cache line, not two. ALIGN_SLACK floats per core pay for it. */
#define ALIGN_SLACK 16
static float *core_slice(float *workspace, int64_t per_core)
{
    const uintptr_t start = (uintptr_t)(workspace + pt_core_id() * per_core);
    return (float *)((start + 63) & ~(uintptr_t)63);
}

/* ---- forward ----------------------------------------------------------------------------------------- */

typedef struct {
    int64_t P, K, cols, units_per_image, per_core;
    int64_t panel; /* im2col panel width (tile_panel) */
    int variant;
    int direct; /* 1x1, stride 1, no padding: the image itself is the column matrix */
} fw_plan;

/* Units of `panel`-wide column blocks for one image of P pixels and K patch rows. */
static void forward_units(fw_plan *p, const pt_conv_geometry *g, int64_t panel)
{
    const int64_t max_cols = max64(panel, min64(MAX_UNIT_PIXELS, FW_COL_FLOATS / p->K / panel * panel));
    int64_t upi = max64(cdiv(p->P, max_cols), min64(cdiv(p->P, 64), cdiv(TARGET_UNITS, g->n)));
    p->panel = panel;
    p->cols = min64(p->P, cdiv(cdiv(p->P, upi), panel) * panel);
    p->units_per_image = cdiv(p->P, p->cols);
}

/* The im2col panel width for the tile of `variant`: 2 PANEL for a tile of that NR (the 8x32 tile: its B
 * panels are then the im2col panels, read in place instead of packed again), else PANEL. */
static int64_t tile_panel(int variant)
{
    return pt_matmul_variant_info(variant)->nr == 2 * PANEL ? 2 * PANEL : PANEL;
}

static fw_plan forward_plan(const pt_team *team, const pt_conv_geometry *g)
{
    fw_plan p;
    p.P = g->h_out * g->w_out;
    p.K = g->c_in * g->kh * g->kw;
    p.direct = g->kh == 1 && g->kw == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_h == 0 && g->pad_w == 0;
    forward_units(&p, g, PANEL);
    p.variant = pt_matmul_pick(team, g->c_out, p.cols, p.K);
    const int64_t panel = tile_panel(p.variant);
    if (!p.direct && panel != PANEL) { /* wider panels for a wider tile, if the tile stays the pick for them */
        fw_plan wide = p;
        forward_units(&wide, g, panel);
        wide.variant = pt_matmul_pick(team, g->c_out, wide.cols, wide.K);
        if (tile_panel(wide.variant) == panel) p = wide;
    }
    p.per_core = (p.direct ? 0 : p.K * cdiv(p.cols, p.panel) * p.panel) +
                 pt_gemm_workspace_floats(p.variant, g->c_out, p.cols, p.K) + ALIGN_SLACK;
    return p;
}

int64_t pt_conv2d_forward_workspace_floats(const pt_team *team, const pt_conv_geometry *g)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (g == NULL) return 0;
    return forward_plan(team, g).per_core * team->num_threads;
}

typedef struct {
    const pt_conv_geometry *g;
    fw_plan plan;
    const float *x, *w, *bias;
    float *y, *workspace;
    int accumulate;
    pt_team_status status;
} fw_task;

/* im2col of pixels [p0, p1) in panel-major order: column c of the K x (p1 - p0) matrix lives in panel
 * c / panel, which holds K rows of `panel` floats (the packed-B layout of the tile, so the matmul reads it
 * without packing). A last, narrower panel is written with its own width, then spread to `panel`. */
/* `panel` (PANEL or 2 PANEL, a constant wherever this is inlined) floats of one panel row: out[c] = src[c * sw].
 * Fixed trip counts (and the common strides as constants) so the compiler turns the copy into a few vector
 * moves. */
static inline __attribute__((always_inline)) void panel_row(float *restrict out, const float *restrict src,
                                                            int64_t sw, const int panel)
{
    if (sw == 1)
        memcpy(out, src, (size_t)panel * sizeof(float)); /* a fixed size: inlined as vector moves */
    else if (sw == 2)
        for (int c = 0; c < panel; c++) out[c] = src[2 * c];
    else
        for (int c = 0; c < panel; c++) out[c] = src[c * sw];
}

#define MAX_PANEL_KW 16 /* kernel widths up to this take the panel-row path */

/* One full panel whose `panel` pixels lie in one output row: out[k*panel + c] for all K patch rows. The
 * pixels of a kx whose input columns all lie inside the image (most of them) are one plain panel-row
 * copy; the others zero the row, then copy the range [lo, hi) that lies inside (worked out once per kx).
 * Inlined with each panel width as a constant (im2col_row_panel). */
static inline __attribute__((always_inline)) void row_panel(const pt_conv_geometry *g, const float *xn, int64_t oh,
                                                            int64_t ow0, const int panel, float *out)
{
    const int64_t sw = g->stride_w, W = g->w_in;
    int64_t lo[MAX_PANEL_KW], hi[MAX_PANEL_KW]; /* per kx: pixels c in [lo, hi) read inside the image row */
    for (int64_t kx = 0; kx < g->kw; kx++) {
        const int64_t shift = ow0 * sw - g->pad_w + kx; /* pixel c reads column shift + c*sw */
        int64_t l = 0, h = panel;
        while (l < panel && shift + l * sw < 0) l++;
        while (h > l && shift + (h - 1) * sw >= W) h--;
        lo[kx] = l;
        hi[kx] = h;
    }
    for (int64_t ci = 0; ci < g->c_in; ci++) {
        const float *xc = xn + ci * g->h_in * W;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            const int64_t ih = oh * g->stride_h - g->pad_h + ky;
            if (ih < 0 || ih >= g->h_in) {
                for (int64_t kx = 0; kx < g->kw; kx++, out += panel)
                    for (int c = 0; c < panel; c++) out[c] = 0.0f;
                continue;
            }
            const float *src = xc + ih * W + ow0 * sw - g->pad_w;
            for (int64_t kx = 0; kx < g->kw; kx++, out += panel) {
                if (lo[kx] == 0 && hi[kx] == panel) {
                    panel_row(out, src + kx, sw, panel);
                    continue;
                }
                for (int c = 0; c < panel; c++) out[c] = 0.0f;
                if (sw == 1)
                    for (int64_t c = lo[kx]; c < hi[kx]; c++) out[c] = src[kx + c];
                else
                    for (int64_t c = lo[kx]; c < hi[kx]; c++) out[c] = src[kx + c * sw];
            }
        }
    }
}

static void im2col_row_panel(const pt_conv_geometry *g, const float *xn, int64_t oh, int64_t ow0, int64_t panel,
                             float *out)
{
    if (panel == PANEL)
        row_panel(g, xn, oh, ow0, PANEL, out);
    else
        row_panel(g, xn, oh, ow0, 2 * PANEL, out);
}

static pt_view im2col_panels(const pt_conv_geometry *g, const float *xn, int64_t K, int64_t p0, int64_t p1,
                             int64_t panel, float *col)
{
    for (int64_t q = p0; q < p1; q += panel) {
        const int64_t width = min64(panel, p1 - q);
        float *out = col + (q - p0) * K;
        if (width == panel && q % g->w_out + panel <= g->w_out && g->kw <= MAX_PANEL_KW) {
            im2col_row_panel(g, xn, q / g->w_out, q % g->w_out, panel, out);
            continue;
        }
        pt_im2col(g, xn, 0, K, q, q + width, out);
        if (width < panel)
            for (int64_t k = K - 1; k >= 0; k--)
                for (int64_t c = width - 1; c >= 0; c--) out[k * panel + c] = out[k * width + c];
    }
    pt_view v = pt_view_2d(col, panel, 1);
    v.col_block = panel;
    v.col_stride_outer = K * panel;
    return v;
}

static void forward_worker(void *arg)
{
    fw_task *t = (fw_task *)arg;
    const pt_conv_geometry *g = t->g;
    const fw_plan *p = &t->plan;
    const int64_t col_floats = p->direct ? 0 : p->K * cdiv(p->cols, p->panel) * p->panel;
    float *col = core_slice(t->workspace, p->per_core);
    float *gemm_ws = col + col_floats;
    const int64_t gemm_floats = p->per_core - ALIGN_SLACK - col_floats;
    const pt_view A = pt_view_2d(t->w, p->K, 1);
    const pt_bias bias = {t->bias, NULL};
    int64_t u0, u1;
    pt_chunk(g->n * p->units_per_image, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t n = u / p->units_per_image, p0 = (u % p->units_per_image) * p->cols;
        const int64_t p1 = min64(p->P, p0 + p->cols);
        const float *xn = t->x + n * g->c_in * g->h_in * g->w_in;
        const pt_view B = p->direct ? pt_view_2d(xn + p0, p->P, 1) : im2col_panels(g, xn, p->K, p0, p1, p->panel, col);
        const pt_view C = pt_view_2d(t->y + n * g->c_out * p->P + p0, p->P, 1);
        pt_team_status_report(&t->status, pt_gemm_serial(p->variant, p->K, &A, &B, &C, &bias, t->accumulate, 0,
                                                          g->c_out, 0, p1 - p0, gemm_ws, gemm_floats));
    }
}

/* y (+)= conv(x, w) + bias: the forward, also run by grad_input (as a convolution of dY). */
static pt_status forward_run(const pt_team *team, const pt_conv_geometry *g, const float *x, const float *w,
                             const float *bias, float *y, int accumulate, float *workspace, int64_t workspace_floats)
{
    fw_task t;
    t.g = g;
    t.plan = forward_plan(team, g);
    if (t.plan.per_core > 0 && workspace == NULL) return PT_ERR_NULL_POINTER;
    if (workspace_floats < t.plan.per_core * team->num_threads) return PT_ERR_WORKSPACE_TOO_SMALL;
    t.x = x; t.w = w; t.bias = bias; t.y = y; t.workspace = workspace; t.accumulate = accumulate;
    pt_team_status_clear(&t.status);
    pt_parallel(team, forward_worker, &t);
    return pt_team_status_result(&t.status);
}

pt_status pt_conv2d_forward(const pt_team *team, const pt_conv_geometry *g, const float *x, const float *w,
                            const float *bias, float *y, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (g == NULL || x == NULL || w == NULL || y == NULL) return PT_ERR_NULL_POINTER;
    return forward_run(team, g, x, w, bias, y, 0, workspace, workspace_floats);
}

/* ---- grad_input -------------------------------------------------------------------------------------- */

typedef struct {
    int64_t P, khw, cb, blocks_per_image, per_core;
    int64_t bands, band_rows, band_out_rows; /* input-row bands per image and channel block, output rows of one */
    int variant;
} ig_plan;

/* The output rows [*oh0, *oh1) whose patches reach input rows [ih0, ih1). */
static void band_output_rows(const pt_conv_geometry *g, int64_t ih0, int64_t ih1, int64_t *oh0, int64_t *oh1)
{
    const int64_t first = ih0 + g->pad_h - (g->kh - 1); /* oh * stride_h >= first */
    *oh0 = first <= 0 ? 0 : cdiv(first, g->stride_h);
    *oh1 = min64(g->h_out, (ih1 - 1 + g->pad_h) / g->stride_h + 1);
}

/* Channel blocks as large as the dcol bound allows, cut smaller only when there are too few images to give
 * every core two units: each unit repacks its image's dY, so small blocks cost packing. When even one channel
 * per block leaves cores without two units (conv1: 3 input channels), each block is cut further into bands
 * of input rows; a band computes the dcol rows of the output rows that reach it (a row of overlap between
 * neighbouring bands is computed twice). No blocking changes a value: every dcol element is the same dot
 * product, and every dx element takes its terms in the same (ky, kx) order (pt_col2im), so it may follow the
 * team size. */
static ig_plan grad_input_plan(const pt_team *team, const pt_conv_geometry *g)
{
    ig_plan p;
    p.P = g->h_out * g->w_out;
    p.khw = g->kh * g->kw;
    const int64_t fit = max64(1, IG_DCOL_FLOATS / (p.khw * p.P));
    const int64_t units_wanted = 2 * (int64_t)team->num_threads;
    const int64_t blocks_wanted = cdiv(units_wanted, g->n);
    p.cb = max64(1, min64(fit, cdiv(g->c_in, blocks_wanted)));
    p.blocks_per_image = cdiv(g->c_in, p.cb);
    const int64_t blocks = g->n * p.blocks_per_image;
    p.bands = 1;
    if (blocks < units_wanted) { /* bands: a multiple of the team size in all, so every core gets as many */
        p.bands = cdiv(units_wanted, blocks);
        while ((blocks * p.bands) % team->num_threads != 0 && p.bands < g->h_in) p.bands++;
        p.bands = min64(g->h_in, p.bands);
    }
    p.band_rows = cdiv(g->h_in, p.bands);
    p.bands = cdiv(g->h_in, p.band_rows);
    p.band_out_rows = 0;
    for (int64_t b = 0; b < p.bands; b++) {
        int64_t oh0, oh1;
        band_output_rows(g, b * p.band_rows, min64(g->h_in, (b + 1) * p.band_rows), &oh0, &oh1);
        p.band_out_rows = max64(p.band_out_rows, oh1 - oh0);
    }
    const int64_t band_pixels = p.band_out_rows * g->w_out;
    p.variant = pt_matmul_pick(team, p.cb * p.khw, p.P, g->c_out); /* the whole product's pick */
    p.per_core = p.cb * p.khw * band_pixels + pt_gemm_workspace_floats(p.variant, p.cb * p.khw, band_pixels, g->c_out);
    return p;
}

/* With stride 1 and padding below the kernel size, dx is the forward convolution of dY (C_out channels)
 * with the flipped, transposed weight w'[ci, co, ky, kx] = w[co, ci, kh-1-ky, kw-1-kx] and padding k-1-p:
 * the im2col + product of the forward (patch panels read in place, a long reduction over C_out*kh*kw)
 * instead of a product with a short reduction over C_out and a col2im pass. *fg gets that geometry. */
static int grad_input_as_forward(const pt_conv_geometry *g, pt_conv_geometry *fg)
{
    if (g->stride_h != 1 || g->stride_w != 1 || g->pad_h > g->kh - 1 || g->pad_w > g->kw - 1) return 0;
    return pt_conv_geometry_init(fg, g->n, g->c_out, g->h_out, g->w_out, g->c_in, g->kh, g->kw, 1, 1,
                                 g->kh - 1 - g->pad_h, g->kw - 1 - g->pad_w) == PT_OK &&
           fg->h_out == g->h_in && fg->w_out == g->w_in;
}

/* Floats of the flipped weight at the head of the workspace (a whole number of 64-byte lines). */
static int64_t flipped_weight_floats(const pt_conv_geometry *g)
{
    return cdiv(g->c_out * g->c_in * g->kh * g->kw, 16) * 16;
}

int64_t pt_conv2d_grad_input_workspace_floats(const pt_team *team, const pt_conv_geometry *g)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (g == NULL) return 0;
    pt_conv_geometry fg;
    if (grad_input_as_forward(g, &fg))
        return flipped_weight_floats(g) + forward_plan(team, &fg).per_core * team->num_threads;
    return grad_input_plan(team, g).per_core * team->num_threads;
}

typedef struct {
    const pt_conv_geometry *g;
    ig_plan plan;
    const float *dy, *w;
    float *dx, *workspace;
    int accumulate;
    pt_team_status status;
} ig_task;

static void grad_input_worker(void *arg)
{
    ig_task *t = (ig_task *)arg;
    const pt_conv_geometry *g = t->g;
    const ig_plan *p = &t->plan;
    const int64_t K = g->c_in * p->khw, dcol_floats = p->cb * p->khw * p->band_out_rows * g->w_out;
    float *dcol = t->workspace + pt_core_id() * p->per_core;
    int64_t u0, u1;
    pt_chunk(g->n * p->blocks_per_image * p->bands, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t block = u / p->bands, band = u % p->bands;
        const int64_t n = block / p->blocks_per_image, c0 = (block % p->blocks_per_image) * p->cb;
        const int64_t c1 = min64(g->c_in, c0 + p->cb);
        const int64_t ih0 = band * p->band_rows, ih1 = min64(g->h_in, ih0 + p->band_rows);
        int64_t oh0, oh1;
        band_output_rows(g, ih0, ih1, &oh0, &oh1);
        const int64_t pixels = max64(0, oh1 - oh0) * g->w_out;
        float *dx = t->dx + n * g->c_in * g->h_in * g->w_in;
        pt_status st = PT_OK;
        if (pixels > 0) {
            /* dcol rows of channels [c0, c1), output rows [oh0, oh1) = W^T[rows, :] . dY[n][:, pixels];
             * W^T is W read with swapped strides. */
            const pt_view A = pt_view_2d(t->w + c0 * p->khw, 1, K);
            const pt_view B = pt_view_2d(t->dy + n * g->c_out * p->P + oh0 * g->w_out, p->P, 1);
            const pt_view C = pt_view_2d(dcol, pixels, 1);
            st = pt_gemm_serial(p->variant, g->c_out, &A, &B, &C, NULL, 0, 0, (c1 - c0) * p->khw, 0, pixels,
                                dcol + dcol_floats, p->per_core - dcol_floats);
            pt_team_status_report(&t->status, st);
        }
        if (st == PT_OK) pt_col2im(g, dcol, c0, c1, pixels > 0 ? oh0 : 0, pixels > 0 ? oh1 : 0, ih0, ih1, dx, t->accumulate);
    }
}

pt_status pt_conv2d_grad_input(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *w,
                               float *dx, int accumulate, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (g == NULL || dy == NULL || w == NULL || dx == NULL || workspace == NULL) return PT_ERR_NULL_POINTER;
    pt_conv_geometry fg;
    if (grad_input_as_forward(g, &fg)) {
        const int64_t wf = flipped_weight_floats(g), khw = g->kh * g->kw;
        if (workspace_floats < wf) return PT_ERR_WORKSPACE_TOO_SMALL;
        for (int64_t co = 0; co < g->c_out; co++)
            for (int64_t ci = 0; ci < g->c_in; ci++) {
                const float *src = w + (co * g->c_in + ci) * khw;
                float *dst = workspace + (ci * g->c_out + co) * khw;
                for (int64_t k = 0; k < khw; k++) dst[k] = src[khw - 1 - k]; /* (ky, kx) -> (kh-1-ky, kw-1-kx) */
            }
        return forward_run(team, &fg, dy, workspace, NULL, dx, accumulate, workspace + wf, workspace_floats - wf);
    }
    ig_task t;
    t.g = g;
    t.plan = grad_input_plan(team, g);
    if (workspace_floats < t.plan.per_core * team->num_threads) return PT_ERR_WORKSPACE_TOO_SMALL;
    t.dy = dy; t.w = w; t.dx = dx; t.workspace = workspace; t.accumulate = accumulate;
    pt_team_status_clear(&t.status);
    pt_parallel(team, grad_input_worker, &t);
    return pt_team_status_result(&t.status);
}

/* ---- grad_weight ------------------------------------------------------------------------------------- */

typedef void (*transposed_panels_fn)(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1,
                                     int64_t p0, int64_t p1, int64_t panel, float *out);
#if PT_ARCH_X86
void pt_im2col_transposed_panels_avx2(const pt_conv_geometry *g, const float *x, int64_t k0, int64_t k1,
                                      int64_t p0, int64_t p1, int64_t panel, float *out); /* csrc/arch/x86 */
#endif

/* The transposed im2col of a team's ISA level (the same values at every level). */
static transposed_panels_fn transposed_panels_of(const pt_team *team)
{
#if PT_ARCH_X86
    if (pt_isa_resolve(team->isa_level) >= PT_ISA_AVX2) return pt_im2col_transposed_panels_avx2;
#endif
    (void)team;
    return pt_im2col_transposed_panels;
}

typedef struct {
    int64_t P, K, kb, k_blocks, rb, row_blocks, pchunk, per_core;
    int64_t panel; /* patch rows per panel of the transposed im2col (tile_panel) */
    int variant;
    transposed_panels_fn transposed_panels;
    /* shared columns (see grad_weight_plan): images per round (0: every unit writes its own columns) and the
     * floats of the round's columns, one image's being image_floats */
    int64_t group, image_floats, shared_floats;
} wg_plan;

/* Patch-row panels of one pixel chunk: cdiv(kb, panel) panels of pchunk x panel floats. */
static int64_t wg_col_floats(const wg_plan *p) { return cdiv(p->kb, p->panel) * p->panel * p->pchunk; }

/* dW columns are cut in equal blocks of patch rows (whole panels, at most WG_K_BLOCK), as many as a multiple
 * of the team size where there are enough panels, so every core gets the same work (3 blocks of 576 columns
 * on 2 cores left one core idle a third of the time); when there are still fewer blocks than cores, rows of
 * dW are cut too (each row block then repeats the im2col of its columns). The blocking never changes a value:
 * each dW element is the same sum over images and pixel chunks in every block. */
static void grad_weight_blocks(wg_plan *p, const pt_team *team, const pt_conv_geometry *g, int64_t panel)
{
    const int64_t panels = cdiv(p->K, panel);
    const int64_t num_threads = team->num_threads;
    const int64_t blocks = cdiv(max64(cdiv(p->K, WG_K_BLOCK), min64(num_threads, panels)), num_threads) * num_threads;
    p->panel = panel;
    p->kb = min64(p->K, cdiv(panels, min64(blocks, panels)) * panel);
    p->k_blocks = cdiv(p->K, p->kb);
    p->variant = pt_matmul_pick(team, g->c_out, p->kb, p->pchunk);
}

static wg_plan grad_weight_plan(const pt_team *team, const pt_conv_geometry *g)
{
    wg_plan p;
    p.P = g->h_out * g->w_out;
    p.K = g->c_in * g->kh * g->kw;
    p.pchunk = min64(p.P, WG_PIXEL_CHUNK);
    grad_weight_blocks(&p, team, g, PANEL);
    const int64_t panel = tile_panel(p.variant);
    if (panel != PANEL) { /* wider panels for a wider tile, if the tile stays the pick for them */
        wg_plan wide = p;
        grad_weight_blocks(&wide, team, g, panel);
        if (tile_panel(wide.variant) == panel) p = wide;
    }
    const int64_t mr = pt_matmul_variant_info(p.variant)->mr;
    const int64_t want = max64(1, min64(cdiv(g->c_out, mr), cdiv(team->num_threads, p.k_blocks)));
    p.rb = cdiv(cdiv(g->c_out, want), mr) * mr;
    p.row_blocks = cdiv(g->c_out, p.rb);
    p.per_core = wg_col_floats(&p) + pt_gemm_workspace_floats(p.variant, p.rb, p.kb, p.pchunk) + ALIGN_SLACK;
    p.transposed_panels = transposed_panels_of(team);
    p.group = p.image_floats = p.shared_floats = 0;
    if (p.row_blocks > 1) {
        /* Row blocks would each repeat the im2col of their columns (conv1: K = 27, one panel; on 8 cores 4 row
         * blocks of 8 rows, every one writing all the columns, and 4 cores idle). Instead the team writes the
         * columns of a round of images once, shared, every core a share of the pixel chunks, then cuts dW's rows
         * in as many blocks as cores (short row tiles where needed): rv32's 8-core critical path of conv1
         * grad_weight 1.86e6 -> 1.34e6 instructions. */
        p.image_floats = cdiv(p.P, p.pchunk) * cdiv(p.K, p.panel) * p.panel * p.pchunk;
        p.group = max64(1, min64(g->n, WG_SHARED_FLOATS / p.image_floats));
        p.shared_floats = p.group * p.image_floats + ALIGN_SLACK;
        p.rb = cdiv(g->c_out, min64(g->c_out, cdiv(team->num_threads, p.k_blocks)));
        p.row_blocks = cdiv(g->c_out, p.rb);
        p.per_core = pt_gemm_workspace_floats(p.variant, p.rb, p.kb, p.pchunk) + ALIGN_SLACK;
    }
    return p;
}

int64_t pt_conv2d_grad_weight_workspace_floats(const pt_team *team, const pt_conv_geometry *g)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (g == NULL) return 0;
    const wg_plan p = grad_weight_plan(team, g);
    return p.per_core * team->num_threads + p.shared_floats;
}

typedef struct {
    const pt_conv_geometry *g;
    wg_plan plan;
    const float *dy, *x;
    float *dw, *workspace;
    int accumulate;
    pt_team_status status;
    float *shared;  /* the round's columns (shared columns only) */
    int64_t n0, n1; /* the round's images (shared columns only) */
} wg_task;

/* dW[r0:r1, k0:k1] (+)= dY[n][r0:r1, p0:p1] . col^T, col^T being the patch rows [k0, k1) of pixels [p0, p1) in
 * panel-column panels (read in place); `accumulate` for the first term of the sum, then 1. */
static void grad_weight_term(wg_task *t, const float *col, int64_t n, int64_t p0, int64_t p1, int64_t k0,
                             int64_t k1, int64_t r0, int64_t r1, int accumulate, float *gemm_ws, int64_t gemm_floats)
{
    const wg_plan *p = &t->plan;
    const pt_view A = pt_view_2d(t->dy + n * t->g->c_out * p->P + p0, p->P, 1);
    const pt_view C = pt_view_2d(t->dw + k0, p->K, 1);
    pt_view B = pt_view_2d(col, p->panel, 1);
    B.col_block = p->panel;
    B.col_stride_outer = (p1 - p0) * p->panel;
    B.full_panels = 1; /* the transposed panels are written to their full width (zeros past the last patch row) */
    pt_team_status_report(&t->status, pt_gemm_serial(p->variant, p1 - p0, &A, &B, &C, NULL, accumulate, r0, r1, 0,
                                                      k1 - k0, gemm_ws, gemm_floats));
}

static void grad_weight_worker(void *arg)
{
    wg_task *t = (wg_task *)arg;
    const pt_conv_geometry *g = t->g;
    const wg_plan *p = &t->plan;
    float *col = core_slice(t->workspace, p->per_core);
    float *gemm_ws = col + wg_col_floats(p);
    const int64_t gemm_floats = p->per_core - ALIGN_SLACK - wg_col_floats(p);
    int64_t u0, u1;
    pt_chunk(p->k_blocks * p->row_blocks, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t k0 = (u / p->row_blocks) * p->kb, k1 = min64(p->K, k0 + p->kb);
        const int64_t r0 = (u % p->row_blocks) * p->rb, r1 = min64(g->c_out, r0 + p->rb);
        int accumulate = t->accumulate;
        for (int64_t n = 0; n < g->n; n++) {
            const float *xn = t->x + n * g->c_in * g->h_in * g->w_in;
            for (int64_t p0 = 0; p0 < p->P; p0 += p->pchunk) {
                const int64_t p1 = min64(p->P, p0 + p->pchunk);
                p->transposed_panels(g, xn, k0, k1, p0, p1, p->panel, col);
                grad_weight_term(t, col, n, p0, p1, k0, k1, r0, r1, accumulate, gemm_ws, gemm_floats);
                accumulate = 1;
            }
        }
    }
}

/* Shared columns, first step of a round: every patch-row panel of pixel chunk c of image n0 + i at
 * shared + i * image_floats + (c * pchunk) * (K rounded up to panels); the team splits the chunks. */
static void grad_weight_columns_worker(void *arg)
{
    wg_task *t = (wg_task *)arg;
    const wg_plan *p = &t->plan;
    const int64_t chunks = cdiv(p->P, p->pchunk), k_padded = cdiv(p->K, p->panel) * p->panel;
    int64_t u0, u1;
    pt_chunk((t->n1 - t->n0) * chunks, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t i = u / chunks, p0 = (u % chunks) * p->pchunk, p1 = min64(p->P, p0 + p->pchunk);
        const float *xn = t->x + (t->n0 + i) * t->g->c_in * t->g->h_in * t->g->w_in;
        p->transposed_panels(t->g, xn, 0, p->K, p0, p1, p->panel, t->shared + i * p->image_floats + p0 * k_padded);
    }
}

/* Shared columns, second step: each unit (a block of patch rows x a block of dW rows) adds the round's terms in
 * the order of grad_weight_worker (images, then pixel chunks), so each dW element is the same sum. */
static void grad_weight_shared_worker(void *arg)
{
    wg_task *t = (wg_task *)arg;
    const wg_plan *p = &t->plan;
    float *gemm_ws = core_slice(t->workspace, p->per_core);
    const int64_t gemm_floats = p->per_core - ALIGN_SLACK, k_padded = cdiv(p->K, p->panel) * p->panel;
    int64_t u0, u1;
    pt_chunk(p->k_blocks * p->row_blocks, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t k0 = (u / p->row_blocks) * p->kb, k1 = min64(p->K, k0 + p->kb);
        const int64_t r0 = (u % p->row_blocks) * p->rb, r1 = min64(t->g->c_out, r0 + p->rb);
        for (int64_t n = t->n0; n < t->n1; n++)
            for (int64_t p0 = 0; p0 < p->P; p0 += p->pchunk) {
                const int64_t p1 = min64(p->P, p0 + p->pchunk);
                /* the chunk's panels of patch rows [k0, k1) (k0 is a whole number of panels) */
                const float *col = t->shared + (n - t->n0) * p->image_floats + p0 * k_padded +
                                   (k0 / p->panel) * (p1 - p0) * p->panel;
                const int first = n == 0 && p0 == 0;
                grad_weight_term(t, col, n, p0, p1, k0, k1, r0, r1, first ? t->accumulate : 1, gemm_ws, gemm_floats);
            }
    }
}

pt_status pt_conv2d_grad_weight(const pt_team *team, const pt_conv_geometry *g, const float *dy, const float *x,
                                float *dw, int accumulate, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (g == NULL || dy == NULL || x == NULL || dw == NULL || workspace == NULL) return PT_ERR_NULL_POINTER;
    wg_task t;
    t.g = g;
    t.plan = grad_weight_plan(team, g);
    const int64_t private_floats = t.plan.per_core * team->num_threads;
    if (workspace_floats < private_floats + t.plan.shared_floats) return PT_ERR_WORKSPACE_TOO_SMALL;
    t.dy = dy; t.x = x; t.dw = dw; t.workspace = workspace; t.accumulate = accumulate;
    pt_team_status_clear(&t.status);
    if (t.plan.group == 0) {
        pt_parallel(team, grad_weight_worker, &t);
        return pt_team_status_result(&t.status);
    }
    t.shared = (float *)(((uintptr_t)(workspace + private_floats) + 63) & ~(uintptr_t)63);
    for (t.n0 = 0; t.n0 < g->n; t.n0 = t.n1) {
        t.n1 = min64(g->n, t.n0 + t.plan.group);
        pt_parallel(team, grad_weight_columns_worker, &t);
        pt_parallel(team, grad_weight_shared_worker, &t);
    }
    return pt_team_status_result(&t.status);
}
