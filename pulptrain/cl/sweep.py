"""A grid of continual-learning experiments (``pulptrain sweep``): latent bits x LR layers x buffer sizes x
seeds, each run one :func:`pulptrain.cl.experiment.run_stream` on the same scenario.

The frozen stage is pretrained once per seed (pretraining depends on neither the LR layer nor the bits), and
quantized (and the test set's latents computed) once per (seed, LR layer, bits); every run starts from a
fresh copy of the pretrained adaptive stage. Outputs, rewritten after every run so a partial sweep is still
readable: ``sweep.csv`` (one row per run), ``sweep.json`` (the rows with their accuracy curves),
``sweep.md`` (mean +- sample standard deviation of the final accuracy over seeds, and the difference to
FP32 with the same LR layer and buffer size) and ``accuracy_vs_memory.png``.
"""
import csv
import json
import os
import time
from dataclasses import replace

import numpy as np

from pulptrain.cl.experiment import FP32_BITS, load_stream, pretrain, run_stream

__all__ = ["run_sweep", "summarize", "markdown_table", "plot_accuracy_vs_memory"]

CSV_FIELDS = ("seed", "bits", "lr_layer", "replays", "final_accuracy", "buffer_bytes", "buffer_mib",
              "total_memory_mib", "latent_shape", "stream_seconds")


def run_sweep(base, bits, lr_layers, replays, seeds):
    """Run the grid around ``base`` (an ExperimentConfig; its bits / lr_layer / replays / seed are replaced)
    and write the outputs into ``base.out``. Returns the list of row dicts."""
    import pulptrain
    from tqdm import tqdm

    grid = [(s, l, b, r) for s in seeds for l in lr_layers for b in bits for r in replays]
    if not grid:
        raise ValueError("the sweep grid is empty")
    for s, l, b, r in grid:  # every setting checked before anything runs
        replace(base, seed=s, lr_layer=l, bits=b, replays=r).resolved()
    pulptrain.set_num_threads(base.threads)
    progress = not base.quiet
    out = base.out or "."
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    rows = []
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
                        rows.append({"seed": seed, "bits": b, "lr_layer": lr_layer, "replays": r,
                                     "final_accuracy": result["final_accuracy"],
                                     "buffer_bytes": result["buffer_nbytes"], "buffer_mib": result["buffer_mib"],
                                     "total_memory_mib": result["memory"]["mib"]["total"],
                                     "latent_shape": "x".join(map(str, result["latent_shape"])),
                                     "stream_seconds": result["stream_seconds"],
                                     "pretrain_seconds": pretrained.seconds, "accuracy": result["accuracy"]})
                        write_outputs(out, rows, base, time.perf_counter() - start)
                        bar.update(1)
                        bar.set_postfix(last=f"{b}b l={lr_layer} R={r}: {100 * result['final_accuracy']:.1f}%")
    return rows


def summarize(rows):
    """One dict per (bits, LR layer, replays): mean and sample std (0 for one seed) of the final accuracy
    (fractions), number of seeds, buffer MiB, and ``delta_vs_fp32`` (mean minus the FP32 mean of the same LR
    layer and replays, or None)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["bits"], row["lr_layer"], row["replays"]), []).append(row)
    summary = []
    for (b, l, r), members in groups.items():
        acc = np.array([m["final_accuracy"] for m in members], np.float64)
        summary.append({"bits": b, "lr_layer": l, "replays": r, "seeds": len(acc), "mean": float(acc.mean()),
                        "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                        "buffer_mib": members[0]["buffer_mib"], "total_memory_mib": members[0]["total_memory_mib"]})
    fp32 = {(s["lr_layer"], s["replays"]): s["mean"] for s in summary if s["bits"] == FP32_BITS}
    for s in summary:
        ref = fp32.get((s["lr_layer"], s["replays"]))
        s["delta_vs_fp32"] = None if ref is None else s["mean"] - ref
    summary.sort(key=lambda s: (s["lr_layer"], s["replays"], -s["bits"]))
    return summary


def markdown_table(summary):
    """The summary as a markdown table (accuracies in %, differences in percentage points)."""
    lines = ["| bits | LR layer | replays | buffer MiB | final accuracy % (mean +- std) | seeds | vs FP32 (pp) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        delta = "" if s["delta_vs_fp32"] is None or s["bits"] == FP32_BITS else f"{100 * s['delta_vs_fp32']:+.2f}"
        lines.append(f"| {'FP32' if s['bits'] == FP32_BITS else s['bits']} | {s['lr_layer']} | {s['replays']} | "
                     f"{s['buffer_mib']:.4f} | {100 * s['mean']:.2f} +- {100 * s['std']:.2f} | {s['seeds']} | {delta} |")
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
            ax.errorbar([s["buffer_mib"] for s in pts], [100 * s["mean"] for s in pts],
                        yerr=[100 * s["std"] for s in pts], color=color, marker=markers[k % len(markers)],
                        capsize=3, linestyle="-" if k == 0 else "--",
                        label=f"{'FP32' if b == FP32_BITS else f'{b}-bit'}, l={l}")
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
    with open(os.path.join(out, "sweep.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize(rows)
    settings = base.settings()
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump({"settings": settings, "wall_seconds": seconds, "threads": base.threads, "summary": summary,
                   "runs": rows}, f, indent=1)
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write(f"{len(rows)} runs on {settings['dataset']}, {seconds:.0f} s wall with {base.threads} thread(s).\n\n")
        f.write(markdown_table(summary) + "\n")
    plot_accuracy_vs_memory(os.path.join(out, "accuracy_vs_memory.png"), summary,
                            title=f"{settings['dataset']}: final accuracy vs replay memory")
