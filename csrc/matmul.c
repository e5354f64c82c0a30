#include <stddef.h>
#include <string.h>
#include "matmul.h"
#include "parallel.h"

/* Cache blocking: K is cut in KC slices, an A block holds up to MC_TARGET rows, a B block up to
 * NC_TARGET columns (both rounded up to the variant's tile). Fixed numbers: the value of an element
 * depends on KC, so KC must never depend on the thread count. */
#define KC 256
#define MC_TARGET 128
#define NC_TARGET 1024

#define BIG_BLOCK INT64_MAX

pt_view pt_view_2d(const float *data, int64_t row_stride, int64_t col_stride)
{
    pt_view v;
    v.data = (float *)data;
    v.row_block = BIG_BLOCK;
    v.row_stride_outer = 0;
    v.row_stride = row_stride;
    v.col_block = BIG_BLOCK;
    v.col_stride_outer = 0;
    v.col_stride = col_stride;
    return v;
}

static inline int64_t row_offset(const pt_view *v, int64_t r)
{
    return (r / v->row_block) * v->row_stride_outer + (r % v->row_block) * v->row_stride;
}

static inline int64_t col_offset(const pt_view *v, int64_t c)
{
    return (c / v->col_block) * v->col_stride_outer + (c % v->col_block) * v->col_stride;
}

/* ---- microkernels -------------------------------------------------------------------------------- */

/* One portable register-blocked family: plain C with compile-time tile sizes, fully unrolled so the
 * accumulators live in registers (rv32imf has 32 FP registers: 4x4 leaves room for the operands). */
#define UNROLL _Pragma("GCC unroll 64")

#define DEFINE_UKERNEL(MR, NR)                                                                          \
    static void ukernel_##MR##x##NR(int64_t kc, const float *restrict a, const float *restrict b,        \
                                    float *restrict acc_out)                                             \
    {                                                                                                    \
        float acc[MR][NR];                                                                               \
        UNROLL for (int r = 0; r < MR; r++) UNROLL for (int c = 0; c < NR; c++) acc[r][c] = 0.0f;        \
        for (int64_t p = 0; p < kc; p++) {                                                               \
            const float *ap = a + p * MR, *bp = b + p * NR;                                              \
            UNROLL for (int r = 0; r < MR; r++) {                                                        \
                const float ar = ap[r];                                                                  \
                UNROLL for (int c = 0; c < NR; c++) acc[r][c] += ar * bp[c];                             \
            }                                                                                            \
        }                                                                                                \
        UNROLL for (int r = 0; r < MR; r++) UNROLL for (int c = 0; c < NR; c++)                          \
            acc_out[r * NR + c] = acc[r][c];                                                             \
    }

DEFINE_UKERNEL(2, 2)
DEFINE_UKERNEL(4, 2)
DEFINE_UKERNEL(4, 4)
DEFINE_UKERNEL(8, 1)

/* Host-vector-width family: GCC vector extensions (8 floats = one AVX2 register; on targets without
 * SIMD GCC lowers them to scalar code, so they stay portable). The NR columns of a row are NV vectors;
 * the A value is broadcast by the scalar-times-vector product. */
typedef float pt_vec8 __attribute__((vector_size(32), aligned(4), may_alias));

#define DEFINE_VEC_UKERNEL(MR, NV)                                                                      \
    static void ukernel_vec_##MR##x##NV(int64_t kc, const float *restrict a, const float *restrict b,    \
                                        float *restrict acc_out)                                         \
    {                                                                                                    \
        pt_vec8 acc[MR][NV];                                                                             \
        UNROLL for (int r = 0; r < MR; r++) UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (pt_vec8){0}; \
        for (int64_t p = 0; p < kc; p++) {                                                               \
            const float *ap = a + p * MR;                                                                \
            pt_vec8 bv[NV];                                                                              \
            UNROLL for (int v = 0; v < NV; v++) bv[v] = *(const pt_vec8 *)(b + (p * NV + v) * 8);        \
            UNROLL for (int r = 0; r < MR; r++) {                                                        \
                const float ar = ap[r];                                                                  \
                UNROLL for (int v = 0; v < NV; v++) acc[r][v] += ar * bv[v];                             \
            }                                                                                            \
        }                                                                                                \
        UNROLL for (int r = 0; r < MR; r++) UNROLL for (int v = 0; v < NV; v++)                          \
            *(pt_vec8 *)(acc_out + (r * NV + v) * 8) = acc[r][v];                                        \
    }

DEFINE_VEC_UKERNEL(6, 2)
DEFINE_VEC_UKERNEL(8, 1)

