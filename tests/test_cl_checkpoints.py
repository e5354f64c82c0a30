"""Checkpoints of `pulptrain cl`: every value of a crafted learner file is checked against the settings, stale
temporary files are removed, and a run killed (SIGKILL) at several points, or interrupted (SIGINT), ends with
one line and resumes to exactly the result of an uninterrupted run.

The data is a synthetic Fashion-MNIST-shaped set (4 classes) written as IDX files, so that subprocesses can
read it through --data-root."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_cl_cli import TINY, expect_usage_error, read_results

from pulptrain import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEARNER = "learner-8-bit.npz"


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Fashion-MNIST-sized IDX files of 4 classes: class c is bright in its own quadrant, plus noise."""
    root = tmp_path_factory.mktemp("fake_fashion_mnist")
    rng = np.random.default_rng(0)
    for split, n in (("train", 60000), ("t10k", 10000)):
        y = (np.arange(n) % 4).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for c in range(4):
            x[y == c, 14 * (c // 2) : 14 * (c // 2) + 14, 14 * (c % 2) : 14 * (c % 2) + 14] += 150
        _write_idx(root / f"{split}-images-idx3-ubyte", x)
        _write_idx(root / f"{split}-labels-idx1-ubyte", y)
    return root


def cl_args(data_root, out, *extra):
    return ["cl", *TINY, "--data-root", str(data_root), "--test-every", "99", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory):
    """A finished 8-bit run (no FP32 comparison) with its checkpoint folder."""
    base = tmp_path_factory.mktemp("finished")
    assert cli.main(cl_args(data_root, base / "out", "--compare", "none", "--checkpoint", str(base / "ck"))) == 0
    return base


def _craft(path, change):
    """Rewrite the learner file at ``path`` after ``change(state, learner_meta, buffer_meta, experiment)``."""
    with np.load(path) as archive:
        state = {k: archive[k] for k in archive.files}
    keys = ("meta", "buffer/meta", "experiment")
    before = {k: state[k] for k in keys}
    metas = [json.loads(str(state[k])) for k in keys]
    change(state, *metas)
    for key, meta in zip(keys, metas):
        if state[key] is before[key]:  # not replaced by the change itself
            state[key] = np.array(json.dumps(meta))
    np.savez(path, **state)


def _set(mapping, key, value):
    mapping[key] = value


def _first(state, prefix, kind="f"):
    return next(k for k in sorted(state) if k.startswith(prefix) and state[k].dtype.kind == kind and state[k].size)


def _poison(state, key):
    state[key] = state[key].copy()
    state[key].flat[0] = np.nan


def _all_batches(lm, bm, ex, n):
    lm["batches_seen"] = bm["batches_seen"] = n
    for key in ("accuracy", "train_loss", "batch_seconds"):
        ex["history"][key] = (ex["history"][key] * n)[:n]


# (what is wrong, change(state, learner meta, buffer meta, experiment), text of the one-line error)
CRAFTED = [
    (
        "buffer label 999",
        lambda s, lm, bm, ex: s["buffer/labels"].__setitem__(0, 999),
        "buffer labels must be in [0, 4), got up to 999",
    ),
    (
        "negative buffer label",
        lambda s, lm, bm, ex: s["buffer/labels"].__setitem__(0, -1),
        "replay-buffer labels must be in [0, 32767]",
    ),
    (
        "buffer labels of another dtype",
        lambda s, lm, bm, ex: _set(s, "buffer/labels", s["buffer/labels"].astype(np.int32)),
        "replay-buffer labels must be int16",
    ),
    (
        "batches_seen 100 with a matching history",
        lambda s, lm, bm, ex: _all_batches(lm, bm, ex, 100),
        "batches_seen 100 outside 1..4",
    ),
    (
        "batches_seen differs from the buffer's",
        lambda s, lm, bm, ex: _set(lm, "batches_seen", 3),
        "batches_seen 3 differs from the buffer's 4",
    ),
    ("batches_seen not an int", lambda s, lm, bm, ex: _set(lm, "batches_seen", "4"), "batches_seen '4' differs"),
    (
        "optimizer phase of batch 0",
        lambda s, lm, bm, ex: _set(lm, "optimizer_phase", 0),
        "optimizer_phase 0 after 4 batches, expected 1",
    ),
    (
        "buffer size above its capacity",
        lambda s, lm, bm, ex: _set(bm, "size", 10**6),
        "replay-buffer counters do not fit together",
    ),
    (
        "negative buffer counter",
        lambda s, lm, bm, ex: _set(bm, "samples_seen", -1),
        "replay-buffer samples_seen must be an int >= 0",
    ),
    (
        "class counts that do not add up",
        lambda s, lm, bm, ex: bm["class_seen"].__setitem__("0", 1),
        "adding up to samples_seen",
    ),
    (
        "class count of a negative label",
        lambda s, lm, bm, ex: _set(bm, "class_seen", {"-3": bm["samples_seen"]}),
        "replay-buffer class_seen must hold counts >= 1 of labels in [0, 32767]",
    ),
    ("NaN scale", lambda s, lm, bm, ex: _set(bm, "scale", float("nan")), "replay-buffer scale must be a finite real"),
    ("negative scale", lambda s, lm, bm, ex: _set(bm, "scale", -1.0), "replay-buffer scale must be a finite real"),
    ("missing scale", lambda s, lm, bm, ex: _set(bm, "scale", None), "replay-buffer scale must be a finite real"),
    (
        "buffer metadata not a dict",
        lambda s, lm, bm, ex: _set(s, "buffer/meta", np.array("[1, 2]")),
        "replay-buffer metadata must be a dict",
    ),
    ("negative CWR* count", lambda s, lm, bm, ex: _set(s, "cwr/past", -s["cwr/past"]), "cwr/past must count >= 0"),
    (
        "CWR* rows marked without counts",
        lambda s, lm, bm, ex: _set(s, "cwr/cw_set", ~s["cwr/cw_set"]),
        "cwr/cw_set mark the classes counted",
    ),
    (
        "CWR* counts of another dtype",
        lambda s, lm, bm, ex: _set(s, "cwr/past", s["cwr/past"].astype(np.float64)),
        "cwr/past must be int64",
    ),
    ("NaN in the CWR* rows", lambda s, lm, bm, ex: _poison(s, "cwr/cw"), "cwr/cw holds non-finite values"),
    (
        "NaN in the adaptive weights",
        lambda s, lm, bm, ex: _poison(s, _first(s, "adaptive/")),
        "holds non-finite values",
    ),
    ("NaN in the optimizer state", lambda s, lm, bm, ex: _poison(s, _first(s, "optim/")), "holds non-finite values"),
    (
        "accuracy above 1",
        lambda s, lm, bm, ex: ex["history"]["accuracy"].__setitem__(0, 1.5),
        "accuracy outside [0, 1]",
    ),
    (
        "history shorter than the batches",
        lambda s, lm, bm, ex: ex["history"]["train_loss"].pop(),
        "3 train_loss values for 4 batches",
    ),
    (
        "NaN accuracy",
        lambda s, lm, bm, ex: ex["history"]["accuracy"].__setitem__(0, float("nan")),
        "accuracy holds a value that is not a finite number",
    ),
    (
        "negative elapsed time",
        lambda s, lm, bm, ex: ex["history"].__setitem__("elapsed", -1.0),
        "negative or missing times",
    ),
    ("learner metadata not a dict", lambda s, lm, bm, ex: _set(s, "meta", np.array("[1]")), "format 'list'"),
    (
        "unusable generator state",
        lambda s, lm, bm, ex: _set(lm, "rng", {"bit_generator": "PCG64", "state": 1}),
        "does not fit this learner",
    ),
]


@pytest.mark.parametrize("what, change, text", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_checkpoint_is_refused(what, change, text, finished, data_root, tmp_path, capsys):
    ck = tmp_path / "ck"
    shutil.copytree(finished / "ck", ck)
    _craft(ck / LEARNER, change)
    line = expect_usage_error(
        cl_args(data_root, tmp_path / "out", "--compare", "none", "--checkpoint", str(ck), "--resume"),
        "",
        capsys,
        kind="checkpoint error",
    )
    assert text in line, line
    assert not (tmp_path / "out" / "results.json").exists()


def test_untouched_copy_of_the_checkpoint_resumes(finished, data_root, tmp_path):
    """The crafting above starts from a checkpoint that loads: its copy resumes (nothing left to learn) to
    the same accuracies."""
    ck = tmp_path / "ck"
    shutil.copytree(finished / "ck", ck)
    _craft(ck / LEARNER, lambda *a: None)
    assert cli.main(cl_args(data_root, tmp_path / "out", "--compare", "none", "--checkpoint", str(ck), "--resume")) == 0
    resumed, original = read_results(tmp_path / "out")["runs"]["8-bit"], read_results(finished / "out")["runs"]["8-bit"]
    assert resumed["accuracy"] == original["accuracy"] and resumed["train_loss"] == original["train_loss"]


def test_pretrained_weights_with_nan_are_refused(finished, data_root, tmp_path, capsys):
    ck = tmp_path / "ck"
    shutil.copytree(finished / "ck", ck)
    with np.load(ck / "pretrained.npz") as archive:
        state = {k: archive[k] for k in archive.files}
    _poison(state, _first(state, ""))
    np.savez(ck / "pretrained.npz", **state)
    line = expect_usage_error(
        cl_args(data_root, tmp_path / "out", "--compare", "none", "--checkpoint", str(ck), "--resume"),
        "",
        capsys,
        kind="checkpoint error",
    )
    assert "pretrained weights hold non-finite values" in line


# ------------------------------------------------------------------------------------- processes


def _start(argv):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "pulptrain", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(process, path, timeout=300):
    """Poll until ``path`` exists (True) or the process has ended (False)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.005)
    return True


def test_ctrl_c_prints_one_line_and_exits_130(data_root, tmp_path):
    ck = tmp_path / "ck"
    process = _start(
        cl_args(data_root, tmp_path / "out", "--num-batches", "400", "--compare", "none", "--checkpoint", str(ck))
    )
    assert _wait_for(process, ck / LEARNER), process.communicate()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err == f"pulptrain cl: interrupted (continue with --checkpoint {ck} --resume)\n"
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    """The default comparison (8-bit and FP32 runs) without interruption: its results.json."""
    base = tmp_path_factory.mktemp("uninterrupted")
    assert cli.main(cl_args(data_root, base / "out", "--checkpoint", str(base / "ck"))) == 0
    return read_results(base / "out")


@pytest.mark.parametrize("kill_after", ["pretrained.npz", "learner-8-bit.npz", "learner-fp32.npz"])
def test_sigkill_then_resume_gives_the_uninterrupted_result(kill_after, uninterrupted, data_root, tmp_path):
    """SIGKILL as soon as a checkpoint file appears (so at a point in the next step, which may be in the
    middle of an atomic write), leave a stale temporary file as such a kill can, then --resume."""
    ck, out = tmp_path / "ck", tmp_path / "out"
    process = _start(cl_args(data_root, out, "--checkpoint", str(ck)))
    killed = _wait_for(process, ck / kill_after)
    process.kill()
    process.communicate()
    assert killed, "the run ended before the kill point"
    assert not (out / "results.json").exists()
    (ck / ".tmp-stalexyz.npz").write_bytes(b"half a checkpoint")
    assert cli.main(cl_args(data_root, out, "--checkpoint", str(ck), "--resume")) == 0
    assert not [name for name in os.listdir(ck) if name.startswith(".tmp-")]
    resumed = read_results(out)
    assert resumed["resumed"] and list(resumed["runs"]) == ["8-bit", "fp32"]
    for label, run in uninterrupted["runs"].items():
        assert resumed["runs"][label]["accuracy"] == run["accuracy"]
        assert resumed["runs"][label]["train_loss"] == run["train_loss"]
        assert resumed["runs"][label]["final_accuracy"] == run["final_accuracy"]
