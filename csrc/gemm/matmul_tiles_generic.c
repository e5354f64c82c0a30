/* The portable tile families: the scalar tiles (for targets without SIMD: rv32imf has 32 FP registers, and
 * 4x4 leaves room for the operands) and the 8-float vector tiles at the build's baseline ISA. */
/* zeroing and copy loops stay inline instead of becoming memset / memcpy calls (picolibc's are byte loops) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#include <stddef.h>
#define PT_TILES_SUFFIX generic
#include "matmul_vec_tiles.inc"

/* K steps per pass of a scalar tile's loop: with packed operands (or rows of A read in place, cs_a = 1)
 * every load of the pass has a constant offset, so a pass costs its loads, its fused multiply-adds and a few
 * pointer and loop instructions (rv32 4x4: 8 + 16 per K step, 3 to 6 per pass). Unrolling never changes a
 * value: each accumulator is still one chain of fused multiply-adds, p ascending. */
#define TILE_K_UNROLL 16

/* One portable register-blocked family: plain C with compile-time tile sizes, fully unrolled so the
 * accumulators live in registers. chain_MRxNR adds the kc products of A and B into acc; the tile kernel calls
 * it with the strides of the common layouts as constants (packed A panel, A rows contiguous along K, a
 * column-major A, packed B panel), so that those loops address their operands with constant offsets and
 * 32-bit counters. */
#define DEFINE_TILE(MR, NR)                                                                                      \
    static inline __attribute__((always_inline)) void chain_step_##MR##x##NR(                                    \
        const float **ar, int one_a, ptrdiff_t rs_a, ptrdiff_t cs_a, const float *restrict *b, ptrdiff_t ldb,    \
        float acc[MR][NR])                                                                                       \
    {                                                                                                            \
        const float *bp = *b;                                                                                    \
        PT_UNROLL for (int r = 0; r < MR; r++) {                                                                 \
            const float av = one_a ? ar[0][r * rs_a] : *ar[r];                                                   \
            PT_UNROLL for (int c = 0; c < NR; c++) acc[r][c] += av * bp[c];                                      \
        }                                                                                                        \
        if (one_a)                                                                                               \
            ar[0] += cs_a;                                                                                       \
        else                                                                                                     \
            PT_UNROLL for (int r = 0; r < MR; r++) ar[r] += cs_a;                                                \
        *b = bp + ldb;                                                                                           \
    }                                                                                                            \
                                                                                                                 \
    /* one_a: rs_a is a constant, so the rows of A are constant offsets from one pointer */                      \
    static inline __attribute__((always_inline)) void chain_##MR##x##NR(                                         \
        int kc, const float *restrict a, int one_a, ptrdiff_t rs_a, ptrdiff_t cs_a, const float *restrict b,     \
        ptrdiff_t ldb, float acc[MR][NR])                                                                        \
    {                                                                                                            \
        const float *ar[MR];                                                                                     \
        PT_UNROLL for (int r = 0; r < MR; r++) ar[r] = a + r * rs_a;                                             \
        int p = 0;                                                                                               \
        for (; p + TILE_K_UNROLL <= kc; p += TILE_K_UNROLL)                                                      \
            PT_UNROLL for (int u = 0; u < TILE_K_UNROLL; u++)                                                    \
                chain_step_##MR##x##NR(ar, one_a, rs_a, cs_a, &b, ldb, acc);                                     \
        for (; p < kc; p++) chain_step_##MR##x##NR(ar, one_a, rs_a, cs_a, &b, ldb, acc);                         \
    }                                                                                                            \
                                                                                                                 \
    static void column_##MR##x##NR(int64_t tiles, int64_t kc, const float *restrict a, int64_t a_step,           \
                                   int64_t rs_a, int64_t cs_a, const float *restrict b, int64_t ldb,             \
                                   float *const *crow, int64_t col, const float *rb, int64_t rb_step,            \
                                   const float *cb, int mode)                                                    \
    {                                                                                                            \
        const int k = (int)kc; /* at most one K block */                                                         \
        for (int t = 0; t < (int)tiles; t++, a += a_step, crow += MR, rb += rb_step) { /* tiles of one block */  \
            float acc[MR][NR];                                                                                   \
            PT_UNROLL for (int r = 0; r < MR; r++) PT_UNROLL for (int c = 0; c < NR; c++) acc[r][c] = 0.0f;      \
            if (rs_a == 1 && cs_a == MR) {                                                                       \
                if (ldb == NR)                                                                                   \
                    chain_##MR##x##NR(k, a, 1, 1, MR, b, NR, acc);                                               \
                else                                                                                             \
                    chain_##MR##x##NR(k, a, 1, 1, MR, b, (ptrdiff_t)ldb, acc);                                   \
            } else if (cs_a == 1) {                                                                              \
                if (ldb == NR)                                                                                   \
                    chain_##MR##x##NR(k, a, 0, (ptrdiff_t)rs_a, 1, b, NR, acc);                                  \
                else                                                                                             \
                    chain_##MR##x##NR(k, a, 0, (ptrdiff_t)rs_a, 1, b, (ptrdiff_t)ldb, acc);                      \
            } else if (rs_a == 1) { /* a column-major A (a transposed weight) read in place */                   \
                if (ldb == NR)                                                                                   \
                    chain_##MR##x##NR(k, a, 1, 1, (ptrdiff_t)cs_a, b, NR, acc);                                  \
                else                                                                                             \
                    chain_##MR##x##NR(k, a, 1, 1, (ptrdiff_t)cs_a, b, (ptrdiff_t)ldb, acc);                      \
            } else {                                                                                             \
                chain_##MR##x##NR(k, a, 0, (ptrdiff_t)rs_a, (ptrdiff_t)cs_a, b, (ptrdiff_t)ldb, acc);            \
            }                                                                                                    \
            PT_UNROLL for (int r = 0; r < MR; r++) {                                                             \
                float *restrict d = crow[r] + col;                                                               \
                PT_UNROLL for (int c = 0; c < NR; c++) {                                                         \
                    switch (mode) {                                                                              \
                    case TILE_STORE: d[c] = acc[r][c]; break;                                                    \
                    case TILE_FIRST: d[c] = (acc[r][c] + rb[r]) + cb[c]; break;                                  \
                    case TILE_FIRST_ADD: d[c] += (acc[r][c] + rb[r]) + cb[c]; break;                             \
                    default: d[c] += acc[r][c]; break;                                                           \
                    }                                                                                            \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }                                                                                                            \
                                                                                                                 \
    /* one tile: a column of one (a single copy of the unrolled loops in the binary) */                          \
    static void tile_##MR##x##NR(int64_t kc, const float *restrict a, int64_t rs_a, int64_t cs_a,                \
                                 const float *restrict b, int64_t ldb, float *const *crow,                       \
                                 const float *rb, const float *cb, int mode)                                     \
    {                                                                                                            \
        column_##MR##x##NR(1, kc, a, 0, rs_a, cs_a, b, ldb, crow, 0, rb, 0, cb, mode);                           \
    }                                                                                                            \
    const pt_tile_family pt_tiles_##MR##x##NR = {tile_##MR##x##NR, NULL, NULL, dot_rows, column_##MR##x##NR};

DEFINE_TILE(2, 2)
DEFINE_TILE(4, 2)
DEFINE_TILE(4, 4)
DEFINE_TILE(8, 1)
