"""`pulptrain export`: a width-0.25 Fashion-MNIST learner as a C bundle, learning three batches of real images
in Python, in the host-built application and in the rv32 and Cortex-M4F applications under QEMU, compared.

* host C (built with the Python extension's flags, `make run-host`) vs Python: the final adaptive weights,
  SGD momentum, BatchNorm statistics, replay buffer (codes, labels, counters), CWR* state, the random
  generators' states after every batch and the test predictions are bitwise equal: both run the same C
  (the INT8 stage sequencer and the csrc/cl learner step) with the same kernel variants and contraction.
* rv32 (`make run-rv32`, rv32imfc, -ffp-contract=fast, the generic kernels) and Cortex-M4F (`make run-m4f`)
  vs Python: equal buffer contents, labels and sampling decisions (every random draw comes from the same
  PCG32 streams, so equal generator states after each batch mean the same draws), weights within a tolerance
  (test docstring), test predictions equal on at least 99 % of 1,000 test images, and every phase counted.
* PORTABLE=1 (no x86 kernels, no contraction, deterministic expf / logf, on both sides): host and rv32 are
  bitwise identical.

The cross toolchain and QEMU are optional: those tests skip without them.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_cl_cli import TINY, fake_fashion_mnist  # noqa: F401  (the cl command tests' tiny settings and data)

from pulptrain import models
from pulptrain.cl.buffer import LatentReplayBuffer
from pulptrain.cl.learner import LatentReplayLearner
from pulptrain.data import fashion_mnist
from pulptrain.examples.train_fashion_mnist import IMAGE, to_canvas
from pulptrain.export import (
    export_bundle,
    fnv1a64,
    learner_rng_states,
    learner_state_arrays,
    parse_log,
    read_state,
)
from pulptrain.frozen_int8 import quantize_frozen

LR_LAYER = 19
BATCHES = (48, 32, 32)  # new images per batch: the initial one, then two with replays
TEST_IMAGES = 1000
TOL_UPDATE = 2.0**-8  # rv32 vs Python: the share of each array's update its difference may reach (see the test)
HAVE_RV32 = shutil.which("riscv64-unknown-elf-gcc") and shutil.which("qemu-system-riscv32")
HAVE_M4F = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
HAVE_CC = shutil.which("cc") and shutil.which("make")


def _canvas(x, size):
    centre = (size - IMAGE) // 2
    return to_canvas(x, size, np.full((len(x), 2), centre))


def _learner(fashion_mnist_run):
    _, weights, args = fashion_mnist_run
    model = models.mobilenet_v1(
        args.width, num_classes=10, input_size=args.input_size, in_channels=1, first_stride=args.first_stride
    )
    model.load(str(weights))
    model.eval()
    x_train, y_train, x_test, y_test = fashion_mnist()
    frozen, adaptive = models.split(model, LR_LAYER)
    qf = quantize_frozen(frozen, _canvas(x_train[:256], args.input_size), lr_bits=8)
    shape = qf.layer_table((1, args.input_size, args.input_size)).output_shape
    buffer = LatentReplayBuffer(40, shape, bits=8, seed=3)
    learner = LatentReplayLearner(
        qf,
        adaptive,
        buffer,
        num_classes=10,
        lr=0.01,
        first_lr=0.01,
        epochs=2,
        first_epochs=1,
        minibatch=24,
        cwr=True,
        seed=5,
    )
    rng = np.random.default_rng(0)
    picks = rng.choice(20000, sum(BATCHES), replace=False) + 1000
    stream, start = [], 0
    for n in BATCHES:
        rows = np.sort(picks[start : start + n])
        stream.append((_canvas(x_train[rows], args.input_size), y_train[rows].astype(np.int64)))
        start += n
    test = (_canvas(x_test[:TEST_IMAGES], args.input_size), y_test[:TEST_IMAGES].astype(np.int64))
    return learner, stream, test


@pytest.fixture(scope="module")
def exported(fashion_mnist_run, tmp_path_factory):
    """The bundle (exported before any batch), and the Python learner's results after the three batches."""
    learner, stream, test = _learner(fashion_mnist_run)
    bundle = tmp_path_factory.mktemp("bundle")
    manifest = export_bundle(learner, bundle, stream=stream, test=test, cores=8)
    initial = {k: np.array(v) for k, v in learner_state_arrays(learner).items()}
    rng_states = []
    for x, y in stream:
        learner.fit_batch(x, y)
        rng_states.append(learner_rng_states(learner))
    # the application classifies one latent at a time with the C step's predict: the same here
    latents = learner.latents(test[0])
    predictions = np.array([learner._core.predict(latents[i : i + 1])[0] for i in range(len(latents))])
    return dict(
        bundle=bundle,
        manifest=manifest,
        learner=learner,
        initial=initial,
        final={k: np.array(v) for k, v in learner_state_arrays(learner).items()},
        rng_states=rng_states,
        predictions=predictions,
        nn_predictions=learner.predict(test[0]),
    )


