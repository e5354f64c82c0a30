/* The x86 microkernels of the INT8 engine (see int8_gemm.h for the panel and packed-weight layouts). Each file
 * of csrc/arch/x86/ compiles them with its own target flags; int8_gemm.c calls them only where the CPU has the
 * instructions (isa.h). */
#ifndef PT_INT8_GEMM_X86_H
#define PT_INT8_GEMM_X86_H

#include "arch.h"
#include "int8_gemm.h"

#define PT_INT8_AVX2_PIXELS 16 /* pixel tile of the avx2 microkernel */
#define PT_INT8_VNNI_PIXELS 32 /* pixel tile of the avx512vnni microkernel */
#define PT_INT8_AVXVNNI_PIXELS 16 /* pixel tile of the avxvnni microkernel */

#if PT_ARCH_X86
/* The n < 4 int8 weights w[0..n) as the bytes of an int32 word, zero above (the VNNI kernels' last k quad of a
 * row: built in a register, not copied through memory, whose byte stores stalled the word's reload on every tile:
 * a third of the INT8 conv1's time, K = 27). */
static inline int32_t pt_int8_last_quad(const int8_t *w, int64_t n)
{
    uint32_t word = 0;
    for (int64_t j = 0; j < n; j++) word |= (uint32_t)(uint8_t)w[j] << (8 * j);
    return (int32_t)word;
}

/* (AVX2) Packs k pairs [0, 8 * n8) of the 4 full rows w[0..3] (stride K) into 4 int32 words per k pair. */
void pt_int8_pack_rows_avx2(const int8_t *w, int64_t K, int64_t n8, int32_t *dst);

/* (AVX2) A k-pair-major panel (pixel_stride 2) of np pixels of rows x[k * row_stride + p], k < K (uint8 codes:
 * the pointwise layer's channels): pair row kp holds (x[2 kp][p], x[2 kp + 1][p]) as int16, 0 past K. */
void pt_int8_pair_rows_avx2(const uint8_t *x, int64_t row_stride, int64_t K, int64_t np, int16_t *panel,
                            int64_t kpair_stride);

/* (AVX2) Output channels [c0, c1) (c0 a multiple of 4) x np panel pixels: 4 x 16 tiles, requantized into y. */
void pt_int8_avx2_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const int32_t *wpack,
                        int64_t kpairs, const int16_t *panel, int64_t ldk, int64_t np, uint8_t *y);

/* (AVX2) Copies the kpairs rows of a k-pair-major panel (ldk int16 per row, `pixels` a multiple of 8) to k quads,
 * the panel of both VNNI microkernels: quads[kq * 4 * pixels + 4 p + j] = the code of pixel p at k = 4 kq + j (0 past
 * the panel). */
void pt_int8_vnni_quads(const int16_t *panel, int64_t ldk, int64_t kpairs, int64_t pixels, uint8_t *quads);

/* (AVX512-VNNI) Output channels [c0, c1) x np quad-panel pixels (ldq bytes per k quad, padded to 32 pixels): 8 x 32
 * tiles of vpdpbusd (4 uint8 codes times 4 int8 weights of the unpacked rows of pr->w per int32 lane),
 * requantized into y. */
void pt_int8_avx512vnni_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const uint8_t *quads,
                              int64_t ldq, int64_t np, uint8_t *y);

/* (AVX-VNNI) Output channels [c0, c1) x np quad-panel pixels (ldq bytes per k quad, padded to 16 pixels): 6 x 16
 * tiles of the VEX vpdpbusd on ymm registers, requantized into y. */
void pt_int8_avxvnni_tiles(const pt_int8_gemm_problem *pr, int64_t c0, int64_t c1, const uint8_t *quads, int64_t ldq,
                           int64_t np, uint8_t *y);
#endif

#endif
