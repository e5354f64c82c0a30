/* GCC turns short copy / fill loops (a 16-float panel row, an 8-float plane row) into memcpy / memset
 * calls that cost more than the loop; keep them inline. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include "arch.h"
#include "int_math.h"
#include "matmul.h"
#include "matmul_tiles.h"
#include "isa.h"
#include "parallel.h"

/* Cache blocking: K is cut in KC slices, an A block holds up to MC_TARGET rows, a B block up to
 * NC_TARGET columns (both rounded up to the variant's tile). Fixed numbers: the value of an element
 * depends on KC, so KC must never depend on the thread count. */
#define KC 256
#define MC_TARGET 128
#define NC_TARGET 1024
#define C_ROWS_MAX (MC_TARGET + 64) /* rows of an A block: MC_TARGET rounded up to a tile of at most 64 rows */

#define BIG_BLOCK INT64_MAX
/* Products below this run on one core (see pt_matmul_view). An OpenMP fork on a host costs microseconds;
 * a fork of the serial backend (a bare-metal cluster, whose cores wake in a few dozen cycles) costs next to
 * nothing, so there every product of a layer is shared out (the batch-1 classifier 1024->50 included). */
#ifdef _OPENMP
#define SERIAL_MAX_MACS 65536
#else
#define SERIAL_MAX_MACS 4096
#endif

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
    v.full_panels = 0;
    return v;
}

static inline int64_t row_offset(const pt_view *v, int64_t r)
{
    if (v->row_block == BIG_BLOCK) return r * v->row_stride;
    return (r / v->row_block) * v->row_stride_outer + (r % v->row_block) * v->row_stride;
}

static inline int64_t col_offset(const pt_view *v, int64_t c)
{
    if (v->col_block == BIG_BLOCK) return c * v->col_stride;
    return (c / v->col_block) * v->col_stride_outer + (c % v->col_block) * v->col_stride;
}

/* ---- variants ------------------------------------------------------------------------------------ */

/* Ordered by the ISA level a variant needs, so the variants this CPU can run are a prefix of the list. The tile
 * kernels live in matmul_tiles_generic.c and csrc/arch/x86/ (matmul_tiles.h). */
enum {
    V_NAIVE, V_2X2, V_4X2, V_4X4, V_8X1, V_6X16, V_8X8, V_4X8,
    V_AVX2_6X16, V_AVX2_8X8, V_AVX512_6X16, V_AVX512_8X8, V_AVX512_8X32, V_AVX512_12X16
};
static const pt_matmul_variant variants[] = {
    [V_NAIVE] = {"naive", 1, 1, PT_ISA_GENERIC, NULL},
    [V_2X2] = {"2x2", 2, 2, PT_ISA_GENERIC, &pt_tiles_2x2},
    [V_4X2] = {"4x2", 4, 2, PT_ISA_GENERIC, &pt_tiles_4x2}, /* PULP-TrainLib's favourite */
    [V_4X4] = {"4x4", 4, 4, PT_ISA_GENERIC, &pt_tiles_4x4},
    [V_8X1] = {"8x1", 8, 1, PT_ISA_GENERIC, &pt_tiles_8x1},
    [V_6X16] = {"6x16", 6, 16, PT_ISA_GENERIC, &pt_tiles_6x16_generic}, /* two 8-float vectors per row */
    [V_8X8] = {"8x8", 8, 8, PT_ISA_GENERIC, &pt_tiles_8x8_generic},
    [V_4X8] = {"4x8", 4, 8, PT_ISA_GENERIC, &pt_tiles_4x8_generic},
#if PT_ARCH_X86
    [V_AVX2_6X16] = {"avx2-6x16", 6, 16, PT_ISA_AVX2, &pt_tiles_6x16_avx2},
    [V_AVX2_8X8] = {"avx2-8x8", 8, 8, PT_ISA_AVX2, &pt_tiles_8x8_avx2},
    [V_AVX512_6X16] = {"avx512-6x16", 6, 16, PT_ISA_AVX512, &pt_tiles_6x16_avx512},
    [V_AVX512_8X8] = {"avx512-8x8", 8, 8, PT_ISA_AVX512, &pt_tiles_8x8_avx512},
    [V_AVX512_8X32] = {"avx512-8x32", 8, 32, PT_ISA_AVX512, &pt_tiles_8x32_avx512}, /* two 16-float vectors per row */
    [V_AVX512_12X16] = {"avx512-12x16", 12, 16, PT_ISA_AVX512, &pt_tiles_12x16_avx512}, /* one 16-float vector per row */
#endif
};
#define NUM_VARIANTS ((int)(sizeof(variants) / sizeof(variants[0])))

/* The automatic choice of each level (a fixed per-shape rule, never a function of the thread count). */
static int default_variant(int level, int64_t N)
{
    switch (level) {
#if PT_ARCH_X86
    /* a 32-column tile would be half padding on a product of at most 16 columns */
    case PT_ISA_AVX512: return N <= 16 ? V_AVX512_12X16 : V_AVX512_8X32;
    case PT_ISA_AVX2: return V_AVX2_6X16;
#endif
    default: return PT_ARCH_SIMD8 ? V_6X16 : V_4X4; /* 4x4: 16 accumulators fit a scalar FP register file */
    }
}

static int preferred_variant = PT_MATMUL_AUTO; /* the default of pt_team_default() only */

int pt_matmul_num_variants(void)
{
#if PT_ARCH_X86
    /* the CPU never changes: two first calls racing store the same count */
    static int available;
    if (available == 0) {
        const int cpu = pt_isa_detected();
        int n = 0;
        while (n < NUM_VARIANTS && variants[n].isa_level <= cpu) n++;
        available = n;
    }
    return available;
#else
    return NUM_VARIANTS; /* all generic */
#endif
}

const pt_matmul_variant *pt_matmul_variant_info(int id)
{
    if (id < 0 || id >= pt_matmul_num_variants()) return NULL;
    return &variants[id];
}

int pt_matmul_variant_find(const char *name)
{
    if (name == NULL) return -1;
    for (int i = 0; i < pt_matmul_num_variants(); i++)
        if (strcmp(variants[i].name, name) == 0) return i;
    return -1;
}

