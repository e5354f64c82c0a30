"""`pulptrain cl` and `pulptrain sweep` end to end on tiny configurations (synthetic Fashion-MNIST-shaped
data, so they run in seconds and without the data set)."""

import csv
import json
import os

import numpy as np
import pytest

from pulptrain import cli
from pulptrain.cl import experiment, sweep
from pulptrain.cl.learner import LatentReplayLearner

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fake_fashion_mnist(monkeypatch):
    """4 classes of 28x28 uint8 images: class c is bright in its own quadrant, plus noise."""
    import pulptrain.data

    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 4
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for c in range(4):
            r, col = 14 * (c // 2), 14 * (c % 2)
            x[y == c, r : r + 14, col : col + 14] += 150
        return x, y.astype(np.uint8)

    x_train, y_train = make(400)
    x_test, y_test = make(80)
    monkeypatch.setattr(pulptrain.data, "fashion_mnist", lambda root=None: (x_train, y_train, x_test, y_test))


TINY = [
    "--width",
    "0.125",
    "--num-batches",
    "3",
    "--initial-classes",
    "2",
    "--initial-samples",
    "48",
    "--samples-per-batch",
    "24",
    "--pretrain-epochs",
    "1",
    "--pretrain-batch",
    "16",
    "--epochs",
    "1",
    "--first-epochs",
    "1",
    "--minibatch",
    "16",
    "--quiet",
]


def run_cl(out, *extra):
    return cli.main(["cl", *TINY, "--out", str(out), *extra])


def read_results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def _fail_if_called(what):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} started before the settings were checked")

    return fail


@pytest.fixture
def no_work(monkeypatch):
    """Any data loading or pretraining fails the test: bad settings must be refused before."""
    import pulptrain.data

    monkeypatch.setattr(pulptrain.data, "fashion_mnist", _fail_if_called("data loading"))
    monkeypatch.setattr(experiment, "pretrain", _fail_if_called("pretraining"))
    monkeypatch.setattr(sweep, "pretrain", _fail_if_called("pretraining"))  # its own binding of the name


