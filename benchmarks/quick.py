"""Quick side-by-side run without pytest (for kernel work): interleaved rounds, medians, the report table.

    python benchmarks/quick.py [-k SUBSTRING] [--n 1,16] [--threads 1] [--impls pulptrain,torch] [--stage]
                               [--json FILE]

Each round times every implementation of a case back to back (so machine noise hits them alike); the
median over rounds of the per-call time is reported. An implementation "pulptrain@LEVEL" runs pulptrain at a
forced ISA level (generic, avx2, avx512: pulptrain._C.isa_levels()), so `--impls
pulptrain@generic,pulptrain@avx2,pulptrain@avx512,torch` compares the levels side by side in one process.
`--json FILE` also writes the rows (seconds per call), which benchmarks/report.py reads like a pytest-benchmark
file; given several runs, report.py takes the median of each row over them. For tracked results use the
pytest-benchmark suite.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import cases  # noqa: E402
from benchmarks.machine import DEFAULT_BUILD, machine_info  # noqa: E402
from benchmarks.report import add_peak_option, table  # noqa: E402
from pulptrain import _C  # noqa: E402

TIMERS = {"wall": time.perf_counter, "cpu": time.process_time}
timer = TIMERS["wall"]


def per_call_seconds(fn, target_s):
    """Time enough back-to-back calls to fill about target_s; returns seconds per call."""
    reps = getattr(fn, "_reps", None)
    if reps is None:
        t0 = timer()
        fn()
        one = max(timer() - t0, 1e-7)
        reps = fn._reps = max(1, int(target_s / one))
    t0 = timer()
    for _ in range(reps):
        fn()
    return (timer() - t0) / reps


def measure(calls, rounds, target_s):
    """Median seconds per call of each named callable, interleaving the implementations per round."""
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            fn.select()
            samples[name].append(per_call_seconds(fn, target_s))
    return {name: statistics.median(s) for name, s in samples.items()}


class _Timed:
    """Wraps a callable so per_call_seconds can remember its repetition count; select() sets the ISA level a
    pulptrain implementation runs at (before its calls are timed, outside the timing)."""

    def __init__(self, fn, isa=None):
        self.fn, self.isa = fn, isa

    def select(self):
        if self.isa is not None:
            _C.set_isa(self.isa)

    def __call__(self):
        self.fn()


START_ISA = _C.get_isa()  # plain "pulptrain": the level at start (the CPU's best, or PULPTRAIN_ISA)


def _timed(make, impl, *args):
    """_Timed(make(base impl, *args)) for an impl name "base" or "pulptrain@LEVEL" (built at that level)."""
    base, _, level = impl.partition("@")
    isa = (level or START_ISA) if base == "pulptrain" else None
    if isa is not None:
        _C.set_isa(isa)
    return _Timed(make(base, *args), isa)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", default="", help="only layers whose name contains this")
    p.add_argument("--steps", default=",".join(cases.STEPS))
    p.add_argument("--n", default="1,16")
    p.add_argument("--threads", default="1")
    p.add_argument("--impls", default="pulptrain,torch")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--target-ms", type=float, default=30.0)
    p.add_argument("--stage", action="store_true", help="also time the whole adaptive stage")
    p.add_argument("--matmul", action="store_true", help="also time the 512^3 matmul (at the first N only)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the rows here (machine-readable)")
    add_peak_option(p)
    p.add_argument(
        "--build",
        default=DEFAULT_BUILD,
        help=f"how the extension was built, stored in --json (default {DEFAULT_BUILD!r})",
    )
    p.add_argument(
        "--timer",
        choices=sorted(TIMERS),
        default="wall",
        help="cpu: process CPU time, robust to other jobs on a busy box (one thread only)",
    )
    a = p.parse_args(argv)
    global timer
    timer = TIMERS[a.timer]
    impls = [i for i in a.impls.split(",") if i != "torch" or cases.torch is not None]
    rows = []
    for threads in (int(t) for t in a.threads.split(",")):
        cases.set_threads(threads)
        for n in (int(v) for v in a.n.split(",")):
            jobs = [
                (layer.name, step, layer.macs(n), {i: _timed(cases.make_call, i, layer, step, n) for i in impls})
                for layer in cases.LAYERS
                if a.k in layer.name
                for step in a.steps.split(",")
            ]
            if a.stage:
                jobs.append(
                    (
                        "adaptive stage conv5_1..fc",
                        "train step",
                        cases.stage_macs(n),
                        {i: _timed(cases.make_stage_call, i, n) for i in impls if i != "numpy"},
                    )
                )
            if a.matmul and n == int(a.n.split(",")[0]):
                jobs.append(
                    (
                        "matmul 512x512x512",
                        "forward",
                        cases.MATMUL_SIZE**3,
                        {i: _timed(cases.make_matmul_call, i) for i in impls},
                    )
                )
            for name, step, macs, calls in jobs:
                for impl, median in measure(calls, a.rounds, a.target_ms / 1e3).items():
                    row = dict(layer=name, step=step, n=n, threads=threads, impl=impl, flops=2 * macs, median=median)
                    if calls[impl].isa is not None:
                        row["isa"] = calls[impl].isa
                    rows.append(row)
                print(f"  done: {name} {step} N={n} T={threads}", file=sys.stderr)
    if a.json:
        meta = dict(
            argv=sys.argv[1:],
            timer=a.timer,
            rounds=a.rounds,
            machine=platform.machine(),
            processor=platform.processor(),
            cpus=os.cpu_count(),
            torch=getattr(cases.torch, "__version__", None),
            date=time.strftime("%Y-%m-%dT%H:%M:%S"),
            host=machine_info(a.build),
        )
        with open(a.json, "w") as f:
            json.dump({"quick": meta, "rows": rows}, f, indent=1)
    print(table(rows, markdown=a.markdown, peak_per_core=a.peak))


if __name__ == "__main__":
    main()
