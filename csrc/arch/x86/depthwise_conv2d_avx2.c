/* The depthwise kernels (csrc/fp32/depthwise_conv2d.c) compiled for the avx2 ISA level; the API there runs them
 * only where the CPU has it. */
#include "arch.h"
#if PT_ARCH_X86
#pragma GCC target("avx2,fma")
#define PT_DEPTHWISE_LEVEL avx2
#include "depthwise_conv2d.c"
#endif