int pt_matmul_pick(const pt_team *team, int64_t M, int64_t N, int64_t K)
{
    (void)M; (void)K;
    if (team->matmul_variant != PT_MATMUL_AUTO) return team->matmul_variant;
    return default_variant(pt_isa_resolve(team->isa_level), N);
}

pt_status pt_matmul_set_preferred(int variant)
{
    if (variant != PT_MATMUL_AUTO && pt_matmul_variant_info(variant) == NULL) return PT_ERR_UNKNOWN_VARIANT;
    preferred_variant = variant;
    return PT_OK;
}

int pt_matmul_get_preferred(void) { return preferred_variant; }

/* ---- packed GEMM ----------------------------------------------------------------------------------- */

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

static int64_t mc_block(int mr) { return round_up(MC_TARGET, mr); }
static int64_t nc_block(int nr) { return round_up(NC_TARGET, nr); }

/* Offsets of rows [r0, r0 + n) (or columns) of a two-level axis, without a division per element. */
static void axis_offsets(int64_t block, int64_t stride_outer, int64_t stride, int64_t r0, int64_t n,
                         int64_t *out)
{
    if (block == BIG_BLOCK) {
        for (int64_t i = 0; i < n; i++) out[i] = (r0 + i) * stride;
        return;
    }
    int64_t outer = r0 / block, inner = r0 % block;
    for (int64_t i = 0; i < n; i++) {
        out[i] = outer * stride_outer + inner * stride;
        if (++inner == block) {
            inner = 0;
            outer++;
        }
    }
}

#define ALIGN_SLACK 16 /* floats: room to start the packed panels on a 64-byte line */

/* Workspace layout of one core (from the first 64-byte line): B block (kc x nc), A block (kc x mc), one MR x NR edge tile, then the
 * row and column offsets of the C block and the K offsets of the K block (int64, aligned up inside the
 * two spare floats). */
int64_t pt_gemm_workspace_floats(int variant, int64_t M, int64_t N, int64_t K)
{
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    if (v == NULL || v->tiles == NULL || M <= 0 || N <= 0 || K <= 0) return 0;
    int64_t kc = min64(KC, K);
    int64_t mc = min64(mc_block(v->mr), round_up(M, v->mr));
    int64_t nc = min64(nc_block(v->nr), round_up(N, v->nr));
    return ALIGN_SLACK + kc * (mc + nc) + (int64_t)v->mr * v->nr + 2 * (mc + nc + kc) + 2;
}

/* dst[0..n) = src[0..n) with a 32-bit counter (64-bit ones cost a carry per step on rv32) */
static inline __attribute__((always_inline)) void copy_floats(float *restrict dst, const float *restrict src, int n)
{
    for (int i = 0; i < n; i++) dst[i] = src[i];
}

/* Cuts the offsets off[0..n) into runs of consecutive values (the columns of one image of a batch-folded
 * view): run r covers [start[r], start[r + 1]); returns the number of runs. start holds n + 1 entries. */
static int consecutive_runs(const int64_t *off, int n, int *start)
{
    int runs = 0;
    start[0] = 0;
    for (int c = 1; c < n; c++)
        if (off[c] != off[c - 1] + 1) start[++runs] = c;
    start[++runs] = n;
    return runs;
}

#define RUNS_MAX 64 /* at least the widest tile's NR (32) */
/* Columns from which a panel is packed and an edge tile stored by runs: the wide tiles of the vector families; a
 * narrow one (rv32's 4 columns) costs fewer instructions one float at a time than the scan for runs. */
#define WIDE_EDGE 16

/* Whether copying `cols` columns run by run pays: runs of 4 floats or more on average (single floats cost
 * less one at a time; rv32 pointwise grad_weight, whose columns are HW apart, took 2.4 % more instructions). */
static int long_runs(int runs, int64_t cols) { return 4 * (int64_t)runs <= cols; }

/* pack_b_panel for a wide panel whose columns are runs of consecutive floats (the images of a batch-folded B),
 * copied run by run; 0 (nothing written) when the runs are too short to pay. Not inlined, like store_edge_runs. */
__attribute__((noinline))
static int pack_b_runs(const pt_view *B, const int64_t *restrict rowoff, int64_t kc, const int64_t *coloff,
                       int64_t cols, int nr, float *restrict out)
{
    int start[RUNS_MAX + 1];
    const int runs = consecutive_runs(coloff, (int)cols, start);
    if (!long_runs(runs, cols)) return 0;
    for (int64_t p = 0; p < kc; p++, out += nr) {
        const float *src = B->data + rowoff[p];
        for (int r = 0; r < runs; r++) copy_floats(out + start[r], src + coloff[start[r]], start[r + 1] - start[r]);
        for (int c = (int)cols; c < nr; c++) out[c] = 0.0f;
    }
    return 1;
}

/* out[p*nr + c] = B(k0 + p, j0 + c) for one nr-wide panel (row offsets rowoff[0..kc), column offsets
 * coloff[0..cols)), zero beyond column cols. Columns that are consecutive in memory (a row-major B, or one
 * image of a batch-folded one) are copied as runs; a transposed B (unit row stride) is copied column by column,
 * so each source column is read sequentially instead of one cache line per element. */