def _run(bundle, target, out, *extra):
    """Build and run the bundle's `target` with OUT=out; (the parsed log, the final state arrays)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-j2", "-C", str(bundle), f"run-{target}", f"OUT={out}", *extra],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0 and "DONE status=ok" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    log = parse_log((out / f"log_{target}.txt").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    return log, read_state(out / f"state_{target}.bin", manifest)


def _check_log_against_python(log, exported):
    """Same batches, the same random draws (the generators' states after every batch), and the arena the
    bundle reserves is the one its build needs for a full team."""
    batches = log["BATCH"]
    assert [b["images"] for b in batches] == list(BATCHES)
    assert [(b["learner_rng"], b["buffer_rng"]) for b in batches] == [tuple(r) for r in exported["rng_states"]]
    assert log["BUNDLE"][0]["arena_needed_full_team"] == log["BUNDLE"][0]["arena_bytes"]


def test_export_writes_a_self_contained_bundle(exported):
    bundle = exported["bundle"]
    for name in ("main.c", "bundle.c", "bundle.h", "stream.c", "Makefile", "manifest.json"):
        assert (bundle / name).is_file(), name
    for family in ("core", "gemm", "fp32", "int8", "quant", "cl"):
        assert list((bundle / "csrc" / family).glob("*.c")), family
    for path in bundle.rglob("*"):
        if path.suffix in (".c", ".h"):
            text = path.read_text()
            assert '#include "../' not in text and "#include </" not in text, path  # nothing outside the folder
    manifest = exported["manifest"]
    assert manifest["batch_sizes"] == list(BATCHES) and manifest["test_images"] == TEST_IMAGES
    assert [e["name"] for e in manifest["state"]] == list(exported["final"])


def test_export_arena_equals_the_memory_report(exported, fashion_mnist_run):
    """The arena the bundle reserves (for the host build) is the one `pulptrain memory` reports for the same
    model, buffer, mini-batch, batch sizes (the stream's smallest and largest) and team."""
    _, _, args = fashion_mnist_run
    learner = exported["learner"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pulptrain",
            "memory",
            "--json",
            "--width",
            str(args.width),
            "--input-size",
            str(args.input_size),
            "--lr-layer",
            str(LR_LAYER),
            "--replays",
            str(learner.buffer.capacity),
            "--batch",
            str(learner.minibatch),
            "--num-classes",
            "10",
            "--in-channels",
            "1",
            "--first-stride",
            str(args.first_stride),
            "--max-new",
            str(max(BATCHES)),
            "--min-new",
            str(min(BATCHES)),
            "--threads",
            "8",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert exported["manifest"]["arena_bytes"] == json.loads(done.stdout)["learner_arena"]


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler / make")
def test_host_application_equals_the_python_learner_bitwise(exported, tmp_path):
    log, state = _run(exported["bundle"], "host", tmp_path)
    _check_log_against_python(log, exported)
    for name, value in exported["final"].items():
        assert state[name].tobytes() == value.tobytes(), name
    for entry in log["STATE"]:
        assert int(entry["fnv"], 16) == fnv1a64(state[entry["name"]]), entry["name"]
    np.testing.assert_array_equal(log["PRED"][0]["classes"], exported["predictions"])
    # and the pulptrain.nn forward of the Python learner's predict (whole batches) agrees on the classes
    assert np.mean(exported["predictions"] == exported["nn_predictions"]) >= 0.99


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("rv32", marks=pytest.mark.skipif(not HAVE_RV32, reason="no riscv64-unknown-elf-gcc / QEMU")),
        pytest.param("m4f", marks=pytest.mark.skipif(not HAVE_M4F, reason="no arm-none-eabi-gcc / qemu-system-arm")),
    ],
)
def test_embedded_application_matches_the_python_learner(exported, tmp_path, target):
    """On rv32imfc and on a Cortex-M4F: the buffer (codes of the integer INT8 stage), its labels and counters,
    and every sampling decision are exactly equal. The FP32 training runs other kernels there (the scalar 4x4
    matmul tile instead of the host's 6x16 vector one, fused multiply-adds in their own order, picolibc's
    expf / logf), so each float32
    result may differ in its last bits. Derivation of the tolerance: a reduction of K terms in another order
    differs by at most about K * 2**-24 of the sum of its absolute terms; the longest reductions here are the
    weight gradients over the mini-batch (K = 24 rows x 2x2 pixels = 96), so a gradient differs by about
    6e-6 of its size, and that difference reaches a weight only through lr x gradient, i.e. about 6e-6 of the
    update the weight received (momentum and BatchNorm statistics likewise of theirs). The steps feed the
    differences back (weights -> activations -> gradients), so the bound allows TOL_UPDATE = 2**-8 of each
    array's largest update (measured worst: 2.0e-4, one ulp of a BatchNorm weight near 1), plus 8 ulps of the
    array's magnitude for values that barely moved."""
    log, state = _run(exported["bundle"], target, tmp_path)
    _check_log_against_python(log, exported)
    # every phase of every batch counted (csrc/core/pt_counter.h), on one core: the critical path is all of it
    for key in ("FROZEN", "STEP", "END"):
        assert log[key] and all(line["instructions"] == line["critical"] > 0 for line in log[key]), key
    assert len(log["FROZEN"]) == len(log["END"]) == len(BATCHES)
    for name, value in exported["final"].items():
        got = state[name]
        if value.dtype.kind != "f":
            np.testing.assert_array_equal(got, value, err_msg=name)
            continue
        update = np.max(np.abs(value.astype(np.float64) - exported["initial"][name]))
        tol = TOL_UPDATE * update + 8 * np.finfo(np.float32).eps * np.max(np.abs(value))
        assert np.max(np.abs(got.astype(np.float64) - value)) <= tol, name
    agree = float(np.mean(np.asarray(log["PRED"][0]["classes"]) == exported["predictions"]))
    assert agree >= 0.99, agree


# ------------------------------------------------------------------------------ without a toolchain


def _tiny_learner(**kwargs):
    rng = np.random.default_rng(0)
    model = models.mobilenet_v1(0.25, num_classes=10, input_size=28, in_channels=1, rng=rng)
    frozen, adaptive = models.split(model, 19)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    qf = quantize_frozen(frozen.eval(), x, lr_bits=8)
    buffer = LatentReplayBuffer(8, qf.layer_table(x.shape[1:]).output_shape, bits=8, seed=1)
    return LatentReplayLearner(qf, adaptive, buffer, num_classes=10, minibatch=8, **kwargs), x


def test_bad_exports_are_refused_naming_the_argument(tmp_path):
    learner, x = _tiny_learner()
    y = np.arange(len(x)) % 10
    with pytest.raises(ValueError, match="stream must be a non-empty list"):
        export_bundle(learner, tmp_path, stream=[])
    with pytest.raises(ValueError, match=r"stream\[0\] labels must be 16 integers in \[0, 10\)"):
        export_bundle(learner, tmp_path, stream=[(x, y + 5)])
    with pytest.raises(ValueError, match=r"test images must be a non-empty float32 array"):
        export_bundle(learner, tmp_path, stream=[(x, y)], test=(x[:, :, :5], y))
    with pytest.raises(ValueError, match="cores must be an int in 1..256"):
        export_bundle(learner, tmp_path, stream=[(x, y)], cores=0)
    float_learner = LatentReplayLearner(
        learner.frozen.float_stage,
        learner.adaptive,
        LatentReplayBuffer(8, learner.buffer.latent_shape, bits=32),
        num_classes=10,
    )
    with pytest.raises(TypeError, match="learner.frozen must be the INT8 stage"):
        export_bundle(float_learner, tmp_path, stream=[(x, y)])
    quantize_new, _ = _tiny_learner(quantize_new=True)
    with pytest.raises(ValueError, match="quantize_new is not supported"):
        export_bundle(quantize_new, tmp_path, stream=[(x, y)])
    with pytest.raises(TypeError, match="learner must be a pulptrain.cl.LatentReplayLearner"):
        export_bundle(object(), tmp_path, stream=[(x, y)])


def test_log_lines_and_state_files_are_read_back(tmp_path):
    text = (
        "noise\nBATCH batch=0 mean_loss=0.5 learner_rng=00ff:0001\n"
        'DONE status=error where=x error="a b c"\nPRED n=3 classes=1,0,2 correct=2\n'
    )
    log = parse_log(text)
    assert log["BATCH"] == [{"batch": 0, "mean_loss": "0.5", "learner_rng": "00ff:0001"}]
    assert log["DONE"][0]["error"] == "a b c" and log["PRED"][0]["classes"] == [1, 0, 2]
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7], np.int16)
    (tmp_path / "s.bin").write_bytes(a.tobytes() + b.tobytes())
    manifest = {"state": [dict(name="a", dtype="<f4", shape=[2, 3]), dict(name="b", dtype="<i2", shape=[1])]}
    got = read_state(tmp_path / "s.bin", manifest)
    assert np.array_equal(got["a"], a) and np.array_equal(got["b"], b)
    (tmp_path / "short.bin").write_bytes(a.tobytes())
    with pytest.raises(ValueError, match="bytes, the manifest describes"):
        read_state(tmp_path / "short.bin", manifest)
    # FNV-1a 64 of the empty input and of "a" (the published test vectors of the hash)
    assert fnv1a64(np.zeros(0, np.uint8)) == 0xCBF29CE484222325
    assert fnv1a64(np.frombuffer(b"a", np.uint8)) == 0xAF63DC4C8601EC8C


