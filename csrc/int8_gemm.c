#include "int8_gemm.h"
#include "parallel.h"

#define TARGET_UNITS 16        /* enough independent units to keep an 8-core team busy at N = 1 */
#define PANEL_BYTES 65536      /* bounds one core's activation panel (int16), so it stays in L2 */
#define MAX_PANEL_PIXELS 256

static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- microkernels: int32 dot products of int8 weight rows (stride K) with int16 pixel rows ------------ */

static void dot_4x2(int64_t K, const int8_t *w, const int16_t *x, int32_t acc[8])
{
    const int8_t *w0 = w, *w1 = w + K, *w2 = w + 2 * K, *w3 = w + 3 * K;
    const int16_t *x0 = x, *x1 = x + K;
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

static void dot_4x1(int64_t K, const int8_t *w, const int16_t *x, int32_t acc[4])
{
    const int8_t *w0 = w, *w1 = w + K, *w2 = w + 2 * K, *w3 = w + 3 * K;
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

/* Output channels [c0, c1) x panel pixels [0, np) of one image; y points at (channel 0, pixel p0). */
static void tile_loop(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const int16_t *panel, int64_t np,
                      uint8_t *y)
{
    const int64_t K = pr->K, cs = pr->y_channel_stride, ps = pr->y_pixel_stride;
    const pt_requant *rq = pr->rq;
    int64_t c = c0;
    for (; c + 4 <= c1; c += 4) {
        const int8_t *w = pr->w + c * K;
        int64_t p = 0;
        for (; p + 2 <= np; p += 2) {
            int32_t acc[8];
            dot_4x2(K, w, panel + p * K, acc);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 2; j++)
                    y[(c + i) * cs + (p + j) * ps] = pt_requantize(rq, c + i, acc[2 * i + j]);
        }
        if (p < np) {
            int32_t acc[4];
            dot_4x1(K, w, panel + p * K, acc);
            for (int i = 0; i < 4; i++) y[(c + i) * cs + p * ps] = pt_requantize(rq, c + i, acc[i]);
        }
    }
    for (; c < c1; c++)
        for (int64_t p = 0; p < np; p++)
            y[c * cs + p * ps] = pt_requantize(rq, c, dot_1x1(K, pr->w + c * K, panel + p * K));
}

/* ---- plan and parallel driver ------------------------------------------------------------------------ */

typedef struct {
    int64_t panel_pixels, panels_per_image, channel_block, channel_blocks, per_core_bytes;
} gemm_plan;

static gemm_plan make_plan(int64_t images, int64_t pixels, int64_t K, int64_t c_out)
{
    gemm_plan p;
    int64_t pp = min64(pixels, max64(2, min64(MAX_PANEL_PIXELS, PANEL_BYTES / (2 * K))));
    if (pp > 1 && pp < pixels) pp &= ~(int64_t)1; /* whole 2-pixel tiles except at the image's end */
    p.panel_pixels = pp;
    p.panels_per_image = cdiv(pixels, pp);
    const int64_t want = max64(1, min64(cdiv(c_out, 4), cdiv(TARGET_UNITS, images * p.panels_per_image)));
    p.channel_block = cdiv(cdiv(c_out, want), 4) * 4;
    p.channel_blocks = cdiv(c_out, p.channel_block);
    p.per_core_bytes = cdiv(pp * K * (int64_t)sizeof(int16_t), 64) * 64;
    return p;
}

int64_t pt_int8_gemm_workspace_bytes(int64_t images, int64_t pixels, int64_t K, int64_t c_out, int num_threads)
{
    if (images < 1 || pixels < 1 || K < 1 || c_out < 1 || num_threads < 1) return 0;
    return make_plan(images, pixels, K, c_out).per_core_bytes * num_threads;
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
    int16_t *panel = (int16_t *)(t->workspace + pt_core_id() * p->per_core_bytes);
    int64_t u0, u1, built = -1;
    pt_chunk(pr->images * p->panels_per_image * p->channel_blocks, 1, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t image_panel = u / p->channel_blocks, cb = u % p->channel_blocks;
        const int64_t img = image_panel / p->panels_per_image;
        const int64_t p0 = (image_panel % p->panels_per_image) * p->panel_pixels;
        const int64_t p1 = min64(pr->pixels, p0 + p->panel_pixels);
        if (image_panel != built) { /* consecutive units share a panel: build it once */
            pr->build_panel(pr->ctx, img, p0, p1, panel);
            built = image_panel;
        }
        const int64_t c0 = cb * p->channel_block, c1 = min64(pr->c_out, c0 + p->channel_block);
        tile_loop(pr, c0, c1, panel, p1 - p0, pr->y + img * pr->y_img_stride + p0 * pr->y_pixel_stride);
    }
}

pt_status pt_int8_gemm_run(const pt_int8_gemm_problem *pr, void *workspace, int64_t workspace_bytes)
{
    if (pr == NULL || pr->w == NULL || pr->y == NULL || pr->build_panel == NULL) return PT_ERR_NULL_POINTER;
    if (pr->images < 1 || pr->pixels < 1 || pr->K < 1 || pr->c_out < 1) return PT_ERR_BAD_SHAPE;
    if (pr->K > PT_INT8_MAX_K) return PT_ERR_BAD_SHAPE;
    pt_status st = pt_requant_check(pr->rq, pr->c_out);
    if (st != PT_OK) return st;
    gemm_task t = {pr, make_plan(pr->images, pr->pixels, pr->K, pr->c_out), (uint8_t *)workspace};
    if (workspace == NULL) return PT_ERR_NULL_POINTER;
    if (workspace_bytes < t.plan.per_core_bytes * pt_get_num_threads()) return PT_ERR_WORKSPACE_TOO_SMALL;
    pt_parallel(gemm_worker, &t);
    return PT_OK;
}