static void pack_b_panel(const pt_view *B, const int64_t *restrict rowoff, int64_t kc, const int64_t *coloff,
                         int64_t cols, int nr, float *restrict out)
{
    if (B->col_stride == 1 && coloff[cols - 1] - coloff[0] == cols - 1) {
        const float *base = B->data + coloff[0];
        if (cols == nr && nr == 4) { /* the scalar targets' tile: a constant-size copy per row */
            for (int64_t p = 0; p < kc; p++, out += 4) copy_floats(out, base + rowoff[p], 4);
            return;
        }
        for (int64_t p = 0; p < kc; p++, out += nr) {
            copy_floats(out, base + rowoff[p], (int)cols);
            for (int c = (int)cols; c < nr; c++) out[c] = 0.0f;
        }
        return;
    }
    if (cols >= WIDE_EDGE && pack_b_runs(B, rowoff, kc, coloff, cols, nr, out)) return;
    if (B->row_stride == 1 && rowoff[kc - 1] - rowoff[0] == kc - 1) {
        for (int64_t c = 0; c < cols; c++) {
            const float *src = B->data + rowoff[0] + coloff[c];
            for (int64_t p = 0; p < kc; p++) out[p * nr + c] = src[p];
        }
        for (int64_t p = 0; p < kc; p++)
            for (int64_t c = cols; c < nr; c++) out[p * nr + c] = 0.0f;
        return;
    }
    for (int64_t p = 0; p < kc; p++) {
        const float *src = B->data + rowoff[p];
        float *dst = out + p * nr;
        for (int64_t c = 0; c < cols; c++) dst[c] = src[coloff[c]];
        for (int64_t c = cols; c < nr; c++) dst[c] = 0.0f;
    }
}

/* out[p*mr + r] = A(i0 + r, k0 + p) for one mr-tall panel (row offsets rowoff[0..rows), K offsets
 * koff[0..kc)), zero beyond row rows. A column-major A (a transposed weight) is copied a K step at a time. */
static void pack_a_panel(const pt_view *A, const int64_t *rowoff, int64_t rows, const int64_t *restrict koff,
                         int64_t kc, int mr, float *restrict out)
{
    if (A->row_stride == 1 && rowoff[rows - 1] - rowoff[0] == rows - 1) {
        for (int64_t p = 0; p < kc; p++) {
            const float *src = A->data + koff[p] + rowoff[0];
            float *dst = out + p * mr;
            for (int64_t r = 0; r < rows; r++) dst[r] = src[r];
            for (int64_t r = rows; r < mr; r++) dst[r] = 0.0f;
        }
        return;
    }
    const int contiguous = A->col_stride == 1 && koff[kc - 1] - koff[0] == kc - 1;
    for (int64_t r = 0; r < rows; r++) {
        const float *src = A->data + rowoff[r];
        if (contiguous) {
            src += koff[0];
            for (int64_t p = 0; p < kc; p++) out[p * mr + r] = src[p];
        } else {
            for (int64_t p = 0; p < kc; p++) out[p * mr + r] = src[koff[p]];
        }
    }
    for (int64_t r = rows; r < mr; r++)
        for (int64_t p = 0; p < kc; p++) out[p * mr + r] = 0.0f;
}

/* All panels of an A block at once when A is column-major (a transposed weight): each K step copies the
 * block's rows as one contiguous run, instead of MR floats per panel at a stride that may alias in the cache. */
static void pack_a_block_column_major(const float *a, int64_t lda, int64_t rows, int64_t kc, int mr,
                                      float *restrict out)
{
    for (int64_t p = 0; p < kc; p++) {
        const float *src = a + p * lda;
        for (int64_t r0 = 0; r0 < rows; r0 += mr) {
            float *dst = out + r0 * kc + p * mr;
            const int64_t n = rows - r0 < mr ? rows - r0 : mr;
            for (int64_t r = 0; r < n; r++) dst[r] = src[r0 + r];
            for (int64_t r = n; r < mr; r++) dst[r] = 0.0f;
        }
    }
}

/* store_edge_tile for columns in `runs` runs of consecutive floats (start[q] .. start[q + 1]), the mode chosen once
 * per run. Not inlined (nor is pack_b_runs): the scalar targets never come here, and inlined, the run code and its
 * arrays cost the code around it on rv32 (conv1 grad_input's critical path +1.0 %; +0.6 % remains). */
__attribute__((noinline))
static void store_edge_runs(float *cdata, const int64_t *rowoff, int64_t rows, const int64_t *coloff, const int *start,
                            int runs, int nr, const float *acc, const float *rb, const float *cb, int mode)
{
    for (int64_t r = 0; r < rows; r++)
        for (int q = 0; q < runs; q++) {
            const int c0 = start[q], n = start[q + 1] - c0;
            float *restrict d = cdata + rowoff[r] + coloff[c0];
            const float *restrict a = acc + r * nr + c0, *restrict b = cb + c0;
            const float rbr = rb[r];
            switch (mode) {
            case TILE_STORE: for (int c = 0; c < n; c++) d[c] = a[c]; break;
            case TILE_FIRST: for (int c = 0; c < n; c++) d[c] = (a[c] + rbr) + b[c]; break;
            case TILE_FIRST_ADD: for (int c = 0; c < n; c++) d[c] += (a[c] + rbr) + b[c]; break;
            default: for (int c = 0; c < n; c++) d[c] += a[c]; break;
            }
        }
}

/* Writes the valid rows x cols part of an edge tile (acc, row-major with nr columns): the same
 * arithmetic as the tile kernels' modes. Wide tiles whose columns are runs of consecutive floats in C (a tile
 * across two images of a batch-folded output) are written run by run (pw 1024->1024 at 4x4, batch 16: every
 * 32-column tile covers two images; the per-element loop took 17 % of the forward). */
