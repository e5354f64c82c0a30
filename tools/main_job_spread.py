"""Final accuracy of the main job (``pulptrain cl`` with its defaults) over several seeds, with the machine and
the build it ran on.

    python3 tools/main_job_spread.py [--seeds 0,1,2,3,4] [--threads 1] [--build "-O3 -march=native"] \
        [--package-dir DIR] [--data-root DIR] [--out results/main_job_spread] [--append]
    python3 tools/main_job_spread.py --markdown results/main_job_spread/spread.json   # the table only

One run = :func:`pulptrain.cl.experiment.run_experiment` on ``ExperimentConfig(seed=s, compare="none")`` (the
main job's 8-bit run, without its FP32 comparison run), in this process.
The final accuracy of one run is not a property of the code alone: the vectorised kernels sum in an order
that depends on the ISA level and the compiler, so their float results differ in the last bits between
builds, and thousands of training steps amplify those bits into points of accuracy (and the last batch
holds a single class, which moves the final accuracy by several points). So the docs report mean, standard
deviation, min and max over seeds, per machine and build, never one run.

Writes ``OUT/spread.json`` (every run with its machine info, the settings) and ``OUT/spread.md`` (the table);
``--append`` adds runs (another build, more seeds) to an existing ``spread.json``. Both files are rewritten
after every run.
"""

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.machine import DEFAULT_BUILD, machine_info  # noqa: E402

FORMAT = "pulptrain.tools.main_job_spread/1"


def _group_key(run):
    m = run["machine"]
    return (m["cpu"], m["isa"], m["logical_cpus"], m["build"], m.get("compiler"))


def summarize(runs):
    """One dict per (machine, build), in first-seen order: runs, seeds, mean / sample std / min / max of the
    final accuracy (fractions), median process CPU seconds per run, and the dates and commits of its runs."""
    groups = {}
    for run in runs:
        groups.setdefault(_group_key(run), []).append(run)
    out = []
    for (cpu, isa, cpus, build, compiler), members in groups.items():
        acc = [r["final_accuracy"] for r in members]
        out.append(
            {
                "cpu": cpu,
                "isa": isa,
                "logical_cpus": cpus,
                "build": build,
                "compiler": compiler,
                "runs": len(members),
                "seeds": [r["seed"] for r in members],
                "mean": statistics.fmean(acc),
                "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "min": min(acc),
                "max": max(acc),
                "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in members),
                "threads": sorted({r["threads"] for r in members}),
                "dates": sorted({r["machine"]["date"] for r in members}),
                "commits": sorted({r["machine"]["commit"] or "?" for r in members}),
            }
        )
    return out


def markdown(data):
    """The table of ``spread.json``: one row per machine and build."""
    head = [
        "machine (CPU, ISA, logical CPUs)",
        "build",
        "commit, date",
        "seeds",
        "final accuracy mean +- std",
        "min",
        "max",
        "per seed",
        "CPU s per run (median; threads)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for g in summarize(data["runs"]):
        by_seed = {
            r["seed"]: r["final_accuracy"]
            for r in data["runs"]
            if _group_key(r) == (g["cpu"], g["isa"], g["logical_cpus"], g["build"], g["compiler"])
        }
        build = g["build"] + (f", {g['compiler']}" if g["compiler"] else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{g['cpu']}, {g['isa']}, {g['logical_cpus']}",
                    build,
                    f"{', '.join(g['commits'])}, {', '.join(g['dates'])}",
                    f"{g['runs']} ({min(g['seeds'])}..{max(g['seeds'])})",
                    f"{100 * g['mean']:.1f} % +- {100 * g['std']:.1f}",
                    f"{100 * g['min']:.1f} %",
                    f"{100 * g['max']:.1f} %",
                    " / ".join(f"{100 * by_seed[s]:.1f}" for s in sorted(by_seed)),
                    f"{g['median_cpu_seconds']:.0f} ({', '.join(map(str, g['threads']))})",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def run_seeds(seeds, threads=1, build=DEFAULT_BUILD, data_root=None, progress=print, after_run=None):
    """Run the main job once per seed; one dict per run (seed, final accuracy, wall and process CPU seconds,
    machine). With one thread the CPU time is the run's cost on one core, whatever else the machine runs.
    ``after_run(runs, settings)`` is called after every run (to save partial results)."""
    from pulptrain.cl.experiment import ExperimentConfig, run_experiment, run_label

    # the main job's own setting (8-bit replays) alone: the FP32 comparison run is not part of the spread
    base = ExperimentConfig(threads=threads, quiet=True, data_root=data_root, compare="none")
    host = machine_info(build)  # once: the commit and date the runs started from
    runs = []
    for seed in seeds:
        start, cpu_start = time.perf_counter(), time.process_time()
        result = run_experiment(replace(base, seed=seed))
        runs.append(
            {
                "seed": seed,
                "threads": threads,
                "final_accuracy": float(result["runs"][run_label(base.bits)]["final_accuracy"]),
                "wall_seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu_start,
                "machine": host,
            }
        )
        progress(
            f"seed {seed}: final accuracy {100 * runs[-1]['final_accuracy']:.2f} %, "
            f"{runs[-1]['cpu_seconds']:.1f} CPU s, {runs[-1]['wall_seconds']:.1f} s wall"
        )
        if after_run:
            after_run(runs, base.settings())
    return runs, base.settings()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0,1,2,3,4)")
    p.add_argument("--threads", type=int, default=1, help="threads per run (default 1)")
    p.add_argument(
        "--build",
        default=DEFAULT_BUILD,
        help=f"how the extension was built, stored with the runs (default {DEFAULT_BUILD!r}, setup.py's "
        "default; describe any other build, e.g. 'PULPTRAIN_NATIVE=1 (-march=native)')",
    )
    p.add_argument(
        "--package-dir",
        metavar="DIR",
        help="import pulptrain from DIR: another build of this source tree, e.g. a copy built with "
        "PULPTRAIN_NATIVE=1 (pass --build to describe it)",
    )
    p.add_argument("--data-root", default=None, help="Fashion-MNIST folder (default: the usual locations)")
    p.add_argument("--out", default=os.path.join("results", "main_job_spread"), help="output folder")
    p.add_argument("--append", action="store_true", help="add the runs to OUT/spread.json")
    p.add_argument("--markdown", metavar="SPREAD_JSON", help="only print the table of this file")
    a = p.parse_args(argv)
    if a.markdown:
        with open(a.markdown) as f:
            print(markdown(json.load(f)))
        return 0
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {a.seeds!r}")
    if a.threads < 1:
        p.error(f"--threads must be >= 1, got {a.threads}")
    if a.package_dir:
        sys.path.insert(0, os.path.abspath(a.package_dir))
    path = os.path.join(a.out, "spread.json")
    previous = []
    if a.append and os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)["runs"]

    def write(runs, settings):  # after every run, so an interrupted spread keeps what it measured
        settings = {k: v for k, v in settings.items() if k != "seed"}
        data = {"format": FORMAT, "settings": settings, "runs": previous + runs}
        os.makedirs(a.out, exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
        with open(os.path.join(a.out, "spread.md"), "w") as f:
            f.write(markdown(data) + "\n")
        return data

    progress = lambda line: print(line, flush=True)  # noqa: E731
    runs, settings = run_seeds(seeds, a.threads, a.build, a.data_root, progress, after_run=write)
    print(markdown(write(runs, settings)))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
