/* Retired-instruction counter of a bare-metal target, for measuring a region of code:
 *
 *     const uint64_t t0 = pt_counter_read();
 *     ... region ...
 *     const uint64_t instructions = pt_counter_read() - t0 - empty;   (empty: the same two reads, no region)
 *
 * On Cortex-M4 under qemu-system-arm (pt_counter_arm.c) the count is exact, provided that QEMU runs with
 * -icount shift=7 and that two consecutive reads are fewer than 2^32 timer ticks (about 1.34e9 instructions)
 * apart. The region must not sleep (WFI) or take interrupts.
 */
#ifndef PT_COUNTER_H
#define PT_COUNTER_H

#include <stdint.h>

uint64_t pt_counter_read(void);

#endif