static void store_edge_tile(float *cdata, const int64_t *rowoff, int64_t rows, const int64_t *coloff,
                            int64_t cols, int nr, const float *acc, const float *rb, const float *cb, int mode)
{
    if (cols >= WIDE_EDGE) {
        int start[RUNS_MAX + 1];
        const int runs = consecutive_runs(coloff, (int)cols, start);
        if (long_runs(runs, cols)) {
            store_edge_runs(cdata, rowoff, rows, coloff, start, runs, nr, acc, rb, cb, mode);
            return;
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        float *dst = cdata + rowoff[r];
        const float *a = acc + r * nr;
        for (int64_t c = 0; c < cols; c++) {
            float *d = dst + coloff[c];
            switch (mode) {
            case TILE_STORE: *d = a[c]; break;
            case TILE_FIRST: *d = (a[c] + rb[r]) + cb[c]; break;
            case TILE_FIRST_ADD: *d += (a[c] + rb[r]) + cb[c]; break;
            default: *d += a[c]; break;
            }
        }
    }
}

/* Not inlined into pt_gemm_serial, whose registers it then shares and spills (rv32: 15.4 against 10.6 instr/MAC). */
__attribute__((noinline))
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

/* A is read in place (no packing) when it is a plain strided matrix whose rows are contiguous along K:
 * its MR row streams then feed the tile kernel as well as a packed panel would, and the pack pass is
 * saved (it costs as much as the product when N is small). Column-major A (a transposed weight) is read
 * in place only when the product has few column panels, since then its rows are reused little. */
static int read_a_in_place(const pt_view *A, int64_t K, int64_t cols, int nr)
{
#if !PT_ARCH_SIMD8
    /* A scalar target (rv32imfc; PULP's L1 is a scratchpad, no cache sets to alias): the scalar tiles read a
     * row-major A with constant offsets and a column-major one with one pointer step per K step, so packing
     * it (about 10 instructions per element on rv32) never pays. Columns cut in blocks of K or more (a
     * batch-1 activation folded per image) are plain over the product. */
    (void)cols; (void)nr;
    if (A->row_block != BIG_BLOCK || (A->col_block != BIG_BLOCK && A->col_block < K)) return 0;
    return A->col_stride == 1 || A->row_stride == 1;
#else
    (void)K;
    if (A->row_block != BIG_BLOCK || A->col_block != BIG_BLOCK) return 0;
    /* A row-major A whose rows are a multiple of 4 KiB apart puts the MR rows of a tile in one L1 set: with
     * many column panels reusing the block, packing it pays (pw 1024->1024 4x4 batch-16 forward 9.5 -> 7.9 ms). */
    if (A->col_stride == 1) return A->row_stride % 1024 != 0 || cols <= 8 * nr;
    /* A column-major A is read one K step (MR floats) per row of its storage. With up to 4 column panels
     * that beats packing the block, even at a stride of 4 KiB where every step falls in the same L1 set
     * (batch-1 pointwise grad_input: 1024->1024 at 4x4 0.55 ms in place against 1.07 ms packed, 512->512
     * at 8x8 0.44 against 0.54 ms). */
    return A->row_stride == 1 && cols <= 4 * nr;
#endif
}

#define OUTER_K 4 /* products with K up to this are outer products (see plan_operands) */

/* Which operands a product of `rows` x `cols` (one core's share, or the whole product) reads in place. */
typedef struct {
    int a_in_place, b_in_place;
    int wide_rows; /* rows of C go through the 1 x 128 kernel */
} operand_plan;

static operand_plan plan_operands(int variant, const pt_view *A, const pt_view *B, int64_t K, int64_t rows,
                                  int64_t cols)
{
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    const int mr = v->mr, nr = v->nr, vector_rows = v->tiles != NULL && v->tiles->wide_row != NULL;
    const int a_plain = A->row_block == BIG_BLOCK && A->col_block == BIG_BLOCK;
    const int b_row_major = B->row_block == BIG_BLOCK && B->col_block == BIG_BLOCK && B->col_stride == 1;
    operand_plan op;
    /* An outer product (K <= OUTER_K: a batch-1 linear weight gradient) is all per-tile overhead: A and B
     * are read in place and each row of C goes through the 1 x 128 kernel. */
    const int outer = K <= OUTER_K && a_plain && b_row_major && vector_rows;
    op.a_in_place = outer || read_a_in_place(A, K, cols, nr);
    /* B is read in place when its panels already have the packed layout (row stride NR, columns contiguous
     * in blocks of NR, as the conv forward's im2col writes them), or, for a plain row-major B, when at most
     * three row tiles would use a packed panel (packing costs more than their re-reads: linear 1024->50
     * batch-16 grad_input 33.5 -> 27.5 us). */
    const int b_packed_layout = B->row_block == BIG_BLOCK && B->row_stride == nr && B->col_stride == 1 &&
                                (B->col_block == BIG_BLOCK || B->col_block % nr == 0);
    op.b_in_place = b_packed_layout || (b_row_major && (rows <= 3 * mr || outer));
    /* One output row read from an in-place B (a batch-1 layer), or an outer product: a 1 x 128 kernel
     * streams B's rows in long runs instead of one 64-byte piece per row and tile (same per-element
     * arithmetic as the 1-row tile). */
    op.wide_rows = op.b_in_place && b_row_major && (rows == 1 || outer) && vector_rows && a_plain;
    return op;
}

#define WIDE_COLS 128
#define SHORT_K 32
static const float zero_bias[WIDE_COLS];

/* What the tiles of one (A block, B block) pair share: see pt_gemm_serial. */
typedef struct {
    const pt_view *A, *B, *C;
    pt_tile_fn tile;              /* the variant's full tile kernel */
    const pt_tile_fn *short_tiles; /* its kernels for fewer rows, or NULL */
    pt_tile_fn wide_row;          /* its 1 x PT_WIDE_COLS kernel, or NULL */
    int mr, nr;
    int64_t pc, kc, ic, jc, jc_end;
    const float *apack, *bpack;
    const int64_t *c_rowoff, *c_coloff; /* C's row offsets from row ic, column offsets from column jc */
    int a_in_place, b_in_place, mode;
    int b_edge_in_place; /* an edge panel of B read in place too (B->full_panels) */
    const float *rbias, *cbias; /* NULL after the first K block */
    float *acc;                 /* the MR x NR edge tile buffer */
    float *const *acc_rows;
} block_tiles;

/* The tile of rows [ir, ir + rows) and columns [jr, jr + NR) of a block. */
static inline void block_tile(const block_tiles *x, int64_t ir, int64_t rows, int64_t jr)
{
    const int mr = x->mr, nr = x->nr;
    const int64_t cols = min64(nr, x->jc_end - jr);
    const float *bp = x->bpack + (jr - x->jc) * x->kc;
    int64_t ldb = nr;
    if (x->b_in_place && (cols == nr || x->b_edge_in_place)) {
        bp = x->B->data + x->pc * x->B->row_stride + col_offset(x->B, jr);
        ldb = x->B->row_stride;
    }
    const int64_t *coloff = x->c_coloff + (jr - x->jc);
    const int64_t *rowoff = x->c_rowoff + (ir - x->ic);
    const int contiguous = cols == nr && x->C->col_stride == 1 && coloff[nr - 1] - coloff[0] == nr - 1;
    const float *cb = x->cbias ? x->cbias + jr : zero_bias;
    const float *rb = x->rbias ? x->rbias + ir : zero_bias;
    /* Short row tiles run their own kernel when the variant has one, else the full kernel on a zero-padded
     * panel into the edge buffer. */
    const pt_tile_fn kernel = rows == mr ? x->tile : x->short_tiles ? x->short_tiles[rows] : NULL;
    const float *ap = x->apack + (ir - x->ic) * x->kc;
    int64_t rs_a = 1, cs_a = mr;
    if (x->a_in_place && kernel != NULL) {
        ap = x->A->data + ir * x->A->row_stride + x->pc * x->A->col_stride;
        rs_a = x->A->row_stride;
        cs_a = x->A->col_stride;
    }
    if (contiguous && kernel != NULL) {
        float *crow[64];
        for (int r = 0; r < rows; r++) crow[r] = x->C->data + rowoff[r] + coloff[0];
        kernel(x->kc, ap, rs_a, cs_a, bp, ldb, crow, rb, cb, x->mode);
    } else {
        (kernel ? kernel : x->tile)(x->kc, ap, rs_a, cs_a, bp, ldb, x->acc_rows, NULL, NULL, TILE_STORE);
        store_edge_tile(x->C->data, rowoff, rows, coloff, cols, nr, x->acc, rb, cb, x->mode);
    }
}

/* The tiles of column panel jr of a block through the family's column kernel: its full row tiles in one call
 * where the panel is full and C's columns contiguous (c_rows: C's row pointers of the block), the rest (a
 * short last row tile, an edge panel) tile by tile. Same per-element arithmetic as block_tile. */
static void column_sweep(const block_tiles *x, pt_tile_column_fn column, float *const *c_rows, int64_t ic_end,
                         int64_t jr)
{
    const int mr = x->mr, nr = x->nr;
    const int64_t *coloff = x->c_coloff + (jr - x->jc);
    const int full_panel = x->jc_end - jr >= nr && x->C->col_stride == 1 && coloff[nr - 1] - coloff[0] == nr - 1;
    const int64_t tiles = full_panel ? (ic_end - x->ic) / mr : 0;
    if (tiles > 0) {
        const float *bp = x->bpack + (jr - x->jc) * x->kc;
        int64_t ldb = nr;
        if (x->b_in_place) {
            bp = x->B->data + x->pc * x->B->row_stride + col_offset(x->B, jr);
            ldb = x->B->row_stride;
        }
        const float *ap = x->apack;
        int64_t a_step = mr * x->kc, rs_a = 1, cs_a = mr;
        if (x->a_in_place) {
            ap = x->A->data + x->ic * x->A->row_stride + x->pc * x->A->col_stride;
            a_step = mr * x->A->row_stride;
            rs_a = x->A->row_stride;
            cs_a = x->A->col_stride;
        }
        column(tiles, x->kc, ap, a_step, rs_a, cs_a, bp, ldb, c_rows, coloff[0], x->rbias ? x->rbias + x->ic : zero_bias,
               x->rbias ? mr : 0, x->cbias ? x->cbias + jr : zero_bias, x->mode);
    }
    for (int64_t ir = x->ic + tiles * mr; ir < ic_end; ir += mr) block_tile(x, ir, min64(mr, ic_end - ir), jr);
}

/* Row ir of a block, from A and B in place: 128 columns at a time through the 1 x 128 kernel where C's
 * columns are contiguous, single-row tiles elsewhere. */
static void wide_row_sweep(const block_tiles *x, int64_t ir)
{
    const pt_view *A = x->A, *B = x->B;
    const float *ap = A->data + ir * A->row_stride + x->pc * A->col_stride;
    const float *rb = x->rbias ? x->rbias + ir : zero_bias;
    for (int64_t jr = x->jc; jr < x->jc_end; jr += x->nr) {
        const int64_t *coloff = x->c_coloff + (jr - x->jc);
        if (x->jc_end - jr >= WIDE_COLS && x->C->col_stride == 1 && coloff[WIDE_COLS - 1] - coloff[0] == WIDE_COLS - 1) {
            float *crow = x->C->data + x->c_rowoff[ir - x->ic] + coloff[0];
            const float *bp = B->data + x->pc * B->row_stride + col_offset(B, jr);
            const float *cb = x->cbias ? x->cbias + jr : zero_bias;
            x->wide_row(x->kc, ap, A->row_stride, A->col_stride, bp, B->row_stride, &crow, rb, cb, x->mode);
            jr += WIDE_COLS - x->nr;
            continue;
        }
        block_tile(x, ir, 1, jr);
    }
}

/* C[i0:i1, j0:j1] of an outer product (K <= OUTER_K) with plain operands and contiguous rows of B and C, for
 * the scalar tile families: packing a K x 4 panel per tile cost more than its 16 products (rv32 4x4, batch-1
 * linear 1024->50 grad_weight 17.3 instr/MAC). Each element is the tile kernels' chain: acc = 0, acc += a*b
 * over k, then the tile's store (`mode`), so the value is the one a tile gives. Pointer loops: 64-bit
 * indices cost a carry per step on rv32. */
static inline __attribute__((always_inline)) float outer_chain(int K, const float *a, const float *const *brow,
                                                               int64_t j)
{
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += a[k] * brow[k][j];
    return acc;
}

static inline __attribute__((always_inline)) void outer_row(int K, const float *a, const float *const *brow,
                                                            float *c, int64_t n, float rb, const float *cb,
                                                            int mode)
{
    /* unrolled: one loop branch and pointer step per 4 elements (rv32, K = 1: about 4 instead of 6 per element) */
    if (mode == TILE_STORE)
        _Pragma("GCC unroll 4") for (int64_t j = 0; j < n; j++) c[j] = outer_chain(K, a, brow, j);
    else if (mode == TILE_ADD)
        _Pragma("GCC unroll 4") for (int64_t j = 0; j < n; j++) c[j] += outer_chain(K, a, brow, j);
    else
        for (int64_t j = 0; j < n; j++) {
            const float v = (outer_chain(K, a, brow, j) + rb) + (cb ? cb[j] : 0.0f);
            c[j] = mode == TILE_FIRST ? v : c[j] + v;
        }
}

static void outer_product(int64_t K, const pt_view *A, const pt_view *B, const pt_view *C, const pt_bias *bias,
                          int accumulate, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    const float *rbias = (bias && bias->row) ? bias->row : NULL, *cbias = (bias && bias->col) ? bias->col + j0 : NULL;
    const int has_bias = rbias != NULL || cbias != NULL;
    const int mode = !has_bias ? (accumulate ? TILE_ADD : TILE_STORE) : accumulate ? TILE_FIRST_ADD : TILE_FIRST;
    float a[OUTER_K];
    const float *brow[OUTER_K];
    for (int64_t k = 0; k < K; k++) brow[k] = B->data + k * B->row_stride + j0;
    for (int64_t i = i0; i < i1; i++) {
        for (int64_t k = 0; k < K; k++) a[k] = A->data[i * A->row_stride + k * A->col_stride];
        float *c = C->data + i * C->row_stride + j0;
        const float rb = rbias ? rbias[i] : 0.0f;
        if (K == 1) /* the batch-1 weight gradient: a constant K lets the compiler drop the k loop */
            outer_row(1, a, brow, c, j1 - j0, rb, cbias, mode);
        else
            outer_row((int)K, a, brow, c, j1 - j0, rb, cbias, mode);
    }
}

/* A product with one row (a batch-1 linear grad_input) from a plain A row and a row-major B, for the scalar
 * tile families: a tile would pad the row to MR rows of zeros. Chosen from the whole product's shape in
 * pt_matmul_view (see is_single_row), so it is the same for any team size. ROW_COLS accumulators per pass, each element
 * the tile kernels' chain per K block (acc = 0, acc += a*b over the block, then the tile's store `mode`),
 * so the value is the one a tile gives. */
#if PT_ARCH_SIMD8
#define ROW_COLS 8 /* accumulators that stay in x86-64's 16 vector registers */
#else
#define ROW_COLS 16 /* a scalar target's 32 FP registers (rv32: 2.3 instead of 2.6 instructions per MAC) */
#endif

static inline __attribute__((always_inline)) void row_columns(int cols, int kc, const float *a, int64_t cs_a,
                                                              const float *b, int64_t ldb, float *c, float rb,
                                                              const float *cb, int mode)
{
    float acc[ROW_COLS];
    for (int q = 0; q < cols; q++) acc[q] = 0.0f;
    for (int p = 0; p < kc; p++, a += cs_a, b += ldb) {
        const float ap = *a;
        for (int q = 0; q < cols; q++) acc[q] += ap * b[q];
    }
    for (int q = 0; q < cols; q++) switch (mode) {
        case TILE_STORE: c[q] = acc[q]; break;
        case TILE_FIRST: c[q] = (acc[q] + rb) + (cb ? cb[q] : 0.0f); break;
        case TILE_FIRST_ADD: c[q] += (acc[q] + rb) + (cb ? cb[q] : 0.0f); break;
        default: c[q] += acc[q]; break;
        }
}

static void single_row(int64_t K, const pt_view *A, const pt_view *B, const pt_view *C, const pt_bias *bias,
                       int accumulate, int64_t i, int64_t j0, int64_t j1)
{
    const float rb = (bias && bias->row) ? bias->row[i] : 0.0f;
    const float *cbias = (bias && bias->col) ? bias->col : NULL;
    const int has_bias = (bias && bias->row) || cbias != NULL;
    const float *a = A->data + i * A->row_stride;
    float *c = C->data + i * C->row_stride;
    for (int64_t pc = 0; pc < K; pc += KC) {
        const int kc = (int)min64(KC, K - pc);
        const int mode = pc > 0        ? TILE_ADD
                         : !has_bias   ? (accumulate ? TILE_ADD : TILE_STORE)
                         : accumulate  ? TILE_FIRST_ADD
                                       : TILE_FIRST;
        const float *ak = a + pc * A->col_stride, *bk = B->data + pc * B->row_stride;
        const float *cb = pc == 0 ? cbias : NULL;
        int64_t j = j0;
        for (; j + ROW_COLS <= j1; j += ROW_COLS)
            row_columns(ROW_COLS, kc, ak, A->col_stride, bk + j, B->row_stride, c + j, rb, cb ? cb + j : NULL, mode);
        for (; j < j1; j++)
            row_columns(1, kc, ak, A->col_stride, bk + j, B->row_stride, c + j, rb, cb ? cb + j : NULL, mode);
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
    if (v->tiles == NULL) {
        gemm_naive(K, A, B, C, bias, accumulate, i0, i1, j0, j1);
        return PT_OK;
    }
    if (workspace == NULL) return PT_ERR_NULL_POINTER;
    if (workspace_floats < pt_gemm_workspace_floats(variant, i1 - i0, j1 - j0, K))
        return PT_ERR_WORKSPACE_TOO_SMALL;

    const int plain_a = A->row_block == BIG_BLOCK && A->col_block == BIG_BLOCK;
    const int row_major_b = B->row_block == BIG_BLOCK && B->col_block == BIG_BLOCK && B->col_stride == 1;
    const int row_major_c = C->row_block == BIG_BLOCK && C->col_block == BIG_BLOCK && C->col_stride == 1;
    if (K <= OUTER_K && v->tiles->row_tiles == NULL && plain_a && row_major_b && row_major_c) {
        outer_product(K, A, B, C, bias, accumulate, i0, i1, j0, j1);
        return PT_OK;
    }

    const int mr = v->mr, nr = v->nr;
    const pt_tile_fn tile = v->tiles->tile;
    const int64_t kc_max = min64(KC, K);
    const int64_t mc_max = min64(mc_block(mr), round_up(i1 - i0, mr));
    const int64_t nc_max = min64(nc_block(nr), round_up(j1 - j0, nr));
    /* packed panels start on a 64-byte line (a caller's buffer need not be aligned): a 16-float panel row
     * is then one cache line, not two */
    float *bpack = (float *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63);
    float *apack = bpack + kc_max * nc_max;
    float *acc = apack + kc_max * mc_max;
    float *offsets = acc + mr * nr;
    int64_t *c_coloff = (int64_t *)(void *)((uintptr_t)(offsets + 1) & ~(uintptr_t)7);
    int64_t *c_rowoff = c_coloff + nc_max;             /* rows of the C block; reused for A's rows */
    int64_t *k_off = c_rowoff + mc_max;                /* B's rows, then A's columns, of the K block */
    const float *rbias = (bias && bias->row) ? bias->row : NULL;
    const float *cbias = (bias && bias->col) ? bias->col : NULL;
    const int has_bias = rbias != NULL || cbias != NULL;
    const pt_tile_fn *short_tiles = v->tiles->row_tiles;
    const operand_plan op = plan_operands(variant, A, B, K, i1 - i0, j1 - j0);
    const int in_place = op.a_in_place, b_in_place = op.b_in_place, wide_rows = op.wide_rows;
    const int rows_outer = K <= SHORT_K && !wide_rows;
    const pt_tile_column_fn column = v->tiles->column;
    float *c_rows[C_ROWS_MAX]; /* C's rows of a block, for the column kernel */
    float *acc_rows[64];
    for (int r = 0; r < mr; r++) acc_rows[r] = acc + r * nr;

    for (int64_t jc = j0; jc < j1; jc += nc_max) {
        const int64_t jc_end = min64(jc + nc_max, j1);
        for (int64_t pc = 0; pc < K; pc += kc_max) {
            const int64_t kc = min64(kc_max, K - pc);
            const int first = pc == 0;
            const int mode = !first ? TILE_ADD
                             : !has_bias ? (accumulate ? TILE_ADD : TILE_STORE)
                             : accumulate ? TILE_FIRST_ADD : TILE_FIRST;
            /* B panels: K offsets of B's rows, then C's column offsets double as B's (same columns). */
            axis_offsets(B->row_block, B->row_stride_outer, B->row_stride, pc, kc, k_off);
            axis_offsets(B->col_block, B->col_stride_outer, B->col_stride, jc, jc_end - jc, c_coloff);
            for (int64_t jr = jc; jr < jc_end; jr += nr)
                if (!b_in_place || (jc_end - jr < nr && !B->full_panels))
                    pack_b_panel(B, k_off, kc, c_coloff + (jr - jc), min64(nr, jc_end - jr), nr,
                                 bpack + (jr - jc) * kc);
            axis_offsets(C->col_block, C->col_stride_outer, C->col_stride, jc, jc_end - jc, c_coloff);
            axis_offsets(A->col_block, A->col_stride_outer, A->col_stride, pc, kc, k_off);
            for (int64_t ic = i0; ic < i1; ic += mc_max) {
                const int64_t ic_end = min64(ic + mc_max, i1);
                /* A panels (row offsets of A first, then the same slots hold C's row offsets). */
                axis_offsets(A->row_block, A->row_stride_outer, A->row_stride, ic, ic_end - ic, c_rowoff);
                if (!in_place && A->row_block == BIG_BLOCK && A->col_block == BIG_BLOCK && A->row_stride == 1) {
                    pack_a_block_column_major(A->data + ic + pc * A->col_stride, A->col_stride, ic_end - ic, kc, mr,
                                              apack);
                } else for (int64_t ir = ic; ir < ic_end; ir += mr) {
                    const int64_t rows = min64(mr, ic_end - ir);
                    if (!in_place || (rows < mr && short_tiles == NULL))
                        pack_a_panel(A, c_rowoff + (ir - ic), rows, k_off, kc, mr, apack + (ir - ic) * kc);
                }
                axis_offsets(C->row_block, C->row_stride_outer, C->row_stride, ic, ic_end - ic, c_rowoff);
                block_tiles x = {A, B, C, tile, short_tiles, v->tiles->wide_row, mr, nr, pc, kc, ic, jc, jc_end, apack, bpack,
                                 c_rowoff, c_coloff, in_place, b_in_place, mode, b_in_place && B->full_panels,
                                 (first && rbias) ? rbias : NULL, (first && cbias) ? cbias : NULL, acc, acc_rows};
                if (column != NULL) {
                    for (int64_t i = 0; i < ic_end - ic; i++) c_rows[i] = C->data + c_rowoff[i];
                    for (int64_t jr = jc; jr < jc_end; jr += nr) column_sweep(&x, column, c_rows, ic_end, jr);
                    continue;
                }
                if (rows_outer) {
                    for (int64_t ir = ic; ir < ic_end; ir += mr)
                        for (int64_t jr = jc; jr < jc_end; jr += nr) block_tile(&x, ir, min64(mr, ic_end - ir), jr);
                    continue;
                }
                if (wide_rows) {
                    for (int64_t ir = ic; ir < ic_end; ir++) wide_row_sweep(&x, ir);
                    continue;
                }
                for (int64_t jr = jc; jr < jc_end; jr += nr)
                    for (int64_t ir = ic; ir < ic_end; ir += mr) block_tile(&x, ir, min64(mr, ic_end - ir), jr);
            }
        }
    }
    return PT_OK;
}

/* ---- single-row products ---------------------------------------------------------------------------
 * A product with one output row (a linear layer at batch 1) whose A row and B columns are both contiguous
 * along K is a set of dot products: no packing at all, 8 partial sums per element in a fixed order. Chosen
 * from the whole product's shape in pt_matmul_view, never from a core's share, so it is the same for any
 * team size. */
static int is_row_dot(int64_t M, const pt_view *A, const pt_view *B)
{
    return M == 1 && A->col_block == BIG_BLOCK && A->col_stride == 1 && B->row_block == BIG_BLOCK &&
           B->row_stride == 1;
}

static void row_dot(pt_dot_fn dot, int64_t K, const pt_view *A, const pt_view *B, const pt_view *C, const pt_bias *bias,
                    int accumulate, int64_t j0, int64_t j1)
{
    const float rb = (bias && bias->row) ? bias->row[0] : 0.0f;
    for (int64_t j = j0; j < j1; j += PT_DOT_COLS) {
        const int cols = (int)min64(PT_DOT_COLS, j1 - j);
        const float *bcol[PT_DOT_COLS];
        float s[PT_DOT_COLS];
        for (int c = 0; c < cols; c++) bcol[c] = B->data + col_offset(B, j + c);
        dot(K, A->data, bcol, cols, s);
        for (int c = 0; c < cols; c++) {
            const float v = (s[c] + rb) + ((bias && bias->col) ? bias->col[j + c] : 0.0f);
            float *d = C->data + col_offset(C, j + c);
            *d = accumulate ? *d + v : v;
        }
    }
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
    int row_dot, single_row;
    pt_team_status status;
} matmul_task;

static void matmul_worker(void *p)
{
    matmul_task *t = (matmul_task *)p;
    const pt_matmul_variant *v = pt_matmul_variant_info(t->variant);
    int id = pt_core_id();
    int64_t b, e;
    pt_status st = PT_OK;
    if (t->row_dot) {
        pt_chunk(t->N, 1, &b, &e); /* single columns: 50 outputs split 7 : 6 over 8 cores, not 8 : 4 */
        if (e > b) row_dot(v->tiles->dot, t->K, t->A, t->B, t->C, t->bias, t->accumulate, b, e);
    } else if (t->single_row) {
        pt_chunk(t->N, ROW_COLS, &b, &e);
        if (e > b) single_row(t->K, t->A, t->B, t->C, t->bias, t->accumulate, 0, b, e);
    } else if (t->split_rows) {
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

static int is_single_row(int variant, int64_t M, const pt_view *A, const pt_view *B, const pt_view *C)
{
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    return M == 1 && v->tiles != NULL && v->tiles->row_tiles == NULL && A->row_block == BIG_BLOCK &&
           A->col_block == BIG_BLOCK && B->row_block == BIG_BLOCK && B->col_block == BIG_BLOCK &&
           B->col_stride == 1 && C->col_block == BIG_BLOCK && C->col_stride == 1;
}

/* Which axis a team splits (a core always gets whole tiles): see below. The split never changes a value. */
static int split_rows_for(int variant, int64_t M, int64_t N, int64_t K, const pt_view *A, const pt_view *B,
                          int threads)
{
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    const int64_t row_tiles = (M + v->mr - 1) / v->mr, col_tiles = (N + v->nr - 1) / v->nr;
    /* Every core packs the operands of its own share: cut along the packed operand's axis, so its packing is
     * shared out instead of repeated on every core (pw 512->512 at 8x8, batch 16, forward: each of 2 cores
     * packed all of B), where that axis has tiles enough for the team. */
    const operand_plan op = plan_operands(variant, A, B, K, M, N);
    if (!op.b_in_place && op.a_in_place && col_tiles >= 2 * threads) return 0;
    if (!op.a_in_place && op.b_in_place && row_tiles >= 2 * threads) return 1;
    return row_tiles > col_tiles; /* otherwise the axis with more register tiles */
}

int64_t pt_matmul_view_workspace_floats(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K)
{
    if (pt_team_check(team) != PT_OK) return 0;
    if (variant == PT_MATMUL_AUTO) variant = pt_matmul_pick(team, M, N, K);
    if (pt_matmul_variant_info(variant) == NULL) return 0;
    /* Bound for any split: the full extent of the unsplit axis, at most one block of the split one. */
    return (int64_t)team->num_threads * pt_gemm_workspace_floats(variant, M, N, K);
}

pt_status pt_matmul_view(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K, const pt_view *A,
                         const pt_view *B, const pt_view *C, const pt_bias *bias, int accumulate, float *workspace,
                         int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (variant == PT_MATMUL_AUTO) variant = pt_matmul_pick(team, M, N, K);
    const pt_matmul_variant *v = pt_matmul_variant_info(variant);
    if (v == NULL) return PT_ERR_UNKNOWN_VARIANT;
    if (M < 1 || N < 1 || K < 1) return PT_ERR_BAD_SHAPE;
    if (A == NULL || B == NULL || C == NULL || A->data == NULL || B->data == NULL || C->data == NULL)
        return PT_ERR_NULL_POINTER;
    int threads = team->num_threads;
    int64_t per_core = pt_gemm_workspace_floats(variant, M, N, K);
    if (v->tiles != NULL && (workspace == NULL || workspace_floats < per_core * threads))
        return workspace == NULL ? PT_ERR_NULL_POINTER : PT_ERR_WORKSPACE_TOO_SMALL;
    matmul_task t;
    t.variant = variant;
    t.M = M; t.N = N; t.K = K;
    t.A = A; t.B = B; t.C = C;
    t.bias = bias;
    t.accumulate = accumulate;
    t.workspace = workspace;
    t.per_core = per_core;
    t.split_rows = split_rows_for(variant, M, N, K, A, B, threads);
    t.row_dot = v->tiles != NULL && is_row_dot(M, A, B);
    t.single_row = !t.row_dot && is_single_row(variant, M, A, B, C);
    pt_team_status_clear(&t.status);
    /* A product this small costs less than forking the team (and far less than waiting for a descheduled
     * core on a busy machine): core 0 computes it alone. The split never changes a value. */
    if (M * N * K < SERIAL_MAX_MACS)
        matmul_worker(&t);
    else
        pt_parallel(team, matmul_worker, &t);
    return pt_team_status_result(&t.status);
}

pt_status pt_matmul(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K, const float *A, const float *B,
                    float *C, int accumulate, float *workspace, int64_t workspace_floats)
{
    PT_RETURN_IF_BAD_TEAM(team);
    if (A == NULL || B == NULL || C == NULL) return PT_ERR_NULL_POINTER;
    pt_view a = pt_view_2d(A, K, 1), b = pt_view_2d(B, N, 1), c = pt_view_2d(C, N, 1);
    return pt_matmul_view(team, variant, M, N, K, &a, &b, &c, NULL, accumulate, workspace, workspace_floats);
}
