"""Turns the "COUNT key=value ..." lines of count_kernels (rv32imfc under qemu-system-riscv32 -icount shift=0)
into counts.json and Markdown tables, and checks the measured goals of the RISC-V issue.

Per row: MACs, retired instructions on one core (`instret`), instructions per MAC, and for an emulated
cluster of C cores (serial team backend, a hook around each core's share of each fork): `critical` =
instructions outside the forks + the slowest core of every fork, `ideal` = instret / C, balance = critical / ideal
(1.00 = perfect 8-core speedup; it also charges work the cores repeat, e.g. each packing the same panel).
Rows whose unit is "code" (the latent-code kernels: quantize, dequantize, pack_bits / unpack_bits per bit width)
count instructions per code instead of per MAC and go into a second table.

Usage: python count_table.py COUNT_LOG OUT_JSON
"""

import json
import os
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from pulptrain.energy import FROZEN_STAGE_LR19  # noqa: E402  (the package's one table of it)

INT_FIELDS = ("macs", "instret", "cores", "team_instret", "critical", "core_max", "core_sum", "forks", "bits")

# The measured goals of the issue (benchmarks, not tests).
GOAL_POINTWISE_IPM = 1.6  # pointwise forward 512->512 at 8x8, best matmul variant
GOAL_DEPTHWISE_IPM = 3.0  # depthwise 3x3 forward
GOAL_BALANCE = 1.10  # largest core / ideal, every conv5/conv6 shape and step


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.startswith("COUNT "):
                continue
            row = dict(token.split("=", 1) for token in shlex.split(line[len("COUNT ") :]))
            row.setdefault("bits", "0")
            row.setdefault("unit", "MAC")
            for key in INT_FIELDS:
                row[key] = int(row[key])
            row["instr_per_mac"] = row["instret"] / row["macs"]
            row["ideal"] = row["instret"] / row["cores"]
            row["balance"] = row["critical"] / row["ideal"]
            rows.append(row)
    return rows


def markdown(head, cells_of, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells_of(r)) + " |" for r in rows]
    return "\n".join(lines)


def balance_cells(r):
    return [f"{r['critical']:,}", f"{r['ideal']:,.0f}", f"{r['balance']:.2f}"]


def table(rows):
    """The layer table (MACs): float training steps and INT8 inference."""
    cores = rows[0]["cores"]
    head = [
        "layer",
        "step",
        "variant",
        "shape",
        "MACs",
        "rv32 instr",
        "instr/MAC",
        f"{cores}-core max",
        f"ideal (/{cores})",
        "max/ideal",
    ]
    return markdown(
        head,
        lambda r: (
            [
                r["layer"],
                f"{r['op']} {r['step']}",
                r["variant"],
                r["shape"],
                f"{r['macs']:,}",
                f"{r['instret']:,}",
                f"{r['instr_per_mac']:.2f}",
            ]
            + balance_cells(r)
        ),
        [r for r in rows if r["unit"] == "MAC"],
    )


def code_table(rows):
    """The latent-code table (per code): quantize, dequantize, pack / unpack per bit width."""
    rows = [r for r in rows if r["unit"] == "code"]
    if not rows:
        return ""
    cores = rows[0]["cores"]
    head = [
        "kernel",
        "bits",
        "codes",
        "rv32 instr",
        "instr/code",
        f"{cores}-core max",
        f"ideal (/{cores})",
        "max/ideal",
    ]
    return markdown(
        head,
        lambda r: (
            [r["op"], str(r["bits"]), f"{r['macs']:,}", f"{r['instret']:,}", f"{r['instr_per_mac']:.2f}"]
            + balance_cells(r)
        ),
        rows,
    )


# The INT8 frozen stage below the default LR layer (l = 19, conv5_4/dw output): layer -> times it occurs.
FROZEN_STAGE = FROZEN_STAGE_LR19


def frozen_stage(rows):
    """Totals of the INT8 frozen stage up to LR layer 19 (None when the INT8 rows are missing)."""
    int8 = {r["layer"]: r for r in rows if r["op"].startswith("int8_")}
    if not set(FROZEN_STAGE) <= set(int8):
        return None
    total = {
        key: sum(int8[layer][key] * times for layer, times in FROZEN_STAGE.items())
        for key in ("macs", "instret", "critical")
    }
    total["instr_per_mac"] = total["instret"] / total["macs"]
    total["balance"] = total["critical"] / (total["instret"] / rows[0]["cores"])
    return total


def goals(rows):
    """(description, measured, goal, met) for each measured goal of the issue."""
    pw = [
        r
        for r in rows
        if r["layer"] == "conv5_x/pw" and r["op"] == "pointwise" and r["step"] == "forward" and r["variant"] != "auto"
    ]
    best = min(pw, key=lambda r: r["instr_per_mac"])
    dw = next(r for r in rows if r["layer"] == "conv5_x/dw" and r["op"] == "depthwise" and r["step"] == "forward")
    layers = [
        r
        for r in rows
        if r["layer"].startswith(("conv5", "conv6"))
        and r["variant"] in ("auto", "-")
        and r["op"] in ("depthwise", "pointwise")
    ]
    worst = max(layers, key=lambda r: r["balance"])
    return [
        (
            f"pointwise forward 512->512 8x8, best variant ({best['variant']}): instr/MAC",
            best["instr_per_mac"],
            GOAL_POINTWISE_IPM,
        ),
        ("depthwise 3x3 forward (conv5): instr/MAC", dw["instr_per_mac"], GOAL_DEPTHWISE_IPM),
        (
            f"8-core max/ideal, worst conv5/conv6 step ({worst['layer']} {worst['step']})",
            worst["balance"],
            GOAL_BALANCE,
        ),
    ]


def main(log_path, json_path):
    rows = parse(log_path)
    if not rows:
        sys.exit(f"no COUNT lines in {log_path}")
    checked = goals(rows)
    with open(json_path, "w") as f:
        json.dump(
            {
                "target": "rv32imfc/ilp32f bare metal, qemu-system-riscv32 -icount shift=0 (instret)",
                "cores": rows[0]["cores"],
                "goals": [dict(goal=g, measured=m, limit=lim, met=m <= lim) for g, m, lim in checked],
                "int8_frozen_stage_lr19": frozen_stage(rows),
                "rows": rows,
            },
            f,
            indent=1,
        )
    print(table(rows))
    print()
    if code_table(rows):
        print(code_table(rows))
        print()
    stage = frozen_stage(rows)
    if stage:
        print(
            f"INT8 frozen stage to LR layer 19 (conv1 .. conv5_4/dw): {stage['macs']:,} MACs, "
            f"{stage['instret']:,} rv32 instr, {stage['instr_per_mac']:.2f} instr/MAC, "
            f"{rows[0]['cores']}-core max/ideal {stage['balance']:.2f}"
        )
    for g, m, lim in checked:
        print(f"goal: {g} = {m:.2f} (goal <= {lim}): {'met' if m <= lim else 'MISSED'}")
    print(f"wrote {json_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
