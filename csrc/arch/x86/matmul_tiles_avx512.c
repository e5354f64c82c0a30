/* The AVX-512 tile families; matmul.c runs them only where the CPU has AVX-512F/BW/VL (and FMA).
 *
 * 8x32: 8 rows x two 16-float zmm vectors = 16 accumulators, two B vectors and the broadcast A value: 19 of the
 * 32 zmm registers, 16 independent FMA chains (two FMA units of 4-cycle latency need 8), and 8 rows divide
 * the usual channel counts.
 * 12x16: one zmm per row for products of at most 16 columns (a batch-1 layer on a 4x4 plane): 12 independent
 * chains, where the 8-float 6x16 tile keeps the FMA units half fed with 12 ymm chains of half the width.
 * The 8-float families are compiled here too (EVEX, 32 ymm registers). */
#include "arch.h"
#if PT_ARCH_X86
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
#define PT_TILES_SUFFIX avx512
#include "matmul_vec_tiles.inc"

typedef float pt_vec16 __attribute__((vector_size(64), aligned(4), may_alias));

PT_DEFINE_VEC_TILE(tile_v16_1x32, pt_vec16, 16, 1, 32) PT_DEFINE_VEC_TILE(tile_v16_2x32, pt_vec16, 16, 2, 32) PT_DEFINE_VEC_TILE(tile_v16_3x32, pt_vec16, 16, 3, 32)
PT_DEFINE_VEC_TILE(tile_v16_4x32, pt_vec16, 16, 4, 32) PT_DEFINE_VEC_TILE(tile_v16_5x32, pt_vec16, 16, 5, 32) PT_DEFINE_VEC_TILE(tile_v16_6x32, pt_vec16, 16, 6, 32)
PT_DEFINE_VEC_TILE(tile_v16_7x32, pt_vec16, 16, 7, 32) PT_DEFINE_VEC_TILE(tile_v16_8x32, pt_vec16, 16, 8, 32)
PT_DEFINE_VEC_TILE(tile_v16_1x128, pt_vec16, 16, 1, 128) /* one row x 128 columns */
PT_DEFINE_VEC_TILE(tile_v16_1x16, pt_vec16, 16, 1, 16) PT_DEFINE_VEC_TILE(tile_v16_2x16, pt_vec16, 16, 2, 16)
PT_DEFINE_VEC_TILE(tile_v16_3x16, pt_vec16, 16, 3, 16) PT_DEFINE_VEC_TILE(tile_v16_4x16, pt_vec16, 16, 4, 16)
PT_DEFINE_VEC_TILE(tile_v16_5x16, pt_vec16, 16, 5, 16) PT_DEFINE_VEC_TILE(tile_v16_6x16, pt_vec16, 16, 6, 16)
PT_DEFINE_VEC_TILE(tile_v16_7x16, pt_vec16, 16, 7, 16) PT_DEFINE_VEC_TILE(tile_v16_8x16, pt_vec16, 16, 8, 16)
PT_DEFINE_VEC_TILE(tile_v16_9x16, pt_vec16, 16, 9, 16) PT_DEFINE_VEC_TILE(tile_v16_10x16, pt_vec16, 16, 10, 16)
PT_DEFINE_VEC_TILE(tile_v16_11x16, pt_vec16, 16, 11, 16) PT_DEFINE_VEC_TILE(tile_v16_12x16, pt_vec16, 16, 12, 16)

static const pt_tile_fn rows_8x32[] = {NULL,          tile_v16_1x32, tile_v16_2x32, tile_v16_3x32, tile_v16_4x32,
                                       tile_v16_5x32, tile_v16_6x32, tile_v16_7x32, tile_v16_8x32};

const pt_tile_family pt_tiles_8x32_avx512 = {tile_v16_8x32, rows_8x32, tile_v16_1x128, dot_rows};

static const pt_tile_fn rows_12x16[] = {NULL,           tile_v16_1x16,  tile_v16_2x16, tile_v16_3x16, tile_v16_4x16,
                                        tile_v16_5x16,  tile_v16_6x16,  tile_v16_7x16, tile_v16_8x16, tile_v16_9x16,
                                        tile_v16_10x16, tile_v16_11x16, tile_v16_12x16};

const pt_tile_family pt_tiles_12x16_avx512 = {tile_v16_12x16, rows_12x16, tile_v16_1x128, dot_rows};
#endif
