/* Validates pt_counter_read (csrc/core/pt_counter.h, Cortex-M4F) on assembly loops whose instruction count is known: each loop
 * body is K instructions (integer, load/store, FP load and multiply-add, all retire as one instruction each),
 * so a call with N iterations retires K * N + c instructions for a small constant c (call, setup, return).
 *
 * Usage: count_validate N1 N2 ...   prints one line per loop and N:
 *     VALIDATE loop=NAME k=K n=N instructions=COUNT
 * where COUNT is the window around the call minus the empty window (two reads, nothing between).
 * tests/test_arm_counter.py checks COUNT(N) - COUNT(0) == K * N for every loop and N.
 */
#include <stdio.h>
#include <stdlib.h>
#include "pt_counter.h"

/* 4 instructions per iteration: subs, add, eor, bne */
static __attribute__((noipa)) void loop_alu(uint32_t n)
{
    uint32_t a = 0;
    if (n == 0) return;
    __asm__ volatile("1: subs %0, %0, #1\n\t"
                     "add %1, %1, #3\n\t"
                     "eor %1, %1, %0\n\t"
                     "bne 1b"
                     : "+r"(n), "+r"(a)
                     :
                     : "cc");
}

/* 6 instructions per iteration: ldr, str, vldr, vfma, subs, bne */
static __attribute__((noipa)) void loop_memory_fp(uint32_t n, float *buf)
{
    if (n == 0) return;
    __asm__ volatile("1: ldr r12, [%1]\n\t"
                     "str r12, [%1, #4]\n\t"
                     "vldr s0, [%1, #8]\n\t"
                     "vfma.f32 s1, s0, s0\n\t"
                     "subs %0, %0, #1\n\t"
                     "bne 1b"
                     : "+r"(n)
                     : "r"(buf)
                     : "r12", "s0", "s1", "cc", "memory");
}

/* Empty markers around each loop call, for tools/arm/insn_classes.c (noipa: the calls stay). */
__attribute__((noipa)) void pt_region_begin(void) { __asm__ volatile(""); }
__attribute__((noipa)) void pt_region_end(void) { __asm__ volatile(""); }

typedef struct {
    const char *name;
    int instructions_per_iteration;
} loop_info;

static const loop_info loops[] = {{"alu", 4}, {"memory_fp", 6}};

static uint64_t run_loop(int which, uint32_t n, float *buf)
{
    const uint64_t t0 = pt_counter_read();
    pt_region_begin();
    if (which == 0)
        loop_alu(n);
    else
        loop_memory_fp(n, buf);
    pt_region_end();
    return pt_counter_read() - t0;
}

int main(int argc, char **argv)
{
    static float buf[4] = {1.0f, 2.0f, 0.5f, 0.0f};
    (void)pt_counter_read(); /* starts the timer */
    const uint64_t e0 = pt_counter_read();
    const uint64_t empty = pt_counter_read() - e0;
    printf("VALIDATE loop=empty k=0 n=0 instructions=%llu\n", (unsigned long long)empty);
    for (int l = 0; l < 2; l++)
        for (int i = 1; i < argc; i++) {
            const uint32_t n = (uint32_t)strtoul(argv[i], NULL, 10);
            const uint64_t window = run_loop(l, n, buf);
            printf("VALIDATE loop=%s k=%d n=%lu instructions=%llu\n", loops[l].name, loops[l].instructions_per_iteration,
                   (unsigned long)n, (unsigned long long)(window - empty));
        }
    return 0;
}
