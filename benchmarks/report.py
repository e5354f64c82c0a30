"""Print the layer x step x N table from a pytest-benchmark JSON file.

    python benchmarks/report.py results.json [more.json ...] [--markdown | --by-n] [--peak GFLOPS]
        [--header [--machine TEXT]]

For every (layer, step, N, threads) group: pulptrain and torch median ms, their ratio (pulptrain / torch,
below 1 means pulptrain is faster), pulptrain GFLOP/s and % of the FP32 peak (117 GFLOP/s per core times
the thread count; `--peak G` takes a measured per-core peak instead, and `--peak "generic=G1 avx2=G2 avx512=G3"`,
the output of benchmarks/fma_peak.c, one per ISA level: a row is then against the peak of the level it ran at),
and numpy's median ms when that row was run. A row timed at a forced ISA level (impl "pulptrain@avx2", see
benchmarks/quick.py --impls) is its own line, the level appended to the layer name, with the group's torch
time. Medians, because these machines are shared.
``--header`` starts the output with a line naming the machine, build, torch version, timer and date of the runs
(from the files; ``--machine`` states the machine and build for files that did not record them).
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import machine_line  # noqa: E402

# FMA-loop FP32 peak of one core of the anchor machine (AMD EPYC Zen 4, docs/performance.md).
PEAK_GFLOPS_PER_CORE = 117.0


def rows_from_json(path):
    """One dict per benchmark: layer, step, n, threads, impl, flops, median (seconds). Reads a pytest-benchmark
    JSON file or one written by benchmarks/quick.py --json."""
    with open(path) as f:
        data = json.load(f)
    if "rows" in data:
        return [dict(r) for r in data["rows"]]
    rows = []
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "impl" not in info:
            continue
        rows.append(
            dict(
                layer=info["layer"],
                step=info["step"],
                n=info["n"],
                threads=info["threads"],
                impl=info["impl"],
                flops=info["flops"],
                median=bench["stats"]["median"],
            )
        )
    return rows


def meta_from_json(path):
    """What a file says about its run: benchmarks/quick.py's "quick" dict (with "host" from
    benchmarks.machine when recorded), or pytest-benchmark's datetime and CPU brand; {} when neither."""
    with open(path) as f:
        data = json.load(f)
    if "quick" in data:
        return dict(data["quick"])
    cpu = data.get("machine_info", {}).get("cpu", {}).get("brand_raw")
    return {"date": data.get("datetime"), "host_cpu": cpu} if "benchmarks" in data else {}


def header(metas, machine=None):
    """One line for the top of a generated table: machine and build, torch, timer and rounds, dates, runs."""
    hosts = sorted({machine_line(dict(m["host"], date="")).rstrip("; ") for m in metas if m.get("host")})
    if machine:
        where = machine
    elif hosts:
        where = " / ".join(hosts)
    else:
        cpus = sorted({f"{m.get('machine', '?')}, {m.get('cpus', '?')} CPUs" for m in metas if m})
        where = "machine not recorded (" + ", ".join(cpus or ["nothing"]) + ")"
    dates = sorted({str(m["date"])[:10] for m in metas if m.get("date")})
    torch = sorted({str(m["torch"]) for m in metas if m.get("torch")})
    timers = sorted({f"{m['timer']} timer, {m['rounds']} interleaved rounds" for m in metas if m.get("timer")})
    parts = [f"Machine: {where}", f"date {', '.join(dates) or 'not recorded'}"]
    if torch:
        parts.append(f"torch {', '.join(torch)}")
    parts += timers
    parts.append(f"median over {len(metas)} run{'s' if len(metas) != 1 else ''}")
    return "; ".join(parts) + "."


def median_over_runs(runs):
    """Rows of several runs merged: each (threads, layer, step, n, impl) gets the median of its medians."""
    merged, order = {}, []
    for rows in runs:
        for r in rows:
            key = (r["threads"], r["layer"], r["step"], r["n"], r["impl"])
            if key not in merged:
                order.append(key)
                merged[key] = dict(r, median=[])
            merged[key]["median"].append(r["median"])
    return [dict(merged[k], median=statistics.median(merged[k]["median"])) for k in order]


