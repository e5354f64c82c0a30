"""Latent codes: quantize / dequantize / pack_bits / unpack_bits against numpy references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pulptrain
from pulptrain import quant as Q

BITS = list(range(1, 9))


def quantize_reference(x, scale, bits):
    return np.clip(np.rint(x / np.float32(scale)), 0, 2**bits - 1).astype(np.uint8)


def pack_reference(codes, bits):
    """Little-endian bit stream: each code's `bits` low bits, least significant first."""
    stream = np.unpackbits(codes.reshape(-1, 1), axis=1, bitorder="little")[:, :bits].ravel()
    return np.packbits(stream, bitorder="little")


@pytest.fixture
def threads():
    before = pulptrain.get_num_threads()
    yield
    pulptrain.set_num_threads(before)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), count=st.integers(1, 300), seed=st.integers(0, 2**31))
def test_pack_matches_reference_and_round_trips(bits, count, seed):
    codes = np.random.default_rng(seed).integers(0, 2**bits, count).astype(np.uint8)
    packed = Q.pack_bits(codes, bits)
    assert packed.shape == (-(-count * bits // 8),) == (Q.packed_size(count, bits),)
    np.testing.assert_array_equal(packed, pack_reference(codes, bits))
    np.testing.assert_array_equal(Q.unpack_bits(packed, bits, count), codes)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), count=st.integers(1, 500), seed=st.integers(0, 2**31), scale=st.floats(1e-3, 1e3))
def test_quantize_matches_reference_and_round_trips(bits, count, seed, scale):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(count) * scale * 2**bits / 3).astype(np.float32)
    codes = Q.quantize(x, scale, bits)
    np.testing.assert_array_equal(codes, quantize_reference(x, scale, bits))
    back = Q.dequantize(Q.unpack_bits(Q.pack_bits(codes, bits), bits, count), scale)
    np.testing.assert_array_equal(back, np.float32(scale) * codes.astype(np.float32))
    # inside the representable range the error is at most half a step
    inside = (x >= 0) & (x <= scale * (2**bits - 1))
    assert np.all(np.abs(back[inside] - x[inside]) <= 0.5 * scale * (1 + 1e-5))
    # quantizing the dequantized codes gives the codes back
    np.testing.assert_array_equal(Q.quantize(back, scale, bits), codes)


def test_quantize_rounds_half_to_even_and_clips():
    x = np.array([0.5, 1.5, 2.5, -0.5, -3.0, 6.5, 7.5, 100.0, np.inf, -np.inf], dtype=np.float32)
    np.testing.assert_array_equal(Q.quantize(x, 1.0, 3), [0, 2, 2, 0, 0, 6, 7, 7, 7, 0])


def tie_and_edge_values():
    """Every exact half k + 0.5 up to past the top code, its float neighbours, and the edge floats."""
    halves = np.arange(-3, 300, dtype=np.float32) + np.float32(0.5)
    ints = np.arange(-3, 300, dtype=np.float32)
    near = np.concatenate([np.nextafter(halves, np.float32(np.inf)), np.nextafter(halves, np.float32(-np.inf))])
    edges = np.array(
        [
            0.0,
            -0.0,
            1e-45,
            -1e-45,
            1e-38,
            0.49999997,
            254.99998,
            255.5,
            256.0,
            2.0**22 + 0.5,
            2.0**23,
            2.0**24 + 2,
            3e38,
            -3e38,
            np.inf,
            -np.inf,
        ],
        dtype=np.float32,
    )
    return np.concatenate([halves, ints, near, edges]).astype(np.float32)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.1, 3.0])
