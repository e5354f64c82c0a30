/* Instruction-set levels and the one place that detects them (at run time, from cpuid).
 *
 * The package is built for the baseline of its architecture; the x86 microkernels of the higher levels are
 * compiled per file with their own target flags (csrc/arch/x86/) and only run when the CPU has the level.
 * A level names a family of microkernels for FP32 (matmul tiles) and INT8 (the INT8 GEMM engine):
 *   PT_ISA_GENERIC  portable C (8-float GCC vectors lowered to the baseline: SSE2 on x86-64, scalar on rv32)
 *   PT_ISA_AVX2     x86 AVX2 + FMA: 8-float tiles, INT8 by vpmaddwd, or by the VEX vpdpbusd where AVX-VNNI exists
 *   PT_ISA_AVX512   x86 AVX-512F/BW/VL (+ FMA): 16-float tiles, and vpdpbusd INT8 where AVX512-VNNI exists
 * A team carries the level its automatic choices use (pt_team.isa_level; PT_ISA_AUTO = the highest the CPU
 * has). Results are bitwise identical for any team size within a level; they may differ between levels
 * (fused and unfused multiply-adds, other tile shapes), never the INT8 integers. */
#ifndef PT_ISA_H
#define PT_ISA_H

#include "pt_status.h"

enum {
    PT_ISA_AUTO = 0, /* the highest level this CPU has (so a zero-initialised team is valid) */
    PT_ISA_GENERIC = 1,
    PT_ISA_AVX2 = 2,
    PT_ISA_AVX512 = 3
};
#define PT_ISA_MAX PT_ISA_AVX512

/* CPU features the dispatch looks at (bit flags of pt_isa_features). */
enum {
    PT_CPU_AVX2 = 1 << 0,
    PT_CPU_FMA = 1 << 1,
    PT_CPU_AVX512F = 1 << 2,
    PT_CPU_AVX512BW = 1 << 3,
    PT_CPU_AVX512VL = 1 << 4,
    PT_CPU_AVX512VNNI = 1 << 5,
    PT_CPU_AVXVNNI = 1 << 6
};

/* The detected features (0 off x86) and the highest level they allow (PT_ISA_GENERIC off x86). */
unsigned pt_isa_features(void);
int pt_isa_detected(void);
/* "generic", "avx2", "avx512" (and "auto" for PT_ISA_AUTO); NULL for anything else. */
const char *pt_isa_name(int level);
/* The level a name stands for, or -1. */
int pt_isa_find(const char *name);
/* The concrete level a team's choice stands for (PT_ISA_AUTO -> pt_isa_detected()). */
int pt_isa_resolve(int level);

/* The default of pt_team_default(): PT_ERR_BAD_ARGUMENT for a level above pt_isa_detected() or unknown. */
pt_status pt_isa_set_default(int level);
int pt_isa_get_default(void);

#endif
