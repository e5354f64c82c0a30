"""tools/riscv/count_check.py: which instruction-count changes fail CI (on hand-made count rows)."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("count_check", os.path.join(ROOT, "tools", "riscv", "count_check.py"))
count_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(count_check)


def row(layer, instret, critical):
    return dict(
        layer=layer,
        op="matmul",
        step="forward",
        variant="auto",
        shape="8x8x8",
        bits=0,
        instret=instret,
        critical=critical,
    )


BASE = [row("a", 1000, 200), row("b", 5000, 700)]


@pytest.mark.parametrize(
    "new, exit_code, text",
    [
        ([row("a", 1000, 200), row("b", 5000, 700)], 0, "2 of 2 rows within 1 %"),
        ([row("a", 1010, 202), row("b", 5000, 700)], 0, "2 of 2 rows within 1 %"),  # exactly 1 %: allowed
        ([row("a", 1011, 200), row("b", 5000, 700)], 1, "REGRESSION a / matmul"),  # one core
        ([row("a", 1000, 203), row("b", 5000, 700)], 1, "critical 200 -> 203"),  # the 8-core critical path
        ([row("a", 900, 150), row("b", 5000, 700)], 0, "improved a / matmul"),  # to be recorded, not a failure
        ([row("b", 5000, 700)], 1, "MISSING a / matmul"),  # a row that stopped being measured
    ],
)
def test_count_check_fails_on_growth_and_missing_rows(tmp_path, capsys, new, exit_code, text):
    (tmp_path / "new.json").write_text(json.dumps({"rows": new}))
    (tmp_path / "base.json").write_text(json.dumps({"rows": BASE}))
    assert count_check.main([str(tmp_path / "new.json"), str(tmp_path / "base.json")]) == exit_code
    assert text in capsys.readouterr().out


def test_committed_baseline_has_every_checked_field():
    with open(os.path.join(ROOT, "tools", "riscv", "results", "counts.json")) as f:
        rows = json.load(f)["rows"]
    assert rows and all(isinstance(r[field], int) and r[field] > 0 for r in rows for field in count_check.CHECKED)
    assert len({count_check.row_key(r) for r in rows}) == len(rows)  # every row has its own key
