"""A grid of continual-learning experiments (``pulptrain sweep``): latent bits x LR layers x buffer sizes x
seeds, each run one :func:`pulptrain.cl.experiment.run_stream` on the same scenario.

Every quantized run has an FP32 twin with the same seed, stream and pretrained stage, so the sweep's answer
is the paired difference to FP32 (:mod:`pulptrain.cl.stats`). One pretraining serves every run that shares
its settings (:func:`pulptrain.cl.experiment.pretraining_settings`: once per grid with a fixed
``pretrain_seed``, as in the paper-like preset; once per seed otherwise), cached in ``OUT/pretrained``; the
quantized frozen stage and the test set's latents are built once per (pretraining, LR layer, bits) in each
process; every run starts from a fresh copy of the pretrained adaptive stage.

Backends: ``local`` runs the grid in this process; ``ray`` runs each (setting, seed) as a Ray task (a local
Ray with ``workers`` CPUs, or the cluster at ``address``), each pretraining as one task whose result the
runs that need it receive through Ray's object store (no shared file system needed).

Outputs in ``OUT``: ``runs.jsonl`` (append-only: a header line with the settings, then one line per
finished run, flushed to disk as the run ends), and, rewritten atomically after every run, ``sweep.json``
(settings, machine and build, summary, paired statistics, every run with its accuracy curve),
``sweep.csv`` (one row per run) and ``sweep.md``; at the end the plots ``accuracy_vs_memory.png`` and
``bits_curve.png`` (mean paired difference to FP32 with its 95 % band against the bits, buffer memory on a
second axis). A killed sweep continues with ``resume=True`` (``--resume``): the runs of ``runs.jsonl`` are
kept and not repeated, a line cut short by the kill is dropped. :func:`rewrite_outputs` regenerates every
output from ``runs.jsonl`` (``pulptrain sweep --report-only``).
"""

import csv
import datetime
import hashlib
import io
import json
import os
import time
from dataclasses import replace

import numpy as np

from pulptrain.cl.experiment import (
    FP32_BITS,
    load_stream,
    machine_info,
    pretrain,
    pretrained_cache_file,
    run_stream,
)
from pulptrain.cl.learner import atomic_write
from pulptrain.cl.stats import paired_differences, paired_interval

__all__ = [
    "run_sweep",
    "summarize",
    "paired_summary",
    "markdown_table",
    "paired_table",
    "plot_accuracy_vs_memory",
    "plot_bits_curve",
    "rewrite_outputs",
    "read_log",
    "build_info",
    "build_text",
]

TAIL = 10  # batches averaged for the "last batches" accuracy
LOG_FILE = "runs.jsonl"
LOG_FORMAT = "pulptrain.cl.sweep-log/1"
SWEEP_FORMAT = "pulptrain.cl.sweep/2"
VARIED = ("seed", "bits", "lr_layer", "replays")
BACKENDS = ("local", "ray")
# The headline metric of the paired comparison: the mean accuracy over the last TAIL batches, which does
# not hang on which class the last batch happened to hold (the final accuracy is reported next to it).
HEADLINE = "tail_accuracy"
PAPER_8BIT_DELTA = -0.26  # points: the paper's 8-bit replays against FP32 (CORe50, docs/paper.md), in the plot

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
    "cpu_seconds",
)


def _key(row):
    return (row["seed"], row["lr_layer"], row["bits"], row["replays"])


def _fixed_settings(base):
    return {k: v for k, v in base.settings().items() if k not in VARIED}


# ------------------------------------------------------------------------------------------ the log


