"""benchmarks/report.py: the table it prints from a pytest-benchmark JSON (no timing here, only the arithmetic
of ratio, GFLOP/s and % peak on hand-made medians)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import report  # noqa: E402


def _bench(impl, median, threads=1):
    return {
        "extra_info": {"layer": "pw 8->8", "step": "forward", "n": 16, "threads": threads, "impl": impl, "flops": 2e9},
        "stats": {"median": median},
    }


def test_report_ratio_gflops_and_peak(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {
                "benchmarks": [
                    _bench("pulptrain", 0.04),
                    _bench("torch", 0.05),
                    _bench("pulptrain", 0.025, threads=2),
                    {"name": "no extra"},
                ]
            }
        )
    )
    assert report.main([str(path), "--markdown", "--peak", "100"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "pw 8->8" in line]
    one, two = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    # threads, layer, step, N, pulptrain ms, torch ms, ratio, GFLOP/s, % peak, numpy ms
    assert one == ["1", "pw 8->8", "forward", "16", "40.0", "50.0", "0.80", "50.0", "50", "-"]
    assert two[:4] == ["2", "pw 8->8", "forward", "16"] and two[6] == "-"
    assert two[7:9] == ["80.0", "40"]  # 80 GFLOP/s against 2 cores x 100


def test_report_without_pulptrain_rows_fails(tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": []}))
    assert report.main([str(path)]) == 1
    assert "no pulptrain benchmarks" in capsys.readouterr().err


def test_report_by_n_puts_each_batch_in_a_column(tmp_path, capsys):
    path = tmp_path / "run.json"
    big = _bench("pulptrain", 0.3)
    big["extra_info"]["n"] = 128
    path.write_text(json.dumps({"benchmarks": [_bench("pulptrain", 0.04), _bench("torch", 0.05), big]}))
    assert report.main([str(path), "--by-n"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| threads | layer | step | N=16 | N=128 |"
    assert out[2] == "| 1 | pw 8->8 | forward | 40.0 / 50.0 (0.80) | 300.0 |"


def test_report_takes_the_median_of_several_quick_runs(tmp_path, capsys):
    paths = []
    for i, (pt, th) in enumerate([(0.04, 0.05), (0.10, 0.05), (0.03, 0.06)]):
        rows = [
            dict(layer="pw 8->8", step="forward", n=16, threads=1, impl=impl, flops=2e9, median=m)
            for impl, m in (("pulptrain", pt), ("torch", th))
        ]
        paths.append(tmp_path / f"quick{i}.json")
        paths[-1].write_text(json.dumps({"quick": {}, "rows": rows}))
    assert report.main([str(p) for p in paths] + ["--by-n"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "| 1 | pw 8->8 | forward | 40.0 / 50.0 (0.80) |"


def test_report_puts_each_forced_isa_level_on_its_own_line_against_its_peak(tmp_path, capsys):
    rows = [
        dict(layer="pw 8->8", step="forward", n=16, threads=1, impl=impl, flops=2e9, median=m, **extra)
        for impl, m, extra in (
            ("pulptrain@avx2", 0.04, {"isa": "avx2"}),
            ("pulptrain@avx512", 0.02, {"isa": "avx512"}),
            ("torch", 0.05, {}),
        )
    ]
    path = tmp_path / "levels.json"
    path.write_text(json.dumps({"quick": {}, "rows": rows}))
    assert report.main([str(path), "--markdown", "--peak", "avx2=100 avx512=200"]) == 0
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()]
    body = [line for line in lines if line[0] == "1"]
    # one line per level, torch's time on each, % peak against that level's peak; no line without pulptrain
    assert [line[1] for line in body] == ["pw 8->8 @avx2", "pw 8->8 @avx512"]
    assert body[0][4:9] == ["40.0", "50.0", "0.80", "50.0", "50"]
    assert body[1][4:9] == ["20.0", "50.0", "0.40", "100.0", "50"]
