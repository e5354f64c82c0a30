/* AVX2 microkernel of the INT8 engine (see int8_gemm.h for the panel and packed-weight layouts). */
#ifndef PT_INT8_GEMM_AVX2_H
#define PT_INT8_GEMM_AVX2_H

#include "arch.h"
#include "int8_gemm.h"

#if PT_ARCH_X86_AVX2
#define PT_INT8_HAVE_AVX2 1
#define PT_INT8_AVX2_PIXELS 16 /* pixel tile of the avx2 microkernel */

/* Packs k pairs [0, 8 * n8) of the 4 full rows w[0..3] (stride K) into 4 int32 words per k pair. */
void pt_int8_pack_rows_avx2(const int8_t *w, int64_t K, int64_t n8, int32_t *dst);

/* Output channels [c0, c1) (c0 a multiple of 4) x np panel pixels: 4 x 16 tiles, requantized into y. */
void pt_int8_avx2_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const int32_t *wpack,
                        int64_t kpairs, const int16_t *panel, int64_t ldk, int64_t np, uint8_t *y);
#else
#define PT_INT8_HAVE_AVX2 0
#define PT_INT8_AVX2_PIXELS 16
#endif

#endif