def test_quantize_ties_and_edges_match_rint(bits, scale, threads):
    with np.errstate(over="ignore"):
        x = tie_and_edge_values() * np.float32(scale)
    np.testing.assert_array_equal(Q.quantize(x, scale, bits), quantize_reference(x, scale, bits))
    # the same values in a job large enough to be split across cores
    big = np.tile(x, 40000 // x.size + 1)
    for threads in (1, 3):
        pulptrain.set_num_threads(threads)
        np.testing.assert_array_equal(Q.quantize(big, scale, bits), quantize_reference(big, scale, bits))


@pytest.mark.parametrize("bits", BITS)
def test_packed_size_is_exact(bits):
    for count in range(1, 40):
        codes = np.full(count, 2**bits - 1, dtype=np.uint8)
        packed = Q.pack_bits(codes, bits)
        assert packed.size == (count * bits + 7) // 8
        used = count * bits - 8 * (packed.size - 1)  # bits used in the last byte
        assert packed[-1] == (1 << used) - 1  # the unused high bits are zero


@pytest.mark.parametrize("bits", BITS[:-1])
def test_pack_rejects_codes_out_of_range(bits):
    codes = np.zeros(37, dtype=np.uint8)
    codes[29] = 2**bits
    with pytest.raises(ValueError, match="codes must be <="):
        Q.pack_bits(codes, bits)
    big = np.zeros(100_000, dtype=np.uint8)  # the parallel path reports it too
    big[-1] = 255
    with pytest.raises(ValueError, match="codes must be <="):
        Q.pack_bits(big, bits)


@pytest.mark.parametrize("bits", [1, 3, 7, 8])
def test_thread_count_does_not_change_results(threads, bits):
    rng = np.random.default_rng(bits)
    x = (rng.random(100_003) * 2**bits).astype(np.float32)
    results = []
    for n in (1, 2, 3, 8):
        pulptrain.set_num_threads(n)
        codes = Q.quantize(x, 1.0, bits)
        packed = Q.pack_bits(codes, bits)
        results.append((codes, packed, Q.unpack_bits(packed, bits, x.size), Q.dequantize(codes, 0.25)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0][1], pack_reference(results[0][0], bits))


def test_out_arguments_are_used():
    x = np.linspace(0, 10, 24, dtype=np.float32).reshape(2, 3, 4)
    codes = np.empty((2, 3, 4), dtype=np.uint8)
    assert Q.quantize(x, 0.5, 5, out=codes) is codes
    packed = np.empty(Q.packed_size(24, 5), dtype=np.uint8)
    assert Q.pack_bits(codes, 5, out=packed) is packed
    unpacked = np.empty((2, 3, 4), dtype=np.uint8)  # any shape holding count codes
    assert Q.unpack_bits(packed, 5, 24, out=unpacked) is unpacked
    np.testing.assert_array_equal(unpacked, codes)
    back = np.empty((2, 3, 4), dtype=np.float32)
    assert Q.dequantize(codes, 0.5, out=back) is back


def test_non_contiguous_inputs_are_accepted():
    x = (np.arange(64, dtype=np.float32).reshape(8, 8) / 7)[:, ::2]
    np.testing.assert_array_equal(Q.quantize(x, 0.1, 6), quantize_reference(np.ascontiguousarray(x), 0.1, 6))
    codes = np.arange(64, dtype=np.uint8).reshape(8, 8)[::2]
    np.testing.assert_array_equal(Q.pack_bits(codes, 8), codes.ravel())


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: Q.quantize([1.0], 1.0, 8), TypeError, "x must be a numpy.ndarray"),
        (lambda: Q.quantize(np.ones(3), 1.0, 8), TypeError, "x must have dtype float32"),
        (lambda: Q.quantize(np.ones(3, np.float32), 0.0, 8), ValueError, "scale must be finite and > 0"),
        (lambda: Q.quantize(np.ones(3, np.float32), float("nan"), 8), ValueError, "scale"),
        (lambda: Q.quantize(np.ones(3, np.float32), "1", 8), TypeError, "scale must be a real"),
        (lambda: Q.quantize(np.ones(3, np.float32), 1e-50, 8), ValueError, "as float32"),
        (lambda: Q.quantize(np.ones(3, np.float32), 1.0, 9), ValueError, r"bits must be in \[1, 8\]"),
        (lambda: Q.quantize(np.ones(3, np.float32), 1.0, 0), ValueError, "bits"),
        (lambda: Q.quantize(np.ones(3, np.float32), 1.0, True), TypeError, "bits must be an int"),
        (lambda: Q.quantize(np.array([1, np.nan], np.float32), 1.0, 8), ValueError, "NaN"),
        (
            lambda: Q.quantize(np.ones(3, np.float32), 1.0, 8, out=np.empty(4, np.uint8)),
            ValueError,
            "out must have shape",
        ),
        (
            lambda: Q.quantize(np.ones(3, np.float32), 1.0, 8, out=np.empty(3, np.int8)),
            TypeError,
            "out must have dtype uint8",
        ),
        (lambda: Q.dequantize(np.ones(3, np.int8), 1.0), TypeError, "codes must have dtype uint8"),
        (lambda: Q.pack_bits(np.ones(3, np.int32), 4), TypeError, "codes must have dtype uint8"),
        (
            lambda: Q.pack_bits(np.ones(3, np.uint8), 4, out=np.empty(1, np.uint8)),
            ValueError,
            r"out must have shape \(2,\)",
        ),
        (lambda: Q.pack_bits(np.ones(0, np.uint8), 4), ValueError, "must not be empty"),
        (lambda: Q.unpack_bits(np.ones(2, np.uint8), 4, 5), ValueError, "exactly 3 bytes"),
        (lambda: Q.unpack_bits(np.ones((2, 1), np.uint8), 4, 4), ValueError, "packed must be 1-D"),
        (lambda: Q.unpack_bits(np.ones(2, np.uint8), 4, 0), ValueError, "count must be in"),
        (lambda: Q.unpack_bits(np.ones(2, np.uint8), 4, 4, out=np.empty(5, np.uint8)), ValueError, "hold 4 elements"),
        (lambda: Q.calibrate_scale(np.ones(3), 8, method="mean"), ValueError, "method"),
        (lambda: Q.calibrate_scale(np.ones(3), 8, method="percentile", percentile=0), ValueError, "percentile"),
        (lambda: Q.calibrate_scale(np.array([1.0, np.inf]), 8), ValueError, "finite"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_out_overlapping_input_is_rejected():
    buf = np.zeros(16, dtype=np.uint8)
    with pytest.raises(ValueError, match="overlap"):
        Q.pack_bits(buf, 8, out=buf)


def test_calibrate_scale():
    x = np.concatenate([np.linspace(0, 1, 10_000), [50.0]])
    assert Q.calibrate_scale(x, 8) == pytest.approx(50.0 / 255)
    assert Q.calibrate_scale(x, 4, method="percentile", percentile=99.0) == pytest.approx(np.percentile(x, 99.0) / 15)
    assert Q.calibrate_scale(np.zeros(5), 8) == 1.0
    codes = Q.quantize(x.astype(np.float32), Q.calibrate_scale(x, 8), 8)
    assert codes.max() == 255


# ---- the bits check and the latent batch types --------------------------------------------------------


@pytest.mark.parametrize(
    "bits, kwargs, error, match",
    [
        (9, {}, ValueError, "bits must be an int in 1..8, got 9"),
        (0, {"name": "lr_bits"}, ValueError, "lr_bits must be an int in 1..8, got 0"),
        (32, {}, ValueError, "1..8"),
        (16, {"allow_fp32": True}, ValueError, r"bits must be 1..8 \(quantized\) or 32 \(FP32\), got 16"),
        (8.0, {}, TypeError, "bits must be an int"),
        (True, {"name": "out_bits"}, TypeError, "out_bits must be an int"),
    ],
)
def test_check_bits_rejects(bits, kwargs, error, match):
    with pytest.raises(error, match=match):
        Q.check_bits(bits, **kwargs)


def test_check_bits_accepts():
    assert [Q.check_bits(np.int64(b)) for b in BITS] == BITS
    assert Q.check_bits(32, allow_fp32=True) == 32 and type(Q.check_bits(np.uint8(3))) is int


def test_latent_codes_values_take_and_at_precision():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 32, (6, 2, 3)).astype(np.uint8)
    lat = Q.LatentCodes(codes, 0.25, 5)
    assert lat.shape == (6, 2, 3) and len(lat) == 6 and lat.bits == 5
    np.testing.assert_array_equal(lat.values(), np.float32(0.25) * codes.astype(np.float32))
    out = np.empty((6, 2, 3), np.float32)
    assert lat.values(out=out) is out
    assert lat.at_precision(5, 0.25) is lat  # same precision: the codes themselves
    coarser = lat.at_precision(3, 0.5)
    assert (coarser.bits, coarser.scale) == (3, 0.5)
    np.testing.assert_array_equal(coarser.codes, quantize_reference(lat.values(), 0.5, 3))
    np.testing.assert_array_equal(lat.take([4, 1]).codes, codes[[4, 1]])
    both = Q.LatentCodes.concatenate([lat.take([0]), lat.take([1, 2])])
    np.testing.assert_array_equal(both.codes, codes[:3])
    with pytest.raises(ValueError, match="different scales"):
        Q.LatentCodes.concatenate([lat, Q.LatentCodes(codes, 0.5, 5)])


