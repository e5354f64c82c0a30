"""LatentReplayLearner: mini-batch composition, latents captured once, backward stopping at the LR layer,
CWR*, learning, checkpoint/resume equality and bad checkpoints. The step itself runs in C (csrc/cl): the
mini-batches are observed through ``last_minibatch()`` from the progress hook, which runs after every step.
The C step's arithmetic is compared with independent references in test_cl_runtime.py."""

import os

import numpy as np
import pytest

from pulptrain import nn
from pulptrain.cl import LatentReplayBuffer
from pulptrain.cl.learner import CheckpointError, LatentReplayLearner

NUM_CLASSES = 5
IMAGE = (2, 4, 4)
LATENT = (4, 4, 4)


class Spy(nn.Module):
    """Identity written in Python: not a layer the C step can run."""

    def forward(self, x):
        return x

    def _backward(self, dy, need_input_grad):
        return dy


class CountingFrozen:
    def __init__(self, module):
        self.module, self.rows = module, 0

    def forward(self, x):
        self.rows += len(x)
        return self.module.forward(x)

    def eval(self):
        self.module.eval()

    def state_dict(self):
        return self.module.state_dict()


def make_frozen(seed=0):
    rng = np.random.default_rng(seed)
    frozen = nn.Sequential(nn.Conv2d(IMAGE[0], LATENT[0], 3, padding=1, rng=rng), nn.ReLU())
    return frozen.requires_grad_(False)


def make_adaptive(seed=1):
    rng = np.random.default_rng(seed)
    layers = [
        nn.PointwiseConv2d(LATENT[0], 16, rng=rng),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.GlobalAvgPool2d(),
        nn.Flatten(),
        nn.Linear(16, NUM_CLASSES, rng=rng),
    ]
    return nn.Sequential(*layers)


def make_data(n, classes, seed):
    """Images whose mean depends on the class, so the task is learnable."""
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, n)
    centers = np.random.default_rng(99).standard_normal((NUM_CLASSES,) + IMAGE).astype(np.float32)
    x = (centers[y] + 0.5 * rng.standard_normal((n,) + IMAGE)).astype(np.float32)
    return x, y.astype(np.int64)


def make_learner(frozen=None, capacity=1500, bits=32, adaptive_seed=1, **kwargs):
    buffer = LatentReplayBuffer(capacity, LATENT, bits=bits, seed=7)
    return LatentReplayLearner(
        frozen if frozen is not None else make_frozen(),
        make_adaptive(adaptive_seed),
        buffer,
        num_classes=NUM_CLASSES,
        seed=3,
        **kwargs,
    )


class Recorder:
    """A progress hook that keeps a copy of every step's mini-batch (the adaptive stage's input)."""

    def __init__(self, learner):
        self.learner, self.steps, self.inputs, self.addresses = learner, 0, [], []

    def update(self, n):
        self.steps += n
        latents, _ = self.learner.last_minibatch()
        self.inputs.append(np.array(latents))
        self.addresses.append(latents.__array_interface__["data"][0])


def test_minibatch_composition_latents_once_and_backward_stop():
    frozen = CountingFrozen(make_frozen())
    learner = make_learner(frozen=frozen, epochs=2, first_epochs=1)
    spy = Recorder(learner)
    x0, y0 = make_data(1500, [0, 1, 2, 3], seed=0)
    stats = learner.fit_batch(x0, y0, progress=spy)
    assert (stats["new_per_step"], stats["replays_per_step"], stats["steps_per_epoch"]) == (128, 0, 12)
    assert learner.steps_for(300) == 2 * 14
    assert [len(a) for a in spy.inputs] == [128] * 11 + [1500 - 11 * 128]
    assert learner.buffer.size == 1500 and frozen.rows == 1500

    spy.inputs.clear()
    stored = learner.buffer.get(np.arange(1500))[0].reshape(1500, -1)
    x1, y1 = make_data(300, [4], seed=1)
    new_latents = learner.latents(x1).reshape(300, -1)
    frozen.rows = 0

    counter = Recorder(learner)
    stats = learner.fit_batch(x1, y1, progress=counter)
    spy.inputs = counter.inputs
    assert counter.steps == 2 * 14
    # cur_sz = 300 // ((300 + 1500) // 128) = 21 new + 107 replays, 300 // 21 = 14 steps per epoch
    assert (stats["new_per_step"], stats["replays_per_step"], stats["steps_per_epoch"]) == (21, 107, 14)
    assert frozen.rows == 300, "latents of the new samples are computed once, not once per epoch"
    assert len(spy.inputs) == 2 * 14 and all(len(a) == 128 for a in spy.inputs)
    new_rows = {r.tobytes() for r in new_latents}
    stored_rows = {r.tobytes(): k for k, r in enumerate(stored)}
    for epoch in range(2):
        replay_slots, new_seen = [], set()
        for a in spy.inputs[epoch * 14 : (epoch + 1) * 14]:
            rows = a.reshape(128, -1)
            assert all(r.tobytes() in new_rows for r in rows[:21]), "new latents come first"
            replay_slots += [stored_rows[r.tobytes()] for r in rows[21:]]
            new_seen |= {r.tobytes() for r in rows[:21]}
        assert len(set(replay_slots)) == 14 * 107, "replays without replacement within an epoch"
        assert len(new_seen) == 14 * 21
    assert learner._core.first_trained == 0, "the backward pass stops at the first trainable layer above the LR"
    for p in learner.frozen.module.parameters():
        assert not p.grad.any()
    # after batch 1: h = min(1500 // 2, 300) = 300 latents of class 4 in the buffer
    assert learner.buffer.class_counts(NUM_CLASSES)[4] == 300


