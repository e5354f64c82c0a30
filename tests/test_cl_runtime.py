"""The C continual-learning runtime (csrc/cl): PCG32 against a pure-Python PCG32, the replay-buffer policies'
exact decisions against pure-Python models of their documented rules, a whole learning batch bitwise against
the pulptrain.nn + pulptrain.optim.SGD path fed the same random decisions, one learning batch against an
independent float64 re-implementation, team-size invariance, the arena size, and bad inputs."""

import math

import numpy as np
import pytest

import pulptrain
from pulptrain import nn
from pulptrain._C import _LearnerCore as LearnerCore
from pulptrain._C import _Pcg32 as Pcg32
from pulptrain._C import _ReplayBufferCore as ReplayBufferCore
from pulptrain.cl import LatentReplayBuffer, LatentReplayLearner
from pulptrain.cl.memory import learner_arena_bytes
from pulptrain.optim import SGD

MASK64 = (1 << 64) - 1


class PyPcg32:
    """PCG32 (pcg32_random_r, pcg32_srandom_r, pcg32_boundedrand_r) and the samplers of pt_cl.h, in Python."""

    def __init__(self, seed, stream):
        self.state, self.inc = 0, ((stream << 1) | 1) & MASK64
        self.next()
        self.state = (self.state + seed) & MASK64
        self.next()

    def next(self):
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & MASK64
        xorshifted = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xorshifted >> rot) | (xorshifted << ((-rot) & 31))) & 0xFFFFFFFF

    def below(self, bound):
        threshold = (2**32 - bound) % bound
        while True:
            r = self.next()
            if r >= threshold:
                return r % bound

    def permutation(self, n):
        out = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out

    def sample(self, n, k):
        pool = list(range(n))
        for i in range(k):
            j = i + self.below(n - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


# ------------------------------------------------------------------------------------------------- PCG32


@pytest.mark.parametrize("seed, stream", [(42, 54), (0, 0), (2**64 - 1, 2**63 + 5), (123456789, 1)])
def test_pcg32_matches_the_reference_generator(seed, stream):
    c, py = Pcg32(seed, stream), PyPcg32(seed, stream)
    assert [c.next_u32() for _ in range(300)] == [py.next() for _ in range(300)]
    bounds = [1, 2, 3, 7, 10, 1000, 2**31 + 1, 2**32 - 1]
    assert [c.below(b) for b in bounds * 20] == [py.below(b) for b in bounds * 20]
    assert c.permutation(57).tolist() == py.permutation(57)
    assert c.sample(40, 13).tolist() == py.sample(40, 13)
    assert c.state == (py.state, py.inc)


def test_pcg32_first_outputs_of_the_published_demo():
    """pcg32-demo (seed 42, stream 54) prints 0xa15c02b7 0x7b47f409 0xba1d3330 first."""
    g = Pcg32(42, 54)
    assert [g.next_u32() for _ in range(3)] == [0xA15C02B7, 0x7B47F409, 0xBA1D3330]


def test_pcg32_below_is_uniform_and_permutations_are_valid():
    g = Pcg32(7, 3)
    draws = np.array([g.below(10) for _ in range(20000)])
    counts = np.bincount(draws, minlength=10)
    chi2 = float(np.sum((counts - 2000.0) ** 2 / 2000.0))
    assert chi2 < 27.9  # the 0.999 quantile of chi-square with 9 degrees of freedom
    # 3 does not divide 2**32: the rejection keeps the bias below what 30000 draws could show
    counts3 = np.bincount([g.below(3) for _ in range(30000)], minlength=3)
    assert float(np.sum((counts3 - 10000.0) ** 2 / 10000.0)) < 13.8  # 0.999 quantile, 2 degrees
    first = np.zeros((6, 6))
    for _ in range(3000):
        p = g.permutation(6)
        assert sorted(p.tolist()) == list(range(6))
        first[np.arange(6), p] += 1
    np.testing.assert_allclose(first / 3000, 1 / 6, atol=0.04)  # every value reaches every position
    s = g.sample(100, 100)
    assert sorted(s.tolist()) == list(range(100)) and len(g.sample(5, 0)) == 0


def test_pcg32_state_round_trip_and_bad_states():
    g = Pcg32(5, 9)
    g.next_u32()
    saved = g.state
    a = [g.next_u32() for _ in range(5)]
    g.state = saved
    assert [g.next_u32() for _ in range(5)] == a
    with pytest.raises(ValueError, match="inc must be odd"):
        g.state = (1, 2)
    with pytest.raises(ValueError, match="state must be a pair"):
        g.state = {"bit_generator": "PCG64"}
    with pytest.raises(ValueError, match="bound"):
        g.below(0)
    with pytest.raises(ValueError, match="k"):
        g.sample(3, 4)


# ------------------------------------------------------------------------------- buffer policy decisions


def model_update(policy, model, rng, n, labels, capacity):
    """The documented policy rules (pt_cl.h) on a list of (sample id, label) slots; returns the writes."""
    writes = []
    if policy == "reference":
        h = min(capacity // (model["batches"] + 1), n)
        picked = rng.sample(n, h)
        fill = min(capacity - len(model["slots"]), h)
        overwrite = rng.sample(len(model["slots"]), h - fill)
        model["slots"] += [None] * fill
        targets = [len(model["slots"]) - fill + k for k in range(fill)] + overwrite
        writes = list(zip(targets, picked))
    elif policy == "reservoir":
        for k in range(n):
            seen = model["seen"] + k + 1
            if len(model["slots"]) < capacity:
                model["slots"].append(None)
                writes.append((len(model["slots"]) - 1, k))
            else:
                j = rng.below(seen)
                if j < capacity:
                    writes.append((j, k))
    else:
        for k in range(n):
            c = labels[k]
            model["class_seen"][c] = model["class_seen"].get(c, 0) + 1
            slots = model["slots"]
            counts = {}
            for s in slots:
                counts[s[1]] = counts.get(s[1], 0) + 1
            slot = None
            if len(slots) < capacity:
                slots.append(None)
                slot = len(slots) - 1
            else:
                largest = max(counts.values())
                if counts.get(c, 0) < largest:
                    biggest = sorted(d for d, m in counts.items() if m == largest)
                    victim = biggest[rng.below(len(biggest))]
                    holders = [i for i, s in enumerate(slots) if s[1] == victim]
                    slot = holders[rng.below(len(holders))]
                elif rng.below(model["class_seen"][c]) < counts[c]:
                    holders = [i for i, s in enumerate(slots) if s[1] == c]
                    slot = holders[rng.below(len(holders))]
            if slot is not None:
                slots[slot] = (model["next_id"] + k, c)
        model["seen"] += n
        model["batches"] += 1
        model["next_id"] += n
        return
    for slot, k in writes:
        model["slots"][slot] = (model["next_id"] + k, labels[k])
    model["seen"] += n
    model["batches"] += 1
    model["next_id"] += n


@pytest.mark.parametrize("policy", ["reference", "reservoir", "class_balanced"])
def test_buffer_policies_make_exactly_the_documented_draws(policy):
    capacity, rng_np = 23, np.random.default_rng(1)
    buf = LatentReplayBuffer(capacity, (1,), bits=32, policy=policy, seed=11, num_classes=6)
    rng = PyPcg32(11, 1)
    model = {"slots": [], "seen": 0, "batches": 0, "next_id": 0, "class_seen": {}}
    for _ in range(9):
        n = int(rng_np.integers(1, 15))
        labels = rng_np.integers(0, 6, n) if policy != "class_balanced" else rng_np.integers(0, 3 + _ % 4, n)
        ids = np.arange(model["next_id"], model["next_id"] + n, dtype=np.float32)[:, None]
        buf.update(ids, labels)
        model_update(policy, model, rng, n, labels.tolist(), capacity)
        stored, stored_labels = buf.get(np.arange(buf.size))
        assert [(int(i), int(c)) for i, c in zip(stored[:, 0], stored_labels)] == model["slots"]
    assert buf.rng.state == (rng.state, rng.inc)
    # the epoch sampler: rng.permutation(size) at the start, a fresh one when it runs out
    order, drawn = rng.permutation(buf.size), []
    for x, _ in buf.replay_batches(5, 6):
        drawn.append(x[:, 0].astype(int).tolist())
    expected, pos = [], 0
    for _ in range(6):
        if pos + 5 > len(order):
            order, pos = rng.permutation(buf.size), 0
        expected.append([model["slots"][s][0] for s in order[pos : pos + 5]])
        pos += 5
    assert drawn == expected


def test_class_balanced_policy_statistics():
    """Three classes arriving one after another, then mixed: the buffer ends balanced and each class's content
    is a uniform sample of its history (early and late samples kept equally often)."""
    kept = np.zeros(60)
    for seed in range(200):
        buf = LatentReplayBuffer(12, (1,), bits=32, policy="class_balanced", seed=seed, num_classes=3)
        for c in range(3):
            buf.update(np.arange(20 * c, 20 * c + 20, dtype=np.float32)[:, None], np.full(20, c))
        assert buf.class_counts(3).tolist() == [4, 4, 4]
        kept[buf.get(np.arange(12))[0][:, 0].astype(int)] += 1
    rate = kept / 200  # 4 of 20 per class: 0.2 each
    np.testing.assert_allclose(rate, 0.2, atol=0.12)
    for c in range(3):
        assert abs(rate[20 * c : 20 * c + 10].mean() - rate[20 * c + 10 : 20 * c + 20].mean()) < 0.05


# ------------------------------------------------------------------------- the step against pulptrain.nn

NUM_CLASSES = 4
LATENT = (3, 4, 4)


def make_adaptive(seed=5, renorm=False):
    rng = np.random.default_rng(seed)
    bn = nn.BatchRenorm2d(8) if renorm else nn.BatchNorm2d(8)
    return nn.Sequential(
        nn.Sequential(nn.DepthwiseConv2d(3, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(3), nn.ReLU6()),
        nn.Sequential(nn.PointwiseConv2d(3, 8, bias=False, rng=rng), bn, nn.ReLU()),
        nn.Conv2d(8, 6, 3, stride=2, padding=1, rng=rng),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6, NUM_CLASSES, rng=rng),
    )


def make_batches():
    rng = np.random.default_rng(3)
    out = []
    for n, classes in ((50, [0, 1]), (23, [2]), (19, [3, 0])):
        out.append(
            (np.abs(rng.standard_normal((n,) + LATENT)).astype(np.float32), rng.choice(classes, n).astype(np.int64))
        )
    return out


class Identity:
    def forward(self, x):
        return x


SETTINGS = dict(
    num_classes=NUM_CLASSES,
    lr=0.05,
    first_lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    epochs=2,
    first_epochs=2,
    minibatch=16,
)


def python_path(adaptive, batches, capacity, freeze_bn):
    """The learner as the pulptrain.nn layers + pulptrain.optim.SGD run it (the Python learner before the C
    runtime), with every random decision drawn from the pure-Python PCG32 (learner seed 3 stream 0, buffer seed
    7 stream 1) and an FP32 reference-policy buffer kept as a list."""
    s = SETTINGS
    lrng, brng = PyPcg32(3, 0), PyPcg32(7, 1)
    stored, loss_fn, optimizer = [], nn.CrossEntropyLoss(), None
    adaptive.needs_input_grad = False
    for i, (x, y) in enumerate(batches):
        n = len(y)
        if i == 0 or not stored:
            new, replays = min(s["minibatch"], n), 0
            steps = -(-n // new)
        else:
            groups = (n + len(stored)) // s["minibatch"]
            new = max(1, n // groups if groups else n)
            replays, steps = max(0, s["minibatch"] - new), n // new
        if i <= 1:
            params = [p for p in adaptive.parameters() if p.requires_grad]
            lr = s["first_lr"] if i == 0 else s["lr"]
            optimizer = SGD(params, lr=lr, momentum=s["momentum"], weight_decay=s["weight_decay"])
        adaptive.train(not freeze_bn)
        for _ in range(s["first_epochs"] if i == 0 else s["epochs"]):
            order = lrng.permutation(n)
            rorder, rpos = (brng.permutation(len(stored)), 0) if replays else (None, 0)
            for step in range(steps):
                picked = order[step * new : (step + 1) * new]
                xb, yb = [x[k] for k in picked], [y[k] for k in picked]
                if replays:
                    per = min(replays, len(stored))
                    if rpos + per > len(rorder):
                        rorder, rpos = brng.permutation(len(stored)), 0
                    xb += [stored[k][0] for k in rorder[rpos : rpos + per]]
                    yb += [stored[k][1] for k in rorder[rpos : rpos + per]]
                    rpos += per
                optimizer.zero_grad()
                logits = adaptive.forward(np.ascontiguousarray(np.stack(xb)))
                loss_fn.forward(logits, np.array(yb, np.int64))
                adaptive.backward(loss_fn.backward())
                optimizer.step()
        adaptive.eval()
        h = min(capacity // (i + 1), n)
        picked = brng.sample(n, h)
        fill = min(capacity - len(stored), h)
        overwrite = brng.sample(len(stored), h - fill)
        stored += [None] * fill
        for slot, k in zip(list(range(len(stored) - fill, len(stored))) + overwrite, picked):
            stored[slot] = (x[k], int(y[k]))
    return stored


@pytest.mark.parametrize("freeze_bn, renorm", [(False, False), (True, False), (False, True)])
def test_c_step_is_bitwise_the_pulptrain_nn_path(freeze_bn, renorm):
    batches, capacity = make_batches(), 30
    reference = make_adaptive(renorm=renorm)
    stored = python_path(reference, batches, capacity, freeze_bn)
    buffer = LatentReplayBuffer(capacity, LATENT, bits=32, seed=7)
    learner = LatentReplayLearner(
        Identity(), make_adaptive(renorm=renorm), buffer, seed=3, freeze_bn=freeze_bn, **SETTINGS
    )
    for x, y in batches:
        learner.fit_batch(x, y)
    for (name, a), (_, b) in zip(learner.adaptive.state_dict().items(), reference.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    latents, labels = buffer.get(np.arange(buffer.size))
    np.testing.assert_array_equal(latents, np.stack([s[0] for s in stored]))
    assert labels.tolist() == [s[1] for s in stored]


@pytest.mark.parametrize("cwr", [False, True])
def test_whole_fit_batches_are_bitwise_the_same_for_every_team_size(cwr):
    results = []
    before = pulptrain.get_num_threads()
    try:
        for threads in (1, 2, 3):
            pulptrain.set_num_threads(threads)
            buffer = LatentReplayBuffer(30, LATENT, bits=5, seed=7)
            learner = LatentReplayLearner(
                Identity(), make_adaptive(), buffer, seed=3, cwr=cwr, quantize_new=True, **SETTINGS
            )
            for x, y in make_batches():
                learner.fit_batch(x, y)
            results.append(learner.state_dict())
    finally:
        pulptrain.set_num_threads(before)
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key in results[0]:
            np.testing.assert_array_equal(other[key], results[0][key], err_msg=key)


def test_c_predict_is_the_nn_eval_forward():
    buffer = LatentReplayBuffer(30, LATENT, bits=8, seed=7)
    learner = LatentReplayLearner(Identity(), make_adaptive(), buffer, seed=3, **SETTINGS)
    for x, y in make_batches():
        learner.fit_batch(x, y)
    rng = np.random.default_rng(5)
    learner.classifier.weight.data[...] = rng.standard_normal(learner.classifier.weight.shape)  # varied classes
    latents = np.abs(rng.standard_normal((70,) + LATENT)).astype(np.float32)
    classes = learner._core.predict(latents.reshape(70, -1))  # rows_max rows at a time
    assert learner._core.rows_max < 70
    np.testing.assert_array_equal(classes, learner.predict_latents(latents))
    assert len(set(classes.tolist())) > 1


# -------------------------------------------------------------------- one batch against float64 numpy


def float64_batch(w1, g1, b1, w2, bias2, x, y, order, settings, steps_limit):
    """Pointwise (no bias) + BatchNorm (training) + ReLU + global average pool + Linear, cross-entropy, SGD with
    momentum and weight decay, all in float64 numpy, over the mini-batches of `order`."""
    params = [w1, g1, b1, w2, bias2]
    w1 = w1.reshape(w1.shape[:2])  # a view: (C_out, C_in, 1, 1) -> (C_out, C_in)
    moms = [None] * 5
    new = min(settings["minibatch"], len(y))
    for step in range(steps_limit):
        idx = order[step * new : (step + 1) * new]
        xb, yb = x[idx], y[idx]
        n, c, h, w = xb.shape
        z = np.einsum("oc,nchw->nohw", w1, xb)
        mean = z.mean(axis=(0, 2, 3), keepdims=True)
        var = z.var(axis=(0, 2, 3), keepdims=True)
        xhat = (z - mean) / np.sqrt(var + 1e-5)
        a = g1[None, :, None, None] * xhat + b1[None, :, None, None]
        r = np.maximum(a, 0)
        p = r.mean(axis=(2, 3))
        logits = p @ w2.T + bias2
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        soft = e / e.sum(axis=1, keepdims=True)
        dl = soft.copy()
        dl[np.arange(n), yb] -= 1
        dl /= n
        dw2, db2 = dl.T @ p, dl.sum(axis=0)
        dp = dl @ w2
        dr = np.broadcast_to(dp[:, :, None, None] / (h * w), r.shape)
        da = dr * (a > 0)
        dg, db = (da * xhat).sum(axis=(0, 2, 3)), da.sum(axis=(0, 2, 3))
        m = n * h * w
        dxhat = da * g1[None, :, None, None]
        dz = (
            dxhat
            - dxhat.sum(axis=(0, 2, 3), keepdims=True) / m
            - xhat * (dxhat * xhat).sum(axis=(0, 2, 3), keepdims=True) / m
        ) / np.sqrt(var + 1e-5)
        dw1 = np.einsum("nohw,nchw->oc", dz, xb)
        for k, (param, grad) in enumerate(zip(params, [dw1.reshape(params[0].shape), dg, db, dw2, db2])):
            g = grad + settings["weight_decay"] * param
            moms[k] = g.copy() if moms[k] is None else settings["momentum"] * moms[k] + g
            param -= settings["first_lr"] * moms[k]
    return params


def test_one_batch_against_float64_numpy():
    rng = np.random.default_rng(0)
    settings = dict(
        num_classes=3, lr=0.05, first_lr=0.2, momentum=0.9, weight_decay=1e-3, epochs=1, first_epochs=1, minibatch=24
    )
    adaptive = nn.Sequential(
        nn.PointwiseConv2d(5, 6, bias=False, rng=rng),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.GlobalAvgPool2d(),
        nn.Flatten(),
        nn.Linear(6, 3, rng=rng),
    )
    start = [p.data.astype(np.float64) for p in adaptive.parameters()]
    x = np.abs(rng.standard_normal((72, 5, 4, 4))).astype(np.float32)
    y = rng.integers(0, 3, 72)
    learner = LatentReplayLearner(Identity(), adaptive, LatentReplayBuffer(10, (5, 4, 4), bits=32), seed=9, **settings)
    order = PyPcg32(9, 0).permutation(72)
    learner.fit_batch(x, y)
    steps = 3
    expected = float64_batch(*[a.copy() for a in start], x.astype(np.float64), y, order, settings, steps)
    # Tolerance: float32 rounding (u = 2**-24) of the longest reduction, M = N * H * W = 24 * 16 = 384 values (BatchNorm
    # statistics, the pointwise weight gradient), bounds each gradient's relative error by gamma_M = M u / (1 - M u)
    # (Higham); about 10 dependent operations per step and `steps` steps compound it linearly, relative to the size
    # of the weight updates; plus one float32 rounding of the weights themselves.
    gamma = 384 * 2.0**-24 / (1 - 384 * 2.0**-24)
    for name, got, want, before in zip(
        ("w1", "gamma", "beta", "w2", "b2"), learner.adaptive.parameters(), expected, start
    ):
        moved = np.max(np.abs(want - before))
        tol = steps * 10 * gamma * moved + 2.0**-24 * np.max(np.abs(want))
        assert moved > 100 * tol, name  # the weights really moved
        np.testing.assert_allclose(got.data, want, rtol=0, atol=tol, err_msg=name)


# -------------------------------------------------------------------------------------------- the arena


def test_memory_reports_the_arena_the_learner_allocates():
    from pulptrain.models import mobilenet_v1, split

    model = mobilenet_v1(width_mult=0.25, num_classes=10, input_size=32, in_channels=1, first_stride=1)
    frozen, adaptive = split(model, 19)
    latent = frozen.forward(np.zeros((1, 1, 32, 32), np.float32)).shape[1:]
    buffer = LatentReplayBuffer(200, latent, bits=8, scale=0.1)
    learner = LatentReplayLearner(frozen, adaptive, buffer, num_classes=10, minibatch=32)
    x = np.random.default_rng(0).random((40, 1, 32, 32), dtype=np.float32)
    learner.fit_batch(x, np.arange(40) % 10)
    setting = dict(
        width_mult=0.25,
        input_size=32,
        lr_layer=19,
        replays=200,
        batch=32,
        num_classes=10,
        in_channels=1,
        first_stride=1,
    )
    expected = learner_arena_bytes(**setting, max_new=40)
    assert learner.arena_bytes == expected
    assert learner_arena_bytes(**setting, max_new=400) > expected


def test_batches_of_one_size_need_a_smaller_arena(capsys):
    """min_new = max_new = N: the arena holds the mini-batches of N new samples only (with minibatch 32 and N =
    100, 100 // ((100 + 1) // 32) = 33 rows) instead of those of any batch up to N (62 // 1 = 62 rows at N = 62)."""
    from pulptrain import cli

    shape = dict(width_mult=0.25, input_size=32, lr_layer=19, replays=200, batch=32, num_classes=10, in_channels=1)
    any_size = learner_arena_bytes(**shape, first_stride=1, max_new=100, threads=1)
    one_size = learner_arena_bytes(**shape, first_stride=1, max_new=100, min_new=100, threads=1)
    # one more sample, fewer rows: N = 62 makes one group of 62 new rows, N = 63 two groups of 31 (+ 1 replay)
    at_62 = learner_arena_bytes(**shape, first_stride=1, max_new=62, min_new=62, threads=1)
    at_63 = learner_arena_bytes(**shape, first_stride=1, max_new=63, min_new=63, threads=1)
    assert one_size < any_size
    assert at_63 < at_62
    with pytest.raises(ValueError, match="min_new"):
        learner_arena_bytes(**shape, max_new=10, min_new=11)
    with pytest.raises(SystemExit) as refused:
        cli.main(["memory", "--max-new", "10", "--min-new", "11"])
    assert refused.value.code == 2
    assert "--min-new must be at most --max-new (10), got 11" in capsys.readouterr().err


def test_memory_command_reports_the_arena(capsys):
    """`pulptrain memory --json` gives the arena of learner_arena_bytes; with batches of at most one mini-batch
    the arena holds the activations of the memory model (the same tensors) plus the step's other scratch, of which
    only the kernels' workspace (matmul packing, per core) is sizeable."""
    import json

    from pulptrain import cli
    from pulptrain.cl.memory import memory_breakdown

    shape = dict(width_mult=0.25, input_size=32, lr_layer=19, replays=300, batch=64, num_classes=10, in_channels=1)
    flags = "--width 0.25 --input-size 32 --lr-layer 19 --replays 300 --batch 64 --num-classes 10 --in-channels 1"
    assert cli.main(["memory", *flags.split(), "--first-stride", "1", "--threads", "2", "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["learner_arena"]
    assert reported == learner_arena_bytes(**shape, first_stride=1, threads=2)
    activations = memory_breakdown(**shape, first_stride=1).activations
    assert activations < reported < 1.25 * activations


def test_rows_max_bounds_every_plan():
    """The arena's mini-batch rows hold the largest mini-batch any plan makes (new + replays)."""
    buffer = LatentReplayBuffer(30, LATENT, bits=32, seed=1)
    learner = LatentReplayLearner(Identity(), make_adaptive(), buffer, seed=3, **SETTINGS)
    x, y = make_batches()[0]
    learner.fit_batch(x, y)  # batch 0: the buffer holds 30
    core = learner._core
    for n in range(1, 50):
        new, replays, _, _ = core.plan(n)
        assert new + min(replays, buffer.size) <= core.rows_max


# ------------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_are_readable_errors():
    storage, labels = np.zeros((4, 3), np.uint8), np.zeros(4, np.int16)
    with pytest.raises(ValueError, match="bits must be 1..8 or 32"):
        ReplayBufferCore(4, 3, 9, 0, 5, storage, labels, 1.0, 0, 1)
    with pytest.raises(ValueError, match="bits"):
        LatentReplayBuffer(4, (3,), bits=0)
    with pytest.raises(ValueError, match="storage must have 48 elements, got 12"):
        ReplayBufferCore(4, 12, 8, 0, 5, storage, labels, 1.0, 0, 1)
    buf = LatentReplayBuffer(4, (3,), bits=32, num_classes=5)
    with pytest.raises(ValueError, match=r"labels must be below num_classes \(5\)"):
        buf.update(np.zeros((2, 3), np.float32), [1, 5])
    with pytest.raises(ValueError, match="num_classes"):
        LatentReplayBuffer(4, (3,), num_classes=40000)
    learner = LatentReplayLearner(Identity(), make_adaptive(), LatentReplayBuffer(8, LATENT, bits=32), **SETTINGS)
    with pytest.raises(ValueError, match="labels must be in"):
        learner.fit_batch(np.zeros((3,) + LATENT, np.float32), np.array([0, 1, NUM_CLASSES]))
    with pytest.raises(ValueError, match="num_classes"):
        LatentReplayLearner(
            Identity(), make_adaptive(), LatentReplayBuffer(8, LATENT, bits=32, num_classes=2), **SETTINGS
        )
    from pulptrain.cl.learner import layer_table

    specs, _ = layer_table(learner.adaptive, LATENT, learner.momentum_buffers)
    with pytest.raises(ValueError, match="layer table, the buffer or the settings are invalid: null pointer"):
        LearnerCore(layer_table(learner.adaptive, LATENT)[0], learner.settings, learner.buffer._core, None, 0, 0)
    need = learner._core.arena_bytes
    with pytest.raises(ValueError, match=f"arena_bytes must be at least {need}"):
        LearnerCore(specs, learner.settings, learner.buffer._core, None, 0, 0, arena_bytes=need - 1)
    with pytest.raises(ValueError, match="weight must have"):
        bad = [dict(spec) for spec in specs]
        bad[0]["weight"] = np.zeros(2, np.float32)
        LearnerCore(bad, learner.settings, learner.buffer._core, None, 0, 0)
    assert math.isfinite(learner.fit_batch(np.ones((5,) + LATENT, np.float32), np.arange(5) % 4)["loss"])


def test_c_application_under_sanitizers(tmp_path):
    """tests/c/cl_step.c drives the runtime from C alone (static arrays, one arena, serial team backend as on a
    microcontroller) under AddressSanitizer + UndefinedBehaviorSanitizer: no report, bad calls refused, and
    teams of 1 and 3 virtual cores give bitwise the same weights, statistics, buffer and predictions."""
    import glob
    import os
    import shutil
    import subprocess

    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("no C compiler")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sources = sorted(glob.glob(os.path.join(root, "csrc", "**", "*.c"), recursive=True))
    headers = glob.glob(os.path.join(root, "csrc", "**", "*.h"), recursive=True)
    includes = sorted({f"-I{os.path.dirname(p)}" for p in headers})
    exe = str(tmp_path / "cl_step")
    flags = ["-std=c11", "-O1", "-g", "-ffp-contract=fast", "-march=native", "-fsanitize=address,undefined"]
    build = subprocess.run(
        [cc, *flags, "-fno-sanitize-recover=all", *includes, os.path.join(root, "tests", "c", "cl_step.c"), *sources]
        + ["-lm", "-o", exe],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0 and ("sanitize" in build.stderr or "march" in build.stderr):
        pytest.skip(f"the C compiler has no sanitizers or no -march=native: {build.stderr.strip()[:200]}")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([exe], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr


def test_c_application_on_rv32_bare_metal(tmp_path):
    """The same C application built for rv32imfc bare metal (picolibc, semihosting; the flags of tools/riscv) runs
    under qemu-system-riscv32: the step, the buffer and prediction work on the target, teams of 1 and 3 virtual
    cores bitwise equal. Skipped without the cross toolchain or QEMU."""
    import glob
    import os
    import shutil
    import subprocess

    cc, qemu = shutil.which("riscv64-unknown-elf-gcc"), shutil.which("qemu-system-riscv32")
    if cc is None or qemu is None:
        pytest.skip("no riscv64-unknown-elf-gcc or qemu-system-riscv32")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sources = sorted(glob.glob(os.path.join(root, "csrc", "*", "*.c")))  # csrc/arch/ stays out, as in tools/riscv
    headers = glob.glob(os.path.join(root, "csrc", "**", "*.h"), recursive=True)
    includes = sorted({f"-I{os.path.dirname(p)}" for p in headers})
    elf = str(tmp_path / "cl_step.elf")
    flags = "-march=rv32imfc -mabi=ilp32f -O3 -std=c11 -ffp-contract=fast -Wall -Wno-unknown-pragmas".split()
    libc = "--specs=picolibc.specs --oslib=semihost --crt0=semihost".split()
    memory = [
        "-Wl,--defsym=__flash=0x80000000",
        "-Wl,--defsym=__flash_size=0x00800000",
        "-Wl,--defsym=__ram=0x80800000",
        "-Wl,--defsym=__ram_size=0x07800000",
        "-Wl,--defsym=__stack_size=0x40000",
    ]
    build = subprocess.run(
        [cc, *flags, *libc, *includes, os.path.join(root, "tests", "c", "cl_step.c"), *sources, *memory, "-lm"]
        + ["-o", elf],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0 and "picolibc" in build.stderr:
        pytest.skip(f"no picolibc for the cross compiler: {build.stderr.strip()[:200]}")
    assert build.returncode == 0, build.stderr
    machine = "-machine virt -m 128M -cpu rv32,a=false,d=false -nographic -bios none".split()
    run = subprocess.run(
        [qemu, *machine, "-semihosting-config", "enable=on,target=native", "-kernel", elf],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # semihosting writes the program's output through QEMU's stderr
    assert run.returncode == 0 and (run.stdout + run.stderr).split() == ["ok"], run.stdout + run.stderr
