/* Matmul: the engine every training step lowers to.
 *
 * C[M x N] (+)= A[M x K] . B[K x N] (+ bias), where each operand is a pt_view: a strided matrix whose row and
 * column index may each be split in two levels, so that NCHW batches fold into one matrix without copies
 * (column j of a pointwise-conv output is (image j / HW, pixel j % HW)).
 *
 * Variants are BLIS-style: A and B are packed into MR-row / NR-column panels (caller-provided workspace)
 * and a tiny register-blocked microkernel computes one MR x NR tile. Variant 0 ("naive") is the unpacked
 * triple-loop reference. Every element's value depends only on the variant, K and the product's shape and
 * layout (a one-row product with K-contiguous operands is a dot-product path), never on the tile position
 * or on the core that computed it, so results are bitwise identical for any thread count.
 */
#ifndef PT_MATMUL_H
#define PT_MATMUL_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

typedef struct {
    float *data;
    /* element (r, c) is data[(r / row_block) * row_stride_outer + (r % row_block) * row_stride
     *                      + (c / col_block) * col_stride_outer + (c % col_block) * col_stride] */
    int64_t row_block, row_stride_outer, row_stride;
    int64_t col_block, col_stride_outer, col_stride;
    /* A B in the packed-panel layout whose last panel is allocated to the tile's full width (im2col panels): the
     * tiles read it in place, the columns past N included (their sums are dropped), instead of packing it again.
     * 0 from pt_view_2d. */
    int full_panels;
} pt_view;

/* Optional bias added once to every output element: row[i] and/or col[j] (either may be NULL). */
typedef struct {
    const float *row;
    const float *col;
} pt_bias;

/* A plain strided matrix (one level per axis). */
pt_view pt_view_2d(const float *data, int64_t row_stride, int64_t col_stride);

struct pt_tile_family; /* the tile kernels of a variant (matmul_tiles.h) */

typedef struct {
    const char *name;
    int mr, nr;                          /* register tile */
    int isa_level;                       /* the ISA level (isa.h) the CPU needs to run it */
    const struct pt_tile_family *tiles;  /* NULL for the unpacked naive reference */
} pt_matmul_variant;

/* Variants this CPU can run (those of a higher ISA level are left out); ids 0 .. count-1. */
int pt_matmul_num_variants(void);
/* NULL when id is out of range. */
const pt_matmul_variant *pt_matmul_variant_info(int id);
/* Index of the variant called `name`, or -1. */
int pt_matmul_variant_find(const char *name);

/* The variant a team uses for an M x N x K product: team->matmul_variant when it forces one, else a fixed
 * per-shape rule of the team's ISA level (never a function of the thread count). pt_matmul_set_preferred sets the default that
 * pt_team_default() reports (PT_MATMUL_AUTO restores the rule); kernels never read it. */
int pt_matmul_pick(const pt_team *team, int64_t M, int64_t N, int64_t K);
pt_status pt_matmul_set_preferred(int variant);
int pt_matmul_get_preferred(void);

/* Floats of packing workspace one core needs for an M x N x K product with `variant`. */
int64_t pt_gemm_workspace_floats(int variant, int64_t M, int64_t N, int64_t K);

/* Single-core building block: C[i0:i1, j0:j1] (+)= A[i0:i1, :] . B[:, j0:j1]. Called inside a core's
 * task by the layer kernels. `workspace` holds pt_gemm_workspace_floats(variant, i1-i0, j1-j0, K) floats. */
pt_status pt_gemm_serial(int variant, int64_t K, const pt_view *A, const pt_view *B, const pt_view *C,
                         const pt_bias *bias, int accumulate, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                         float *workspace, int64_t workspace_floats);

/* Parallel product over views: the output is split across cores in whole register tiles. */
int64_t pt_matmul_view_workspace_floats(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K);
pt_status pt_matmul_view(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K, const pt_view *A,
                         const pt_view *B, const pt_view *C, const pt_bias *bias, int accumulate, float *workspace,
                         int64_t workspace_floats);

/* Parallel product of C-contiguous row-major matrices. */
pt_status pt_matmul(const pt_team *team, int variant, int64_t M, int64_t N, int64_t K, const float *A, const float *B,
                    float *C, int accumulate, float *workspace, int64_t workspace_floats);

#endif