def learn_stream(capacity):
    learner = make_learner(capacity=capacity, first_lr=0.05, lr=0.02, epochs=4, first_epochs=15, minibatch=32)
    learner.fit_batch(*make_data(400, [0, 1, 2], seed=0))
    for b, cls in enumerate([3, 4, 0, 3, 4, 1]):
        learner.fit_batch(*make_data(60, [cls], seed=10 + b))
    return learner


def test_learns_with_replays_and_forgets_without():
    xt, yt = make_data(500, list(range(NUM_CLASSES)), seed=5)
    with_replays = learn_stream(capacity=200).evaluate(xt, yt)
    without = learn_stream(capacity=1).evaluate(xt, yt)
    assert with_replays > 0.7 and with_replays > without + 0.3, (with_replays, without)
    learner = learn_stream(capacity=200)
    assert learner.predict(xt[:7]).shape == (7,)
    test_latents = learner.latents(xt)
    assert learner.evaluate_latents(test_latents, yt) == learner.evaluate(xt, yt) == with_replays
    with pytest.raises(ValueError, match="same length"):
        learner.evaluate_latents(test_latents, yt[:-1])
    with pytest.raises(ValueError, match="latents must have shape"):
        learner.predict_latents(xt)


def test_cwr_consolidation_formula():
    learner = make_learner(cwr=True)
    fc = learner.classifier
    assert fc.weight.shape == (NUM_CLASSES, 16)
    rng = np.random.default_rng(0)
    counts = np.array([30, 0, 10, 0, 0])  # present classes 0 and 2
    w1 = rng.standard_normal(fc.weight.shape).astype(np.float32)
    fc.weight.data[...] = w1
    learner._cwr_consolidate(counts)
    avg = w1[[0, 2]].mean()
    np.testing.assert_allclose(learner.cw[[0, 2]], w1[[0, 2]] - avg, rtol=1e-6, atol=1e-6)
    assert learner.past.tolist() == [30, 0, 10, 0, 0] and learner.cw_set.tolist() == [True, False, True, False, False]

    learner._cwr_reset(np.array([0, 0, 1, 1, 0]))
    expected = np.zeros_like(w1)
    expected[2] = learner.cw[2]
    np.testing.assert_array_equal(fc.weight.data, expected)
    np.testing.assert_array_equal(fc.bias.data, [0, 0, learner.cb[2], 0, 0])

    w2 = rng.standard_normal(fc.weight.shape).astype(np.float32)
    fc.weight.data[...] = w2
    cw_before = learner.cw.copy()
    learner._cwr_consolidate(np.array([0, 0, 40, 20, 0]))
    avg2 = w2[[2, 3]].mean()
    wpast = np.sqrt(10 / 40)
    np.testing.assert_allclose(learner.cw[2], (cw_before[2] * wpast + w2[2] - avg2) / (wpast + 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(learner.cw[3], w2[3] - avg2, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(learner.cw[0], cw_before[0])
    learner._cwr_load_all()
    np.testing.assert_array_equal(fc.weight.data[[0, 2, 3]], learner.cw[[0, 2, 3]])


def test_cwr_in_training_consolidates_present_classes():
    learner = make_learner(capacity=100, cwr=True, first_epochs=1, epochs=1, first_lr=0.05)
    x0, y0 = make_data(200, [0, 1], seed=0)
    learner.fit_batch(x0, y0)
    w = learner.classifier.weight.data
    assert learner.cw_set.tolist() == [True, True, False, False, False]
    np.testing.assert_array_equal(w[:2], learner.cw[:2])
    assert learner.past.tolist() == np.bincount(y0, minlength=NUM_CLASSES).tolist()
    in_buffer = learner.buffer.class_counts(NUM_CLASSES)
    cw0 = learner.cw[0].copy()
    learner.fit_batch(*make_data(50, [3], seed=1))
    # batch 1: the present classes are those of the new data and of the buffer
    assert learner.cw_set.tolist() == [True, True, False, True, False]
    np.testing.assert_array_equal(w[[0, 1, 3]], learner.cw[[0, 1, 3]])
    assert learner.past[3] == 50 and learner.past[0] == (y0 == 0).sum() + in_buffer[0]
    assert not np.array_equal(learner.cw[0], cw0)


def run(learner, batches):
    for x, y in batches:
        learner.fit_batch(x, y)


def stream_batches():
    return [make_data(300, [0, 1, 2], seed=0)] + [make_data(40, [c], seed=20 + c) for c in (3, 1, 4, 0, 3)]


@pytest.mark.parametrize("cwr", [False, True])
def test_checkpoint_resume_gives_identical_results(tmp_path, cwr):
    batches = stream_batches()
    xt, yt = make_data(200, list(range(NUM_CLASSES)), seed=9)
    settings = dict(
        capacity=150,
        cwr=cwr,
        epochs=2,
        first_epochs=2,
        minibatch=32,
        first_lr=0.02,
        lr=0.005,
    )

    straight = make_learner(**settings)
    run(straight, batches)

    first = make_learner(**settings)
    path = tmp_path / "ckpt" / "state.npz"
    for x, y in batches[:3]:
        first.fit_batch(x, y)
        first.save_checkpoint(path)
    resumed = make_learner(adaptive_seed=42, **settings)  # other initial weights: all must come from the file
    resumed.load_checkpoint(path)
    assert resumed.batches_seen == 3
    run(resumed, batches[3:])

    for (name, a), (_, b) in zip(straight.adaptive.state_dict().items(), resumed.adaptive.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(straight.buffer.get(np.arange(150))[0], resumed.buffer.get(np.arange(150))[0])
    assert straight.evaluate(xt, yt) == resumed.evaluate(xt, yt)
    assert os.listdir(tmp_path / "ckpt") == ["state.npz"], "no temporary files left behind"


def test_bad_checkpoints(tmp_path):
    learner = make_learner(capacity=100, first_epochs=1, epochs=1)
    learner.fit_batch(*make_data(120, [0, 1], seed=0))
    path = tmp_path / "state.npz"
    learner.save_checkpoint(path)

    with pytest.raises(FileNotFoundError):
        learner.load_checkpoint(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        learner.load_checkpoint(garbage)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        learner.load_checkpoint(truncated)

    other = make_learner(capacity=100, first_epochs=1, epochs=1, lr=1e-3)
    with pytest.raises(CheckpointError, match="other settings"):
        other.load_checkpoint(path)
    other = make_learner(frozen=make_frozen(seed=5), capacity=100, first_epochs=1, epochs=1)
    with pytest.raises(CheckpointError, match="frozen stage"):
        other.load_checkpoint(path)
    other = make_learner(capacity=99, first_epochs=1, epochs=1)
    before = other.adaptive.state_dict()
    with pytest.raises(CheckpointError, match="does not fit"):
        other.load_checkpoint(path)
    for name, value in other.adaptive.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert other.batches_seen == 0 and other.buffer.size == 0


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    learner = make_learner(capacity=50, first_epochs=1)
    learner.fit_batch(*make_data(60, [0, 1], seed=0))
    path = tmp_path / "state.npz"
    learner.save_checkpoint(path)
    good = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        learner.save_checkpoint(path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["state.npz"]


def test_quantized_buffer_and_quantize_new():
    learner = make_learner(capacity=100, bits=7, quantize_new=True, first_epochs=1, epochs=1)
    learner.fit_batch(*make_data(120, [0, 1], seed=0))
    learner.fit_batch(*make_data(40, [2], seed=1))
    assert learner.buffer.scale is not None and learner.buffer.nbytes == 100 * (-(-64 * 7 // 8) + 2)


@pytest.mark.parametrize("lr_bits", [8, 7])
def test_int8_frozen_stage_codes_are_stored_exactly(lr_bits):
    from pulptrain.frozen_int8 import quantize_frozen

    float_stage = nn.Sequential(
        nn.Sequential(
            nn.Conv2d(IMAGE[0], LATENT[0], 3, padding=1, bias=False, rng=np.random.default_rng(0)),
            nn.BatchNorm2d(LATENT[0]),
            nn.ReLU(),
        )
    )
    x0, y0 = make_data(80, [0, 1], seed=0)
    frozen = quantize_frozen(float_stage, x0, lr_bits=lr_bits)
    learner = make_learner(frozen=frozen, capacity=100, bits=lr_bits, first_epochs=1)
    assert learner.buffer.scale == frozen.scale
    learner.fit_batch(x0, y0)
    codes = frozen.forward(x0).codes
    stored = learner.buffer.codes(np.arange(80)).reshape(80, -1)
    assert sorted(map(bytes, stored)) == sorted(map(bytes, codes.reshape(80, -1)))
    path_state = learner.state_dict()
    assert str(path_state["meta"]).count(learner._frozen_fingerprint()) == 1 and learner._frozen_fingerprint()


def test_only_the_c_sgd_trains():
    """The C step runs pulptrain.optim.SGD's update (test_cl_runtime compares them bitwise); another optimizer
    is refused at construction rather than silently ignored."""
    from pulptrain.optim import Adam

    with pytest.raises(TypeError, match="optimizer_factory must be None"):
        make_learner(optimizer_factory=lambda params, lr, momentum, weight_decay: Adam(params, lr))


def test_bad_arguments():
    with pytest.raises(ValueError, match="minibatch"):
        make_learner(minibatch=0)
    with pytest.raises(ValueError, match="lr"):
        make_learner(lr=0)
    with pytest.raises(TypeError, match="adaptive"):
        LatentReplayLearner(make_frozen(), object(), LatentReplayBuffer(4, LATENT, bits=32), num_classes=5)
    learner = make_learner()
    with pytest.raises(ValueError, match="labels must be in"):
        learner.fit_batch(*make_data(4, [0], seed=0)[:1], np.array([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="y must hold"):
        learner.fit_batch(make_data(4, [0], seed=0)[0], np.zeros(3, np.int64))
    wrong = LatentReplayLearner(
        make_frozen(), make_adaptive(), LatentReplayBuffer(4, (4, 2, 2), bits=32), num_classes=NUM_CLASSES
    )
    with pytest.raises(ValueError, match="latents of shape"):
        wrong.fit_batch(*make_data(4, [0], seed=0))
    with pytest.raises(ValueError, match=r"adaptive\.0 \(PointwiseConv2d\)"):
        LatentReplayLearner(make_frozen(), make_adaptive(), LatentReplayBuffer(4, (3, 2, 2), bits=32), num_classes=5)
    with pytest.raises(TypeError, match=r"adaptive\.1 \(Spy\) is not a layer the C learner step runs"):
        LatentReplayLearner(
            make_frozen(),
            nn.Sequential(nn.PointwiseConv2d(4, 4), Spy(), nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(4, 5)),
            LatentReplayBuffer(4, LATENT, bits=32),
            num_classes=5,
        )


def test_minibatches_are_assembled_in_one_reused_array():
    learner = make_learner(capacity=200, bits=8, first_epochs=1, epochs=2, minibatch=32)
    recorder = Recorder(learner)
    learner.fit_batch(*make_data(200, [0, 1], seed=0), progress=recorder)
    learner.fit_batch(*make_data(60, [2], seed=1), progress=recorder)
    lengths = [len(a) for a in recorder.inputs]
    assert learner.minibatch_plan(60)[1] > 0 and 32 in lengths  # steps with replays happened
    assert len(set(recorder.addresses)) == 1  # every step, with or without replays, in the same array


def test_int8_stage_codes_train_like_their_dequantized_values():
    """An INT8 stage's LatentCodes go to the buffer as they are; a float stage emitting the same latents as
    float32 (scale * codes) goes through the buffer's quantizer. Both learn bitwise the same."""
    from pulptrain.frozen_int8 import quantize_frozen

    float_stage = nn.Sequential(
        nn.Sequential(
            nn.Conv2d(IMAGE[0], LATENT[0], 3, padding=1, bias=False, rng=np.random.default_rng(0)),
            nn.BatchNorm2d(LATENT[0]),
            nn.ReLU(),
        )
    )
    x0, y0 = make_data(90, [0, 1], seed=0)
    int8_stage = quantize_frozen(float_stage, x0, lr_bits=6)

    class Dequantized:
        def forward(self, x):
            return int8_stage.forward(x).values()

    learners = []
    for frozen in (int8_stage, Dequantized()):
        learner = make_learner(
            frozen=frozen, capacity=50, bits=6, first_epochs=2, epochs=2, minibatch=16, cwr=True, frozen_batch=40
        )
        learner.buffer.scale = int8_stage.scale
        for i, (classes, n) in enumerate([([0, 1], 90), ([2], 40), ([3, 4], 40)]):
            learner.fit_batch(*((x0, y0) if i == 0 else make_data(n, classes, seed=i)))
        learners.append(learner)
    a, b = (learner.state_dict() for learner in learners)
    for key in a:
        if key != "meta":  # the frozen fingerprints differ (one stage has no state_dict)
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