static const pt_matmul_variant variants[] = {
    {"naive", 1, 1, NULL},
    {"2x2", 2, 2, ukernel_2x2},
    {"4x2", 4, 2, ukernel_4x2},   /* PULP-TrainLib's favourite */
    {"4x4", 4, 4, ukernel_4x4},
    {"8x1", 8, 1, ukernel_8x1},
    {"6x16", 6, 16, ukernel_vec_6x2}, /* host vector width: two 8-float vectors per row */
    {"8x8", 8, 8, ukernel_vec_8x1},
};
#define NUM_VARIANTS ((int)(sizeof(variants) / sizeof(variants[0])))

#if defined(__AVX2__) || defined(__AVX512F__) || defined(__ARM_NEON)
#define HOST_DEFAULT_VARIANT 5 /* 6x16 */
#else
#define HOST_DEFAULT_VARIANT 3 /* 4x4: 16 accumulators fit a scalar FP register file */
#endif

static int preferred_variant = PT_MATMUL_AUTO;

int pt_matmul_num_variants(void) { return NUM_VARIANTS; }

const pt_matmul_variant *pt_matmul_variant_info(int id)
{
    if (id < 0 || id >= NUM_VARIANTS) return NULL;
    return &variants[id];
}

int pt_matmul_variant_find(const char *name)
{
    if (name == NULL) return -1;
    for (int i = 0; i < NUM_VARIANTS; i++)
        if (strcmp(variants[i].name, name) == 0) return i;
    return -1;
}

int pt_matmul_pick(int64_t M, int64_t N, int64_t K)
{
    (void)M; (void)N; (void)K;
    if (preferred_variant != PT_MATMUL_AUTO) return preferred_variant;
    return HOST_DEFAULT_VARIANT;
}

pt_status pt_matmul_set_preferred(int variant)
{
    if (variant != PT_MATMUL_AUTO && (variant < 0 || variant >= NUM_VARIANTS)) return PT_ERR_UNKNOWN_VARIANT;
    preferred_variant = variant;
    return PT_OK;
}

int pt_matmul_get_preferred(void) { return preferred_variant; }

/* ---- packed GEMM ----------------------------------------------------------------------------------- */

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t mc_block(int mr) { return round_up(MC_TARGET, mr); }
static int64_t nc_block(int nr) { return round_up(NC_TARGET, nr); }

int64_t pt_gemm_workspace_floats(int variant, int64_t M, int64_t N, int64_t K)
{
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    if (v == NULL || v->ukernel == NULL || M <= 0 || N <= 0 || K <= 0) return 0;
    int64_t kc = min64(KC, K);
    int64_t mc = min64(mc_block(v->mr), round_up(M, v->mr));
    int64_t nc = min64(nc_block(v->nr), round_up(N, v->nr));
    return kc * (mc + nc) + (int64_t)v->mr * v->nr;
}

/* out[p*nr + c] = B(k0 + p, j0 + c) for one nr-wide panel, zero beyond column j_end. */
static void pack_b_panel(const pt_view *B, int64_t k0, int64_t kc, int64_t j0, int64_t j_end, int nr,
                         float *restrict out)
{
    int64_t cols = min64(nr, j_end - j0);
    int64_t coloff[64];
    for (int64_t c = 0; c < cols; c++) coloff[c] = col_offset(B, j0 + c);
    int contiguous = B->col_stride == 1 && coloff[cols - 1] - coloff[0] == cols - 1;
    for (int64_t p = 0; p < kc; p++) {
        const float *src = B->data + row_offset(B, k0 + p);
        float *dst = out + p * nr;
        if (contiguous) {
            src += coloff[0];
            for (int64_t c = 0; c < cols; c++) dst[c] = src[c];
        } else {
            for (int64_t c = 0; c < cols; c++) dst[c] = src[coloff[c]];
        }
        for (int64_t c = cols; c < nr; c++) dst[c] = 0.0f;
    }
}

/* out[p*mr + r] = A(i0 + r, k0 + p) for one mr-tall panel, zero beyond row i_end. */
static void pack_a_panel(const pt_view *A, int64_t k0, int64_t kc, int64_t i0, int64_t i_end, int mr,
                         float *restrict out)
{
    int64_t rows = min64(mr, i_end - i0);
    int64_t off0 = col_offset(A, k0);
    int contiguous = A->col_stride == 1 && col_offset(A, k0 + kc - 1) - off0 == kc - 1;
    for (int64_t r = 0; r < rows; r++) {
        const float *src = A->data + row_offset(A, i0 + r);
        if (contiguous) {
            src += off0;
            for (int64_t p = 0; p < kc; p++) out[p * mr + r] = src[p];
        } else {
            for (int64_t p = 0; p < kc; p++) out[p * mr + r] = src[col_offset(A, k0 + p)];
        }
    }
    for (int64_t r = rows; r < mr; r++)
        for (int64_t p = 0; p < kc; p++) out[p * mr + r] = 0.0f;
}

