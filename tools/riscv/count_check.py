"""Fails on an rv32 instruction-count regression: compares a fresh counts.json (make count) with the committed
baseline, row by row, on one core (`instret`) and on the emulated cluster's critical path (`critical`).

Counts are exact and deterministic (QEMU -icount shift=0), so any change is the code's: a row that grows by
more than the tolerance (1 % by default) is a regression and fails; a row that shrinks by more is reported as
an improvement, to be recorded in the same commit as the change that made it
(`python3 tools/doc_tables.py record-riscv build/riscv/counts.json tools/riscv/results/counts.json`). A baseline
row missing from the new counts fails too (a row that stopped being measured hides any regression).

Usage: python3 count_check.py NEW_JSON BASELINE_JSON [--tolerance 0.01]
"""

import argparse
import json
import sys

CHECKED = ("instret", "critical")  # one core, and the slowest core of every fork on the emulated cluster


def row_key(row):
    return (row["layer"], row["op"], row["step"], row["variant"], row["shape"], row.get("bits", 0))


def compare(new_rows, base_rows, tolerance):
    """(regressions, improvements, missing): lines describing rows beyond the tolerance, and baseline rows
    the new counts lack."""
    new = {row_key(r): r for r in new_rows}
    regressions, improvements, missing = [], [], []
    for key, base in ((row_key(r), r) for r in base_rows):
        if key not in new:
            missing.append(" / ".join(map(str, key)))
            continue
        for field in CHECKED:
            old, now = base[field], new[key][field]
            change = (now - old) / old if old else float(now != 0)
            line = f"{' / '.join(map(str, key))}: {field} {old:,} -> {now:,} ({100 * change:+.2f} %)"
            if change > tolerance:
                regressions.append(line)
            elif change < -tolerance:
                improvements.append(line)
    return regressions, improvements, missing


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("new", help="counts.json of this build (make count)")
    p.add_argument("baseline", help="the committed counts.json")
    p.add_argument("--tolerance", type=float, default=0.01, help="largest allowed growth per row (default 0.01)")
    a = p.parse_args(argv)
    with open(a.new) as f:
        new_rows = json.load(f)["rows"]
    with open(a.baseline) as f:
        base_rows = json.load(f)["rows"]
    regressions, improvements, missing = compare(new_rows, base_rows, a.tolerance)
    for line in improvements:
        print(f"improved {line}")
    if improvements:
        print(
            "record the improvement: python3 tools/doc_tables.py record-riscv build/riscv/counts.json "
            "tools/riscv/results/counts.json"
        )
    for line in missing:
        print(f"MISSING {line}")
    for line in regressions:
        print(f"REGRESSION {line}")
    regressed = {line.split(": ")[0] for line in regressions}
    within = len(base_rows) - len(missing) - len(regressed)
    print(
        f"count check: {within} of {len(base_rows)} rows within {100 * a.tolerance:g} % of the baseline or better, "
        f"{len(regressed)} regressed, {len(missing)} missing"
    )
    return 1 if regressions or missing else 0


if __name__ == "__main__":
    sys.exit(main())
