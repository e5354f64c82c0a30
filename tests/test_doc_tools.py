"""The scripts that make the docs' tables: tools/main_job_spread.py (seed spread of the main job),
tools/doc_tables.py (sweep tables), benchmarks/report.py --header and benchmarks/machine.py, on hand-made
inputs checked against numpy."""

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import doc_tables  # noqa: E402
import main_job_spread  # noqa: E402

from benchmarks import machine, report  # noqa: E402


def _machine(build, isa="AVX2+FMA, no AVX-512"):
    return {
        "cpu": "Some CPU",
        "isa": isa,
        "logical_cpus": 2,
        "arch": "x86_64",
        "compiler": "cc 12",
        "build": build,
        "commit": "abc1234",
        "python": "3.11",
        "date": "2026-11-30",
    }


def _runs():
    accs = {"-O3 -march=native": [0.545, 0.543, 0.553, 0.617, 0.60], "PULPTRAIN_PORTABLE=1": [0.644, 0.58]}
    return [
        {
            "seed": seed,
            "threads": 1,
            "final_accuracy": acc,
            "wall_seconds": 30.0 + seed,
            "cpu_seconds": 20.0 + seed,
            "machine": _machine(build),
        }
        for build, values in accs.items()
        for seed, acc in enumerate(values)
    ], accs


def test_spread_summary_per_build_matches_numpy():
    runs, accs = _runs()
    summary = main_job_spread.summarize(runs)
    assert [g["build"] for g in summary] == list(accs)
    for g, values in zip(summary, accs.values()):
        assert g["runs"] == len(values) and g["seeds"] == list(range(len(values)))
        assert np.isclose(g["mean"], np.mean(values)) and np.isclose(g["std"], np.std(values, ddof=1))
        assert (g["min"], g["max"]) == (min(values), max(values))
        assert g["median_cpu_seconds"] == np.median([20.0 + s for s in range(len(values))])


def test_spread_markdown_has_one_row_per_build_naming_the_machine():
    runs, accs = _runs()
    lines = main_job_spread.markdown({"runs": runs}).splitlines()
    assert len(lines) == 2 + len(accs)
    native = [c.strip() for c in lines[2].strip("|").split("|")]
    assert native[0] == "Some CPU, AVX2+FMA, no AVX-512, 2" and native[1] == "-O3 -march=native, cc 12"
    assert (
        native[4] == f"{100 * np.mean(accs['-O3 -march=native']):.1f} % +- "
        f"{100 * np.std(accs['-O3 -march=native'], ddof=1):.1f}"
    )
    assert native[7] == "54.5 / 54.3 / 55.3 / 61.7 / 60.0"


def test_paired_sweep_differences_match_numpy():
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(4):
        for bits in (32, 8, 4):
            for replays in (200, 500):
                runs.append(
                    {
                        "seed": seed,
                        "bits": bits,
                        "lr_layer": 19,
                        "replays": replays,
                        "final_accuracy": float(rng.random()),
                        "tail_accuracy": float(rng.random()),
                    }
                )
    lines = doc_tables.paired_table({"runs": runs}).splitlines()
    fp32 = {(r["seed"], r["replays"]): r for r in runs if r["bits"] == 32}
    for line, bits in zip(lines[2:], (8, 4)):
        d = np.array(
            [
                100 * (r["final_accuracy"] - fp32[(r["seed"], r["replays"])]["final_accuracy"])
                for r in runs
                if r["bits"] == bits
            ]
        )
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:2] == [str(bits), "8"]
        assert cells[2] == f"{d.mean():+.2f} +- {d.std(ddof=1) / np.sqrt(d.size):.2f}"


def test_report_header_names_recorded_or_stated_machine(tmp_path, capsys):
    rows = [dict(layer="pw 8->8", step="forward", n=1, threads=1, impl="pulptrain", flops=2e9, median=0.04)]
    bare = tmp_path / "bare.json"
    bare.write_text(
        json.dumps(
            {
                "quick": {
                    "date": "2026-11-25T10:00:00",
                    "machine": "x86_64",
                    "cpus": 2,
                    "torch": "2.13",
                    "timer": "cpu",
                    "rounds": 9,
                },
                "rows": rows,
            }
        )
    )
    assert report.main([str(bare), "--by-n", "--header", "--machine", "AMD VM, AVX2+FMA; build -O3"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("Machine: AMD VM, AVX2+FMA; build -O3; date 2026-11-25; torch 2.13")
    assert report.main([str(bare), "--by-n", "--header"]) == 0
    assert "machine not recorded (x86_64, 2 CPUs)" in capsys.readouterr().out.splitlines()[0]
    recorded = tmp_path / "recorded.json"
    recorded.write_text(
        json.dumps({"quick": {"date": "2026-11-30T10:00:00", "host": _machine("-O3 -march=native")}, "rows": rows})
    )
    assert report.main([str(recorded), "--markdown", "--header"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "Some CPU, AVX2+FMA, no AVX-512, 2 logical CPUs; build -O3 -march=native (cc 12)" in first


def test_isa_level_from_cpu_flags():
    assert machine.isa_level({"avx2", "fma", "avx512f"}, "x86_64") == "AVX-512 (avx512f)"
    assert machine.isa_level({"avx2", "fma"}, "x86_64") == "AVX2+FMA, no AVX-512"
    assert machine.isa_level({"sse2"}, "x86_64") == "x86_64, no AVX2"
    info = machine.machine_info("test build")
    assert info["build"] == "test build" and info["logical_cpus"] == os.cpu_count()


def test_spread_main_writes_after_every_run_and_appends(tmp_path, monkeypatch, capsys):
    import pulptrain.cl.experiment as experiment

    seen = []

    def fake_run_experiment(cfg):  # the real one takes ~40 CPU s; here only the bookkeeping is under test
        out = tmp_path / "spread.json"
        seen.append((cfg.seed, cfg.threads, cfg.quiet, out.exists() and len(json.loads(out.read_text())["runs"])))
        assert cfg.compare == "none"  # the spread is of the main job's 8-bit run alone
        return {"runs": {"8-bit": {"final_accuracy": 0.5 + cfg.seed / 100}}}

    monkeypatch.setattr(experiment, "run_experiment", fake_run_experiment)
    assert main_job_spread.main(["--seeds", "0,1", "--out", str(tmp_path)]) == 0
    assert seen == [(0, 1, True, False), (1, 1, True, 1)]  # the first run was on disk before the second began
    assert main_job_spread.main(["--seeds", "2", "--out", str(tmp_path), "--append", "--build", "other"]) == 0
    data = json.loads((tmp_path / "spread.json").read_text())
    assert [(r["seed"], r["machine"]["build"]) for r in data["runs"]] == [
        (0, machine.DEFAULT_BUILD),
        (1, machine.DEFAULT_BUILD),
        (2, "other"),
    ]
    assert "seed" not in data["settings"] and "replays" in data["settings"]
    assert (tmp_path / "spread.md").read_text() == main_job_spread.markdown(data) + "\n"
