/* pt_counter_read on Cortex-M4 under qemu-system-arm -M mps2-an386 -icount shift=7 (pt_counter.h).
 *
 * QEMU models no DWT cycle counter, but under -icount shift=S every retired instruction advances the virtual
 * clock by exactly 2^S ns, and the board's CMSDK APB timer 0 counts that clock down at 25 MHz (40 ns a tick).
 * With S = 7 an instruction is 128 ns = 3.2 ticks, so after N instructions the timer has advanced
 * floor(3.2 * N) ticks and N = ceil(ticks * 5 / 16) exactly. (S = 7 is the smallest shift whose instruction
 * lasts more than one tick, which makes every instruction visible.) The timer is 32 bits wide and reloads
 * from 0xffffffff, so the ticks between two reads are a wrapping difference: reads must come fewer than 2^32
 * ticks (1.34e9 instructions) apart. tests/test_arm_counter.py checks the count on loops of known length.
 */
#include "pt_counter.h"

#define CMSDK_TIMER0_BASE 0x40000000u /* mps2-an386 (AN386 application note, APB timer 0) */
#define TIMER_CTRL (*(volatile uint32_t *)(CMSDK_TIMER0_BASE + 0x0u))
#define TIMER_VALUE (*(volatile uint32_t *)(CMSDK_TIMER0_BASE + 0x4u))
#define TIMER_RELOAD (*(volatile uint32_t *)(CMSDK_TIMER0_BASE + 0x8u))
#define TIMER_CTRL_ENABLE 0x1u /* no interrupt enable, no external clock/enable inputs */

static uint32_t last_value;
static uint64_t elapsed_ticks;
static int started;

uint64_t pt_counter_read(void)
{
    if (!started) {
        TIMER_CTRL = 0;
        TIMER_RELOAD = 0xffffffffu;
        TIMER_VALUE = 0xffffffffu;
        TIMER_CTRL = TIMER_CTRL_ENABLE;
        last_value = 0xffffffffu;
        started = 1;
    }
    const uint32_t now = TIMER_VALUE;
    elapsed_ticks += (uint32_t)(last_value - now); /* counts down; wraps modulo 2^32 */
    last_value = now;
    return (elapsed_ticks * 5u + 15u) / 16u;
}