def expect_usage_error(argv, flag, capsys, command="cl", kind="error"):
    """The command exits with status 2 and one line '<prog>: error: <flag> ...'; returns that line."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"pulptrain {command}: {kind}: {flag}"), err
    return err.strip()


# (arguments, flag the message starts with, text it holds): all refused before any data is read.
STATIC_ERRORS = [
    (["--out", ""], "--out", "must name a folder"),
    (["--out", "{file}"], "--out", "exists and is not a folder"),
    (["--out", "{file}/sub"], "--out", "is not a folder"),
    (["--checkpoint", ""], "--checkpoint", "must name a folder"),
    (["--checkpoint", "{file}"], "--checkpoint", "exists and is not a folder"),
    (["--width", "inf"], "--width", "must be a finite number in (0, 4], got inf"),
    (["--width", "nan"], "--width", "must be a finite number in (0, 4], got nan"),
    (["--width", "0"], "--width", "must be a finite number in (0, 4]"),
    (["--width", "100"], "--width", "must be a finite number in (0, 4], got 100.0"),
    (["--momentum", "5"], "--momentum", "must be in [0, 1), got 5.0"),
    (["--momentum", "-0.1"], "--momentum", "must be in [0, 1)"),
    (["--weight-decay", "nan"], "--weight-decay", "must be in [0, 1)"),
    (["--lr", "-1"], "--lr", "lr must be a finite number > 0"),
    (["--lr", "inf"], "--lr", "must be a finite number > 0"),
    (["--first-lr", "0"], "--first-lr", "must be a finite number > 0"),
    (["--pretrain-lr", "nan"], "--pretrain-lr", "must be a finite number > 0"),
    (["--threads", "100000"], "--threads", "(the CPUs available to this process)"),
    (["--threads", "0"], "--threads", "must be an integer >= 1"),
    (["--bits", "9"], "--bits", "bits must be 1..8"),
    (["--bits", "0"], "--bits", "bits must be 1..8"),
    (["--lr-layer", "28"], "--lr-layer", "lr-layer must be in 0..27"),
    (["--lr-layer", "-1"], "--lr-layer", "lr-layer must be in 0..27"),
    (["--replays", "0"], "--replays", "replays must be an integer >= 1"),
    (["--replays", "1000000000000"], "--replays", "replay buffer would take"),
    (["--epochs", "0"], "--epochs", "must be an integer >= 1"),
    (["--minibatch", "0"], "--minibatch", "must be an integer >= 1"),
    (["--seed", "-1"], "--seed", "must be an integer >= 0"),
    (["--num-batches", "1000000000"], "--num-batches", "must be <= 100,000"),
    (["--initial-samples", "3"], "--initial-samples", "must be >= --initial-classes (4"),
    (["--input-size", "32"], "--input-size", "input-size must be 28"),
    (["--dataset", "core50"], "--dataset", "needs --data-root"),
    (["--data-root", "{tmp}/nowhere"], "--data-root", "data root is not a directory"),
    (["--dataset", "core50", "--data-root", "{tmp}", "--run", "10"], "--run", "must be in 0..9"),
    (["--dataset", "core50", "--data-root", "{tmp}", "--scenario", "nicv9"], "--scenario", "must be one of"),
    (["--dataset", "core50", "--data-root", "{tmp}", "--input-size", "64"], "--input-size", "must be 128"),
    (["--resume"], "--resume", "--resume needs --checkpoint"),
]


@pytest.mark.parametrize("extra, flag, text", STATIC_ERRORS)
def test_cl_refuses_bad_settings_before_any_work(extra, flag, text, tmp_path, capsys, no_work):
    (tmp_path / "file").write_text("not a folder")
    extra = [a.format(file=tmp_path / "file", tmp=tmp_path) for a in extra]
    out = tmp_path / "out"
    line = expect_usage_error(["cl", "--out", str(out), "--quiet", *extra], flag, capsys)
    assert text in line
    assert not out.exists()


# Limits that come from the data (fake_fashion_mnist: 4 classes of 100 training images, 80 test images).
DATA_ERRORS = [
    (
        ["--initial-samples", "1000000000"],
        "--initial-samples",
        "must be <= 200 (2 initial classes x 100 training images of the smallest class), got 1000000000",
    ),
    (["--samples-per-batch", "101"], "--samples-per-batch", "must be <= 100 (the training images of the smallest"),
    (["--test-every", "81"], "--test-every", "must be <= 80 (the test set's size), got 81"),
    (["--test-every", "100000"], "--test-every", "must be <= 80"),
    (["--initial-classes", "5"], "--initial-classes", "must be <= 4 (the classes of the training set)"),
    (["--num-batches", "1"], "--num-batches", "must be >= 2 (one batch per class that arrives after the 2 initial"),
]


@pytest.mark.parametrize("extra, flag, text", DATA_ERRORS)
def test_cl_refuses_settings_beyond_the_data_before_pretraining(
    extra, flag, text, fake_fashion_mnist, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(experiment, "pretrain", _fail_if_called("pretraining"))
    out, ck = tmp_path / "out", tmp_path / "ck"
    line = expect_usage_error(["cl", *TINY, "--out", str(out), "--checkpoint", str(ck), *extra], flag, capsys)
    assert text in line
    assert not out.exists() and not ck.exists()


def test_cl_names_data_root_when_the_data_is_missing(tmp_path, capsys):
    line = expect_usage_error(
        ["cl", "--data-root", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"], "--data-root", capsys
    )
    assert "train-images-idx3-ubyte[.gz] not found in" in line and "root=" not in line.split(";")[0]
    assert not (tmp_path / "out").exists()


def test_cl_without_matplotlib_says_so_before_any_work(tmp_path, capsys, no_work, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name, *a)
    )
    line = expect_usage_error(["cl", "--out", str(tmp_path / "out"), "--quiet"], "--out", capsys)
    assert "the plot needs matplotlib, which is not installed" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a folder this user cannot write")
def test_cl_refuses_an_unwritable_out_folder(tmp_path, capsys, no_work):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        line = expect_usage_error(["cl", "--out", str(locked / "out"), "--quiet"], "--out", capsys)
        assert "is not writable" in line
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "extra, flag, text",
    [
        (["--lr-layer", "28"], "--lr-layer", "must be in 0..27"),
        (["--width", "inf"], "--width", "must be a finite number in (0, 4], got inf"),
        (["--bits", "9"], "--bits", "must be 1..8"),
        (["--momentum", "5"], "--momentum", "must be a finite number in [0, 1), got 5.0"),
        (["--replays", "-1"], "--replays", "must be an integer >= 0"),
    ],
)
def test_memory_refuses_bad_settings(extra, flag, text, capsys):
    assert text in expect_usage_error(["memory", *extra], flag, capsys, command="memory")


@pytest.mark.parametrize(
    "extra, flag", [(["--bits", "32,9"], "--bits"), (["--out", ""], "--out"), (["--width", "nan"], "--width")]
)
def test_sweep_refuses_bad_settings(extra, flag, tmp_path, capsys, no_work):
    expect_usage_error(["sweep", "--quiet", *extra], flag, capsys, command="sweep")


def test_help_shows_defaults_and_no_wall_times(capsys):
    for command in ("cl", "sweep", "memory"):
        with pytest.raises(SystemExit) as e:
            cli.main([command, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        assert "(default: 0.25)" in text or command == "memory"
        assert "(default: 19)" in text or command == "sweep"
        assert " min " not in text and "CPU-seconds" not in text


def test_memory_and_cl_agree_on_layers_and_fp32(fake_fashion_mnist, tmp_path, capsys):
    """`memory` accepts the layers `cl` runs (27: only the classifier trains) and accounts the same buffer;
    with --bits 32 it counts the FP32 frozen stage that `cl --bits 32` runs."""
    from pulptrain.cl.memory import mobilenet_v1_layers
    from pulptrain.models import mobilenet_v1, split

    assert run_cl(tmp_path / "run", "--lr-layer", "27", "--replays", "10", "--compare", "none") == 0
    run = read_results(tmp_path / "run")["runs"]["8-bit"]
    capsys.readouterr()
    assert (
        cli.main(
            [
                "memory",
                "--width",
                "0.125",
                "--input-size",
                "28",
                "--num-classes",
                "4",
                "--in-channels",
                "1",
                "--lr-layer",
                "27",
                "--replays",
                "10",
                "--json",
            ]
        )
        == 0
    )
    memory = json.loads(capsys.readouterr().out)
    assert memory["replay_buffer"] == run["buffer_nbytes"] and memory["latent_shape"] == run["latent_shape"]
    int8, fp32 = (
        json.loads((cli.main(["memory", "--bits", b, "--json"]), capsys.readouterr().out)[1]) for b in ("8", "32")
    )
    layers = mobilenet_v1_layers()[:20]
    assert int8["frozen_weights"] == sum(layer.params + 8 * layer.bn_channels for layer in layers)
    # The FP32 frozen stage is what `cl --bits 32` keeps: every float array of the frozen modules.
    frozen = split(mobilenet_v1(1.0, num_classes=50, input_size=128), 19)[0]
    assert fp32["frozen_weights"] == sum(v.nbytes for v in frozen.state_dict().values() if v.dtype == np.float32)
    assert fp32["replay_buffer"] == 1500 * (4 * 512 * 8 * 8 + 2)


@pytest.mark.parametrize(
    "argv",
    [
        ["cl", "--bits", "eight"],
        ["sweep", "--bits", "8,x"],
        ["sweep", "--seeds", ""],
        ["cl", "--dataset", "mnist"],
        ["cl", "--policy", "fifo"],
    ],
)
def test_cli_parse_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cl_core50_missing_data_root(tmp_path, capsys):
    line = expect_usage_error(
        ["cl", "--dataset", "core50", "--data-root", str(tmp_path / "nowhere"), "--quiet"], "--data-root", capsys
    )
    assert "data root is not a directory" in line


@pytest.mark.parametrize("bits", [8, 32])
def test_cl_run_writes_results_and_plot(fake_fashion_mnist, tmp_path, bits):
    """By default a quantized run and an FP32 run from the same pretrained stage (only FP32 for --bits 32)."""
    out = tmp_path / "run"
    assert run_cl(out, "--bits", str(bits), "--replays", "20") == 0
    result = read_results(out)
    assert result["format"] == experiment.RESULTS_FORMAT and result["config"]["compare"] == "fp32"
    assert result["config"]["bits"] == bits and result["config"]["replays"] == 20
    assert list(result["runs"]) == (["8-bit", "fp32"] if bits == 8 else ["fp32"])
    assert result["num_batches"] == 4 and result["test_samples"] == 80 and result["wall_seconds"] > 0
    for label, run in result["runs"].items():
        run_bits = 32 if label == "fp32" else bits
        assert run["settings"]["bits"] == run_bits and run["settings"]["replays"] == 20
        assert len(run["accuracy"]) == 4
        assert run["final_accuracy"] == run["accuracy"][-1] and 0.0 <= run["final_accuracy"] <= 1.0
        # The buffer's real storage (codes + int16 labels) equals the memory model's replay buffer entry.
        elements = int(np.prod(run["latent_shape"]))
        assert run["buffer_nbytes"] == 20 * (elements * (4 if run_bits == 32 else 1) + 2)
        assert run["memory"]["replay_buffer"] == run["buffer_nbytes"]
        assert run["memory"]["lr_layer"] == 19 and run["memory"]["width_mult"] == 0.125
    # The batches where a class is seen for the first time, from the stream itself.
    stream = experiment.load_stream(
        experiment.ExperimentConfig(**{k: v for k, v in result["config"].items() if k != "compare"}).resolved()
    )
    seen, arrivals = set(stream.batch_classes(0).tolist()), []
    for i in range(1, len(stream)):
        new = sorted(set(stream.batch_classes(i).tolist()) - seen)
        seen.update(new)
        arrivals += [{"batch": i, "classes": new}] if new else []
    assert result["new_classes"] == arrivals and len(arrivals) == 2  # 4 classes, 2 initial
    machine = result["machine"]
    from pulptrain.cl.experiment import available_cpus

    # the default team: the CPUs this process has, up to 8
    assert machine["threads"] == min(available_cpus(), 8)
    assert machine["numpy"] == np.__version__ and machine["platform"]
    assert result["date"].endswith("+00:00")
    with open(out / "accuracy.png", "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_cl_compare_none_runs_only_the_bits(fake_fashion_mnist, tmp_path):
    assert run_cl(tmp_path / "run", "--bits", "6", "--compare", "none") == 0
    assert list(read_results(tmp_path / "run")["runs"]) == ["6-bit"]


def test_checkpoint_resume_gives_the_uninterrupted_result(fake_fashion_mnist, tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight"
    assert run_cl(straight, "--checkpoint", str(tmp_path / "ck_straight")) == 0

    # Interrupt a second run after two batches of its FP32 run (the 8-bit run is done, the checkpoint of the
    # FP32 run's batch 1 is on disk), then resume it.
    fit_batch = LatentReplayLearner.fit_batch

    def crash_at_batch_2(self, x, y, progress=None):
        if self.batches_seen == 2 and self.buffer.bits == 32:
            raise KeyboardInterrupt
        return fit_batch(self, x, y, progress)

    monkeypatch.setattr(LatentReplayLearner, "fit_batch", crash_at_batch_2)
    resumed, ck = tmp_path / "resumed", tmp_path / "ck"
    capsys.readouterr()
    assert run_cl(resumed, "--checkpoint", str(ck)) == 130
    assert capsys.readouterr().err == f"pulptrain cl: interrupted (continue with --checkpoint {ck} --resume)\n"
    assert not os.path.exists(resumed / "results.json")
    monkeypatch.setattr(LatentReplayLearner, "fit_batch", fit_batch)
    assert run_cl(resumed, "--checkpoint", str(ck), "--resume") == 0

    a, b = read_results(straight), read_results(resumed)
    assert b["resumed"] and not a["resumed"]
    for label in ("8-bit", "fp32"):
        assert a["runs"][label]["accuracy"] == b["runs"][label]["accuracy"]
        assert a["runs"][label]["train_loss"] == b["runs"][label]["train_loss"]
        name = f"learner-{label}.npz"
        with np.load(tmp_path / "ck_straight" / name) as x, np.load(ck / name) as y:
            assert sorted(x.files) == sorted(y.files)
            for key in x.files:
                if key != "experiment":  # holds the timings
                    np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def expect_checkpoint_error(argv, text, capsys):
    line = expect_usage_error(argv, "", capsys, kind="checkpoint error")
    assert text in line, line
    return line


def test_checkpoint_errors_are_loud(fake_fashion_mnist, tmp_path, capsys):
    ck = tmp_path / "ck"
    assert run_cl(tmp_path / "a", "--checkpoint", str(ck), "--compare", "none") == 0
    b = ["cl", *TINY, "--out", str(tmp_path / "b"), "--compare", "none"]
    # An existing checkpoint is never overwritten by a fresh run.
    expect_checkpoint_error(b + ["--checkpoint", str(ck)], "exists: pass --resume", capsys)
    # Other settings: a clear error naming the difference.
    line = expect_checkpoint_error(
        b + ["--checkpoint", str(ck), "--resume", "--replays", "7"], "another experiment", capsys
    )
    assert "replays" in line
    # Nothing to resume.
    expect_checkpoint_error(
        b + ["--checkpoint", str(tmp_path / "empty"), "--resume"], "--resume: no pretrained weights", capsys
    )
    # A damaged learner checkpoint.
    path = ck / "learner-8-bit.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_checkpoint_error(b + ["--checkpoint", str(ck), "--resume"], "corrupt", capsys)
    assert not os.path.exists(tmp_path / "b" / "results.json")
    # Learner files without the pretrained weights they came from.
    path.write_bytes(data)
    (ck / "pretrained.npz").unlink()
    expect_checkpoint_error(b + ["--checkpoint", str(ck), "--resume"], "--resume: no pretrained weights", capsys)


def test_resume_after_pretraining_only_starts_the_stream(fake_fashion_mnist, tmp_path):
    """A run stopped after pretrained.npz but before the first learner file resumes from the pretrained
    stage, and a run stopped during pretraining (the folder exists, nothing in it) pretrains again."""
    assert run_cl(tmp_path / "straight", "--compare", "none") == 0
    expected = read_results(tmp_path / "straight")["runs"]["8-bit"]["accuracy"]
    ck = tmp_path / "ck"
    assert run_cl(tmp_path / "first", "--checkpoint", str(ck), "--compare", "none") == 0
    (ck / "learner-8-bit.npz").unlink()
    assert run_cl(tmp_path / "resumed", "--checkpoint", str(ck), "--compare", "none", "--resume") == 0
    result = read_results(tmp_path / "resumed")
    assert result["pretraining"]["loaded"] and result["runs"]["8-bit"]["accuracy"] == expected
    for name in os.listdir(ck):
        os.unlink(ck / name)
    assert run_cl(tmp_path / "again", "--checkpoint", str(ck), "--compare", "none", "--resume") == 0
    result = read_results(tmp_path / "again")
    assert not result["pretraining"]["loaded"] and result["runs"]["8-bit"]["accuracy"] == expected


def test_sweep_writes_table_csv_and_plot(fake_fashion_mnist, tmp_path):
    out = tmp_path / "sweep"
    argv = [
        "sweep",
        *TINY,
        "--bits",
        "32,8,4",
        "--lr-layer",
        "19,23",
        "--replays",
        "8,16",
        "--seeds",
        "0,1",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 2 * 2
    assert {(int(r["bits"]), int(r["lr_layer"]), int(r["replays"]), int(r["seed"])) for r in rows} == {
        (b, l, r, s) for b in (32, 8, 4) for l in (19, 23) for r in (8, 16) for s in (0, 1)
    }
    by_key = {(int(r["bits"]), int(r["lr_layer"]), int(r["replays"])): int(r["buffer_bytes"]) for r in rows}
    assert by_key[(8, 19, 16)] == 2 * by_key[(8, 19, 8)]  # linear in the number of replays
    elements = {int(r["lr_layer"]): int(np.prod([int(d) for d in r["latent_shape"].split("x")])) for r in rows}
    for (b, l, r), nbytes in by_key.items():  # bit-packed codes (FP32: 4 bytes) + one int16 label per latent
        assert nbytes == r * ((4 * elements[l]) if b == 32 else -(-elements[l] * b // 8)) + 2 * r
    table = (out / "sweep.md").read_text().splitlines()
    per_setting = table[table.index("Mean +- sample standard deviation over seeds:") :]
    body = [line for line in per_setting if line.startswith("| ") and not line.startswith("| bits")]
    assert len(body) == 3 * 2 * 2 and all(" 2 |" in line for line in body)
    fp32_rows = [line for line in body if line.startswith("| FP32")]
    assert len(fp32_rows) == 4
    with open(out / "sweep.json") as f:
        summary = json.load(f)["summary"]
    for s in summary:
        accs = [
            float(r["final_accuracy"])
            for r in rows
            if (int(r["bits"]), int(r["lr_layer"]), int(r["replays"])) == (s["bits"], s["lr_layer"], s["replays"])
        ]
        assert s["mean"] == pytest.approx(np.mean(accs)) and s["std"] == pytest.approx(np.std(accs, ddof=1))
        tails = [
            float(r["tail_accuracy"])
            for r in rows
            if (int(r["bits"]), int(r["lr_layer"]), int(r["replays"])) == (s["bits"], s["lr_layer"], s["replays"])
        ]
        assert s["tail_mean"] == pytest.approx(np.mean(tails))
    for plot in ("accuracy_vs_memory.png", "bits_curve.png"):
        with open(out / plot, "rb") as f:
            assert f.read(8) == PNG_MAGIC
    # --report-only rebuilds the same table from sweep.json without running anything.
    (out / "sweep.md").unlink()
    assert cli.main(["sweep", "--report-only", "--out", str(out)]) == 0
    assert (out / "sweep.md").read_text().splitlines() == table


def test_sweep_resume_adds_seeds(fake_fashion_mnist, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    common = ["sweep", *TINY, "--bits", "8", "--lr-layer", "23", "--replays", "8", "--out", str(out)]
    assert cli.main(common + ["--seeds", "0"]) == 0
    capsys.readouterr()
    assert "--resume" in expect_usage_error(common + ["--seeds", "1"], "--out", capsys, "sweep")
    streams = []
    run_stream = sweep.run_stream
    monkeypatch.setattr(sweep, "run_stream", lambda cfg, *a, **k: streams.append(cfg.seed) or run_stream(cfg, *a, **k))
    assert cli.main(common + ["--seeds", "0,1", "--resume"]) == 0
    assert streams == [1]  # seed 0 was finished: kept, not repeated
    with open(out / "sweep.csv") as f:
        assert sorted(int(r["seed"]) for r in csv.DictReader(f)) == [0, 1]
    assert " 2 |" in (out / "sweep.md").read_text().splitlines()[-1]
    capsys.readouterr()
    assert "other settings" in expect_usage_error(
        common + ["--seeds", "2", "--resume", "--epochs", "2"], "--resume", capsys, "sweep"
    )


def test_sweep_report_only_without_results(tmp_path, capsys):
    line = expect_usage_error(["sweep", "--report-only", "--out", str(tmp_path)], "", capsys, "sweep")
    assert "cannot read the sweep results" in line


def test_sweep_reuses_pretraining_and_matches_single_runs(fake_fashion_mnist, tmp_path, monkeypatch):
    """One pretraining per seed, and a sweep run gives the same final accuracy as `pulptrain cl` alone."""
    calls = []
    pretrain = experiment.pretrain
    monkeypatch.setattr("pulptrain.cl.sweep.pretrain", lambda *a, **k: calls.append(1) or pretrain(*a, **k))
    out = tmp_path / "sweep"
    assert (
        cli.main(
            ["sweep", *TINY, "--bits", "32,8", "--lr-layer", "21", "--replays", "12", "--seeds", "3", "--out", str(out)]
        )
        == 0
    )
    assert len(calls) == 1
    with open(out / "sweep.csv") as f:
        rows = {int(r["bits"]): float(r["final_accuracy"]) for r in csv.DictReader(f)}
    run_cl(tmp_path / "single", "--bits", "8", "--lr-layer", "21", "--replays", "12", "--seed", "3")
    runs = read_results(tmp_path / "single")["runs"]
    assert runs["8-bit"]["final_accuracy"] == rows[8] and runs["fp32"]["final_accuracy"] == rows[32]


def test_cl_core50_run(tmp_path):
    """The CORe50 path end to end on miniature files in the official format (5 objects, 3 batches)."""
    from test_cl_scenarios import write_core50

    write_core50(tmp_path / "core50", scenarios=("nicv2_391",), runs=2, num_batches=3)
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "cl",
                "--dataset",
                "core50",
                "--data-root",
                str(tmp_path / "core50"),
                "--run",
                "1",
                "--width",
                "0.125",
                "--pretrain-epochs",
                "1",
                "--pretrain-batch",
                "5",
                "--epochs",
                "1",
                "--first-epochs",
                "1",
                "--minibatch",
                "8",
                "--replays",
                "6",
                "--bits",
                "7",
                "--quiet",
                "--compare",
                "none",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = read_results(out)
    assert list(result["runs"]) == ["7-bit"]
    run = result["runs"]["7-bit"]
    assert result["stream"]["scenario"] == "nicv2_391" and result["stream"]["run"] == 1
    assert result["num_batches"] == 3 and len(run["accuracy"]) == 3 and result["test_samples"] == 10
    assert run["memory"]["input_size"] == 128 and run["memory"]["num_classes"] == 50
    assert run["latent_shape"] == [64, 8, 8]  # layer 19 of width 0.125 at 128x128
    assert run["buffer_nbytes"] == 6 * (-(-64 * 8 * 8 * 7 // 8) + 2)
