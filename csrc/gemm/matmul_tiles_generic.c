/* The portable tile families: the scalar tiles (for targets without SIMD: rv32imf has 32 FP registers, and
 * 4x4 leaves room for the operands) and the 8-float vector tiles at the build's baseline ISA. */
#define PT_TILES_SUFFIX generic
#include "matmul_vec_tiles.inc"

/* One portable register-blocked family: plain C with compile-time tile sizes, fully unrolled so the
 * accumulators live in registers. */
#define DEFINE_TILE(MR, NR)                                                                             \
    static void tile_##MR##x##NR(int64_t kc, const float *restrict a, int64_t rs_a, int64_t cs_a,        \
                                 const float *restrict b, int64_t ldb, float *const *crow,               \
                                 const float *rb, const float *cb, int mode)                             \
    {                                                                                                    \
        float acc[MR][NR];                                                                               \
        const float *ar_ptr[MR];                                                                         \
        PT_UNROLL for (int r = 0; r < MR; r++) ar_ptr[r] = a + r * rs_a;                                 \
        PT_UNROLL for (int r = 0; r < MR; r++) PT_UNROLL for (int c = 0; c < NR; c++) acc[r][c] = 0.0f;  \
        for (int64_t p = 0; p < kc; p++) {                                                               \
            const float *bp = b + p * ldb;                                                               \
            PT_UNROLL for (int r = 0; r < MR; r++) {                                                     \
                const float ar = ar_ptr[r][p * cs_a];                                                    \
                PT_UNROLL for (int c = 0; c < NR; c++) acc[r][c] += ar * bp[c];                          \
            }                                                                                            \
        }                                                                                                \
        PT_UNROLL for (int r = 0; r < MR; r++) {                                                         \
            float *restrict d = crow[r];                                                                 \
            PT_UNROLL for (int c = 0; c < NR; c++) {                                                     \
                switch (mode) {                                                                          \
                case TILE_STORE: d[c] = acc[r][c]; break;                                                \
                case TILE_FIRST: d[c] = (acc[r][c] + rb[r]) + cb[c]; break;                              \
                case TILE_FIRST_ADD: d[c] += (acc[r][c] + rb[r]) + cb[c]; break;                         \
                default: d[c] += acc[r][c]; break;                                                       \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
    const pt_tile_family pt_tiles_##MR##x##NR = {tile_##MR##x##NR, NULL, NULL, dot_rows};

DEFINE_TILE(2, 2)
DEFINE_TILE(4, 2)
DEFINE_TILE(4, 4)
DEFINE_TILE(8, 1)