/* Writes one tile. On the first K block (`first`) the bias is added and, unless accumulating, C is
 * overwritten; later K blocks add their partial sums. */
static void store_tile(const pt_view *C, const pt_bias *bias, int64_t i0, int64_t rows, int64_t j0,
                       int64_t cols, int nr, const float *acc, int first, int accumulate)
{
    int64_t coloff[64];
    float cb[64];
    for (int64_t c = 0; c < cols; c++) {
        coloff[c] = col_offset(C, j0 + c);
        cb[c] = (first && bias && bias->col) ? bias->col[j0 + c] : 0.0f;
    }
    for (int64_t r = 0; r < rows; r++) {
        float *dst = C->data + row_offset(C, i0 + r);
        const float *a = acc + r * nr;
        if (first) {
            const float rb = (bias && bias->row) ? bias->row[i0 + r] : 0.0f;
            if (accumulate) {
                for (int64_t c = 0; c < cols; c++) dst[coloff[c]] += (a[c] + rb) + cb[c];
            } else {
                for (int64_t c = 0; c < cols; c++) dst[coloff[c]] = (a[c] + rb) + cb[c];
            }
        } else {
            for (int64_t c = 0; c < cols; c++) dst[coloff[c]] += a[c];
        }
    }
}

static void gemm_naive(int64_t K, const pt_view *A, const pt_view *B, const pt_view *C, const pt_bias *bias,
                       int accumulate, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t i = i0; i < i1; i++) {
        const float *arow = A->data + row_offset(A, i);
        float *crow = C->data + row_offset(C, i);
        for (int64_t j = j0; j < j1; j++) {
            int64_t bc = col_offset(B, j);
            float s = 0.0f;
            for (int64_t k = 0; k < K; k++) s += arow[col_offset(A, k)] * B->data[row_offset(B, k) + bc];
            s = (s + ((bias && bias->row) ? bias->row[i] : 0.0f)) + ((bias && bias->col) ? bias->col[j] : 0.0f);
            float *c = crow + col_offset(C, j);
            *c = accumulate ? *c + s : s;
        }
    }
}

pt_status pt_gemm_serial(int variant, int64_t K, const pt_view *A, const pt_view *B, const pt_view *C,
                         const pt_bias *bias, int accumulate, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                         float *workspace, int64_t workspace_floats)
{
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    if (v == NULL) return PT_ERR_UNKNOWN_VARIANT;
    if (A == NULL || B == NULL || C == NULL || A->data == NULL || B->data == NULL || C->data == NULL)
        return PT_ERR_NULL_POINTER;
    if (K < 1 || i0 < 0 || j0 < 0 || i1 < i0 || j1 < j0) return PT_ERR_BAD_SHAPE;
    if (i1 == i0 || j1 == j0) return PT_OK;
    if (v->ukernel == NULL) {
        gemm_naive(K, A, B, C, bias, accumulate, i0, i1, j0, j1);
        return PT_OK;
    }
    if (workspace == NULL) return PT_ERR_NULL_POINTER;
    if (workspace_floats < pt_gemm_workspace_floats(variant, i1 - i0, j1 - j0, K))
        return PT_ERR_WORKSPACE_TOO_SMALL;

    const int mr = v->mr, nr = v->nr;
    const int64_t kc_max = min64(KC, K);
    const int64_t mc_max = min64(mc_block(mr), round_up(i1 - i0, mr));
    const int64_t nc_max = min64(nc_block(nr), round_up(j1 - j0, nr));
    float *bpack = workspace;
    float *apack = bpack + kc_max * nc_max;
    float *acc = apack + kc_max * mc_max;

    for (int64_t jc = j0; jc < j1; jc += nc_max) {
        const int64_t jc_end = min64(jc + nc_max, j1);
        for (int64_t pc = 0; pc < K; pc += kc_max) {
            const int64_t kc = min64(kc_max, K - pc);
            for (int64_t jr = jc; jr < jc_end; jr += nr)
                pack_b_panel(B, pc, kc, jr, jc_end, nr, bpack + (jr - jc) * kc);
            for (int64_t ic = i0; ic < i1; ic += mc_max) {
                const int64_t ic_end = min64(ic + mc_max, i1);
                for (int64_t ir = ic; ir < ic_end; ir += mr)
                    pack_a_panel(A, pc, kc, ir, ic_end, mr, apack + (ir - ic) * kc);
                for (int64_t jr = jc; jr < jc_end; jr += nr) {
                    const float *bp = bpack + (jr - jc) * kc;
                    const int64_t cols = min64(nr, jc_end - jr);
                    for (int64_t ir = ic; ir < ic_end; ir += mr) {
                        v->ukernel(kc, apack + (ir - ic) * kc, bp, acc);
                        store_tile(C, bias, ir, min64(mr, ic_end - ir), jr, cols, nr, acc, pc == 0, accumulate);
                    }
                }
            }
        }
    }
    return PT_OK;
}

