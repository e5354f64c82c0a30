"""Turns the "COUNT ..." lines of count_kernels built for the Cortex-M4F (csrc/core/pt_counter.h under
qemu-system-arm -icount shift=7) and the instruction classes of both targets (insn_classes.c, a QEMU plugin)
into counts.json and a Markdown table next to the rv32imfc counts of the same kernel steps
(tools/riscv/results/counts.json, automatic matmul choice).

Per row: M4F instructions of the call on one core (`instret`), instructions per MAC (per code for the latent
codes), the rv32 row's single-core instructions and 8-core critical path, and the class counts of the call on
one core on each target (`classes`, `rv32_classes`). Every call runs twice (one core, then a team), each
between the plugin's markers, so the class logs hold two regions per COUNT line; the first is the one-core
call. On each target the count of the call (M4F: timer; rv32: instret, from the same run) and the plugin's
total must differ by one and the same small constant on every row (the windows differ by a counter read and a
marker call): a check of one method against the other. The M4F "critical" fields (a team of virtual cores on
the M4F) are kept but mean nothing for a one-core MCU.

Usage: python count_table_arm.py COUNT_LOG RV32_COUNT_LOG M4F_CLASSES_LOG RV32_CLASSES_LOG RV32_COUNTS_JSON OUT_JSON
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "riscv"))
from count_table import markdown, parse  # noqa: E402  (tools/riscv/count_table.py)

TARGET = (
    "Cortex-M4F (-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard) bare metal, qemu-system-arm mps2-an386 "
    "-icount shift=7 (csrc/core/pt_counter.h: CMSDK timers at 25 MHz)"
)


CLASS_NAMES = ("alu", "load_store", "branch", "fp_load_store", "fp_arith", "fp_fma")
MAX_METHOD_GAP = 64


def parse_classes(path):
    """The class counts of every region, in order ({"total": T, "alu": A, ...} per region)."""
    regions = []
    with open(path) as f:
        for line in f:
            if line.startswith("INSN_CLASSES "):
                fields = dict(token.split("=", 1) for token in line.split()[1:])
                regions.append({k: int(v) for k, v in fields.items() if k != "region"})
    return regions


def attach_classes(rows, rv32_run, m4f_regions, rv32_regions):
    """Adds the one-core class counts of both targets to every row (and method_gap, rv32_method_gap); the rows
    whose count and plugin total differ by another amount than the first row's, or by more than MAX_METHOD_GAP,
    on either target (empty when both methods agree)."""
    for regions, name in ((m4f_regions, "M4F"), (rv32_regions, "rv32")):
        if len(regions) != 2 * len(rows):
            sys.exit(f"{name} class log: {len(regions)} regions for {len(rows)} COUNT lines (expected 2 per line)")
    if [row_key(r) for r in rv32_run] != [row_key(r) for r in rows]:
        sys.exit("the rv32 run measured other steps than the M4F run")
    disagree = []
    for i, (r, rv) in enumerate(zip(rows, rv32_run)):
        m4f, rv32 = m4f_regions[2 * i], rv32_regions[2 * i]
        r["classes"] = {c: m4f[c] for c in CLASS_NAMES}
        r["rv32_classes"] = {c: rv32[c] for c in CLASS_NAMES}
        r["method_gap"] = r["instret"] - m4f["total"]
        r["rv32_method_gap"] = rv["instret"] - rv32["total"]
        for gap in ("method_gap", "rv32_method_gap"):
            if abs(r[gap]) > MAX_METHOD_GAP or r[gap] != rows[0][gap]:
                disagree.append(r)
    return disagree


def row_key(r):
    return r["layer"], r["op"], r["step"], r["bits"]


def join_rv32(rows, rv32_rows):
    """Adds rv32_instret and rv32_critical (None where tools/riscv has no such row) to every M4F row."""
    rv32 = {row_key(r): r for r in rv32_rows if r["variant"] in ("auto", "-")}
    for r in rows:
        match = rv32.get(row_key(r))
        r["rv32_instret"] = match["instret"] if match else None
        r["rv32_critical"] = match["critical"] if match else None
    return rows


def table(rows):
    head = [
        "layer",
        "step",
        "shape",
        "work",
        "M4F instr",
        "M4F instr/unit",
        "M4F FMA / FP ld-st %",
        "rv32 instr",
        "rv32 8-core critical",
    ]

    def cells(r):
        rv32 = [f"{r[k]:,}" if r[k] is not None else "-" for k in ("rv32_instret", "rv32_critical")]
        return [
            r["layer"],
            f"{r['op']} {r['step']}" + (f" {r['bits']}b" if r["unit"] == "code" else ""),
            r["shape"],
            f"{r['macs']:,} {r['unit']}",
            f"{r['instret']:,}",
            f"{r['instr_per_mac']:.2f}",
            "{:.0f} / {:.0f}".format(*(100 * r["classes"][c] / r["instret"] for c in ("fp_fma", "fp_load_store"))),
        ] + rv32

    return markdown(head, cells, rows)


def main(log_path, rv32_log_path, m4f_classes_path, rv32_classes_path, rv32_path, json_path):
    rows = parse(log_path)
    if not rows:
        sys.exit(f"no COUNT lines in {log_path}")
    with open(rv32_path) as f:
        join_rv32(rows, json.load(f)["rows"])
    disagree = attach_classes(
        rows, parse(rv32_log_path), parse_classes(m4f_classes_path), parse_classes(rv32_classes_path)
    )
    failed = [r for r in rows if r["status"] != "ok"]
    with open(json_path, "w") as f:
        json.dump({"target": TARGET, "rows": rows}, f, indent=1)
    print(table(rows))
    for gap, what in (("method_gap", "M4F timer"), ("rv32_method_gap", "rv32 instret")):
        gaps = sorted({r[gap] for r in rows})
        print(f"{what} count - plugin total, every row: {gaps} instructions (one constant <= {MAX_METHOD_GAP})")
    print(f"wrote {json_path}")
    if failed:
        sys.exit(f"{len(failed)} steps did not return PT_OK")
    if disagree:
        sys.exit(f"{len(disagree)} rows: the timer count and the plugin total disagree")


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    main(*sys.argv[1:])