def _ms(seconds):
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.4f}" if ms < 0.1 else f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def parse_peak(text):
    """--peak: one GFLOP/s number, or 'level=GFLOPS ...' (benchmarks/fma_peak.c) as {level: GFLOP/s}."""
    if "=" not in text:
        return float(text)
    try:
        return {level: float(value) for level, value in (item.split("=") for item in text.replace(",", " ").split())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'level=GFLOPS ...', got {text!r}") from None


def _row_peak(peak_per_core, isa):
    """The per-core peak of a row's ISA level (None when a per-level table lacks it)."""
    return peak_per_core.get(isa) if isinstance(peak_per_core, dict) else peak_per_core


def table(rows, markdown=False, peak_per_core=PEAK_GFLOPS_PER_CORE):
    """The table as text: rows grouped by (threads, layer, step, n) in first-seen layer order; % peak is
    against peak_per_core GFLOP/s (a number, or {ISA level: number} matched to each row's "isa") times the
    thread count."""
    groups, layer_order = {}, []
    for r in rows:
        impl, _, level = r["impl"].partition("@")
        layer = f"{r['layer']} @{level}" if level else r["layer"]
        if layer not in layer_order:
            layer_order.append(layer)
        key = (r["threads"], layer, r["step"], r["n"])
        group = groups.setdefault(key, {"flops": r["flops"], "isa": level or None})
        group[impl] = r["median"]
        if impl == "pulptrain" and not level:
            group["isa"] = r.get("isa")
    for (threads, layer, step, n), g in groups.items():  # a forced level's line shows the group's torch time
        base = layer.rpartition(" @")[0]
        if base and "torch" not in g:
            g["torch"] = groups.get((threads, base, step, n), {}).get("torch")
            groups.get((threads, base, step, n), {})["levels"] = True
    # a group whose pulptrain rows all ran at forced levels has a line for each level and none of its own
    groups = {k: g for k, g in groups.items() if "pulptrain" in g or "numpy" in g or not g.get("levels")}
    step_order = {"forward": 0, "grad_input": 1, "grad_weight": 2, "train step": 3}
    keys = sorted(groups, key=lambda k: (k[0], layer_order.index(k[1]), step_order.get(k[2], 9), k[3]))
    header = ["threads", "layer", "step", "N", "pulptrain ms", "torch ms", "ratio", "GFLOP/s", "% peak", "numpy ms"]
    lines = []
    for threads, layer, step, n in keys:
        g = groups[(threads, layer, step, n)]
        pt, th, npy = g.get("pulptrain"), g.get("torch"), g.get("numpy")
        ratio = f"{pt / th:.2f}" if pt and th else "-"
        gflops = g["flops"] / pt / 1e9 if pt else None
        core_peak = _row_peak(peak_per_core, g["isa"])
        peak = f"{100 * gflops / (core_peak * threads):.0f}" if gflops and core_peak else "-"
        lines.append(
            [
                str(threads),
                layer,
                step,
                str(n),
                _ms(pt),
                _ms(th),
                ratio,
                f"{gflops:.1f}" if gflops else "-",
                peak,
                _ms(npy),
            ]
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


def table_by_n(rows):
    """Markdown, one row per (threads, layer, step) and one column per N: 'pulptrain ms / torch ms (ratio)'."""
    cells, layer_order, ns = {}, [], set()
    for r in rows:
        if r["layer"] not in layer_order:
            layer_order.append(r["layer"])
        ns.add(r["n"])
        cells.setdefault((r["threads"], r["layer"], r["step"]), {}).setdefault(r["n"], {})[r["impl"]] = r["median"]
    ns = sorted(ns)
    step_order = {"forward": 0, "grad_input": 1, "grad_weight": 2, "train step": 3}
    keys = sorted(cells, key=lambda k: (k[0], layer_order.index(k[1]), step_order.get(k[2], 9)))
    out = ["| threads | layer | step | " + " | ".join(f"N={n}" for n in ns) + " |", "|" + "---|" * (3 + len(ns))]
    for key in keys:
        row = []
        for n in ns:
            g = cells[key].get(n, {})
            pt, th = g.get("pulptrain"), g.get("torch")
            if pt is None:
                row.append("-")
            elif th is None:
                row.append(_ms(pt))
            else:
                row.append(f"{_ms(pt)} / {_ms(th)} ({pt / th:.2f})")
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(row) + " |")
    return "\n".join(out)


def add_peak_option(parser):
    parser.add_argument(
        "--peak",
        type=parse_peak,
        default=PEAK_GFLOPS_PER_CORE,
        metavar="GFLOPS",
        help="FP32 peak of one core in GFLOP/s for the %% peak column, or one per ISA level as "
        "'generic=G avx2=G avx512=G' (the output of benchmarks/fma_peak.c, which measures this machine's; "
        f"default: the anchor machine's {PEAK_GFLOPS_PER_CORE:g})",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json",
        nargs="+",
        help="file written by pytest --benchmark-json=FILE or benchmarks/quick.py --json FILE; "
        "with several, each row is the median over the files",
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        "--by-n",
        action="store_true",
        help="compact markdown: one column per N, cells 'pulptrain ms / torch ms (ratio)'",
    )
    add_peak_option(parser)
    parser.add_argument(
        "--header",
        action="store_true",
        help="first print a line naming the machine, build, torch, timer and dates of the runs",
    )
    parser.add_argument(
        "--machine", metavar="TEXT", help="the machine and build for --header (default: what the files recorded)"
    )
    args = parser.parse_args(argv)
    rows = median_over_runs([rows_from_json(path) for path in args.json])
    if not rows:
        print(f"no pulptrain benchmarks in {', '.join(args.json)}", file=sys.stderr)
        return 1
    if args.header:
        print(header([meta_from_json(path) for path in args.json], args.machine))
        print()
    print(table_by_n(rows) if args.by_n else table(rows, markdown=args.markdown, peak_per_core=args.peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
