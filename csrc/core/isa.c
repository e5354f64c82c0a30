#include <string.h>
#include "arch.h"
#include "isa.h"

static int default_level = PT_ISA_AUTO; /* the default of pt_team_default() only */

#if PT_ARCH_X86
static unsigned detect(void)
{
    __builtin_cpu_init();
    unsigned f = 0;
    f |= __builtin_cpu_supports("avx2") ? PT_CPU_AVX2 : 0;
    f |= __builtin_cpu_supports("fma") ? PT_CPU_FMA : 0;
    f |= __builtin_cpu_supports("avx512f") ? PT_CPU_AVX512F : 0;
    f |= __builtin_cpu_supports("avx512bw") ? PT_CPU_AVX512BW : 0;
    f |= __builtin_cpu_supports("avx512vl") ? PT_CPU_AVX512VL : 0;
    f |= __builtin_cpu_supports("avx512vnni") ? PT_CPU_AVX512VNNI : 0;
#if __GNUC__ >= 11
    f |= __builtin_cpu_supports("avxvnni") ? PT_CPU_AVXVNNI : 0;
#endif
    return f;
}

static int level_of(unsigned f)
{
    const unsigned avx2 = PT_CPU_AVX2 | PT_CPU_FMA;
    const unsigned avx512 = avx2 | PT_CPU_AVX512F | PT_CPU_AVX512BW | PT_CPU_AVX512VL;
    if ((f & avx512) == avx512) return PT_ISA_AVX512;
    if ((f & avx2) == avx2) return PT_ISA_AVX2;
    return PT_ISA_GENERIC;
}

/* cpuid is cheap and its answer never changes: two first calls racing store the same values */
static unsigned features;
static int detected_level; /* 0 until detected */

static void detect_once(void)
{
    if (detected_level == 0) {
        features = detect();
        detected_level = level_of(features);
    }
}

unsigned pt_isa_features(void)
{
    detect_once();
    return features;
}

int pt_isa_detected(void)
{
    detect_once();
    return detected_level;
}
#else
/* no x86 microkernels in this build: the generic level only, nothing to detect */
unsigned pt_isa_features(void) { return 0; }
int pt_isa_detected(void) { return PT_ISA_GENERIC; }
#endif

static const char *const level_names[] = {"auto", "generic", "avx2", "avx512"};

const char *pt_isa_name(int level) { return level >= PT_ISA_AUTO && level <= PT_ISA_MAX ? level_names[level] : NULL; }

int pt_isa_find(const char *name)
{
    if (name == NULL) return -1;
    for (int level = PT_ISA_AUTO; level <= PT_ISA_MAX; level++)
        if (strcmp(name, level_names[level]) == 0) return level;
    return -1;
}

int pt_isa_resolve(int level) { return level == PT_ISA_AUTO ? pt_isa_detected() : level; }

pt_status pt_isa_set_default(int level)
{
    if (level < PT_ISA_AUTO || level > pt_isa_detected()) return PT_ERR_BAD_ARGUMENT;
    default_level = level;
    return PT_OK;
}

int pt_isa_get_default(void) { return default_level; }