@pytest.mark.skipif(not (HAVE_CC and HAVE_RV32), reason="no host C compiler or no rv32 toolchain / QEMU")
def test_portable_mode_is_bitwise_identical_on_host_and_rv32(fashion_mnist_run, tmp_path):
    """PORTABLE=1 on both sides: no x86 kernels, no contraction, the deterministic expf / logf of
    portable_math.c: the final state and every batch line are the same bits on x86-64 and rv32imfc."""
    learner, stream, _ = _learner(fashion_mnist_run)
    bundle = tmp_path / "bundle"
    export_bundle(learner, bundle, stream=stream, cores=8)
    host_log, host = _run(bundle, "host", tmp_path / "host", "PORTABLE=1")
    rv32_log, rv32 = _run(bundle, "rv32", tmp_path / "rv32", "PORTABLE=1")
    assert host_log["BATCH"] == rv32_log["BATCH"] and host_log["STATE"] == rv32_log["STATE"]
    for name, value in host.items():
        assert rv32[name].tobytes() == value.tobytes(), name


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler / make")
@pytest.mark.usefixtures("fake_fashion_mnist")
def test_cli_exports_a_cl_checkpoint_and_the_bundle_continues_it(tmp_path, monkeypatch):
    """`pulptrain cl --checkpoint` stopped after two batches, then `pulptrain export --checkpoint`: the bundle
    starts from the saved state and learns the next two batches exactly as the Python learner resumed from the
    same checkpoint does."""
    from pulptrain import cli
    from pulptrain.export import experiment_learner

    fit_batch = LatentReplayLearner.fit_batch

    def stop_at_batch_2(self, x, y, progress=None):
        if self.batches_seen == 2:
            raise KeyboardInterrupt
        return fit_batch(self, x, y, progress)

    ck, bundle = tmp_path / "ck", tmp_path / "bundle"
    monkeypatch.setattr(LatentReplayLearner, "fit_batch", stop_at_batch_2)
    assert cli.main(["cl", *TINY, "--compare", "none", "--out", str(tmp_path / "cl"), "--checkpoint", str(ck)]) == 130
    monkeypatch.setattr(LatentReplayLearner, "fit_batch", fit_batch)
    argv = ["export", *TINY, "--checkpoint", str(ck), "--out", str(bundle), "--stream-batches", "2"]
    assert cli.main(argv + ["--test-images", "16"]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())

    learner, stream = experiment_learner(cli._experiment_config(cli.parse_args(argv), ("out",)))
    assert learner.batches_seen == 2 and manifest["batch_sizes"] == [len(stream.batch(i)[1]) for i in (2, 3)]
    for i in (2, 3):
        learner.fit_batch(*stream.batch(i))
    log, state = _run(bundle, "host", tmp_path / "host")
    assert [b["batch"] for b in log["BATCH"]] == [2, 3]
    for name, value in learner_state_arrays(learner).items():
        assert state[name].tobytes() == value.tobytes(), name
