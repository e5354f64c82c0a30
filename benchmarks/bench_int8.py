"""INT8 vs FP32 forward time of the MobileNetV1 frozen stage (layers 0..19, LR layer l = 19), N = 1.

Two ways to run it (from the repository root, after building in place):

    python -m pytest benchmarks/bench_int8.py --benchmark-group-by=group    # pytest-benchmark tables
    python benchmarks/bench_int8.py --json int8_vs_fp32.json                # side-by-side ratios (JSON + table)
    python benchmarks/bench_int8.py --table int8_vs_fp32.json               # the table of a stored run

The second form interleaves the FP32 and INT8 calls of each layer round by round (the machine is shared
and noisy), reports medians and best rounds, the INT8/FP32 time ratio per layer and for the
whole stage (timed as a chain, and as the sum of the layers' best rounds), and the GOP/s (2 x MACs / time).
FP32 is the float kernel with its bias (BN folded); INT8 includes the requantization and the ReLU clip.
Output and workspace buffers are reused (out=). Threads:
PULPTRAIN_BENCH_THREADS (default 1). The ISA level is the package's (PULPTRAIN_ISA=generic|avx2|avx512 forces
one); the JSON stores it with the machine, build, commit and date.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import pytest

import pulptrain
from pulptrain import kernels as K
from pulptrain import quant as Q
from pulptrain.models import mobilenet_v1_layers

LR_LAYER = 19
# layers 0..19 of the model table (LayerShape rows), width 1.0, 128x128x3 input
FROZEN_STAGE = mobilenet_v1_layers()[: LR_LAYER + 1]


def make_layer(layer, seed=0):
    """(fp32_call, int8_call) for one layer (a LayerShape) at N = 1, each writing into its own reused output."""
    kind, stride, h = layer.kind, layer.stride, layer.in_size
    rng = np.random.default_rng(seed)
    x_f = rng.random((1, layer.in_channels, h, h), dtype=np.float32)
    x_q = rng.integers(0, 256, (1, layer.in_channels, h, h)).astype(np.uint8)
    w_f = (rng.standard_normal(layer.weight_shape) * 0.1).astype(np.float32)
    b_f = (rng.standard_normal(layer.out_channels) * 0.1).astype(np.float32)
    params = Q.quantize_conv_params(w_f, b_f, 1 / 64, 1 / 16)
    w_q, b_q, m_q, s_q = params.kernel_args()
    if kind == "conv":
        fp32 = lambda out: K.conv2d_forward(x_f, w_f, b_f, stride=stride, padding=1, out=out)
        int8 = lambda out: Q.int8_conv2d_forward(x_q, w_q, b_q, m_q, s_q, stride=stride, padding=1, out=out)
    elif kind == "dw":
        fp32 = lambda out: K.depthwise_conv2d_forward(x_f, w_f, b_f, stride=stride, padding=1, out=out)
        int8 = lambda out: Q.int8_depthwise_conv2d_forward(x_q, w_q, b_q, m_q, s_q, stride=stride, padding=1, out=out)
    else:
        fp32 = lambda out: K.pointwise_conv2d_forward(x_f, w_f, b_f, out=out)
        int8 = lambda out: Q.int8_pointwise_conv2d_forward(x_q, w_q, b_q, m_q, s_q, out=out)
    y_f, y_q = fp32(None), int8(None)  # allocate once, warm up
    return (lambda: fp32(y_f)), (lambda: int8(y_q))


def set_threads():
    pulptrain.set_num_threads(int(os.environ.get("PULPTRAIN_BENCH_THREADS", "1")))


# ---- pytest-benchmark ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("layer", FROZEN_STAGE, ids=[f"{layer.index:02d}-{layer.name}" for layer in FROZEN_STAGE])
def test_forward(benchmark, layer, precision):
    set_threads()
    fp32, int8 = make_layer(layer)
    benchmark.group = (
        f"{layer.index:02d} {layer.name} ({layer.kind} {layer.in_channels}->{layer.out_channels} "
        f"s{layer.stride} @{layer.in_size})"
    )
    benchmark.extra_info["macs"] = layer.macs
    benchmark(fp32 if precision == "fp32" else int8)


# ---- side-by-side ratios ------------------------------------------------------------------------------------


def interleaved_times(calls, rounds, repeats):
    """(median, min) seconds per call of each callable; every round runs each of them `repeats` times in
    turn. The min (best round) is the steadier number when other jobs share the machine."""
    times = [[] for _ in calls]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            t0 = time.perf_counter()
            for _ in range(repeats):
                call()
            times[i].append((time.perf_counter() - t0) / repeats)
    return [(float(np.median(t)), float(np.min(t))) for t in times]


def main():
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="int8_vs_fp32.json", help="where to write the results")
    parser.add_argument("--table", metavar="JSON", help="print the table of a stored run and exit (runs nothing)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--microkernel",
        default="auto",
        help="INT8 microkernel (pulptrain.quant.int8_microkernels(); default: the ISA level's best), e.g. "
        "avx2-4x16 to time what an AVX2 CPU without AVX-VNNI runs",
    )
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the benchmarks package
    if args.table:
        with open(args.table) as f:
            print_table(json.load(f))
        return
    from benchmarks.machine import machine_info

    set_threads()
    Q.set_int8_microkernel(args.microkernel)
    rows, stage_fp32, stage_int8 = [], [], []
    for layer in tqdm(FROZEN_STAGE, desc="layers"):
        fp32, int8 = make_layer(layer)
        (t_fp32, best_fp32), (t_int8, best_int8) = interleaved_times([fp32, int8], args.rounds, args.repeats)
        n_macs = layer.macs
        rows.append(
            {
                "index": layer.index,
                "name": layer.name,
                "kind": layer.kind,
                "c_in": layer.in_channels,
                "c_out": layer.out_channels,
                "stride": layer.stride,
                "h_in": layer.in_size,
                "macs": n_macs,
                "fp32_ms": t_fp32 * 1e3,
                "int8_ms": t_int8 * 1e3,
                "int8_over_fp32": t_int8 / t_fp32,
                "fp32_best_ms": best_fp32 * 1e3,
                "int8_best_ms": best_int8 * 1e3,
                "int8_over_fp32_best": best_int8 / best_fp32,
                "fp32_gops": 2 * n_macs / best_fp32 * 1e-9,
                "int8_gops": 2 * n_macs / best_int8 * 1e-9,
            }
        )
        stage_fp32.append(fp32)
        stage_int8.append(int8)
    (whole_fp32, whole_best_fp32), (whole_int8, whole_best_int8) = interleaved_times(
        [lambda: [f() for f in stage_fp32], lambda: [f() for f in stage_int8]], args.rounds, 1
    )
    result = {
        "threads": pulptrain.get_num_threads(),
        "isa": pulptrain.cpu_info()["isa"],
        "int8_microkernel": Q.get_int8_microkernel(),
        "machine": machine_info(),
        "rounds": args.rounds,
        "repeats": args.repeats,
        "layers": rows,
        "whole_stage": {
            "fp32_ms": whole_fp32 * 1e3,
            "int8_ms": whole_int8 * 1e3,
            "int8_over_fp32": whole_int8 / whole_fp32,
            "fp32_best_ms": whole_best_fp32 * 1e3,
            "int8_best_ms": whole_best_int8 * 1e3,
            "int8_over_fp32_best": whole_best_int8 / whole_best_fp32,
            "macs": sum(r["macs"] for r in rows),
        },
        # On a loaded machine a 20-layer chain rarely gets the core for its whole run; the sum of each
        # layer's best round is the steadier estimate of the uncontended stage time.
        "sum_of_layer_best": {
            "fp32_ms": sum(r["fp32_best_ms"] for r in rows),
            "int8_ms": sum(r["int8_best_ms"] for r in rows),
        },
    }
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print_table(result)


def print_table(result):
    """The markdown table of a run (main's result dict), after a line naming the machine and the run."""
    machine = result["machine"]
    if isinstance(machine, dict):
        from benchmarks.machine import machine_line

        print(f"Machine: {machine_line(machine)}.")
    print(
        f"ISA level {result.get('isa', '?')}, threads {result['threads']}, INT8 microkernel "
        f"{result['int8_microkernel']}, {result['rounds']} interleaved rounds of {result['repeats']} calls: median ms "
        f"(best ms); GOP/s and the best ratio from the best rounds"
    )
    print()
    rows = result["layers"]
    print("| idx | layer | MACs | FP32 ms | INT8 ms | INT8/FP32 median | INT8/FP32 best | FP32 GOP/s | INT8 GOP/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['index']} | {r['name']} ({r['kind']} {r['c_in']}->{r['c_out']} s{r['stride']} @{r['h_in']}) "
            f"| {r['macs'] / 1e6:.2f}M | {r['fp32_ms']:.3f} ({r['fp32_best_ms']:.3f}) "
            f"| {r['int8_ms']:.3f} ({r['int8_best_ms']:.3f}) | {r['int8_over_fp32']:.2f} "
            f"| {r['int8_over_fp32_best']:.2f} | {r['fp32_gops']:.1f} | {r['int8_gops']:.1f} |"
        )
    w = result["whole_stage"]
    print(
        f"| 0..19 | whole frozen stage | {w['macs'] / 1e6:.1f}M | {w['fp32_ms']:.3f} ({w['fp32_best_ms']:.3f}) "
        f"| {w['int8_ms']:.3f} ({w['int8_best_ms']:.3f}) | {w['int8_over_fp32']:.2f} "
        f"| {w['int8_over_fp32_best']:.2f} | | |"
    )
    b = result["sum_of_layer_best"]
    print(
        f"| 0..19 | sum of the layers' best rounds | | {b['fp32_ms']:.3f} | {b['int8_ms']:.3f} | "
        f"| {b['int8_ms'] / b['fp32_ms']:.2f} | | |"
    )


if __name__ == "__main__":
    main()
