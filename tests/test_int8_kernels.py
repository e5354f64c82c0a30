"""INT8 inference kernels: bit-exact against an integer numpy reference (Python ints for the requant)."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pulptrain
from pulptrain import kernels as K
from pulptrain import quant as Q

THREAD_COUNTS = (1, 2, 3, 8)
MICROKERNELS = Q.int8_microkernels()
each_microkernel = pytest.mark.parametrize("microkernel", MICROKERNELS)


@contextlib.contextmanager
def using(microkernel):
    before = Q.get_int8_microkernel()
    Q.set_int8_microkernel(microkernel)
    try:
        yield
    finally:
        Q.set_int8_microkernel(before)


# ---- integer references -----------------------------------------------------------------------------------


def pad_nchw(x, ph, pw):
    return np.pad(x.astype(np.int64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def conv_accumulators(x, w, stride, padding, depthwise=False):
    """int64 sum of products, NCHW x / OIHW w (depthwise: (C, 1, kh, kw)); padding reads as 0."""
    (sh, sw), (ph, pw) = stride, padding
    xp = pad_nchw(x, ph, pw)
    kh, kw = w.shape[2:]
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    w64 = w.astype(np.int64)
    acc = np.zeros((x.shape[0], w.shape[0], ho, wo), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            window = xp[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]
            if depthwise:
                acc += window * w64[None, :, 0, ky, kx, None, None]
            else:
                acc += np.einsum("oc,nchw->nohw", w64[:, :, ky, kx], window)
    return acc


def requantize(acc, bias, multiplier, shift, clip_min=0, clip_max=255):
    """y = clip(floor((acc + bias) * m / 2**s + 1/2), lo, hi) per channel (axis 1), in exact Python ints."""
    c = acc.shape[1]
    shape = (1, c) + (1,) * (acc.ndim - 2)
    m = np.broadcast_to(np.asarray(multiplier, dtype=object), (c,)).reshape(shape)
    s = np.broadcast_to(np.asarray(shift), (c,))
    den = np.array([1 << int(v) for v in s], dtype=object).reshape(shape)
    b = np.zeros(shape, dtype=object) if bias is None else np.asarray(bias).astype(object).reshape(shape)
    p = (acc.astype(object) + b) * m
    y = (p + den // 2) // den
    return np.clip(y, clip_min, clip_max).astype(np.uint8)


@pytest.fixture
def threads():
    before = pulptrain.get_num_threads()
    yield
    pulptrain.set_num_threads(before)


def random_requant(rng, acc, c, clip=True):
    """Per-channel (bias, multiplier, shift) that spread the outputs over the uint8 range, plus clips."""
    bias = rng.integers(-(2**12), 2**12, c).astype(np.int32)
    spread = max(1.0, float(np.abs(acc).max()))
    real = (200.0 / spread) * rng.uniform(0.25, 4.0, c)
    multiplier, shift = Q.quantize_multiplier(real)
    lo, hi = (int(rng.integers(0, 20)), int(rng.integers(100, 256))) if clip else (0, 255)
    return bias, multiplier, shift, lo, hi


def assert_thread_invariant(call):
    results = []
    for n in THREAD_COUNTS:
        pulptrain.set_num_threads(n)
        results.append(call())
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    return results[0]


# ---- bit-exactness (hypothesis over shapes, strides, padding, multipliers, shifts) ------------------------

conv_cases = st.fixed_dictionaries(
    {
        "n": st.integers(1, 3),
        "c_in": st.integers(1, 9),
        "c_out": st.integers(1, 11),
        "h": st.integers(1, 12),
        "w": st.integers(1, 12),
        "kh": st.integers(1, 4),
        "kw": st.integers(1, 4),
        "sh": st.integers(1, 3),
        "sw": st.integers(1, 3),
        "ph": st.integers(0, 2),
        "pw": st.integers(0, 2),
        "seed": st.integers(0, 2**31),
    }
)


def fits(case):
    return case["h"] + 2 * case["ph"] >= case["kh"] and case["w"] + 2 * case["pw"] >= case["kw"]


@each_microkernel
@settings(max_examples=80, deadline=None)
@given(case=conv_cases.filter(fits))
def test_conv2d_bit_exact(microkernel, case):
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(0, 256, (case["n"], case["c_in"], case["h"], case["w"])).astype(np.uint8)
    w = rng.integers(-128, 128, (case["c_out"], case["c_in"], case["kh"], case["kw"])).astype(np.int8)
    stride, padding = (case["sh"], case["sw"]), (case["ph"], case["pw"])
    acc = conv_accumulators(x, w, stride, padding)
    bias, m, s, lo, hi = random_requant(rng, acc, case["c_out"])
    with using(microkernel):
        y = Q.int8_conv2d_forward(x, w, bias, m, s, stride=stride, padding=padding, clip_min=lo, clip_max=hi)
    np.testing.assert_array_equal(y, requantize(acc, bias, m, s, lo, hi))


# (c_in, c_out, h, w, k, stride, padding): rows wide enough for the x86 patch rows' vector copies (16 columns at
# stride 2, any run at stride 1), with the last rows' reads ending at the image's end
WIDE_CONV_SHAPES = [(3, 5, 37, 70, 3, 2, 1), (2, 3, 9, 67, 3, 2, 0), (1, 4, 5, 40, 2, 1, 1), (3, 2, 8, 129, 4, 2, 2)]


@each_microkernel
@pytest.mark.parametrize("shape", WIDE_CONV_SHAPES, ids=[str(i) for i in range(len(WIDE_CONV_SHAPES))])
def test_conv2d_wide_rows(microkernel, shape, threads):
    c_in, c_out, h, w_, k, stride, padding = shape
    rng = np.random.default_rng(w_)
    x = rng.integers(0, 256, (2, c_in, h, w_)).astype(np.uint8)
    w = rng.integers(-128, 128, (c_out, c_in, k, k)).astype(np.int8)
    acc = conv_accumulators(x, w, (stride, stride), (padding, padding))
    bias, m, s, lo, hi = random_requant(rng, acc, c_out)
    with using(microkernel):
        y = assert_thread_invariant(
            lambda: Q.int8_conv2d_forward(x, w, bias, m, s, stride=stride, padding=padding, clip_min=lo, clip_max=hi)
        )
    np.testing.assert_array_equal(y, requantize(acc, bias, m, s, lo, hi))


@each_microkernel
@settings(max_examples=80, deadline=None)
@given(case=conv_cases.filter(fits))
def test_depthwise_bit_exact(microkernel, case):
    rng = np.random.default_rng(case["seed"])
    c = case["c_in"]
    x = rng.integers(0, 256, (case["n"], c, case["h"], case["w"])).astype(np.uint8)
    w = rng.integers(-128, 128, (c, 1, case["kh"], case["kw"])).astype(np.int8)
    stride, padding = (case["sh"], case["sw"]), (case["ph"], case["pw"])
    acc = conv_accumulators(x, w, stride, padding, depthwise=True)
    bias, m, s, lo, hi = random_requant(rng, acc, c)
    with using(microkernel):
        y = Q.int8_depthwise_conv2d_forward(x, w, bias, m, s, stride=stride, padding=padding, clip_min=lo, clip_max=hi)
    np.testing.assert_array_equal(y, requantize(acc, bias, m, s, lo, hi))


# (n, c, h, w, kh, kw, stride, padding): the x86 depthwise workers' cases (kw <= 4, column stride 1 or 2; taller
# kernels, kw > 4 and stride 3 take the portable worker) with tiny planes, odd sizes, channel counts off the
# vector widths, planes wider than one 64-byte row copy, and large biases that overflow int32 in the requant
DEPTHWISE_SHAPES = [
    (1, 1, 1, 1, 3, 3, 1, 1),
    (2, 5, 1, 1, 1, 1, 1, 0),
    (1, 7, 2, 2, 3, 3, 1, 1),
    (1, 17, 3, 3, 3, 3, 2, 1),
    (2, 3, 4, 4, 3, 3, 2, 1),
    (1, 33, 4, 4, 3, 3, 1, 1),
    (1, 9, 8, 8, 3, 3, 1, 1),
    (1, 9, 9, 7, 3, 3, 2, 1),
    (1, 4, 16, 16, 3, 3, (2, 1), (1, 0)),
    (1, 3, 13, 11, 2, 4, (1, 2), (0, 2)),
    (1, 2, 5, 70, 3, 3, 1, 1),
    (1, 2, 6, 131, 4, 1, 2, (1, 0)),
    (1, 3, 7, 9, 17, 3, 1, (8, 1)),
    (1, 3, 7, 9, 3, 5, 1, 2),
    (1, 3, 10, 10, 3, 3, 3, 1),
]


@pytest.mark.parametrize("level", pulptrain.cpu_info()["available"])
@each_microkernel
@pytest.mark.parametrize("shape", DEPTHWISE_SHAPES, ids=[str(i) for i in range(len(DEPTHWISE_SHAPES))])
def test_depthwise_shapes_at_every_level(level, microkernel, shape, threads):
    from pulptrain import _C as C

    n, c, h, w_, kh, kw, stride, padding = shape
    rng = np.random.default_rng(len(DEPTHWISE_SHAPES) * c + h)
    x = rng.integers(0, 256, (n, c, h, w_)).astype(np.uint8)
    w = rng.integers(-128, 128, (c, 1, kh, kw)).astype(np.int8)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)
    acc = conv_accumulators(x, w, pair(stride), pair(padding), depthwise=True)
    bias, m, s, lo, hi = random_requant(rng, acc, c)
    bias[0] = 2**31 - 1 - int(rng.integers(0, 100))  # acc + bias leaves int32 for the positive sums
    expected = requantize(acc, bias, m, s, lo, hi)
    C.set_isa(level)
    try:
        with using(microkernel):
            y = assert_thread_invariant(
                lambda: Q.int8_depthwise_conv2d_forward(
                    x, w, bias, m, s, stride=stride, padding=padding, clip_min=lo, clip_max=hi
                )
            )
    finally:
        C.set_isa("auto")
    np.testing.assert_array_equal(y, expected)


@each_microkernel
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3),
    c_in=st.integers(1, 70),
    c_out=st.integers(1, 13),
    h=st.integers(1, 19),
    w=st.integers(1, 19),
    seed=st.integers(0, 2**31),
)
def test_pointwise_bit_exact(microkernel, n, c_in, c_out, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, c_in, h, w)).astype(np.uint8)
    wt = rng.integers(-128, 128, (c_out, c_in, 1, 1)).astype(np.int8)
    acc = np.einsum("oc,nchw->nohw", wt[:, :, 0, 0].astype(np.int64), x.astype(np.int64))
    bias, m, s, lo, hi = random_requant(rng, acc, c_out)
    with using(microkernel):
        y = Q.int8_pointwise_conv2d_forward(x, wt, bias, m, s, clip_min=lo, clip_max=hi)
    np.testing.assert_array_equal(y, requantize(acc, bias, m, s, lo, hi))


@each_microkernel
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), f_in=st.integers(1, 300), f_out=st.integers(1, 13), seed=st.integers(0, 2**31))
def test_linear_bit_exact(microkernel, n, f_in, f_out, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, f_in)).astype(np.uint8)
    w = rng.integers(-128, 128, (f_out, f_in)).astype(np.int8)
    acc = x.astype(np.int64) @ w.astype(np.int64).T
    bias, m, s, lo, hi = random_requant(rng, acc, f_out)
    with using(microkernel):
        y = Q.int8_linear_forward(x, w, bias, m, s, clip_min=lo, clip_max=hi)
    np.testing.assert_array_equal(y, requantize(acc, bias, m, s, lo, hi))


@each_microkernel
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), c=st.integers(1, 6))
def test_requant_edges_with_any_multiplier_and_shift(microkernel, seed, c):
    """Extreme parameters: full-range multipliers and shifts, huge biases, saturation at both ends."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, 64)).astype(np.uint8)
    w = rng.choice(np.array([-128, 127, 0, 1, -1], dtype=np.int8), (c, 64))
    bias = rng.integers(-(2**31), 2**31, c).astype(np.int32)
    m = rng.integers(0, 2**31, c).astype(np.int32)
    s = rng.integers(0, 63, c).astype(np.int32)
    acc = x.astype(np.int64) @ w.astype(np.int64).T
    with using(microkernel):
        y = Q.int8_linear_forward(x, w, bias, m, s)
    np.testing.assert_array_equal(y, requantize(acc, bias, m, s))