/* ---- parallel matmul ------------------------------------------------------------------------------- */

typedef struct {
    int variant;
    int64_t M, N, K;
    const pt_view *A, *B, *C;
    const pt_bias *bias;
    int accumulate;
    float *workspace;
    int64_t per_core;
    int split_rows;
    pt_team_status status;
} matmul_task;

static void matmul_worker(void *p)
{
    matmul_task *t = (matmul_task *)p;
    const pt_matmul_variant *v = pt_matmul_variant_info(t->variant);
    int id = pt_core_id();
    int64_t b, e;
    pt_status st = PT_OK;
    if (t->split_rows) {
        pt_chunk(t->M, v->mr, &b, &e);
        if (e > b)
            st = pt_gemm_serial(t->variant, t->K, t->A, t->B, t->C, t->bias, t->accumulate, b, e, 0, t->N,
                                t->workspace ? t->workspace + id * t->per_core : NULL, t->per_core);
    } else {
        pt_chunk(t->N, v->nr, &b, &e);
        if (e > b)
            st = pt_gemm_serial(t->variant, t->K, t->A, t->B, t->C, t->bias, t->accumulate, 0, t->M, b, e,
                                t->workspace ? t->workspace + id * t->per_core : NULL, t->per_core);
    }
    pt_team_status_report(&t->status, st);
}

/* Split along the axis with more register tiles; a core always gets whole tiles. */
static int split_rows_for(const pt_matmul_variant *v, int64_t M, int64_t N)
{
    return (M + v->mr - 1) / v->mr > (N + v->nr - 1) / v->nr;
}

int64_t pt_matmul_view_workspace_floats(int variant, int64_t M, int64_t N, int64_t K, int num_threads)
{
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    if (v == NULL || num_threads < 1) return 0;
    /* Bound for any split: the full extent of the unsplit axis, at most one block of the split one. */
    return (int64_t)num_threads * pt_gemm_workspace_floats(variant, M, N, K);
}

pt_status pt_matmul_view(int variant, int64_t M, int64_t N, int64_t K, const pt_view *A, const pt_view *B,
                         const pt_view *C, const pt_bias *bias, int accumulate, float *workspace,
                         int64_t workspace_floats)
{
    if (variant == PT_MATMUL_AUTO) variant = pt_matmul_pick(M, N, K);
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    if (v == NULL) return PT_ERR_UNKNOWN_VARIANT;
    if (M < 1 || N < 1 || K < 1) return PT_ERR_BAD_SHAPE;
    int threads = pt_get_num_threads();
    int64_t per_core = pt_gemm_workspace_floats(variant, M, N, K);
    if (v->ukernel != NULL && (workspace == NULL || workspace_floats < per_core * threads))
        return workspace == NULL ? PT_ERR_NULL_POINTER : PT_ERR_WORKSPACE_TOO_SMALL;
    matmul_task t;
    t.variant = variant;
    t.M = M; t.N = N; t.K = K;
    t.A = A; t.B = B; t.C = C;
    t.bias = bias;
    t.accumulate = accumulate;
    t.workspace = workspace;
    t.per_core = per_core;
    t.split_rows = split_rows_for(v, M, N);
    pt_team_status_clear(&t.status);
    pt_parallel(matmul_worker, &t);
    return pt_team_status_result(&t.status);
}

pt_status pt_matmul(int variant, int64_t M, int64_t N, int64_t K, const float *A, const float *B, float *C,
                    int accumulate, float *workspace, int64_t workspace_floats)
{
    if (A == NULL || B == NULL || C == NULL) return PT_ERR_NULL_POINTER;
    pt_view a = pt_view_2d(A, K, 1), b = pt_view_2d(B, N, 1), c = pt_view_2d(C, N, 1);
    return pt_matmul_view(variant, M, N, K, &a, &b, &c, NULL, accumulate, workspace, workspace_floats);
}