def read_log(out):
    """``(header, rows)`` of ``out/runs.jsonl``; a last line cut short by a kill is ignored. None, [] when
    there is no log. ValueError for a file that is not a sweep log."""
    path = os.path.join(out, LOG_FILE)
    if not os.path.isfile(path):
        return None, []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is empty, or a line the kill cut short
    try:
        header = json.loads(complete[0])
        rows = [json.loads(line) for line in complete[1:] if line.strip()]
    except (IndexError, ValueError) as e:
        raise ValueError(f"{path}: not a sweep log ({type(e).__name__}: {e})") from e
    if not isinstance(header, dict) or header.get("format") != LOG_FORMAT:
        raise ValueError(
            f"{path}: not a sweep log (format {header.get('format') if isinstance(header, dict) else header!r})"
        )
    return header, rows


class _Log:
    """Appends finished runs to ``runs.jsonl``, each line flushed and synced to disk before it counts."""

    def __init__(self, out, settings, resume):
        self.path = os.path.join(out, LOG_FILE)
        header, rows = read_log(out)
        settings = json.loads(json.dumps(settings))  # as it reads back
        if header is not None and rows and not resume:
            raise ValueError(
                f"--out {out} holds a sweep with {len(rows)} finished runs ({LOG_FILE}): pass --resume to "
                f"continue it (or to add seeds to it), or choose another folder"
            )
        if header is not None and resume:
            if header["settings"] != settings:
                then = header["settings"]
                diff = {
                    k: (then.get(k), settings.get(k))
                    for k in sorted(set(then) | set(settings))
                    if then.get(k) != settings.get(k)
                }
                raise ValueError(f"--resume: {self.path} was run with other settings (saved, now): {diff}")
            self._truncate_partial_line()
            self.rows = rows
        else:
            self._write_header(settings)
            self.rows = []

    def _write_header(self, settings):
        with open(self.path, "w") as f:
            f.write(json.dumps({"format": LOG_FORMAT, "settings": settings}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _truncate_partial_line(self):
        with open(self.path, "rb+") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, row):
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)


# ------------------------------------------------------------------------------------------ one run


def _row(cfg, result):
    return {
        "seed": cfg.seed,
        "bits": cfg.bits,
        "lr_layer": cfg.lr_layer,
        "replays": cfg.replays,
        "final_accuracy": result["final_accuracy"],
        "tail_accuracy": float(np.mean(result["accuracy"][-TAIL:])),
        "buffer_bytes": result["buffer_nbytes"],
        "buffer_mib": result["buffer_mib"],
        "total_memory_mib": result["memory"]["mib"]["total"],
        "latent_shape": "x".join(map(str, result["latent_shape"])),
        "stream_seconds": result["stream_seconds"],
        "pretrain_seconds": result["pretrain_seconds"],
        "accuracy": result["accuracy"],
    }


# The frozen stage and test latents of (pretraining, LR layer, bits, test set), kept by a process across
# the runs it does (in a Ray worker: across its tasks), and the stream of the last seed.
_STAGES = {}
_STREAMS = {}


