/* The tile kernels of the matmul engine (matmul.c), one family per register tile and ISA level.
 *
 * Internal to csrc/gemm and csrc/arch: matmul_tiles_generic.c compiles the portable families (the scalar tiles
 * and, through matmul_vec_tiles.inc, the 8-float vector tiles at the build's baseline); csrc/arch/x86/ compiles
 * the same vector tiles again under AVX2+FMA and a 16-float family under AVX-512, each file with its own target
 * flags, so that one binary holds every level and matmul.c picks a family per variant at run time. */
#ifndef PT_MATMUL_TILES_H
#define PT_MATMUL_TILES_H

#include <stddef.h>
#include <stdint.h>
#include "arch.h"

/* Every variant has one tile kernel: acc[MR x NR] = sum_p A(r, p) * b[p*NR + c] over p = 0..kc-1 (one fused
 * multiply-add chain per element, p ascending), with A(r, p) = a[r*rs_a + p*cs_a] (a packed panel has
 * rs_a = 1, cs_a = MR; an unpacked matrix is read in place) and B(p, c) = b[p*ldb + c] (ldb = NR for a
 * packed panel), then the tile goes to the rows crow[r]
 * (NR contiguous floats each) as `mode` says. The arithmetic does not depend on where A lives or on the
 * mode, so packed and in-place tiles, full tiles and edge tiles give the same value for an element, as long as
 * the compiler fuses the chain in every tile kernel alike (-ffp-contract=fast; with GCC also
 * --param=avoid-fma-max-bits=0, see setup.py: its Zen tunings leave some loops' chains unfused, and a layer
 * whose blocking follows the team size then rounded an element differently on 1 and on 8 cores). */
enum {
    TILE_STORE,     /* c = acc                        (first K block without bias; edge buffer) */
    TILE_FIRST,     /* c = (acc + rb[r]) + cb[c]      (first K block) */
    TILE_FIRST_ADD, /* c += (acc + rb[r]) + cb[c]     (first K block, accumulating into C) */
    TILE_ADD        /* c += acc                       (later K blocks) */
};

typedef void (*pt_tile_fn)(int64_t kc, const float *a, int64_t rs_a, int64_t cs_a, const float *b, int64_t ldb,
                           float *const *crow, const float *rb, const float *cb, int mode);

/* Optional (the scalar families): `tiles` full MR x NR tiles of one B panel in one call, tile t reading A at
 * a + t * a_step (strides rs_a, cs_a) and writing the rows crow[t*MR + r] + col, with row bias rb + t * rb_step;
 * each tile is computed as the tile kernel computes it. One call per column of tiles instead of one per tile
 * saves the call's fixed cost (on rv32 ~150 instructions per 4x4 tile: registers saved and restored). */
typedef void (*pt_tile_column_fn)(int64_t tiles, int64_t kc, const float *a, int64_t a_step, int64_t rs_a,
                                  int64_t cs_a, const float *b, int64_t ldb, float *const *crow, int64_t col,
                                  const float *rb, int64_t rb_step, const float *cb, int mode);

/* out[c] = sum_k a[k] * b[c][k] for cols <= PT_DOT_COLS columns, 8 partial sums per column in a fixed order (the
 * one-row products of matmul.c). */
typedef void (*pt_dot_fn)(int64_t K, const float *a, const float *const *b, int cols, float *out);

/* Columns per dot pass: 4 x 8 partial sums fit the SIMD register file; scalar lanes (rv32imfc, 32 float
 * registers) fit 3 x 8 partial sums, a lane of A and one of B. The width never changes a value. */
#if PT_ARCH_SIMD8
#define PT_DOT_COLS 4
#else
#define PT_DOT_COLS 3
#endif

#define PT_WIDE_COLS 128 /* columns of a family's one-row kernel for wide rows (see pt_gemm_serial) */

typedef struct pt_tile_family {
    pt_tile_fn tile;            /* the MR x NR tile */
    const pt_tile_fn *row_tiles; /* kernels for 1..MR rows (entry r computes r rows), or NULL */
    pt_tile_fn wide_row;        /* 1 x PT_WIDE_COLS kernel (same per-element arithmetic as the 1-row tile), or NULL */
    pt_dot_fn dot;              /* one-row dot products */
    pt_tile_column_fn column;   /* a column of full tiles per call, or NULL */
} pt_tile_family;

/* The portable families (matmul_tiles_generic.c) */
extern const pt_tile_family pt_tiles_2x2, pt_tiles_4x2, pt_tiles_4x4, pt_tiles_8x1;
extern const pt_tile_family pt_tiles_6x16_generic, pt_tiles_8x8_generic, pt_tiles_4x8_generic;
#if PT_ARCH_X86
/* csrc/arch/x86/: run only where pt_isa_detected() reaches their level */
extern const pt_tile_family pt_tiles_6x16_avx2, pt_tiles_8x8_avx2;
extern const pt_tile_family pt_tiles_6x16_avx512, pt_tiles_8x8_avx512, pt_tiles_8x32_avx512, pt_tiles_12x16_avx512;
#endif

#define PT_UNROLL _Pragma("GCC unroll 64")

/* A vector tile kernel NAME of VEC (LANES floats, a GCC vector type): the NR columns of a row are NR / LANES
 * vectors; the A value is broadcast by the scalar-times-vector product. */
#define PT_DEFINE_VEC_TILE(NAME, VEC, LANES, MR, NR)                                                             \
    static void NAME(int64_t kc, const float *restrict a, int64_t rs_a, int64_t cs_a,      \
                                            const float *restrict b, int64_t ldb, float *const *crow,             \
                                            const float *rb, const float *cb, int mode)                           \
    {                                                                                                             \
        enum { NV = (NR) / (LANES) };                                                                             \
        VEC acc[MR][NV];                                                                                          \
        const float *ar_ptr[MR];                                                                                  \
        PT_UNROLL for (int r = 0; r < MR; r++) ar_ptr[r] = a + r * rs_a;                                          \
        PT_UNROLL for (int r = 0; r < MR; r++) PT_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (VEC){0};       \
        for (int64_t p = 0; p < kc; p++) {                                                                        \
            VEC bv[NV];                                                                                           \
            PT_UNROLL for (int v = 0; v < NV; v++) bv[v] = *(const VEC *)(b + p * ldb + v * LANES);               \
            PT_UNROLL for (int r = 0; r < MR; r++) {                                                              \
                const float ar = ar_ptr[r][p * cs_a];                                                             \
                PT_UNROLL for (int v = 0; v < NV; v++) acc[r][v] += ar * bv[v];                                   \
            }                                                                                                     \
        }                                                                                                         \
        PT_UNROLL for (int r = 0; r < MR; r++) {                                                                  \
            PT_UNROLL for (int v = 0; v < NV; v++) {                                                              \
                VEC *d = (VEC *)(crow[r] + v * LANES);                                                            \
                switch (mode) {                                                                                   \
                case TILE_STORE: *d = acc[r][v]; break;                                                           \
                case TILE_FIRST: *d = (acc[r][v] + rb[r]) + *(const VEC *)(cb + v * LANES); break;                \
                case TILE_FIRST_ADD: *d += (acc[r][v] + rb[r]) + *(const VEC *)(cb + v * LANES); break;           \
                default: *d += acc[r][v]; break;                                                                  \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }

#endif
