"""`pulptrain sweep` beyond the CLI basics: paired statistics against published and numpy references, a sweep
killed mid-way that resumes to exactly the uninterrupted result, the Ray backend on a local two-worker Ray,
the paper-like preset's data split and pretraining cache, and the evaluation path of the learner."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
from test_cl_checkpoints import data_root  # noqa: F401  (a fixture: IDX files that Ray workers can read)
from test_cl_cli import TINY, expect_usage_error, fake_fashion_mnist  # noqa: F401

from pulptrain import cli
from pulptrain.cl import experiment, stats, sweep

# Student's t 0.975 quantiles (two-sided 95 %) from the standard published table, and the 0.95 one for df=10.
T_TABLE = [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 4, 2.776), (0.975, 9, 2.262), (0.975, 19, 2.093)]
T_TABLE += [(0.975, 30, 2.042), (0.95, 10, 1.812)]


@pytest.mark.parametrize("p, df, expected", T_TABLE)
def test_t_quantile_matches_the_published_table(p, df, expected):
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=6e-4)
    assert stats.t_quantile(1 - p, df) == pytest.approx(-expected, abs=6e-4)
    assert stats.t_cdf(stats.t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)


def test_t_quantile_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 3, 7, 19, 57, 400):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert stats.t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9)


def test_paired_interval_matches_numpy():
    d = np.random.default_rng(3).normal(-0.25, 0.6, 20)
    got = stats.paired_interval(d)
    sem = d.std(ddof=1) / np.sqrt(20)
    assert got["n"] == 20 and got["mean"] == pytest.approx(d.mean()) and got["sem"] == pytest.approx(sem)
    assert got["half_width"] == pytest.approx(2.093 * sem, rel=3e-4)  # t(0.975, 19) from the table
    assert got["ci"] == pytest.approx((d.mean() - got["half_width"], d.mean() + got["half_width"]))
    low, high = got["bootstrap_ci"]
    assert low < d.mean() < high
    assert 0.7 < (high - low) / (2 * got["half_width"]) < 1.1  # close to t for 20 normal differences
    assert stats.paired_interval(d)["bootstrap_ci"] == got["bootstrap_ci"]  # a fixed seed: reproducible
    one = stats.paired_interval([0.5])
    assert one["mean"] == 0.5 and one["ci"] is None
    with pytest.raises(ValueError, match="at least one"):
        stats.paired_interval([])


def _row(seed, bits, final, tail, replays=8):
    return {
        "seed": seed,
        "bits": bits,
        "lr_layer": 19,
        "replays": replays,
        "final_accuracy": final,
        "tail_accuracy": tail,
        "buffer_bytes": 100 * bits,
        "buffer_mib": 100 * bits / 2**20,
        "total_memory_mib": 1.0,
        "accuracy": [tail] * 9 + [final],
    }


def test_paired_summary_pairs_each_run_with_its_fp32_twin():
    rng = np.random.default_rng(1)
    rows = [_row(s, b, *rng.random(2)) for s in range(5) for b in (32, 8, 4)]
    rows.append(_row(9, 8, 0.5, 0.5))  # no FP32 twin: not paired
    paired = {p["bits"]: p for p in sweep.paired_summary(rows)}
    assert sorted(paired) == [4, 8]
    for bits in (8, 4):
        fp32 = {r["seed"]: r for r in rows if r["bits"] == 32}
        d = np.array(
            [100 * (r["final_accuracy"] - fp32[r["seed"]]["final_accuracy"]) for r in rows[:15] if r["bits"] == bits]
        )
        assert paired[bits]["seeds"] == [0, 1, 2, 3, 4] and paired[bits]["final"]["n"] == 5
        assert paired[bits]["final"]["mean"] == pytest.approx(d.mean())
        assert paired[bits]["final"]["sd"] == pytest.approx(d.std(ddof=1))
        assert paired[bits]["fp32_buffer_bytes"] == 3200 and paired[bits]["buffer_bytes"] == 100 * bits
    table = sweep.paired_table(sweep.paired_summary(rows)).splitlines()
    assert len(table) == 4 and table[2].startswith("| 8 | 19 | 8 |")


GRID = dict(bits=[32, 8], lr_layers=[23], replays=[8], seeds=[0, 1])


def _tiny_config(out, **extra):
    values = dict(
        width=0.125,
        num_batches=3,
        initial_classes=2,
        initial_samples=48,
        samples_per_batch=24,
        pretrain_epochs=1,
        pretrain_batch=16,
        epochs=1,
        first_epochs=1,
        minibatch=16,
        quiet=True,
        out=str(out),
    )
    values.update(extra)
    return experiment.ExperimentConfig(**values)


def _by_key(rows):
    return {(r["seed"], r["lr_layer"], r["bits"], r["replays"]): r["accuracy"] for r in rows}


def test_a_killed_sweep_resumes_without_repeating_or_losing_runs(fake_fashion_mnist, tmp_path, monkeypatch):  # noqa: F811
    straight = sweep.run_sweep(_tiny_config(tmp_path / "straight"), **GRID, plots=False)
    assert len(straight) == 4

    out = tmp_path / "killed"
    run_stream, calls = sweep.run_stream, []

    def killed_at_the_third_run(cfg, *args, **kwargs):
        calls.append((cfg.seed, cfg.bits))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run_stream(cfg, *args, **kwargs)

    monkeypatch.setattr(sweep, "run_stream", killed_at_the_third_run)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(_tiny_config(out), **GRID, plots=False)
    header, rows = sweep.read_log(out)
    assert len(rows) == 2 and header["settings"]["width"] == 0.125
    with open(out / "sweep.json") as f:
        assert len(json.load(f)["runs"]) == 2  # the tables hold every run finished before the kill
    with open(out / sweep.LOG_FILE, "a") as f:
        f.write('{"seed": 1, "bits": 8, "lr_la')  # a line the kill cut short: dropped on resume

    monkeypatch.setattr(
        sweep, "run_stream", lambda cfg, *a, **k: calls.append((cfg.seed, cfg.bits)) or run_stream(cfg, *a, **k)
    )
    calls.clear()
    resumed = sweep.run_sweep(_tiny_config(out), **GRID, resume=True, plots=False)
    assert calls == [(1, 32), (1, 8)]  # only the runs the log did not hold
    assert _by_key(resumed) == _by_key(straight)
    assert _by_key(sweep.read_log(out)[1]) == _by_key(straight)
    with open(out / "sweep.json") as f:
        assert _by_key(json.load(f)["runs"]) == _by_key(straight)


def test_the_sweep_log_refuses_another_sweep(fake_fashion_mnist, tmp_path):  # noqa: F811
    sweep.run_sweep(_tiny_config(tmp_path), bits=[8], lr_layers=[23], replays=[8], seeds=[0], plots=False)
    with pytest.raises(ValueError, match="--resume to continue"):
        sweep.run_sweep(_tiny_config(tmp_path), bits=[8], lr_layers=[23], replays=[8], seeds=[1], plots=False)
    with pytest.raises(ValueError, match="other settings"):
        sweep.run_sweep(_tiny_config(tmp_path, lr=0.5), bits=[8], lr_layers=[23], replays=[8], seeds=[1], resume=True)
    with open(tmp_path / sweep.LOG_FILE, "w") as f:
        f.write('{"format": "something else"}\n')
    with pytest.raises(ValueError, match="not a sweep log"):
        sweep.read_log(tmp_path)


def test_ray_backend_on_two_local_workers_matches_the_local_backend(data_root, tmp_path):  # noqa: F811
    pytest.importorskip("ray")
    common = dict(data_root=str(data_root), test_every=99)
    local = sweep.run_sweep(_tiny_config(tmp_path / "local", **common), **GRID, plots=False)
    distributed = sweep.run_sweep(
        _tiny_config(tmp_path / "ray", **common), **GRID, backend="ray", workers=2, plots=False
    )
    assert _by_key(distributed) == _by_key(local)
    with open(tmp_path / "ray" / "sweep.json") as f:
        saved = json.load(f)
    assert saved["run"]["backend"] == "ray" and saved["run"]["workers"] == 2 and len(saved["runs"]) == 4
    assert [p["bits"] for p in saved["paired"]] == [8]


def test_ray_backend_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    line = expect_usage_error(
        ["sweep", *TINY, "--backend", "ray", "--out", str(tmp_path)], "--backend ray", capsys, "sweep"
    )
    assert "pip install 'pulptrain[ray]'" in line


def test_paper_like_stream_never_draws_a_pretraining_image(fake_fashion_mnist):  # noqa: F811
    import pulptrain.data

    cfg = experiment.preset_config("paper-like", held_out_per_class=30, num_batches=3, initial_samples=40)
    cfg = replace(cfg, samples_per_batch=20, initial_classes=2).resolved()
    x_train, y_train, _, _ = pulptrain.data.fashion_mnist()
    source, pool = experiment.held_out_split(y_train, 30)
    assert len(source) == 30 * 4 and np.intersect1d(source, pool).size == 0
    assert len(source) + len(pool) == len(y_train)
    assert np.array_equal(np.bincount(y_train[source]), [30] * 4)
    stream = experiment.load_stream(cfg)
    assert np.array_equal(stream.train_images, x_train[pool])  # every stream batch indexes this pool
    x, y, calibration = experiment.pretraining_set(cfg, stream)
    assert np.array_equal(x, stream.transform(x_train[source])) and np.array_equal(y, y_train[source])
    assert stream.info["held_out_source"]["images"] == 120


def test_pretraining_cache_is_keyed_by_the_pretraining_settings(fake_fashion_mnist, tmp_path, monkeypatch):  # noqa: F811
    cfg = _tiny_config(tmp_path, pretrain_cache=str(tmp_path / "cache"), pretrain_seed=0).resolved()
    stream = experiment.load_stream(cfg)
    first = experiment.pretrain(cfg, stream, progress=False)
    (cached,) = os.listdir(tmp_path / "cache")
    assert cached == experiment.pretrained_cache_file(cfg)
    monkeypatch.setattr("pulptrain.optim.SGD", None)  # a second pretraining would fail
    again = experiment.pretrain(replace(cfg, seed=5, bits=4, lr=0.1), stream, progress=False)
    assert all(np.array_equal(first.state[k], again.state[k]) for k in first.state)
    assert experiment.pretrained_cache_file(replace(cfg, pretrain_epochs=2)) != cached
    assert experiment.pretrained_cache_file(replace(cfg, pretrain_seed=1)) != cached
    assert experiment.pretrained_cache_file(replace(cfg, pretrain_seed=None, seed=3)) != cached


def test_paper_like_adaptive_stage_uses_batch_renorm(fake_fashion_mnist, tmp_path):  # noqa: F811
    from pulptrain import nn

    cfg = _tiny_config(tmp_path, batch_renorm=True, lr_layer=21).resolved()
    pretrained = experiment.pretrain(cfg, experiment.load_stream(cfg), progress=False)
    model = pretrained.model(cfg)
    kinds = [type(model.blocks[i][1]) for i in range(27)]
    assert all(k is nn.BatchNorm2d for k in kinds[:22]) and all(k is nn.BatchRenorm2d for k in kinds[22:])


def _scratch_ids(module):
    """The ids of the output buffers of every layer of ``module``."""
    ids, stack = set(), [module]
    while stack:
        m = stack.pop()
        ids.update(id(b) for b in m._scratch.values())
        stack.extend(m.children())
    return ids


def test_evaluation_reuses_its_buffers_and_matches_one_whole_forward(fake_fashion_mnist, tmp_path):  # noqa: F811
    from pulptrain.cl.experiment import _learner
    from pulptrain.models import split

    cfg = _tiny_config(tmp_path, bits=32).resolved()
    stream = experiment.load_stream(cfg)
    pretrained = experiment.pretrain(cfg, stream, progress=False)
    frozen, adaptive = split(pretrained.model(cfg), cfg.lr_layer)
    x_test, y_test = stream.test()
    learner = _learner(cfg, frozen.eval(), adaptive, stream.num_classes, tuple(frozen.forward(x_test[:1]).shape[1:]))
    learner.fit_batch(*stream.batch(0))
    latents = learner.latents(x_test[:37])  # 2 chunks of 16 and a padded one of 5
    adaptive.eval()
    whole = np.argmax(adaptive.forward(latents.copy()), axis=1)
    predicted = learner.predict_latents(latents)
    assert np.array_equal(predicted, whole)
    buffers = _scratch_ids(adaptive)
    again = learner.predict_latents(latents)
    assert again is predicted and np.array_equal(again, whole)
    assert _scratch_ids(adaptive) == buffers  # nothing reallocated
    assert learner.evaluate_latents(latents, y_test[:37]) == pytest.approx(np.mean(whole == y_test[:37]))


def test_preset_defaults_yield_to_options_given_on_the_command_line(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(experiment, "run_experiment", lambda cfg, resume=False: seen.setdefault("cl", cfg) and 1 / 0)
    monkeypatch.setattr(sweep, "run_sweep", lambda base, **grid: seen.update(sweep=(base, grid)) or [])
    with pytest.raises(ZeroDivisionError):
        cli.main(["cl", "--preset", "paper-like", "--lr", "0.03", "--no-batch-renorm", "--out", str(tmp_path)])
    cfg = seen["cl"]
    paper = experiment.PRESETS["paper-like"]
    assert cfg.preset == "paper-like" and cfg.lr == 0.03 and cfg.batch_renorm is False  # given: they win
    assert cfg.num_batches == paper["num_batches"] and cfg.pretrain_source == "held-out"  # not given: the preset's
    assert cfg.first_lr == experiment.ExperimentConfig.first_lr  # in no preset: the plain default
    assert cli.main(["sweep", "--preset", "paper-like", "--seeds", "3,4", "--out", str(tmp_path / "s")]) == 0
    base, grid = seen["sweep"]
    assert base.test_every == paper["test_every"] and grid["seeds"] == [3, 4]
    assert grid["bits"] == experiment.PRESET_GRIDS["paper-like"]["bits"] and grid["lr_layers"] == [19]
    assert cli.main(["sweep", "--out", str(tmp_path / "q")]) == 0
    assert seen["sweep"][0].pretrain_source == "initial-batch" and seen["sweep"][1]["replays"] == [200, 500]


def test_doc_table_puts_the_paired_intervals_next_to_the_papers_numbers():
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
    import doc_tables

    rng = np.random.default_rng(2)
    rows = [_row(s, b, *rng.random(2)) for s in range(6) for b in (32, 8, 7, 2)]
    for r in rows:
        r.update(session="s", session_seconds=60.0, stream_seconds=10.0, cpu_seconds=9.0, machine={"cpu": "X"})
        r["build"] = {"isa": "avx2"}
    data = {
        "settings": {"preset": "paper-like", "dataset": "fashion-mnist"},
        "run": {"backend": "ray", "workers": 2, "threads": 1},
        "tail_batches": sweep.TAIL,
        "wall_seconds": sweep._wall_seconds(rows),
        "cpu_seconds": 9.0 * len(rows),
        "machines": sweep._distinct(rows, "machine"),
        "builds": sweep._distinct(rows, "build"),
        "summary": sweep.summarize(rows),
        "paired": sweep.paired_summary(rows),
        "runs": rows,
    }
    lines = doc_tables.paper_table(data).splitlines()
    assert lines[0].startswith("24 runs (preset paper-like, 6 seeds 0..5), 1.0 min wall (ray, 2 workers), 9.0 s of CPU")
    assert "build: isa avx2" in lines[0]
    fp32 = {r["seed"]: r for r in rows if r["bits"] == 32}
    for line, bits, paper in zip(lines[4:7], (8, 7, 2), ("-0.26", "down to -5", "not reported")):
        d = np.array([100 * (r["tail_accuracy"] - fp32[r["seed"]]["tail_accuracy"]) for r in rows if r["bits"] == bits])
        half = stats.t_quantile(0.975, 5) * d.std(ddof=1) / np.sqrt(6)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == str(bits) and cells[-1] == paper and cells[-2] == "6"
        assert cells[4] == f"{d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}]"


def test_processes_share_a_frozen_stage_only_between_runs_of_the_same_weights_and_test_set(
    fake_fashion_mnist,  # noqa: F811
    tmp_path,
):
    cfg = _tiny_config(tmp_path, pretrain_seed=0).resolved()
    pretrained = experiment.pretrain(cfg, experiment.load_stream(cfg), progress=False)
    same = experiment.Pretrained(
        {k: v.copy() for k, v in pretrained.state.items()}, pretrained.calibration_x.copy(), 4, 1, 0.0, 0.0
    )
    other = experiment.pretrain(replace(cfg, pretrain_seed=1), experiment.load_stream(cfg), progress=False)
    stage = sweep._shared_stage(cfg, pretrained)
    assert sweep._shared_stage(replace(cfg, seed=3, replays=4), same) is stage  # other seed and buffer: shared
    assert sweep._shared_stage(cfg, other) is not stage  # other weights
    assert sweep._shared_stage(replace(cfg, bits=4), pretrained) is not stage
    assert sweep._shared_stage(replace(cfg, data_root=str(tmp_path)), pretrained) is not stage  # other test set
    assert sweep._shared_stage(replace(cfg, test_every=2), pretrained) is not stage
