/* The INT8 depthwise worker (csrc/int8/int8_depthwise_conv2d.c) compiled for the avx512 ISA level; the API
 * there runs it only where the CPU has it. */
#include "arch.h"
#if PT_ARCH_X86
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
#define PT_INT8_DW_LEVEL avx512
#include "int8_depthwise_conv2d.c"
#endif
