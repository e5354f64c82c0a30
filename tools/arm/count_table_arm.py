"""Turns the "COUNT ..." lines of count_kernels built for the Cortex-M4F (pt_counter_arm.c under
qemu-system-arm -icount shift=7) into counts.json and a Markdown table next to the rv32imfc counts of the same
kernel steps (tools/riscv/results/counts.json, automatic matmul choice).

Per row: M4F instructions of the call on one core (`instret`), instructions per MAC (per code for the latent
codes), and the rv32 row's single-core instructions and 8-core critical path. The M4F "critical" fields of the
log (a team of virtual cores on the M4F) are kept in the JSON but mean nothing for a one-core MCU.

Usage: python count_table_arm.py COUNT_LOG RV32_COUNTS_JSON OUT_JSON
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "riscv"))
from count_table import markdown, parse  # noqa: E402  (tools/riscv/count_table.py)

TARGET = (
    "Cortex-M4F (-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard) bare metal, qemu-system-arm mps2-an386 "
    "-icount shift=7 (pt_counter_arm.c: CMSDK timer 0 at 25 MHz)"
)


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
    head = ["layer", "step", "shape", "work", "M4F instr", "M4F instr/unit", "rv32 instr", "rv32 8-core critical"]

    def cells(r):
        rv32 = [f"{r[k]:,}" if r[k] is not None else "-" for k in ("rv32_instret", "rv32_critical")]
        return [
            r["layer"],
            f"{r['op']} {r['step']}" + (f" {r['bits']}b" if r["unit"] == "code" else ""),
            r["shape"],
            f"{r['macs']:,} {r['unit']}",
            f"{r['instret']:,}",
            f"{r['instr_per_mac']:.2f}",
        ] + rv32

    return markdown(head, cells, rows)


def main(log_path, rv32_path, json_path):
    rows = parse(log_path)
    if not rows:
        sys.exit(f"no COUNT lines in {log_path}")
    with open(rv32_path) as f:
        join_rv32(rows, json.load(f)["rows"])
    failed = [r for r in rows if r["status"] != "ok"]
    with open(json_path, "w") as f:
        json.dump({"target": TARGET, "rows": rows}, f, indent=1)
    print(table(rows))
    print(f"wrote {json_path}")
    if failed:
        sys.exit(f"{len(failed)} steps did not return PT_OK")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
