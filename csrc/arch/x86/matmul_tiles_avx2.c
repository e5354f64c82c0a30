/* The 8-float vector tile families compiled for AVX2 + FMA (one ymm register per vector, fused multiply-adds);
 * matmul.c runs them only where the CPU has AVX2 and FMA. */
#include "arch.h"
#if PT_ARCH_X86
#pragma GCC target("avx2,fma")
#define PT_TILES_SUFFIX avx2
#include "matmul_vec_tiles.inc"
#endif
