/* Retired-instruction counter of the bare-metal targets, for measuring a region of code (the instruction-count
 * tools, tools/riscv and tools/arm, and the application of an exported bundle):
 *
 *     const uint64_t t0 = pt_counter_read();
 *     ... region ...
 *     const uint64_t instructions = pt_counter_read() - t0;   (includes the few instructions of one read)
 *
 * PT_COUNTER_AVAILABLE is 1 where the target has one, else pt_counter_read() returns 0:
 *
 * - RISC-V: the instret CSR, exact under qemu-system-riscv32 -icount shift=0 (and on hardware).
 * - Cortex-M (ARMv7E-M, e.g. the Cortex-M4F) on qemu-system-arm -M mps2-an386 -icount shift=7: QEMU models no
 *   DWT cycle counter, but under -icount shift=S every retired instruction advances the virtual clock by
 *   exactly 2^S ns, and the board's CMSDK APB timer 0 counts that clock down at 25 MHz (40 ns a tick). With
 *   S = 7 an instruction is 128 ns = 3.2 ticks, so after N instructions the timer has advanced floor(3.2 N)
 *   ticks and N = ceil(ticks * 5 / 16) exactly. (S = 7 is the smallest shift whose instruction lasts more than
 *   one tick, which makes every instruction visible.) Timer 0 is 32 bits wide and wraps every 2^32 ticks
 *   (1.34e9 instructions), so a second clock, the board's dual timer 1 with its /256 prescaler (one tick per
 *   80 instructions, wrapping every 3.4e11), tells how many times timer 0 wrapped between two reads: the
 *   count is exact for reads up to 3.4e11 instructions apart. tools/arm/count_validate.c proves it on loops of
 *   known length, past a wrap of timer 0. The region must not sleep (WFI) or take interrupts.
 *
 * The counter's state is static: read it from one translation unit of a program.
 */
#ifndef PT_COUNTER_H
#define PT_COUNTER_H

#include <stdint.h>

#if defined(__riscv)
#define PT_COUNTER_AVAILABLE 1
static inline uint64_t pt_counter_read(void)
{
#if __riscv_xlen == 32
    uint32_t hi, lo, hi2;
    do { /* the high half must not change between the two halves' reads */
        __asm__ volatile("rdinstreth %0" : "=r"(hi));
        __asm__ volatile("rdinstret %0" : "=r"(lo));
        __asm__ volatile("rdinstreth %0" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
#else
    uint64_t v;
    __asm__ volatile("rdinstret %0" : "=r"(v));
    return v;
#endif
}

#elif defined(__arm__) && defined(__ARM_ARCH_7EM__)
#define PT_COUNTER_AVAILABLE 1
/* mps2-an386 (AN386 application note): CMSDK APB timer 0 and the CMSDK APB dual timer, both at 25 MHz */
#define PT_CMSDK_TIMER0(offset) (*(volatile uint32_t *)(0x40000000u + (offset)))
#define PT_CMSDK_DUALTIMER1(offset) (*(volatile uint32_t *)(0x40002000u + (offset)))
#define PT_TIMER_CTRL 0x0u
#define PT_TIMER_VALUE 0x4u
#define PT_TIMER_RELOAD 0x8u
#define PT_DUALTIMER_LOAD 0x0u
#define PT_DUALTIMER_VALUE 0x4u
#define PT_DUALTIMER_CTRL 0x8u
/* dual timer control: enabled, free-running (wraps at 0 to 0xffffffff), no interrupt, prescale /256, 32-bit */
#define PT_DUALTIMER_CTRL_FREE_256 (0x80u | (2u << 2) | 0x2u)
#define PT_DUALTIMER_PRESCALE 256u

static uint32_t pt_counter_fine_last, pt_counter_coarse_last;
static uint64_t pt_counter_ticks;
static int pt_counter_started;

static inline uint64_t pt_counter_read(void)
{
    if (!pt_counter_started) {
        PT_CMSDK_TIMER0(PT_TIMER_CTRL) = 0;
        PT_CMSDK_TIMER0(PT_TIMER_RELOAD) = 0xffffffffu;
        PT_CMSDK_TIMER0(PT_TIMER_VALUE) = 0xffffffffu;
        PT_CMSDK_DUALTIMER1(PT_DUALTIMER_CTRL) = 0;
        PT_CMSDK_DUALTIMER1(PT_DUALTIMER_LOAD) = 0xffffffffu;
        PT_CMSDK_DUALTIMER1(PT_DUALTIMER_CTRL) = PT_DUALTIMER_CTRL_FREE_256;
        PT_CMSDK_TIMER0(PT_TIMER_CTRL) = 1u; /* enable, no interrupt */
        pt_counter_fine_last = 0xffffffffu;
        pt_counter_coarse_last = 0xffffffffu;
        pt_counter_started = 1;
    }
    const uint32_t fine = PT_CMSDK_TIMER0(PT_TIMER_VALUE);
    const uint32_t coarse = PT_CMSDK_DUALTIMER1(PT_DUALTIMER_VALUE);
    /* both count down; the fine difference is exact modulo 2^32, the coarse one within 2 x 256 ticks (the two
     * clocks' phases), so the wraps of the fine timer are the multiple of 2^32 nearest to the coarse estimate */
    const uint32_t fine_ticks = pt_counter_fine_last - fine;
    const uint64_t coarse_ticks = (uint64_t)(uint32_t)(pt_counter_coarse_last - coarse) * PT_DUALTIMER_PRESCALE;
    const uint64_t wraps = (coarse_ticks - fine_ticks + (1ull << 31)) >> 32;
    pt_counter_ticks += (wraps << 32) + fine_ticks;
    pt_counter_fine_last = fine;
    pt_counter_coarse_last = coarse;
    return (pt_counter_ticks * 5u + 15u) / 16u;
}

#else
#define PT_COUNTER_AVAILABLE 0
static inline uint64_t pt_counter_read(void) { return 0; }
#endif

#endif
