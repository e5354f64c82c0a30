"""`pulptrain cl` and `pulptrain sweep` end to end on tiny configurations (synthetic Fashion-MNIST-shaped
data, so they run in seconds and without the data set)."""
import csv
import json
import os

import numpy as np
import pytest

from pulptrain import cli
from pulptrain.cl import experiment
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
            x[y == c, r:r + 14, col:col + 14] += 150
        return x, y.astype(np.uint8)

    x_train, y_train = make(400)
    x_test, y_test = make(80)
    monkeypatch.setattr(pulptrain.data, "fashion_mnist", lambda root=None: (x_train, y_train, x_test, y_test))


TINY = ["--width", "0.125", "--num-batches", "3", "--initial-classes", "2", "--initial-samples", "48",
        "--samples-per-batch", "24", "--pretrain-epochs", "1", "--pretrain-batch", "16", "--epochs", "1",
        "--first-epochs", "1", "--minibatch", "16", "--quiet"]


def run_cl(out, *extra):
    return cli.main(["cl", *TINY, "--out", str(out), *extra])


def read_results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("argv, message", [
    (["cl", "--bits", "9"], "bits must be 1..8"),
    (["cl", "--bits", "0"], "bits must be 1..8"),
    (["cl", "--lr-layer", "27"], "lr-layer must be in 0..26"),
    (["cl", "--replays", "0"], "replays must be >= 1"),
    (["cl", "--lr", "-1"], "lr must be > 0"),
    (["cl", "--dataset", "core50"], "needs --data-root"),
    (["cl", "--resume"], "--resume needs --checkpoint"),
    (["cl", "--input-size", "32"], "input-size must be 28"),
    (["sweep", "--bits", "32,9"], "bits must be 1..8"),
])
def test_cli_argument_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--out", str(tmp_path / "out"), "--quiet"])
    assert message in str(e.value)
    assert not os.path.exists(tmp_path / "out" / "results.json")


@pytest.mark.parametrize("argv", [["cl", "--bits", "eight"], ["sweep", "--bits", "8,x"], ["sweep", "--seeds", ""],
                                  ["cl", "--dataset", "mnist"], ["cl", "--policy", "fifo"]])
def test_cli_parse_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cl_core50_missing_data_root(tmp_path):
    with pytest.raises(SystemExit, match="data root is not a directory"):
        cli.main(["cl", "--dataset", "core50", "--data-root", str(tmp_path / "nowhere"), "--quiet"])


