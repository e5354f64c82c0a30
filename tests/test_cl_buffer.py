"""LatentReplayBuffer: replacement policies, bit-packed storage, sampling, checkpoints.

Quantized buffers run twice: against pulptrain.quant and against a numpy model of its documented interface
(quantize / dequantize / pack_bits / unpack_bits), which also checks that the buffer only relies on that interface.
"""

import sys
import types

import numpy as np
import pytest

import pulptrain
from pulptrain.cl.buffer import LatentReplayBuffer
from pulptrain.cl.memory import memory_breakdown


def numpy_quant():
    """The documented pulptrain.quant interface in plain numpy (LSB-first little-endian bit stream)."""

    def written(result, out):
        if out is None:
            return result
        out[...] = result.reshape(out.shape)
        return out

    def quantize(x, scale, bits=8, *, out=None):
        codes = np.clip(np.rint(np.asarray(x, np.float32) / np.float32(scale)), 0, 2**bits - 1).astype(np.uint8)
        return written(codes, out)

    def dequantize(codes, scale, *, out=None):
        return written((np.float32(scale) * codes.astype(np.float32)).astype(np.float32), out)

    def pack_bits(codes, bits, *, out=None):
        stream = np.unpackbits(codes.reshape(-1, 1), axis=1, bitorder="little")[:, :bits].reshape(-1)
        packed = np.packbits(stream, bitorder="little")
        if out is None:
            return packed
        out[...] = packed
        return out

    def unpack_bits(packed, bits, count, *, out=None):
        stream = np.unpackbits(packed, bitorder="little")[: count * bits].reshape(count, bits)
        codes = np.packbits(stream, axis=1, bitorder="little").reshape(-1)
        if out is None:
            return codes
        out.reshape(-1)[...] = codes
        return out

    return types.SimpleNamespace(quantize=quantize, dequantize=dequantize, pack_bits=pack_bits, unpack_bits=unpack_bits)


@pytest.fixture(params=["numpy-model", "pulptrain.quant"])
def quant(request, monkeypatch):
    if request.param == "pulptrain.quant":
        from pulptrain import quant as real_quant

        return real_quant
    fake = numpy_quant()
    monkeypatch.setitem(sys.modules, "pulptrain.quant", fake)
    monkeypatch.setattr(pulptrain, "quant", fake, raising=False)
    return fake


def batch(ids, label, shape=(2, 3)):
    """Latents whose every value is the sample id (exact at FP32), all with one label."""
    ids = np.asarray(ids, np.float32)
    return ids[:, None, None] * np.ones((1,) + shape, np.float32), np.full(len(ids), label)


def stored_ids(buf):
    latents, _ = buf.get(np.arange(buf.size))
    return latents[:, 0, 0].astype(int)


# ------------------------------------------------------------------------------------------- policies


