"""Run-time ISA dispatch (csrc/core/isa.h): every level this CPU has gives results that match the float64
references and are bitwise identical for any thread count; the INT8 integers are the same at every level;
PULPTRAIN_ISA forces a level at import."""

import os
import subprocess
import sys

import numpy as np
import pytest

import pulptrain
from pulptrain import _C as C
from pulptrain import kernels as K
from pulptrain import ops
from pulptrain import quant as Q
from pulptrain import reference as ref

LEVELS = C.isa_levels()
ALL_LEVELS = ["generic", "avx2", "avx512"]
THREAD_COUNTS = [1, 2, 3, 8]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def at_level():
    """Sets the default ISA level for the test, with the automatic matmul and INT8 choices (all three restored
    to automatic after it: an earlier test may have left a microkernel forced)."""
    K.set_matmul_variant(None)
    Q.set_int8_microkernel("auto")
    yield C.set_isa
    C.set_isa("auto")
    K.set_matmul_variant(None)
    Q.set_int8_microkernel("auto")


def test_cpu_info_describes_the_dispatch():
    info = pulptrain.cpu_info()
    assert info["available"] == LEVELS == ALL_LEVELS[: len(LEVELS)]
    assert info["detected"] == LEVELS[-1]
    assert info["isa"] == C.get_isa() and info["isa"] in LEVELS
    assert info["chosen_by"] in ("cpuid", "PULPTRAIN_ISA", "set_isa")
    assert info["fp32"] in C.matmul_variants() and info["int8"] in C.int8_microkernels()
    assert set(info["features"]) <= {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avxvnni"}


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_picks_its_own_microkernels(level, at_level):
    at_level(level)
    info = pulptrain.cpu_info()
    assert info["isa"] == level and info["chosen_by"] == "set_isa"
    fp32, int8 = info["fp32"], info["int8"]
    if level == "generic":
        assert not fp32.startswith(("avx2", "avx512")) and int8 == "portable-4x2"
    else:
        assert fp32.startswith(level + "-")
        features = info["features"]
        if level == "avx512" and "avx512vnni" in features:
            assert int8 == "avx512vnni-8x32"
        else:  # the VEX form of vpdpbusd where the CPU has it (Alder Lake, Sapphire Rapids), else vpmaddwd
            assert int8 == ("avxvnni-6x16" if "avxvnni" in features else "avx2-4x16")


def test_set_isa_rejects_bad_names(at_level):
    with pytest.raises(ValueError, match="name must be 'auto' or one of"):
        at_level("sse9")
    with pytest.raises(TypeError, match="name must be a str"):
        at_level(2)
    for missing in ALL_LEVELS[len(LEVELS) :]:
        with pytest.raises(ValueError, match="this CPU supports only"):
            at_level(missing)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("op", ops.OPS, ids=lambda op: op.name)
def test_every_op_at_every_level_matches_the_reference_for_any_thread_count(op, level, at_level):
    at_level(level)
    rng = np.random.default_rng(17)
    for size in op.sizes:
        arrays, params = op.example(rng, size)
        results = {}
        for t in THREAD_COUNTS:
            pulptrain.set_num_threads(t)
            results[t] = op.run(arrays, params)
        for t in THREAD_COUNTS[1:]:
            for name, value in results[1].items():
                assert np.array_equal(np.asarray(value), np.asarray(results[t][name])), (
                    f"{op.name} {name} at level {level} differs between 1 and {t} threads"
                )
        if op.reference is not None:
            for name, expected in op.reference(arrays, params).items():
                ref.assert_close(results[1][name], expected)


INT8_OPS = [op for op in ops.OPS if op.tier == "int8_gemm"]


@pytest.mark.parametrize("op", INT8_OPS, ids=lambda op: op.name)
def test_int8_integers_are_the_same_at_every_level(op, at_level):
    assert INT8_OPS
    per_level = {}
    for level in LEVELS:
        at_level(level)
        rng = np.random.default_rng(23)
        per_level[level] = [op.run(*op.example(rng, size)) for size in op.sizes]
    for level in LEVELS[1:]:
        for first, other in zip(per_level[LEVELS[0]], per_level[level]):
            for name, value in first.items():
                assert np.array_equal(value, other[name]), f"{op.name} {name}: {LEVELS[0]} and {level} differ"


def _import_with(isa):
    code = "import json, pulptrain; print(json.dumps(pulptrain.cpu_info()))"
    env = dict(os.environ, PULPTRAIN_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("level", LEVELS)
def test_pulptrain_isa_forces_a_level_at_import(level):
    import json

    run = _import_with(level)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["isa"] == level and info["chosen_by"] == "PULPTRAIN_ISA"


def test_pulptrain_isa_above_the_cpu_warns_and_keeps_the_highest():
    if len(LEVELS) == len(ALL_LEVELS):
        pytest.skip("this CPU has every level")
    import json

    run = _import_with(ALL_LEVELS[-1])
    assert run.returncode == 0, run.stderr
    assert "this CPU supports only" in run.stderr
    assert json.loads(run.stdout)["isa"] == LEVELS[-1]


def test_pulptrain_isa_unknown_name_is_an_error():
    run = _import_with("avx1024")
    assert run.returncode != 0 and "PULPTRAIN_ISA must be one of" in run.stderr