@pytest.mark.parametrize("bits", [8, 32])
def test_cl_run_writes_results_and_plot(fake_fashion_mnist, tmp_path, bits):
    out = tmp_path / "run"
    assert run_cl(out, "--bits", str(bits), "--replays", "20") == 0
    result = read_results(out)
    assert result["settings"]["bits"] == bits and result["settings"]["replays"] == 20
    assert result["num_batches"] == 4 and len(result["accuracy"]) == 4
    assert result["final_accuracy"] == result["accuracy"][-1] and 0.0 <= result["final_accuracy"] <= 1.0
    assert result["test_samples"] == 80 and result["wall_seconds"] > 0
    # The buffer's real storage (codes + int16 labels) equals the memory model's replay buffer entry.
    elements = int(np.prod(result["latent_shape"]))
    assert result["buffer_nbytes"] == 20 * (elements * (4 if bits == 32 else 1) + 2)
    assert result["memory"]["replay_buffer"] == result["buffer_nbytes"]
    assert result["memory"]["lr_layer"] == 19 and result["memory"]["width_mult"] == 0.125
    with open(out / "accuracy.png", "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_checkpoint_resume_gives_the_uninterrupted_result(fake_fashion_mnist, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert run_cl(straight, "--checkpoint", str(tmp_path / "ck_straight")) == 0

    # Interrupt a second run after two batches (the checkpoint of batch 1 is on disk), then resume it.
    fit_batch = LatentReplayLearner.fit_batch

    def crash_at_batch_2(self, x, y, progress=None):
        if self.batches_seen == 2:
            raise KeyboardInterrupt
        return fit_batch(self, x, y, progress)

    monkeypatch.setattr(LatentReplayLearner, "fit_batch", crash_at_batch_2)
    resumed, ck = tmp_path / "resumed", tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        run_cl(resumed, "--checkpoint", str(ck))
    assert not os.path.exists(resumed / "results.json")
    monkeypatch.setattr(LatentReplayLearner, "fit_batch", fit_batch)
    assert run_cl(resumed, "--checkpoint", str(ck), "--resume") == 0

    a, b = read_results(straight), read_results(resumed)
    assert b["resumed"] and not a["resumed"]
    assert a["accuracy"] == b["accuracy"] and a["train_loss"] == b["train_loss"]
    with np.load(tmp_path / "ck_straight" / experiment.LEARNER_FILE) as x, np.load(ck / experiment.LEARNER_FILE) as y:
        assert sorted(x.files) == sorted(y.files)
        for key in x.files:
            if key != "experiment":  # holds the timings
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_checkpoint_errors_are_loud(fake_fashion_mnist, tmp_path):
    ck = tmp_path / "ck"
    assert run_cl(tmp_path / "a", "--checkpoint", str(ck)) == 0
    # An existing checkpoint is never overwritten by a fresh run.
    with pytest.raises(SystemExit, match="exists: pass --resume"):
        run_cl(tmp_path / "b", "--checkpoint", str(ck))
    # Other settings: a clear error naming the difference.
    with pytest.raises(SystemExit, match="checkpoint error: .*replays"):
        run_cl(tmp_path / "b", "--checkpoint", str(ck), "--resume", "--replays", "7")
    # Nothing to resume.
    with pytest.raises(SystemExit, match="checkpoint error: --resume: no pretrained weights"):
        run_cl(tmp_path / "b", "--checkpoint", str(tmp_path / "empty"), "--resume")
    # A damaged learner checkpoint.
    path = ck / experiment.LEARNER_FILE
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(SystemExit, match="checkpoint error: .*corrupt"):
        run_cl(tmp_path / "b", "--checkpoint", str(ck), "--resume")
    path.unlink()
    with pytest.raises(SystemExit, match="checkpoint error: --resume: no checkpoint"):
        run_cl(tmp_path / "b", "--checkpoint", str(ck), "--resume")
    assert not os.path.exists(tmp_path / "b" / "results.json")


def test_sweep_writes_table_csv_and_plot(fake_fashion_mnist, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", *TINY, "--bits", "32,8,4", "--lr-layer", "19,23", "--replays", "8,16", "--seeds", "0,1",
            "--out", str(out)]
    assert cli.main(argv) == 0
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 2 * 2
    assert {(int(r["bits"]), int(r["lr_layer"]), int(r["replays"]), int(r["seed"])) for r in rows} == {
        (b, l, r, s) for b in (32, 8, 4) for l in (19, 23) for r in (8, 16) for s in (0, 1)}
    by_key = {(int(r["bits"]), int(r["lr_layer"]), int(r["replays"])): int(r["buffer_bytes"]) for r in rows}
    assert by_key[(8, 19, 16)] == 2 * by_key[(8, 19, 8)]          # linear in the number of replays
    elements = {int(r["lr_layer"]): int(np.prod([int(d) for d in r["latent_shape"].split("x")])) for r in rows}
    for (b, l, r), nbytes in by_key.items():  # bit-packed codes (FP32: 4 bytes) + one int16 label per latent
        assert nbytes == r * ((4 * elements[l]) if b == 32 else -(-elements[l] * b // 8)) + 2 * r
    table = (out / "sweep.md").read_text().splitlines()
    body = [line for line in table if line.startswith("| ") and not line.startswith("| bits")]
    assert len(body) == 3 * 2 * 2 and all(" 2 |" in line for line in body)
    fp32_rows = [line for line in body if line.startswith("| FP32")]
    assert len(fp32_rows) == 4
    with open(out / "sweep.json") as f:
        summary = json.load(f)["summary"]
    for s in summary:
        accs = [float(r["final_accuracy"]) for r in rows
                if (int(r["bits"]), int(r["lr_layer"]), int(r["replays"])) == (s["bits"], s["lr_layer"], s["replays"])]
        assert s["mean"] == pytest.approx(np.mean(accs)) and s["std"] == pytest.approx(np.std(accs, ddof=1))
        tails = [float(r["tail_accuracy"]) for r in rows
                 if (int(r["bits"]), int(r["lr_layer"]), int(r["replays"])) == (s["bits"], s["lr_layer"], s["replays"])]
        assert s["tail_mean"] == pytest.approx(np.mean(tails))
    with open(out / "accuracy_vs_memory.png", "rb") as f:
        assert f.read(8) == PNG_MAGIC
    # --report-only rebuilds the same table from sweep.json without running anything.
    (out / "sweep.md").unlink()
    assert cli.main(["sweep", "--report-only", "--out", str(out)]) == 0
    assert (out / "sweep.md").read_text().splitlines() == table


def test_sweep_append_adds_seeds(fake_fashion_mnist, tmp_path):
    out = tmp_path / "sweep"
    common = ["sweep", *TINY, "--bits", "8", "--lr-layer", "23", "--replays", "8", "--out", str(out)]
    assert cli.main(common + ["--seeds", "0"]) == 0
    assert cli.main(common + ["--seeds", "1", "--append"]) == 0
    with open(out / "sweep.csv") as f:
        assert sorted(int(r["seed"]) for r in csv.DictReader(f)) == [0, 1]
    assert " 2 |" in (out / "sweep.md").read_text().splitlines()[-1]
    with pytest.raises(SystemExit, match="already in"):
        cli.main(common + ["--seeds", "1", "--append"])
    with pytest.raises(SystemExit, match="other settings"):
        cli.main(common + ["--seeds", "2", "--append", "--epochs", "2"])


def test_sweep_report_only_without_results(tmp_path):
    with pytest.raises(SystemExit, match="cannot read the sweep results"):
        cli.main(["sweep", "--report-only", "--out", str(tmp_path)])


def test_sweep_reuses_pretraining_and_matches_single_runs(fake_fashion_mnist, tmp_path, monkeypatch):
    """One pretraining per seed, and a sweep run gives the same final accuracy as `pulptrain cl` alone."""
    calls = []
    pretrain = experiment.pretrain
    monkeypatch.setattr("pulptrain.cl.sweep.pretrain", lambda *a, **k: calls.append(1) or pretrain(*a, **k))
    out = tmp_path / "sweep"
    assert cli.main(["sweep", *TINY, "--bits", "32,8", "--lr-layer", "21", "--replays", "12", "--seeds", "3",
                     "--out", str(out)]) == 0
    assert len(calls) == 1
    with open(out / "sweep.csv") as f:
        rows = {int(r["bits"]): float(r["final_accuracy"]) for r in csv.DictReader(f)}
    for bits in (32, 8):
        run_cl(tmp_path / f"single{bits}", "--bits", str(bits), "--lr-layer", "21", "--replays", "12", "--seed", "3")
        assert read_results(tmp_path / f"single{bits}")["final_accuracy"] == rows[bits]


def test_cl_core50_run(tmp_path):
    """The CORe50 path end to end on miniature files in the official format (5 objects, 3 batches)."""
    from test_cl_scenarios import write_core50

    write_core50(tmp_path / "core50", scenarios=("nicv2_391",), runs=2, num_batches=3)
    out = tmp_path / "out"
    assert cli.main(["cl", "--dataset", "core50", "--data-root", str(tmp_path / "core50"), "--run", "1",
                     "--width", "0.125", "--pretrain-epochs", "1", "--pretrain-batch", "5", "--epochs", "1",
                     "--first-epochs", "1", "--minibatch", "8", "--replays", "6", "--bits", "7", "--quiet",
                     "--out", str(out)]) == 0
    result = read_results(out)
    assert result["stream"]["scenario"] == "nicv2_391" and result["stream"]["run"] == 1
    assert result["num_batches"] == 3 and len(result["accuracy"]) == 3 and result["test_samples"] == 10
    assert result["memory"]["input_size"] == 128 and result["memory"]["num_classes"] == 50
    assert result["latent_shape"] == [64, 8, 8]  # layer 19 of width 0.125 at 128x128
    assert result["buffer_nbytes"] == 6 * (-(-64 * 8 * 8 * 7 // 8) + 2)
