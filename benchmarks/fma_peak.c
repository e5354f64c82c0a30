/* This core's FP32 peak, measured: 12 independent chains of 8-wide fused multiply-adds (enough in flight
 * to cover the FMA latency of two pipes), no memory traffic. Prints the best GFLOP/s of 7 runs of ~0.2 s.
 *
 *     cc -O2 -march=native benchmarks/fma_peak.c -o fma_peak && ./fma_peak
 *
 * benchmarks/report.py --peak takes this number instead of the anchor machine's 117 GFLOP/s (docs/performance.md). */
#include <stdio.h>
#include <time.h>

typedef float vec8 __attribute__((vector_size(32)));

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* The empty asm keeps every chain in a register and stops the compiler from folding the loop. */
#if defined(__x86_64__) || defined(__i386__)
#define KEEP(v) __asm__ volatile("" : "+x"(v))
#elif defined(__aarch64__)
#define KEEP(v) __asm__ volatile("" : "+w"(v))
#else
#define KEEP(v) __asm__ volatile("" : "+m"(v))
#endif

int main(void)
{
    vec8 m = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    vec8 e = m * 1e-7f;
    KEEP(m); /* opaque: otherwise c * 1 + e folds into an add */
    KEEP(e);
    vec8 c0 = m, c1 = m, c2 = m, c3 = m, c4 = m, c5 = m, c6 = m, c7 = m, c8 = m, c9 = m, c10 = m, c11 = m;
    const long steps = 1000000;
    double best = 0.0;
    for (int run = 0; run < 7; run++) {
        double t0 = cpu_seconds(), t;
        long done = 0;
        do {
            for (long i = 0; i < steps; i++) {
                c0 = c0 * m + e; c1 = c1 * m + e; c2 = c2 * m + e; c3 = c3 * m + e;
                c4 = c4 * m + e; c5 = c5 * m + e; c6 = c6 * m + e; c7 = c7 * m + e;
                c8 = c8 * m + e; c9 = c9 * m + e; c10 = c10 * m + e; c11 = c11 * m + e;
                KEEP(c0); KEEP(c1); KEEP(c2); KEEP(c3); KEEP(c4); KEEP(c5);
                KEEP(c6); KEEP(c7); KEEP(c8); KEEP(c9); KEEP(c10); KEEP(c11);
            }
            done += steps;
            t = cpu_seconds() - t0;
        } while (t < 0.2);
        const double gflops = 12.0 * 16.0 * done / t * 1e-9;
        if (gflops > best) best = gflops;
    }
    vec8 s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));
    printf("%.1f\n", best + 0.0 * s[0]);
    return 0;
}