def test_reference_policy_matches_the_reference_rule():
    buf = LatentReplayBuffer(10, (2, 3), bits=32, seed=0)
    buf.update(*batch(range(8), 0))
    assert buf.size == 8 and sorted(stored_ids(buf)) == list(range(8))  # batch 0: as many as fit
    for i in range(1, 7):
        before = stored_ids(buf)
        ids = range(100 * i, 100 * i + 8)
        slots = buf.update(*batch(ids, i))
        h = min(10 // (i + 1), 8)
        after = stored_ids(buf)
        assert len(slots) == len(set(slots.tolist())) == h
        assert np.sum(buf.labels == i) == h, "h new latents of batch i go in"
        assert set(after[after >= 100 * i]) <= set(ids) and len(set(after[after >= 100 * i])) == h
        untouched = np.setdiff1d(np.arange(len(before)), slots)
        np.testing.assert_array_equal(after[untouched], before[untouched])
    assert buf.size == 10 and buf.batches_seen == 7


def test_reference_policy_represents_batches_equally():
    buf = LatentReplayBuffer(1200, (1,), bits=32, seed=1)
    for i in range(12):
        buf.update(np.zeros((300, 1), np.float32), np.full(300, i))
    counts = buf.class_counts(12)
    assert counts.sum() == 1200 and counts.min() >= 40 and counts.max() <= 200  # ~100 each


def test_reservoir_policy_is_uniform():
    inclusion = np.zeros(50)
    trials = 400
    for seed in range(trials):
        buf = LatentReplayBuffer(10, (1,), bits=32, policy="reservoir", seed=seed)
        for start in range(0, 50, 5):
            buf.update(np.arange(start, start + 5, dtype=np.float32)[:, None], np.zeros(5, int))
            assert buf.size == min(10, start + 5)
        inclusion[stored_ids_flat(buf)] += 1
    np.testing.assert_allclose(inclusion / trials, 0.2, atol=0.1)
    assert abs(inclusion[:10].mean() - inclusion[40:].mean()) / trials < 0.06  # early ~ late samples


def stored_ids_flat(buf):
    return buf.get(np.arange(buf.size))[0][:, 0].astype(int)


def test_class_balanced_policy_balances_one_class_batches():
    buf = LatentReplayBuffer(12, (1,), bits=32, policy="class_balanced", seed=0)
    buf.update(np.arange(20, dtype=np.float32)[:, None], np.zeros(20, int))
    assert buf.class_counts().tolist() == [12]
    buf.update(np.arange(20, 40, dtype=np.float32)[:, None], np.ones(20, int))
    assert buf.class_counts().tolist() == [6, 6]
    buf.update(np.arange(40, 60, dtype=np.float32)[:, None], np.full(20, 2))
    assert buf.class_counts().tolist() == [4, 4, 4]
    ids, labels = stored_ids_flat(buf), buf.labels
    np.testing.assert_array_equal(ids // 20, labels)  # every latent kept its own label
    # a recurring class of the largest size replaces its own samples only
    buf.update(np.arange(60, 80, dtype=np.float32)[:, None], np.ones(20, int))
    assert buf.class_counts().tolist() == [4, 4, 4]


# ----------------------------------------------------------------------------------------- sampling


def test_replay_batches_without_replacement_within_an_epoch():
    buf = LatentReplayBuffer(10, (2, 3), bits=32, seed=0)
    buf.update(*batch(range(10), 0))
    drawn = [stored for stored in buf.replay_batches(3, 3)]
    ids = np.concatenate([x[:, 0, 0] for x, _ in drawn]).astype(int)
    assert len(ids) == 9 and len(set(ids.tolist())) == 9
    for x, y in buf.replay_batches(4, 5):  # 20 > 10: fresh permutations, never a repeat inside a batch
        assert len(set(x[:, 0, 0].tolist())) == 4 and y.dtype == np.int64
    assert [len(y) for _, y in buf.replay_batches(50, 2)] == [10, 10]
    empty = LatentReplayBuffer(5, (1,), bits=32)
    assert [len(y) for _, y in empty.replay_batches(3, 2)] == [0, 0]


# ------------------------------------------------------------------------------- quantized storage


@pytest.mark.parametrize("bits", [8, 7, 6, 4, 1])
def test_quantized_storage_round_trip(quant, bits):
    rng = np.random.default_rng(bits)
    shape = (4, 3, 2)
    latents = np.maximum(rng.standard_normal((9,) + shape), 0).astype(np.float32)
    buf = LatentReplayBuffer(9, shape, bits=bits, scale=0.05, seed=0)
    buf.update(latents, np.arange(9))
    x, y = buf.get(np.arange(9))
    order = np.argsort(y)
    codes = np.clip(np.rint(latents.astype(np.float64) / np.float32(0.05)), 0, 2**bits - 1)
    np.testing.assert_allclose(x[order], np.float32(0.05) * codes, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(buf.codes(np.arange(9))[order], codes.astype(np.uint8))
    assert buf.nbytes == 9 * (-(-24 * bits // 8) + 2)


@pytest.mark.parametrize("bits", [7, 3])
def test_quantized_rows_not_byte_aligned(quant, bits):
    latents = np.array([[0.0, 1.0, 2.0], [3.0, 6.0, 7.0], [4.0, 4.0, 1.0]], np.float32)
    buf = LatentReplayBuffer(3, (3,), bits=bits, scale=1.0, seed=0)  # 3 * bits is not a multiple of 8
    assert buf.row_bytes == -(-3 * bits // 8)
    buf.update(latents, np.arange(3))
    x, y = buf.get(np.arange(3))
    np.testing.assert_array_equal(x[np.argsort(y)], np.minimum(latents, 2**bits - 1))


def test_scale_calibrated_at_first_update(quant):
    buf = LatentReplayBuffer(4, (2,), bits=7)
    buf.update(np.array([[0, 2.54], [1.0, 0.3]], np.float32), [0, 1])
    assert buf.scale == pytest.approx(2.54 / 127)
    buf.update(np.array([[9.0, 0.0]], np.float32), [1])  # larger values clip at the top code
    assert buf.scale == pytest.approx(2.54 / 127)
    assert buf.get(np.arange(buf.size))[0].max() == pytest.approx(2.54, rel=1e-6)


def test_nbytes_is_the_memory_model(quant):
    for bits in (32, 8, 7):
        buf = LatentReplayBuffer(1500, (512, 8, 8), bits=bits)
        assert buf.nbytes == memory_breakdown(lr_layer=19, replays=1500, bits=bits).replay_buffer
    assert LatentReplayBuffer(1500, (512, 8, 8), bits=8).nbytes / 2**20 == pytest.approx(46.9, abs=0.05)


def test_quantized_needs_quant_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "pulptrain.quant", None)
    monkeypatch.delattr(pulptrain, "quant", raising=False)
    with pytest.raises(ImportError, match="pulptrain.quant"):
        LatentReplayBuffer(4, (2,), bits=8)
    LatentReplayBuffer(4, (2,), bits=32)


# ------------------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("policy", ["reference", "reservoir", "class_balanced"])
def test_state_round_trip_continues_identically(tmp_path, quant, policy):
    rng = np.random.default_rng(0)
    stream = [
        (np.maximum(rng.standard_normal((7, 2, 2)), 0).astype(np.float32), rng.integers(0, 4, 7)) for _ in range(6)
    ]
    a = LatentReplayBuffer(10, (2, 2), bits=6, policy=policy, seed=5)
    for x, y in stream[:3]:
        a.update(x, y)
    np.savez(tmp_path / "buf.npz", **a.state_dict())
    b = LatentReplayBuffer(10, (2, 2), bits=6, policy=policy, seed=999)
    with np.load(tmp_path / "buf.npz") as state:
        b.load_state_dict(dict(state))
    for buf in (a, b):
        for x, y in stream[3:]:
            buf.update(x, y)
    np.testing.assert_array_equal(a.get(np.arange(a.size))[0], b.get(np.arange(b.size))[0])
    np.testing.assert_array_equal(a.labels, b.labels)
    for (xa, ya), (xb, yb) in zip(a.replay_batches(4, 3), b.replay_batches(4, 3)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_state_mismatch_and_corruption():
    a = LatentReplayBuffer(10, (2, 2), bits=32, seed=0)
    a.update(np.ones((3, 2, 2), np.float32), [0, 1, 2])
    state = a.state_dict()
    for other in (
        LatentReplayBuffer(11, (2, 2), bits=32),
        LatentReplayBuffer(10, (4,), bits=32),
        LatentReplayBuffer(10, (2, 2), bits=32, policy="reservoir"),
    ):
        with pytest.raises(ValueError, match="does not match"):
            other.load_state_dict(state)
        assert other.size == 0
    with pytest.raises(ValueError, match="not a replay-buffer state"):
        a.load_state_dict({"storage": state["storage"]})
    bad = dict(state, storage=state["storage"][:5])
    with pytest.raises(ValueError, match="storage must be"):
        a.load_state_dict(bad)


# ------------------------------------------------------------------------------------------- errors


def test_bad_arguments():
    with pytest.raises(ValueError, match="capacity"):
        LatentReplayBuffer(0, (2,), bits=32)
    with pytest.raises(ValueError, match="bits"):
        LatentReplayBuffer(4, (2,), bits=9)
    with pytest.raises(ValueError, match="policy"):
        LatentReplayBuffer(4, (2,), bits=32, policy="fifo")
    with pytest.raises(ValueError, match="latent_shape"):
        LatentReplayBuffer(4, (0, 2), bits=32)
    buf = LatentReplayBuffer(4, (2,), bits=32)
    with pytest.raises(ValueError, match="latents must have shape"):
        buf.update(np.zeros((3, 3), np.float32), [0, 0, 0])
    with pytest.raises(ValueError, match="labels must have shape"):
        buf.update(np.zeros((3, 2), np.float32), [0, 0])
    with pytest.raises(ValueError, match="labels must be integers"):
        buf.update(np.zeros((1, 2), np.float32), [-1])
    with pytest.raises(ValueError, match="finite"):
        buf.update(np.full((1, 2), np.nan, np.float32), [0])
    with pytest.raises(IndexError):
        buf.get([0])


def test_fake_quantize_matches_storage(quant):
    buf = LatentReplayBuffer(4, (3,), bits=5)
    x = np.array([[0.0, 0.37, 3.1], [1.5, 2.2, 0.01]], np.float32)
    with pytest.raises(ValueError, match="no quantization scale"):
        buf.fake_quantize(x)
    assert buf.calibrate(x) == pytest.approx(3.1 / 31)
    buf.update(x, [0, 1])
    stored, labels = buf.get(np.arange(2))
    np.testing.assert_array_equal(buf.fake_quantize(x)[labels], stored)
    fp32 = LatentReplayBuffer(4, (3,), bits=32)
    assert fp32.calibrate(x) is None and fp32.fake_quantize(x) is not None
    np.testing.assert_array_equal(fp32.fake_quantize(x), x)


# ------------------------------------------------------------------------------ latent codes as they come


def codes_by_row(buf, n):
    return {bytes(row) for row in buf.codes(np.arange(n)).reshape(n, -1)}


@pytest.mark.parametrize("bits, shape", [(8, (4, 3)), (7, (4, 2)), (5, (3, 3))])  # 5 x 9 bits: not byte aligned
def test_latent_codes_are_stored_without_a_round_trip(monkeypatch, bits, shape):
    from pulptrain import quant_core

    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 1 << bits, (6,) + shape).astype(np.uint8)
    buf = LatentReplayBuffer(10, shape, bits=bits, scale=0.3)

    def forbidden(*args, **kwargs):
        raise AssertionError("codes of the buffer's precision must not be re-quantized")

    monkeypatch.setattr(quant_core, "quantize", forbidden)
    monkeypatch.setattr(quant_core, "dequantize", forbidden)
    slots = buf.update(quant_core.LatentCodes(codes, 0.3, bits), np.arange(6))
    assert sorted(slots) == list(range(6))
    assert codes_by_row(buf, 6) == {bytes(row) for row in codes.reshape(6, -1)}
    labels = buf.labels  # each stored row is the code row of its label
    np.testing.assert_array_equal(buf.codes(np.arange(6)), codes[labels])


def test_latent_codes_of_an_overflowing_scale_are_stored_exactly():
    """scale * 255 overflows float32: a dequantize / quantize round trip would clip codes to 255."""
    from pulptrain.quant import LatentCodes

    codes = np.arange(256, dtype=np.uint8).reshape(4, 64)
    buf = LatentReplayBuffer(4, (64,), bits=8, scale=1e37)
    buf.update(LatentCodes(codes, 1e37, 8), np.arange(4))
    np.testing.assert_array_equal(buf.codes(np.arange(4)), codes[buf.labels])


def test_latent_codes_of_another_precision_are_requantized():
    from pulptrain import quant as real_quant

    codes = np.random.default_rng(0).integers(0, 256, (5, 6)).astype(np.uint8)
    latents = real_quant.LatentCodes(codes, 0.02, 8)
    buf = LatentReplayBuffer(5, (6,), bits=4)
    assert buf.calibrate(latents) == pytest.approx(float(latents.values().max()) / 15)
    buf.update(latents, np.arange(5))
    expected = real_quant.quantize(latents.values(), buf.scale, 4)
    np.testing.assert_array_equal(buf.codes(np.arange(5)), expected[buf.labels])
    np.testing.assert_array_equal(buf.encode(latents).codes, expected)
    encoded = buf.encode(latents)
    assert buf.encode(encoded) is encoded  # already at the buffer's precision


@pytest.mark.parametrize("bits", [32, 8, 6, 3])
def test_replay_batches_into_preallocated_arrays(quant, bits):
    rng = np.random.default_rng(4)
    shape = (3, 5) if bits != 3 else (7,)  # 7 x 3 bits: rows not byte aligned
    a, b = (LatentReplayBuffer(20, shape, bits=bits, seed=5) for _ in range(2))
    x, y = np.abs(rng.standard_normal((20,) + shape)).astype(np.float32), rng.integers(0, 9, 20)
    a.update(x, y)
    b.update(x, y)
    out = (np.full((9,) + shape, np.nan, np.float32), np.full(9, -1, np.int64))
    for (xa, ya), (xb, yb) in zip(a.replay_batches(6, 5), b.replay_batches(6, 5, out=out)):
        assert np.shares_memory(xb, out[0]) and np.shares_memory(yb, out[1]) and len(yb) == 6
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert np.all(out[1][6:] == -1)  # rows past the mini-batch untouched


@pytest.mark.parametrize(
    "out, match",
    [
        ((np.zeros((2, 3), np.float32), np.zeros(4, np.int64)), "at least 4 rows"),
        ((np.zeros((4, 2), np.float64), np.zeros(4, np.int64)), "float32"),
        ((np.zeros((4, 3), np.float32), np.zeros(4, np.int32)), "int64"),
    ],
)
def test_replay_batches_rejects_bad_out(out, match):
    buf = LatentReplayBuffer(8, (3,), bits=32)
    buf.update(np.ones((8, 3), np.float32), np.zeros(8, int))
    with pytest.raises(ValueError, match=match):
        next(buf.replay_batches(4, 1, out=out))
