/* This core's FP32 peak for each vector width the kernels use, measured: 12 independent chains of multiply-adds
 * per width (enough in flight to cover the FMA latency of two pipes), no memory traffic. Each width is compiled
 * for its ISA level (target attributes) and run only where the CPU has it; for each, the best GFLOP/s of 7 runs of
 * ~0.2 s. Prints one line, the peaks by pulptrain ISA level:
 *
 *     cc -O2 benchmarks/fma_peak.c -o fma_peak && ./fma_peak      ->  generic=... avx2=... avx512=...
 *
 * "generic" is the 4-wide SSE2 baseline without FMA (x86-64) and counts a multiply and an add as 2 FLOP, like the
 * others; its chains are unfused, so latency bound (a lower bound of that level's peak). Off x86 only "generic"
 * is measured, with the compiler's default vectors. benchmarks/report.py --peak takes
 * this line (each row's % peak is then against the peak of the level it ran at) or a single number. */
#include <stdio.h>
#include <time.h>

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* The empty asm keeps every chain in a register and stops the compiler from folding the loop. */
#if defined(__x86_64__) || defined(__i386__)
#define X86 1
#define KEEP(v) __asm__ volatile("" : "+x"(v))
#elif defined(__aarch64__)
#define X86 0
#define KEEP(v) __asm__ volatile("" : "+w"(v))
#else
#define X86 0
#define KEEP(v) __asm__ volatile("" : "+m"(v))
#endif

/* peak_<name>(): best GFLOP/s of 12 chains c = c * m + e of a LANES-float vector type. */
#define DEFINE_PEAK(NAME, LANES, TARGET)                                                                      \
    typedef float vec_##NAME __attribute__((vector_size(4 * LANES)));                                         \
    TARGET static double peak_##NAME(void)                                                                    \
    {                                                                                                         \
        vec_##NAME m, e;                                                                                      \
        for (int l = 0; l < LANES; l++) m[l] = 1.0f, e[l] = 1e-7f;                                            \
        KEEP(m); /* opaque: otherwise c * 1 + e folds into an add */                                          \
        KEEP(e);                                                                                              \
        vec_##NAME c0 = m, c1 = m, c2 = m, c3 = m, c4 = m, c5 = m, c6 = m, c7 = m, c8 = m, c9 = m, c10 = m,   \
                   c11 = m;                                                                                   \
        const long steps = 1000000;                                                                           \
        double best = 0.0;                                                                                    \
        for (int run = 0; run < 7; run++) {                                                                   \
            double t0 = cpu_seconds(), t;                                                                     \
            long done = 0;                                                                                    \
            do {                                                                                              \
                for (long i = 0; i < steps; i++) {                                                            \
                    c0 = c0 * m + e; c1 = c1 * m + e; c2 = c2 * m + e; c3 = c3 * m + e;                       \
                    c4 = c4 * m + e; c5 = c5 * m + e; c6 = c6 * m + e; c7 = c7 * m + e;                       \
                    c8 = c8 * m + e; c9 = c9 * m + e; c10 = c10 * m + e; c11 = c11 * m + e;                   \
                    KEEP(c0); KEEP(c1); KEEP(c2); KEEP(c3); KEEP(c4); KEEP(c5);                               \
                    KEEP(c6); KEEP(c7); KEEP(c8); KEEP(c9); KEEP(c10); KEEP(c11);                             \
                }                                                                                             \
                done += steps;                                                                                \
                t = cpu_seconds() - t0;                                                                       \
            } while (t < 0.2);                                                                                \
            const double gflops = 12.0 * 2.0 * LANES * done / t * 1e-9;                                       \
            if (gflops > best) best = gflops;                                                                 \
        }                                                                                                     \
        vec_##NAME s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));        \
        return best + 0.0 * s[0];                                                                             \
    }

#if X86
DEFINE_PEAK(generic, 4, )
DEFINE_PEAK(avx2, 8, __attribute__((target("avx2,fma"))))
DEFINE_PEAK(avx512, 16, __attribute__((target("avx512f,fma"))))
#else
DEFINE_PEAK(generic, 8, )
#endif

int main(void)
{
    printf("generic=%.1f", peak_generic());
#if X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) printf(" avx2=%.1f", peak_avx2());
    if (__builtin_cpu_supports("avx512f")) printf(" avx512=%.1f", peak_avx512());
#endif
    printf("\n");
    return 0;
}
