/* The one place that says what the build's instruction set offers the kernels.
 *
 * Kernels test these macros, never compiler ISA macros directly:
 *   PT_ARCH_SIMD8  8-float vectors (pt_vec8) map onto hardware registers (x86 as 2 x 128-bit SSE2 in the
 *                  portable build, Arm NEON as 2x128): the vector-width tiers of matmul and depthwise pay.
 *                  Elsewhere (rv32imfc) GCC lowers pt_vec8 to scalar code, so the plain-C tiers are chosen by
 *                  default.
 *   PT_ARCH_X86    an x86 build that compiles csrc/arch/x86/ (setup.py defines PT_BUILD_ARCH_X86): those
 *                  microkernels are in (each file with its own target flags) and run where isa.h's run-time
 *                  detection finds their level. A build of csrc/ without them (an exported bundle, a plain
 *                  Makefile) runs the generic level.
 * The build itself targets the architecture's baseline (no -march=native unless asked for, see setup.py).
 * Which tier a call runs can still be forced at run time (matmul variants, INT8 microkernels, depthwise tiers,
 * ISA levels); these macros only decide what exists and what is chosen by default. */
#ifndef PT_ARCH_H
#define PT_ARCH_H

#include <stdint.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(PT_BUILD_ARCH_X86)
#define PT_ARCH_X86 1
#else
#define PT_ARCH_X86 0
#endif

/* A build may define PT_ARCH_SIMD8=0 itself: it then runs the plain-C tiers a scalar target (rv32imfc) runs, which
 * is how an exported bundle's PORTABLE=1 host build reproduces the rv32 build bit for bit. */
#ifndef PT_ARCH_SIMD8
#if defined(__GNUC__) && (defined(__SSE2__) || defined(__ARM_NEON))
#define PT_ARCH_SIMD8 1
#else
#define PT_ARCH_SIMD8 0
#endif
#endif

/* 8 lanes of float / int32 (GCC vector extensions). aligned(4) and may_alias: loads and stores through these
 * types may point anywhere into a float array. */
typedef float pt_vec8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int32_t pt_ivec8 __attribute__((vector_size(32), aligned(4), may_alias));

#endif
