"""A grid of continual-learning experiments (``pulptrain sweep``): latent bits x LR layers x buffer sizes x
seeds, each run one :func:`pulptrain.cl.experiment.run_stream` on the same scenario.

The frozen stage is pretrained once per seed (pretraining depends on neither the LR layer nor the bits), and
quantized (and the test set's latents computed) once per (seed, LR layer, bits); every run starts from a
fresh copy of the pretrained adaptive stage. Outputs, rewritten after every run so a partial sweep is still
readable: ``sweep.csv`` (one row per run), ``sweep.json`` (the rows with their accuracy curves),
``sweep.md`` (mean +- sample standard deviation over seeds of the final accuracy and of the mean accuracy
over the last ``TAIL`` batches, which is less sensitive to which class the last batch happened to hold, and
their differences to FP32 with the same LR layer and buffer size) and ``accuracy_vs_memory.png``.
:func:`rewrite_outputs` regenerates them from ``sweep.json`` (``pulptrain sweep --report-only``).
"""

import csv
import json
import os
import time
from dataclasses import replace

import numpy as np

from pulptrain.cl.experiment import FP32_BITS, load_stream, pretrain, run_stream

__all__ = ["run_sweep", "summarize", "markdown_table", "plot_accuracy_vs_memory", "write_outputs", "rewrite_outputs"]

TAIL = 10  # batches averaged for the "last batches" accuracy

CSV_FIELDS = (
    "seed",
    "bits",
    "lr_layer",
    "replays",
    "final_accuracy",
    "tail_accuracy",
    "buffer_bytes",
    "buffer_mib",
    "total_memory_mib",
    "latent_shape",
    "stream_seconds",
)


def run_sweep(base, bits, lr_layers, replays, seeds, append=False):
    """Run the grid around ``base`` (an ExperimentConfig; its bits / lr_layer / replays / seed are replaced)
    and write the outputs into ``base.out``. ``append``: add the runs to those of ``base.out/sweep.json``
    (same settings otherwise, no run twice), e.g. more seeds. Returns the list of row dicts."""
    from tqdm import tqdm

    import pulptrain

    grid = [(s, l, b, r) for s in seeds for l in lr_layers for b in bits for r in replays]
    if not grid:
        raise ValueError("the sweep grid is empty")
    for s, l, b, r in grid:  # every setting checked before anything runs
        replace(base, seed=s, lr_layer=l, bits=b, replays=r).resolved()
    out = base.out or "."
    rows, seconds_before = _previous_runs(out, base, grid) if append else ([], 0.0)
    pulptrain.set_num_threads(base.threads)
    progress = not base.quiet
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter() - seconds_before
    with tqdm(total=len(grid), desc="sweep", unit="run", disable=not progress, dynamic_ncols=True) as bar:
        for seed in seeds:
            seed_cfg = replace(base, seed=seed).resolved()
            stream = load_stream(seed_cfg)
            pretrained = pretrain(seed_cfg, stream, progress)
            for lr_layer in lr_layers:
                for b in bits:
                    shared = {}  # frozen stage and test latents of this (seed, LR layer, bits)
                    for r in replays:
                        cfg = replace(seed_cfg, lr_layer=lr_layer, bits=b, replays=r).resolved()
                        result = run_stream(cfg, stream, pretrained, shared=shared, progress=progress)
                        rows.append(
                            {
                                "seed": seed,
                                "bits": b,
                                "lr_layer": lr_layer,
                                "replays": r,
                                "final_accuracy": result["final_accuracy"],
                                "tail_accuracy": float(np.mean(result["accuracy"][-TAIL:])),
                                "buffer_bytes": result["buffer_nbytes"],
                                "buffer_mib": result["buffer_mib"],
                                "total_memory_mib": result["memory"]["mib"]["total"],
                                "latent_shape": "x".join(map(str, result["latent_shape"])),
                                "stream_seconds": result["stream_seconds"],
                                "pretrain_seconds": pretrained.seconds,
                                "accuracy": result["accuracy"],
                            }
                        )
                        write_outputs(out, rows, base, time.perf_counter() - start)
                        bar.update(1)
                        bar.set_postfix(last=f"{b}b l={lr_layer} R={r}: {100 * result['final_accuracy']:.1f}%")
    return rows