def _fingerprint(pretrained):
    """SHA-256 of a pretraining's weights and calibration images (what a frozen stage is built from)."""
    digest = hashlib.sha256()
    for name, value in sorted(pretrained.state.items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    digest.update(np.ascontiguousarray(pretrained.calibration_x).tobytes())
    return digest.hexdigest()


def _shared_stage(cfg, pretrained):
    """The dict :func:`run_stream` keeps the frozen stage and test latents of ``cfg``'s stage in: one per
    pretrained weights, LR layer, bits, calibration and test set."""
    test_set = (cfg.dataset, cfg.data_root, cfg.scenario, cfg.run, cfg.test_every)
    key = (_fingerprint(pretrained), cfg.lr_layer, cfg.bits, cfg.calibration, cfg.batch_renorm, test_set)
    if key not in _STAGES and len(_STAGES) >= 16:
        _STAGES.clear()
    return _STAGES.setdefault(key, {})


def _stream(cfg):
    """The stream of ``cfg``'s seed (the same for every bits, LR layer and buffer size), kept for the next
    run of the same seed."""
    key = json.dumps([cfg.data_root, replace(cfg, bits=FP32_BITS, lr_layer=0, replays=1).settings()], sort_keys=True)
    if key not in _STREAMS:
        _STREAMS.clear()
        _STREAMS[key] = load_stream(cfg)
    return _STREAMS[key]


def _run_one(cfg, pretrained):
    """One run of the grid (also the body of a Ray task): its row."""
    import pulptrain

    pulptrain.set_num_threads(cfg.threads)
    cpu = time.process_time()
    result = run_stream(cfg, _stream(cfg), pretrained, shared=_shared_stage(cfg, pretrained), progress=False)
    row = _row(cfg, result)
    row["cpu_seconds"] = time.process_time() - cpu  # of this process: the run's own work, however loaded the machine
    row["machine"] = {k: v for k, v in machine_info().items() if k in ("cpu", "cpus", "platform", "pulptrain")}
    row["build"] = build_info()  # of the process that ran it: nodes of a cluster may differ
    return row


def _pretrain_one(cfg):
    """One pretraining (also the body of a Ray task), cached in ``cfg.pretrain_cache``."""
    import pulptrain

    pulptrain.set_num_threads(cfg.threads)
    return pretrain(cfg, _stream(cfg), progress=False)


# -------------------------------------------------------------------------------------------- backends


def _run_local(configs, on_done, progress):
    from tqdm import tqdm

    pretrained = {}
    with tqdm(total=len(configs), desc="sweep", unit="run", disable=not progress, dynamic_ncols=True) as bar:
        for cfg in configs:  # in grid order: one seed's runs together
            key = pretrained_cache_file(cfg)
            if key not in pretrained:
                pretrained.clear()
                pretrained[key] = pretrain(cfg, _stream(cfg), progress)
            row = _run_one(cfg, pretrained[key])
            on_done(row)
            bar.update(1)
            bar.set_postfix(
                last=f"{row['bits']}b l={row['lr_layer']} R={row['replays']}: {100 * row['final_accuracy']:.1f}%"
            )


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ValueError(
            "--backend ray needs Ray, which is not installed: pip install 'pulptrain[ray]' (or pip install ray)"
        ) from e
    return ray


def _run_ray(configs, on_done, progress, workers, address):
    from tqdm import tqdm

    ray = _import_ray()
    import pulptrain

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        else:
            # Workers import this very package (a source checkout may not be the installed one).
            package_parent = os.path.dirname(os.path.dirname(os.path.abspath(pulptrain.__file__)))
            path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_WAIT_POLICY": "passive"}},
            )
    try:
        cpus = max(1, configs[0].threads)
        pretrain_task = ray.remote(num_cpus=cpus)(_pretrain_one)
        run_task = ray.remote(num_cpus=cpus, max_retries=2)(_run_one)
        pretrained = {}
        pending = {}
        for cfg in configs:
            key = pretrained_cache_file(cfg)
            if key not in pretrained:
                pretrained[key] = pretrain_task.remote(cfg)
            pending[run_task.remote(cfg, pretrained[key])] = cfg
        with tqdm(total=len(configs), desc="sweep (ray)", unit="run", disable=not progress, dynamic_ncols=True) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    del pending[ref]
                    row = ray.get(ref)
                    on_done(row)
                    bar.update(1)
    finally:
        if started_here:
            ray.shutdown()


# ------------------------------------------------------------------------------------------- the sweep


