"""The op table (pulptrain/ops.py): every row is complete, its example runs and matches its float64 reference,
and the RISC-V driver's table (tools/riscv/kernel_step.c, rv_ops) names exactly the same ops."""

import os
import re

import numpy as np
import pytest

from pulptrain import ops
from pulptrain import reference as ref

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _rv_ops():
    """(name, kind, operand count) of every row of rv_ops in kernel_step.c, in order."""
    with open(os.path.join(REPO, "tools", "riscv", "kernel_step.c")) as f:
        text = f.read()
    table = text[text.index("const rv_op_entry rv_ops[] = {") :]
    table = table[: table.index("};")]
    return [
        (name, kind, int(n)) for name, kind, n in re.findall(r'\{"([^"]+)", OP_\w+, STEP_\w+, (RV_\w+), (\d+)\}', table)
    ]


def test_kernel_step_names_equal_the_op_table():
    assert [name for name, _, _ in _rv_ops()] == [op.name for op in ops.OPS]


def test_kernel_step_operand_counts_follow_the_c_signatures():
    for name, kind, num_args in _rv_ops():
        if kind == "RV_ARGS":
            assert num_args == len(ops.get(name).c_args), name


def test_every_row_points_at_existing_files():
    for op in ops.OPS:
        with open(os.path.join(REPO, "csrc", op.c_file)) as f:
            assert re.search(rf"\b{op.c_entry}\(", f.read()), f"{op.name}: {op.c_entry} not in csrc/{op.c_file}"
        with open(os.path.join(REPO, "pulptrain", op.binding)) as f:
            assert f"def {op.function.__name__}(" in f.read(), f"{op.name}: no binding in {op.binding}"
        with open(os.path.join(REPO, "tests", op.test)) as f:
            assert op.function.__name__ in f.read(), f"{op.name}: {op.test} does not call it"


@pytest.mark.parametrize("op", ops.OPS, ids=lambda op: op.name)
def test_example_runs_and_matches_the_reference(op):
    rng = np.random.default_rng(5)
    assert op.sizes, op.name
    for size in op.sizes:
        arrays, params = op.example(rng, size)
        results = op.run(arrays, params)
        for name, kind in op.c_args:
            assert name in (arrays if kind == "in" else results), f"{op.name}: no operand {name}"
        if op.reference is not None:
            for name, expected in op.reference(arrays, params).items():
                ref.assert_close(results[name], expected)


def test_get_names_the_known_ops_on_a_typo():
    with pytest.raises(KeyError, match="conv2d.forward"):
        ops.get("conv2d.fwd")