def _mean_std(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _previous_runs(out, base, grid):
    path = os.path.join(out, "sweep.json")
    try:
        with open(path) as f:
            saved = json.load(f)
        rows, seconds, settings = saved["runs"], float(saved["wall_seconds"]), saved["settings"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--append: cannot read the sweep results {path}: {type(e).__name__}: {e}") from e
    varied = ("seed", "bits", "lr_layer", "replays")
    now = {k: v for k, v in base.settings().items() if k not in varied}
    then = {k: v for k, v in settings.items() if k not in varied}
    if now != then:
        diff = {k: (then.get(k), now.get(k)) for k in sorted(set(now) | set(then)) if now.get(k) != then.get(k)}
        raise ValueError(f"--append: {path} was run with other settings (saved, now): {diff}")
    done = {(r["seed"], r["lr_layer"], r["bits"], r["replays"]) for r in rows}
    twice = sorted(done & set(grid))
    if twice:
        raise ValueError(f"--append: runs already in {path} (seed, LR layer, bits, replays): {twice}")
    return rows, seconds


def summarize(rows):
    """One dict per (bits, LR layer, replays): mean and sample std (0 for one seed) over seeds of the final
    accuracy (``mean``, ``std``) and of the mean accuracy over the last TAIL batches (``tail_mean``,
    ``tail_std``), as fractions; number of seeds; buffer MiB; and ``delta_vs_fp32`` / ``tail_delta_vs_fp32``
    (minus the FP32 value of the same LR layer and replays, or None)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["bits"], row["lr_layer"], row["replays"]), []).append(row)
    summary = []
    for (b, l, r), members in groups.items():
        mean, std = _mean_std([m["final_accuracy"] for m in members])
        tail_mean, tail_std = _mean_std([np.mean(m["accuracy"][-TAIL:]) for m in members])
        summary.append(
            {
                "bits": b,
                "lr_layer": l,
                "replays": r,
                "seeds": len(members),
                "mean": mean,
                "std": std,
                "tail_mean": tail_mean,
                "tail_std": tail_std,
                "buffer_mib": members[0]["buffer_mib"],
                "total_memory_mib": members[0]["total_memory_mib"],
            }
        )
    fp32 = {(s["lr_layer"], s["replays"]): s for s in summary if s["bits"] == FP32_BITS}
    for s in summary:
        ref = fp32.get((s["lr_layer"], s["replays"]))
        s["delta_vs_fp32"] = None if ref is None else s["mean"] - ref["mean"]
        s["tail_delta_vs_fp32"] = None if ref is None else s["tail_mean"] - ref["tail_mean"]
    summary.sort(key=lambda s: (s["lr_layer"], s["replays"], -s["bits"]))
    return summary


def markdown_table(summary):
    """The summary as a markdown table (accuracies in %, differences in percentage points)."""

    def delta(s, key):
        return "" if s[key] is None or s["bits"] == FP32_BITS else f"{100 * s[key]:+.2f}"

    lines = [
        f"| bits | LR layer | replays | buffer MiB | final accuracy % | vs FP32 (pp) | last {TAIL} batches % "
        f"| vs FP32 (pp) | seeds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {'FP32' if s['bits'] == FP32_BITS else s['bits']} | {s['lr_layer']} | {s['replays']} | "
            f"{s['buffer_mib']:.4f} | {100 * s['mean']:.2f} +- {100 * s['std']:.2f} | "
            f"{delta(s, 'delta_vs_fp32')} | {100 * s['tail_mean']:.2f} +- {100 * s['tail_std']:.2f} | "
            f"{delta(s, 'tail_delta_vs_fp32')} | {s['seeds']} |"
        )
    return "\n".join(lines)


def plot_accuracy_vs_memory(path, summary, title=""):
    """Mean final accuracy (%, error bar = std over seeds) against the replay buffer's size (MiB, log
    scale): one colour per bit width, one marker per LR layer, one point per buffer size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=100)
    bit_values = sorted({s["bits"] for s in summary}, reverse=True)
    layers = sorted({s["lr_layer"] for s in summary})
    markers = "osD^v<>p*h"
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(bit_values)))
    for color, b in zip(colors, bit_values):
        for k, l in enumerate(layers):
            pts = sorted((s for s in summary if s["bits"] == b and s["lr_layer"] == l), key=lambda s: s["buffer_mib"])
            if not pts:
                continue
            ax.errorbar(
                [s["buffer_mib"] for s in pts],
                [100 * s["mean"] for s in pts],
                yerr=[100 * s["std"] for s in pts],
                color=color,
                marker=markers[k % len(markers)],
                capsize=3,
                linestyle="-" if k == 0 else "--",
                label=f"{'FP32' if b == FP32_BITS else f'{b}-bit'}, l={l}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("replay buffer (MiB, log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(out, rows, base, seconds):
    """sweep.csv, sweep.json, sweep.md and accuracy_vs_memory.png for the rows so far."""
    _write(out, rows, base.settings(), base.threads, seconds)


def rewrite_outputs(out):
    """Regenerate sweep.csv, sweep.md and the plot from ``out/sweep.json``; returns the rows."""
    path = os.path.join(out, "sweep.json")
    try:
        with open(path) as f:
            saved = json.load(f)
        rows = saved["runs"]
        for row in rows:
            row.setdefault("tail_accuracy", float(np.mean(row["accuracy"][-TAIL:])))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the sweep results {path}: {type(e).__name__}: {e}") from e
    _write(out, rows, saved["settings"], saved["threads"], saved["wall_seconds"])
    return rows


def _write(out, rows, settings, threads, seconds):
    with open(os.path.join(out, "sweep.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize(rows)
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(
            {"settings": settings, "wall_seconds": seconds, "threads": threads, "summary": summary, "runs": rows},
            f,
            indent=1,
        )
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write(f"{len(rows)} runs on {settings['dataset']}, {seconds:.0f} s wall with {threads} thread(s).\n\n")
        f.write(markdown_table(summary) + "\n")
    plot_accuracy_vs_memory(
        os.path.join(out, "accuracy_vs_memory.png"),
        summary,
        title=f"{settings['dataset']}: final accuracy vs replay memory",
    )
