"""Checks count_validate's output (csrc/core/pt_counter.h under qemu-system-arm -icount shift=7): for every loop of
K instructions per iteration, the window around a call with N >= 1 iterations must be exactly K * N + c with
the same small constant c for every N (call, setup and return; N = 0 takes an early return and only has to be
small). Prints the check and exits non-zero when the counter is not exact.

Usage: python count_validate.py COUNT_VALIDATE_LOG
"""

import re
import sys

LINE = re.compile(r"^VALIDATE loop=(\w+) k=(\d+) n=(\d+) instructions=(\d+)$")
MAX_CONSTANT = 32  # instructions of a call's own setup and return, far below one iteration of any real loop


def parse(lines):
    """{loop: [(k, n, instructions), ...]} from the VALIDATE lines."""
    loops = {}
    for line in lines:
        m = LINE.match(line.strip())
        if m:
            name, k, n, count = m.group(1), *map(int, m.groups()[1:])
            loops.setdefault(name, []).append((k, n, count))
    return loops


def check(loops):
    """(ok, messages): every loop with N >= 1 is K * N + one constant c, 0 <= c <= MAX_CONSTANT."""
    messages, ok = [], True
    measured = {name: rows for name, rows in loops.items() if name != "empty"}
    if not measured:
        return False, ["no VALIDATE lines of a loop"]
    for name, rows in measured.items():
        constants = {count - k * n for k, n, count in rows if n >= 1}
        early = [count for _, n, count in rows if n == 0]
        good = len(constants) == 1 and 0 <= min(constants) <= MAX_CONSTANT and all(c <= MAX_CONSTANT for c in early)
        ok &= good
        largest = max(n for _, n, _ in rows)
        messages.append(
            f"{name}: {rows[0][0]} instr/iteration, N up to {largest:,}: counted - K*N = "
            f"{sorted(constants)} -> {'exact' if good else 'NOT EXACT'}"
        )
    return ok, messages


def main(path):
    with open(path) as f:
        ok, messages = check(parse(f))
    print("\n".join(messages))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