def test_float_latents_and_as_latents():
    x = np.abs(np.random.default_rng(1).standard_normal((4, 3))).astype(np.float32)
    lat = Q.as_latents(x)
    assert isinstance(lat, Q.FloatLatents) and lat.bits == 32 and lat.values() is x  # no copy ...
    assert Q.as_latents(x, copy=True).values() is not x  # ... unless asked
    assert Q.as_latents(lat) is lat
    np.testing.assert_array_equal(lat.at_precision(8, 0.1).codes, quantize_reference(x, 0.1, 8))
    np.testing.assert_array_equal(Q.FloatLatents.concatenate([lat.take([3]), lat.take([0])]).values(), x[[3, 0]])


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Q.LatentCodes(np.zeros(3, np.int8), 1.0, 8), TypeError, "codes must be a uint8 array"),
        (lambda: Q.LatentCodes(np.zeros(3, np.uint8), 0.0, 8), ValueError, "scale must be finite and > 0"),
        (lambda: Q.LatentCodes(np.uint8(3), 1.0, 8), TypeError, r"codes must be a uint8 array \(N, ...\)"),
        (lambda: Q.LatentCodes(np.zeros(3, np.uint8), float("nan"), 8), ValueError, "scale"),
        (lambda: Q.LatentCodes(np.zeros(3, np.uint8), 1.0, 9), ValueError, "bits must be an int in 1..8"),
        (lambda: Q.as_latents(np.array([1.0, np.inf], np.float32)), ValueError, "latents must be finite"),
        (lambda: Q.as_latents(np.float32(1.0)), ValueError, r"latents must be an array \(N, ...\)"),
    ],
)
def test_latent_batches_reject_bad_values(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("bits", BITS)
def test_dequantize_quantize_round_trip_is_the_identity_for_finite_values(bits):
    """Why storing an INT8 stage's codes directly equals the old dequantize + quantize path: the round trip
    gives every code back while (2**bits - 1) * scale is finite in float32; beyond that (scales > 1e36) the
    products overflow to inf and the round trip would change codes, the direct path does not."""
    codes = np.arange(1 << bits, dtype=np.uint8)
    for scale in np.float32(2.0) ** np.arange(-149.0, 127.0, 0.37) * np.float32(1.37):
        if codes[-1] * float(scale) > np.finfo(np.float32).max:
            continue
        np.testing.assert_array_equal(Q.quantize(Q.dequantize(codes, scale), scale, bits), codes)
    huge = 1e37
    if codes[-1] * huge > np.finfo(np.float32).max:
        assert not np.array_equal(Q.quantize(Q.dequantize(codes, huge), huge, bits), codes)