def test_requant_rounds_half_up():
    x = np.array([[1]], dtype=np.uint8)
    w = np.array([[1], [1], [1], [1]], dtype=np.int8)
    bias = np.array([0, 1, 2, 4], dtype=np.int32)  # acc = 1, 2, 3, 5; times 1 / 2**1
    y = Q.int8_linear_forward(x, w, bias, 1, 1)
    np.testing.assert_array_equal(y[0], [1, 1, 2, 3])  # 0.5 -> 1, 1.0 -> 1, 1.5 -> 2, 2.5 -> 3


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 5),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.none() | st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_avg_pool_bit_exact(n, c, h, w, kh, kw, stride, seed):
    if kh > h or kw > w:
        return
    x = np.random.default_rng(seed).integers(0, 256, (n, c, h, w)).astype(np.uint8)
    sh, sw = (kh, kw) if stride is None else (stride, stride)
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    sums = np.zeros((n, c, ho, wo), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            sums += x[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]
    expected = ((2 * sums + kh * kw) // (2 * kh * kw)).astype(np.uint8)  # floor(mean + 1/2)
    np.testing.assert_array_equal(Q.int8_avg_pool2d(x, (kh, kw), stride=stride), expected)


def test_global_avg_pool():
    x = np.random.default_rng(1).integers(0, 256, (2, 7, 4, 4)).astype(np.uint8)
    expected = np.floor(x.reshape(2, 7, 16).astype(np.int64).sum(-1) / 16 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(Q.int8_global_avg_pool2d(x), expected.reshape(2, 7, 1, 1))


# ---- thread invariance --------------------------------------------------------------------------------------


@each_microkernel
def test_thread_count_does_not_change_results(threads, microkernel):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (2, 24, 17, 15)).astype(np.uint8)
    w = rng.integers(-128, 128, (37, 24, 3, 3)).astype(np.int8)
    wd = rng.integers(-128, 128, (24, 1, 3, 3)).astype(np.int8)
    wp = rng.integers(-128, 128, (37, 24, 1, 1)).astype(np.int8)
    wl = rng.integers(-128, 128, (11, 24 * 17 * 15)).astype(np.int8)
    b37, b24, b11 = (rng.integers(-999, 999, c).astype(np.int32) for c in (37, 24, 11))
    m37, s37 = Q.quantize_multiplier(np.full(37, 1 / 3000))
    m24, s24 = Q.quantize_multiplier(np.full(24, 1 / 300))
    m11, s11 = Q.quantize_multiplier(np.full(11, 1 / 30000))
    calls = [
        lambda: Q.int8_conv2d_forward(x, w, b37, m37, s37, stride=2, padding=1),
        lambda: Q.int8_depthwise_conv2d_forward(x, wd, b24, m24, s24, padding=1),
        lambda: Q.int8_pointwise_conv2d_forward(x, wp, b37, m37, s37),
        lambda: Q.int8_linear_forward(x.reshape(2, -1), wl, b11, m11, s11),
        lambda: Q.int8_avg_pool2d(x, 3, stride=2),
    ]
    with using(microkernel):
        for call in calls:
            y = assert_thread_invariant(call)
            assert 0 < y.mean() < 255  # not trivially saturated


# ---- agreement with the float layer -------------------------------------------------------------------------


def test_int8_conv_matches_float_conv_within_a_quantization_step():
    """Quantize a float conv with quantize_conv_params; the INT8 result agrees with the float conv of the
    dequantized tensors to within one output code (rounding of the output, the bias and the multiplier)."""
    rng = np.random.default_rng(7)
    x_float = np.maximum(rng.standard_normal((2, 16, 12, 12)), 0).astype(np.float32)
    w_float = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    b_float = (rng.standard_normal(32) * 0.1).astype(np.float32)
    in_scale = Q.calibrate_scale(x_float, 8)
    x_u8 = Q.quantize(x_float, in_scale, 8)
    reference = K.conv2d_forward(x_float, w_float, b_float, stride=1, padding=1)
    out_scale = Q.calibrate_scale(np.maximum(reference, 0), 8)
    params = Q.quantize_conv_params(w_float, b_float, in_scale, out_scale)
    y_u8 = Q.int8_conv2d_forward(x_u8, *params.kernel_args(), stride=1, padding=1)

    w_deq = (params.weight * params.weight_scale[:, None, None, None]).astype(np.float32)
    y_deq = K.conv2d_forward(Q.dequantize(x_u8, in_scale), w_deq, b_float, stride=1, padding=1)
    codes_float = np.clip(y_deq / out_scale, 0, 255)
    assert np.abs(y_u8 - codes_float).max() <= 1.0
    # against the original float conv: within a few steps (input and weight rounding)
    error = np.abs(Q.dequantize(y_u8, out_scale) - np.maximum(reference, 0))
    assert error.max() <= 4 * out_scale
    assert error.mean() <= 0.5 * out_scale


def test_fold_batchnorm_matches_conv_then_bn():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    mean, var = rng.standard_normal(5), rng.random(5) + 0.5
    y = K.conv2d_forward(x, w, b).astype(np.float64)
    bn = (
        gamma[None, :, None, None] * (y - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
        + beta[None, :, None, None]
    )
    wf, bf = Q.fold_batchnorm(w, b, gamma, beta, mean, var)
    folded = K.conv2d_forward(x, wf.astype(np.float32), bf.astype(np.float32))
    np.testing.assert_allclose(folded, bn, atol=1e-4 * (1 + np.abs(bn).max()))


def test_quantize_multiplier_is_accurate():
    real = np.array([1e-9, 1e-4, 0.0123, 0.5, 0.9999999999, 1.0, 7.25, 2.0**30])
    m, s = Q.quantize_multiplier(real)
    assert m.dtype == np.int32 and s.dtype == np.int32
    assert np.all((s >= 0) & (s <= 62)) and np.all(m >= 0)
    np.testing.assert_allclose(m / np.exp2(s.astype(np.float64)), real, rtol=2.0**-30)
    assert Q.quantize_multiplier(0.0) == (0, 0)
    with pytest.raises(ValueError):
        Q.quantize_multiplier([-1.0])
    with pytest.raises(ValueError):
        Q.quantize_multiplier([2.0**31])


def test_relu6_clip_max():
    assert Q.relu_clip_max(6 / 255, relu6=True) == 255
    assert Q.relu_clip_max(0.05, relu6=True) == 120
    assert Q.relu_clip_max(0.05) == 255
    assert Q.relu_clip_max(0.05, out_bits=5) == 31
    assert Q.relu_clip_max(0.5, relu6=True, out_bits=4) == 12
    with pytest.raises(ValueError, match="out_bits"):
        Q.relu_clip_max(0.05, out_bits=9)


def test_layer_can_emit_sub_byte_latent_codes():
    """An INT8 layer whose out_scale is calibrated for 5 bits and clip_max = 31 emits the 5-bit codes that
    quantize() would give for its float output (within one step), ready for pack_bits."""
    rng = np.random.default_rng(11)
    x_float = np.maximum(rng.standard_normal((1, 8, 6, 6)), 0).astype(np.float32)
    w_float = (rng.standard_normal((16, 8, 1, 1)) * 0.3).astype(np.float32)
    in_scale = Q.calibrate_scale(x_float, 8)
    x_u8 = Q.quantize(x_float, in_scale, 8)
    y_float = np.maximum(K.pointwise_conv2d_forward(Q.dequantize(x_u8, in_scale), w_float), 0)
    out_scale = Q.calibrate_scale(y_float, 5)
    params = Q.quantize_conv_params(w_float, None, in_scale, out_scale, out_bits=5)
    assert params.clip_max == 31
    codes = Q.int8_pointwise_conv2d_forward(x_u8, *params.kernel_args(), clip_max=params.clip_max)
    assert codes.max() <= 31
    assert np.abs(codes.astype(int) - Q.quantize(y_float, out_scale, 5)).max() <= 1
    np.testing.assert_array_equal(Q.unpack_bits(Q.pack_bits(codes, 5), 5, codes.size), codes.ravel())


# ---- bad inputs ---------------------------------------------------------------------------------------------

X = np.zeros((1, 4, 5, 5), dtype=np.uint8)
W = np.zeros((3, 4, 3, 3), dtype=np.int8)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: Q.int8_conv2d_forward(X.astype(np.int8), W, None, 1, 1), TypeError, "x must have dtype uint8"),
        (lambda: Q.int8_conv2d_forward(X, W.astype(np.uint8), None, 1, 1), TypeError, "w must have dtype int8"),
        (lambda: Q.int8_conv2d_forward(X, W[:, :3], None, 1, 1), ValueError, "w must have shape"),
        (lambda: Q.int8_conv2d_forward(X, W, np.zeros(3, np.int64), 1, 1), TypeError, "bias must have dtype int32"),
        (lambda: Q.int8_conv2d_forward(X, W, np.zeros(4, np.int32), 1, 1), ValueError, r"bias must have shape \(3,\)"),
        (lambda: Q.int8_conv2d_forward(X, W, None, -1, 1), ValueError, "multiplier must be in"),
        (lambda: Q.int8_conv2d_forward(X, W, None, np.ones(2, np.int32), 1), ValueError, "multiplier must have shape"),
        (lambda: Q.int8_conv2d_forward(X, W, None, np.ones(3, np.float32), 1), TypeError, "multiplier must have dtype"),
        (lambda: Q.int8_conv2d_forward(X, W, None, 1, 63), ValueError, r"shift must be in \[0, 62\]"),
        (lambda: Q.int8_conv2d_forward(X, W, None, 1, np.array([0, -1, 0], np.int32)), ValueError, "shift"),
        (lambda: Q.int8_conv2d_forward(X, W, None, 1, 1, clip_max=256), ValueError, "clip_max"),
        (lambda: Q.int8_conv2d_forward(X, W, None, 1, 1, clip_min=9, clip_max=8), ValueError, "clip_min must be <="),
        (lambda: Q.int8_conv2d_forward(X, W, None, 1, 1, stride=0), ValueError, "stride"),
        (lambda: Q.int8_conv2d_forward(X[:, :, :2, :2], W, None, 1, 1), ValueError, "larger than the padded input"),
        (
            lambda: Q.int8_conv2d_forward(X, W, None, 1, 1, out=np.empty((1, 3, 3, 3), np.int8)),
            TypeError,
            "out must have dtype uint8",
        ),
        (
            lambda: Q.int8_conv2d_forward(X, W, None, 1, 1, out=np.empty((1, 3, 3, 4), np.uint8)),
            ValueError,
            "out must have shape",
        ),
        (
            lambda: Q.int8_conv2d_forward(X, W, None, 1, 1, out=np.empty((1, 3, 3, 6), np.uint8)[..., ::2]),
            ValueError,
            "C-contiguous",
        ),
        (lambda: Q.int8_depthwise_conv2d_forward(X, W, None, 1, 1), ValueError, r"w must have shape \(4, 1, kh, kw\)"),
        (
            lambda: Q.int8_pointwise_conv2d_forward(X, W, None, 1, 1),
            ValueError,
            r"w must have shape \(C_out, C_in, 1, 1\)",
        ),
        (lambda: Q.int8_linear_forward(X, W, None, 1, 1), ValueError, "x must be 2-D"),
        (
            lambda: Q.int8_linear_forward(np.zeros((1, 70000), np.uint8), np.zeros((1, 70000), np.int8), None, 1, 1),
            ValueError,
            "too long for an exact int32",
        ),
        (lambda: Q.int8_avg_pool2d(X, 6), ValueError, "larger than the padded input"),
        (lambda: Q.int8_avg_pool2d(X.astype(np.float32), 2), TypeError, "x must have dtype uint8"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_out_is_used_and_never_overlaps_an_input():
    out = np.empty((1, 3, 3, 3), dtype=np.uint8)
    assert Q.int8_conv2d_forward(X, W, None, 1, 1, out=out) is out
    buf = np.zeros((1, 4, 5, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match="overlap"):
        Q.int8_depthwise_conv2d_forward(buf, np.zeros((4, 1, 1, 1), np.int8), None, 1, 1, out=buf)


def test_microkernel_setting():
    assert "portable-4x2" in MICROKERNELS
    with using("auto"):
        assert Q.get_int8_microkernel() == MICROKERNELS[-1]
    with pytest.raises(ValueError, match="name must be 'auto' or one of"):
        Q.set_int8_microkernel("8x8")
    with pytest.raises(TypeError):
        Q.set_int8_microkernel(None)


def test_quantize_conv_params_per_channel_for_every_weight_layout():
    rng = np.random.default_rng(2)
    for shape in [(6, 3, 3, 3), (6, 1, 3, 3), (6, 5, 1, 1), (6, 40)]:
        w = rng.standard_normal(shape) * rng.uniform(0.01, 10, (6,) + (1,) * (len(shape) - 1))
        params = Q.quantize_conv_params(w, rng.standard_normal(6), 0.02, 0.05)
        assert params.weight.dtype == np.int8 and params.weight.shape == shape
        assert params.bias.dtype == np.int32 and params.multiplier.dtype == np.int32
        flat = params.weight.reshape(6, -1)
        assert np.all(np.abs(flat).max(axis=1) == 127)  # every channel uses its full range
        scale = params.weight_scale.reshape((6,) + (1,) * (len(shape) - 1))
        assert np.all(np.abs(params.weight * scale - w) <= 0.5 * scale + 1e-12)  # half a step at most
        np.testing.assert_allclose(
            params.multiplier / np.exp2(params.shift.astype(float)), 0.02 * params.weight_scale / 0.05, rtol=1e-8
        )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Q.quantize_conv_params(np.ones((2, 3)), None, 0.0, 1.0), "in_scale and out_scale"),
        (lambda: Q.quantize_conv_params(np.ones((2, 3)), np.ones(3), 1.0, 1.0), r"bias must have shape \(2,\)"),
        (lambda: Q.quantize_conv_params(np.full((2, 3), np.nan), None, 1.0, 1.0), "finite"),
        (lambda: Q.fold_batchnorm(np.ones((2, 3)), None, np.ones(3), np.ones(2), np.ones(2), np.ones(2)), "gamma"),
        (
            lambda: Q.fold_batchnorm(np.ones((2, 3)), None, np.ones(2), np.ones(2), np.ones(2), -np.ones(2)),
            "running_var",
        ),
        (lambda: Q.calibrate_scale(np.ones(3), 9), "bits"),
    ],
)
def test_parameter_helpers_reject_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_small_frozen_chain_matches_float_after_ptq():
    """The recipe a quantize_frozen follows: fold BN, calibrate each activation scale on float data (max),
    quantize each layer, chain the INT8 kernels; the dequantized output stays close to the float chain."""
    rng = np.random.default_rng(4)
    # (kind, C_in, C_out, stride) of a MobileNetV1-like stem: conv, then dw/pw pairs
    layers = [("conv", 3, 16, 2), ("dw", 16, 16, 1), ("pw", 16, 32, 1), ("dw", 32, 32, 2), ("pw", 32, 32, 1)]
    float_layers = []
    for kind, c_in, c_out, stride in layers:
        shape = {"conv": (c_out, c_in, 3, 3), "dw": (c_out, 1, 3, 3), "pw": (c_out, c_in, 1, 1)}[kind]
        fan_in = int(np.prod(shape[1:]))
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        bn = (
            rng.uniform(0.5, 1.5, c_out),
            rng.normal(0.1, 0.1, c_out),
            rng.normal(0, 0.1, c_out),
            rng.uniform(0.5, 1.5, c_out),
        )
        w_folded, b_folded = Q.fold_batchnorm(w, None, *bn)
        float_layers.append((kind, stride, w_folded.astype(np.float32), b_folded.astype(np.float32)))

    def run_float(x):
        acts = [x]
        for kind, stride, w, b in float_layers:
            if kind == "conv":
                y = K.conv2d_forward(acts[-1], w, b, stride=stride, padding=1)
            elif kind == "dw":
                y = K.depthwise_conv2d_forward(acts[-1], w, b, stride=stride, padding=1)
            else:
                y = K.pointwise_conv2d_forward(acts[-1], w, b)
            acts.append(np.maximum(y, 0))
        return acts

    calibration = rng.random((8, 3, 32, 32)).astype(np.float32)  # inputs in [0, 1): post-ReLU-like, unsigned
    scales = [Q.calibrate_scale(a, 8) for a in run_float(calibration)]
    quantized = [Q.quantize_conv_params(w, b, scales[i], scales[i + 1]) for i, (_, _, w, b) in enumerate(float_layers)]

    x = rng.random((2, 3, 32, 32)).astype(np.float32)
    codes = Q.quantize(x, scales[0], 8)
    for (kind, stride, _, _), params in zip(float_layers, quantized):
        args = params.kernel_args()
        if kind == "conv":
            codes = Q.int8_conv2d_forward(codes, *args, stride=stride, padding=1, clip_max=params.clip_max)
        elif kind == "dw":
            codes = Q.int8_depthwise_conv2d_forward(codes, *args, stride=stride, padding=1, clip_max=params.clip_max)
        else:
            codes = Q.int8_pointwise_conv2d_forward(codes, *args, clip_max=params.clip_max)
    reference = run_float(x)[-1].ravel().astype(np.float64)
    approx = Q.dequantize(codes, scales[-1]).ravel().astype(np.float64)
    cosine = reference @ approx / (np.linalg.norm(reference) * np.linalg.norm(approx))
    assert cosine >= 0.99, cosine
    assert np.abs(approx - reference).mean() <= 2 * scales[-1]