def run_sweep(
    base, bits, lr_layers, replays, seeds, resume=False, backend="local", workers=2, address=None, plots=True
):
    """Run the grid around ``base`` (an ExperimentConfig; its bits / lr_layer / replays / seed are replaced)
    into ``base.out`` (module docstring). ``resume``: keep the runs already in ``base.out/runs.jsonl``
    (same settings otherwise) and run only the others, e.g. after a kill or to add seeds. Returns every row
    (those kept and those run now)."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "ray":
        _import_ray()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    grid = [(s, l, b, r) for s in seeds for l in lr_layers for b in bits for r in replays]
    if not grid:
        raise ValueError("the sweep grid is empty")
    if len(set(grid)) != len(grid):
        raise ValueError("the sweep grid lists a (seed, LR layer, bits, replays) twice")
    for s, l, b, r in grid:  # every setting checked before anything runs
        replace(base, seed=s, lr_layer=l, bits=b, replays=r).resolved()
    out = base.out or "."
    base = replace(base, out=out, pretrain_cache=base.pretrain_cache or os.path.join(out, "pretrained"))
    configs = [replace(base, seed=s, lr_layer=l, bits=b, replays=r).resolved() for s, l, b, r in grid]
    os.makedirs(out, exist_ok=True)
    settings = _fixed_settings(base)
    log = _Log(out, settings, resume)
    done = {_key(r) for r in log.rows}
    todo = [c for c in configs if (c.seed, c.lr_layer, c.bits, c.replays) not in done]
    session_start = time.time()
    session = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = {
        "backend": backend,
        "workers": workers if backend == "ray" else 1,
        "address": address,
        "threads": base.threads,
    }

    def on_done(row):
        row.update(session=session, session_seconds=time.time() - session_start)  # the driver's clock
        log.append(row)
        _write_tables(out, settings, log.rows, info)

    progress = not base.quiet
    if todo:
        if backend == "local":
            import pulptrain

            pulptrain.set_num_threads(base.threads)
            _run_local(todo, on_done, progress)
        else:
            _run_ray(todo, on_done, progress, workers, address)
    _write_tables(out, settings, log.rows, info)
    if plots:
        _write_plots(out, settings, log.rows)
    return log.rows


def rewrite_outputs(out):
    """Regenerate sweep.json, sweep.csv, sweep.md and the plots from ``out/runs.jsonl``; returns the rows."""
    try:
        header, rows = read_log(out)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the sweep results {os.path.join(out, LOG_FILE)}: {e}") from e
    if header is None:
        raise ValueError(f"cannot read the sweep results {os.path.join(out, LOG_FILE)}: no such file")
    previous = {}
    try:
        with open(os.path.join(out, "sweep.json")) as f:
            previous = json.load(f).get("run", {})
    except (OSError, ValueError):
        pass
    _write_tables(out, header["settings"], rows, previous)
    _write_plots(out, header["settings"], rows)
    return rows


# --------------------------------------------------------------------------------------------- tables


def _mean_std(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


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
                "buffer_bytes": members[0]["buffer_bytes"],
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


def paired_summary(rows):
    """One dict per quantized (bits, LR layer, replays) with an FP32 twin: the paired differences to FP32
    (in percentage points) of the final accuracy (``final``) and of the last-TAIL-batches accuracy
    (``tail``, the headline), each :func:`pulptrain.cl.stats.paired_interval`, plus the buffer bytes."""
    buffers = {(r["bits"], r["lr_layer"], r["replays"]): r["buffer_bytes"] for r in rows}
    out = []
    finals = paired_differences(rows, "final_accuracy")
    tails = paired_differences(rows, "tail_accuracy")
    for key in sorted(finals, key=lambda k: (k[1], k[2], -k[0])):
        b, l, r = key
        out.append(
            {
                "bits": b,
                "lr_layer": l,
                "replays": r,
                "buffer_bytes": buffers[key],
                "fp32_buffer_bytes": buffers.get((FP32_BITS, l, r)),
                "seeds": [s for s, _ in finals[key]],
                "final": paired_interval([100 * d for _, d in finals[key]]),
                "tail": paired_interval([100 * d for _, d in tails[key]]),
            }
        )
    return out


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


def _interval_text(stat):
    if stat["ci"] is None:
        return f"{stat['mean']:+.2f} (one seed)"
    low, high = stat["ci"]
    return f"{stat['mean']:+.2f} [{low:+.2f}, {high:+.2f}]"


def paired_table(paired):
    """The paired differences as a markdown table: per setting, the mean difference to FP32 in percentage
    points with its paired-t 95 % interval, for the last-TAIL-batches accuracy (the headline) and the
    final accuracy, the bootstrap interval of the headline, the seeds and the buffer size."""
    lines = [
        f"| bits | LR layer | replays | buffer KiB (FP32) | last {TAIL} batches vs FP32, pp [95 % t CI] "
        f"| bootstrap 95 % CI | final vs FP32, pp [95 % t CI] | pairs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in paired:
        boot = p["tail"]["bootstrap_ci"]
        boot_text = "" if boot is None else f"[{boot[0]:+.2f}, {boot[1]:+.2f}]"
        fp32 = "" if p["fp32_buffer_bytes"] is None else f" ({p['fp32_buffer_bytes'] / 1024:.1f})"
        lines.append(
            f"| {p['bits']} | {p['lr_layer']} | {p['replays']} | {p['buffer_bytes'] / 1024:.1f}{fp32} | "
            f"{_interval_text(p['tail'])} | {boot_text} | {_interval_text(p['final'])} | {p['tail']['n']} |"
        )
    return "\n".join(lines)


def build_info():
    """The build and ISA level the numbers come from: ``pulptrain.cpu_info()`` (features detected, level and
    microkernels chosen) and the parallel backend."""
    import pulptrain

    return {**pulptrain.cpu_info(), "parallel_backend": pulptrain.parallel_backend()}


def build_text(build):
    """A build_info() dict as one line (lists joined by '+', the note left out)."""
    return ", ".join(
        f"{k} {'+'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in build.items() if k != "note"
    )


def _atomic_write(path, text):
    """Write text (UTF-8) to ``path`` atomically (:func:`pulptrain.cl.learner.atomic_write`)."""
    atomic_write(path, lambda f: f.write(text.encode()), suffix=os.path.basename(path))


def _distinct(rows, key):
    """The distinct values of ``row[key]`` over the rows (dicts), in order of first appearance."""
    seen = []
    for r in rows:
        if r.get(key) is not None and r[key] not in seen:
            seen.append(r[key])
    return seen


def _wall_seconds(rows):
    """The wall time of the sweep: per session (one start of the command), the time to its last run."""
    sessions = {}
    for r in rows:
        sessions[r["session"]] = max(sessions.get(r["session"], 0.0), r["session_seconds"])
    return float(sum(sessions.values()))


def _write_tables(out, settings, rows, run_info):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=_key))
    _atomic_write(os.path.join(out, "sweep.csv"), buffer.getvalue())
    summary, paired = summarize(rows), paired_summary(rows)
    seconds = _wall_seconds(rows)
    data = {
        "format": SWEEP_FORMAT,
        "settings": settings,
        "headline": HEADLINE,
        "tail_batches": TAIL,
        "run": run_info,
        "wall_seconds": seconds,
        "run_seconds": float(sum(r["stream_seconds"] for r in rows)),
        "cpu_seconds": float(sum(r.get("cpu_seconds", 0.0) for r in rows)),
        "machines": _distinct(rows, "machine"),
        "builds": _distinct(rows, "build"),
        "summary": summary,
        "paired": paired,
        "runs": sorted(rows, key=_key),
    }
    _atomic_write(os.path.join(out, "sweep.json"), json.dumps(data, indent=1))
    _atomic_write(os.path.join(out, "sweep.md"), report_markdown(data))


def report_markdown(data):
    """sweep.md: what ran, where, how long; the paired differences; the per-setting table."""
    runs = data["runs"]
    seeds = sorted({r["seed"] for r in runs})
    run = data.get("run") or {}
    backend = run.get("backend", "local")
    workers = f" with {run['workers']} worker(s)" if backend == "ray" else ""
    lines = [
        f"{len(runs)} runs on {data['settings']['dataset']} (preset {data['settings'].get('preset', 'quick')}, "
        f"seeds {_ranges(seeds)}), {data['wall_seconds']:.0f} s wall on the {backend} backend{workers}, "
        f"{data['run_seconds']:.0f} s of stream time in all, {data['cpu_seconds'] / max(len(runs), 1):.1f} s of CPU "
        f"per run ({run.get('threads', 1)} thread(s)).",
        "",
        "Machine: "
        + ("; ".join(f"{m.get('cpu')}, {m.get('cpus')} CPUs, {m.get('platform')}" for m in data["machines"]) or "?")
        + "; build: "
        + ("; ".join(build_text(b) for b in data["builds"]) or "?")
        + ".",
        "",
        f"Paired differences to FP32 (same seed, stream and pretrained stage), percentage points; headline: "
        f"the mean accuracy over the last {TAIL} batches.",
        "",
        paired_table(data["paired"]) if data["paired"] else "(no quantized run has its FP32 twin yet)",
        "",
        "Mean +- sample standard deviation over seeds:",
        "",
        markdown_table(data["summary"]),
    ]
    return "\n".join(lines) + "\n"


def _ranges(values):
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    parts, start = [], None
    for k, v in enumerate(values):
        if start is None:
            start = v
        if k + 1 == len(values) or values[k + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------- plots


def _write_plots(out, settings, rows):
    if not rows:
        return
    summary = summarize(rows)
    plot_accuracy_vs_memory(
        os.path.join(out, "accuracy_vs_memory.png"),
        summary,
        title=f"{settings['dataset']}: final accuracy vs replay memory",
    )
    paired = paired_summary(rows)
    if paired:
        plot_bits_curve(
            os.path.join(out, "bits_curve.png"),
            paired,
            title=f"{settings['dataset']} ({settings.get('preset', 'quick')})",
        )


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


def plot_bits_curve(path, paired, title=""):
    """The bits curve: per (LR layer, replays), the mean paired difference to FP32 of the last-TAIL-batches
    accuracy (pp) against the latent bits, with its 95 % paired-t interval as a band, 0 (FP32) as a line,
    the paper's 8-bit difference as a cross, and the buffer memory (KiB) of each bit width on a second
    axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    memory_ax = ax.twinx()
    settings = sorted({(p["lr_layer"], p["replays"]) for p in paired})
    colors = plt.get_cmap("tab10")(np.arange(len(settings)) % 10)
    for color, (l, r) in zip(colors, settings):
        pts = sorted((p for p in paired if (p["lr_layer"], p["replays"]) == (l, r)), key=lambda p: p["bits"])
        bits = [p["bits"] for p in pts]
        mean = [p["tail"]["mean"] for p in pts]
        ax.plot(bits, mean, marker="o", color=color, label=f"l={l}, {r} replays: last {TAIL} batches vs FP32")
        if all(p["tail"]["ci"] is not None for p in pts):
            ax.fill_between(
                bits, [p["tail"]["ci"][0] for p in pts], [p["tail"]["ci"][1] for p in pts], color=color, alpha=0.2
            )
        memory_ax.plot(
            bits, [p["buffer_bytes"] / 1024 for p in pts], color=color, linestyle=":", marker="s", markersize=3
        )
        fp32 = pts[0]["fp32_buffer_bytes"]
        if fp32:
            memory_ax.axhline(fp32 / 1024, color=color, linestyle="-.", linewidth=0.8)
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    ax.plot([8], [PAPER_8BIT_DELTA], "rx", markersize=8, label="paper (CORe50): 8-bit -0.26; 7-bit down to -5")
    ax.set_xlabel("latent bits")
    ax.set_xticks(range(1, 9))
    ax.set_ylabel("accuracy vs FP32 (pp), 95 % band")
    memory_ax.set_ylabel("replay buffer (KiB; dotted, FP32 dash-dot)")
    memory_ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
