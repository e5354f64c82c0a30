"""Hypothesis properties of every op family, against float64 numpy references (integer references for the
INT8 kernels and the latent codes), over random shapes, strides and paddings, every forced matmul variant
and INT8 microkernel, and team sizes 1, 2, 3 and 8:

- the result matches the reference and is bitwise identical for every team size;
- out= given holds the same bits as the returned array; an out of the wrong dtype, shape, byte order or
  memory layout, or one aliasing an input, raises (TypeError / ValueError) and is left unwritten;
- a bad int argument (stride, padding, kernel size, bits, count) raises ValueError naming it.

The examples and bad inputs tried are counted per category in FIGURES; `pytest -s` prints them.
"""

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_int8_kernels import conv_accumulators, random_requant, requantize

import pulptrain
from pulptrain import kernels as K
from pulptrain import quant as Q
from pulptrain import reference as ref

f32 = np.float32
TEAMS = (1, 2, 3, 8)
VARIANTS = [None] + K.matmul_variants()
MICROKERNELS = Q.int8_microkernels()
PROPERTY = settings(max_examples=60, deadline=None)
PER_VARIANT = settings(max_examples=15, deadline=None)  # times len(VARIANTS) = 8
PER_MICROKERNEL = settings(max_examples=40, deadline=None)
each_variant = pytest.mark.parametrize("variant", VARIANTS, ids=[v or "auto" for v in VARIANTS])
each_microkernel = pytest.mark.parametrize("microkernel", MICROKERNELS)
FIGURES = collections.Counter()  # "examples <family>" and "bad <category>" -> how many were tried


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    yield
    print("\nproperty figures: " + ", ".join(f"{k}: {v}" for k, v in sorted(FIGURES.items())))


@pytest.fixture(autouse=True)
def _restore_global_settings():
    """Team size, forced matmul variant and INT8 microkernel are process-wide: every test leaves them as it
    found them, whatever it forced."""
    threads, variant, microkernel = pulptrain.get_num_threads(), K.get_matmul_variant(), Q.get_int8_microkernel()
    yield
    pulptrain.set_num_threads(threads)
    K.set_matmul_variant(variant)
    Q.set_int8_microkernel("auto")
    if Q.get_int8_microkernel() != microkernel:
        Q.set_int8_microkernel(microkernel)


# ---- helpers ----------------------------------------------------------------------------------------------


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(f32)


def same_bits(a, b):
    """Bitwise equality of two arrays (NaN payloads and the sign of zero included) or two Python floats."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float):
        return np.float32(a).tobytes() == np.float32(b).tobytes()
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def across_teams(call):
    """call() for every team size; its result (an array or a tuple) must be bitwise the same each time."""
    results = []
    for n in TEAMS:
        pulptrain.set_num_threads(n)
        results.append(call())
    for r in results[1:]:
        for a, b in zip(_as_tuple(results[0]), _as_tuple(r)):
            assert same_bits(a, b), f"result differs between team sizes {TEAMS}"
    return results[0]


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def other_byte_order(a):
    return a.astype(a.dtype.newbyteorder("S"))


def check_out(call, expected, inputs, family):
    """call(out) with a good out writes `expected` into it (bitwise) and returns it; each bad out raises and
    is left as it was. inputs: the arrays the call reads, as passed (aliasing one of them must raise)."""
    out = np.full(expected.shape, 3, expected.dtype)
    assert call(out) is out
    assert same_bits(out, expected)
    other = np.float64 if expected.dtype == f32 else np.int16
    bad = [
        ("out dtype", TypeError, np.zeros(expected.shape, other)),
        ("out shape", ValueError, np.zeros(expected.shape + (1,), expected.dtype)),
        ("out shape", ValueError, np.zeros((expected.size + 1,), expected.dtype)),
        ("out layout", ValueError, np.zeros(expected.shape + (2,), expected.dtype)[..., 0]),
    ]
    if expected.dtype.itemsize > 1:
        bad.append(("out byte order", TypeError, other_byte_order(np.zeros(expected.shape, expected.dtype))))
    for a in inputs:
        if a is not None and a.dtype == expected.dtype and a.size >= expected.size and a.flags.c_contiguous:
            bad.append(("out aliasing an input", ValueError, a.reshape(-1)[: expected.size].reshape(expected.shape)))
    for category, exc, arr in bad:
        if category == "out layout" and arr.flags.c_contiguous:
            continue  # a strided view of one element is still C-contiguous for numpy
        before = arr.copy()
        with pytest.raises(exc, match="out must"):
            call(arr)
        assert same_bits(arr, before)
        FIGURES["bad " + category] += 1
    FIGURES["out= checked " + family] += 1


# values out of range for every stride, padding and kernel-size argument
bad_int_args = st.sampled_from(
    [-1, -(2**40), 2**31, 2**62, 2**63, 2**64 + 5, (1, -1), (2**31, 1), (1, 2**70), (-(2**63) - 1, 1)]
)


def expect_named_error(call, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        call()
    FIGURES[f"bad {name}"] += 1


# ---- float32 convolutions -----------------------------------------------------------------------------------


@st.composite
def conv_cases(draw, depthwise=False):
    n, c_in = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    c_out = c_in if depthwise else draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), kh - 2 * ph + 8))
    w = draw(st.integers(max(1, kw - 2 * pw), kw - 2 * pw + 8))
    stride = (sh, sw) if sh != sw or draw(st.booleans()) else sh
    padding = (ph, pw) if ph != pw or draw(st.booleans()) else ph
    return {
        "n": n,
        "c_in": c_in,
        "c_out": c_out,
        "kh": kh,
        "kw": kw,
        "h": h,
        "w": w,
        "stride": stride,
        "padding": padding,
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _conv_property(case, depthwise, variant, give_out, bad_arg):
    family = "depthwise" if depthwise else "conv2d"
    FIGURES["examples " + family] += 1
    rng = np.random.default_rng(case["seed"])
    x = randn(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = randn(rng, case["c_out"], 1 if depthwise else case["c_in"], case["kh"], case["kw"])
    b = randn(rng, case["c_out"]) if case["bias"] else None
    s, p = case["stride"], case["padding"]
    fwd = K.depthwise_conv2d_forward if depthwise else K.conv2d_forward
    gin = K.depthwise_conv2d_grad_input if depthwise else K.conv2d_grad_input
    gw = K.depthwise_conv2d_grad_weight if depthwise else K.conv2d_grad_weight
    K.set_matmul_variant(variant)
    y = across_teams(lambda: fwd(x, w, b, stride=s, padding=p))
    ref.assert_close(y, ref.conv2d(x, w, b, s, p, depthwise))
    dy = randn(rng, *y.shape)
    dx = across_teams(lambda: gin(dy, w, x.shape, stride=s, padding=p))
    ref.assert_close(dx, ref.conv2d_grad_input(dy, w, x.shape, s, p, depthwise))
    dw = across_teams(lambda: gw(dy, x, w.shape, stride=s, padding=p))
    ref.assert_close(dw, ref.conv2d_grad_weight(dy, x, w.shape, s, p, depthwise))
    if give_out:
        check_out(lambda o: fwd(x, w, b, stride=s, padding=p, out=o), y, (x, w, b), family)
        check_out(lambda o: gin(dy, w, x.shape, stride=s, padding=p, out=o), dx, (dy, w), family)
        check_out(lambda o: gw(dy, x, w.shape, stride=s, padding=p, out=o), dw, (dy, x), family)
        acc = dw.copy()
        gw(dy, x, w.shape, stride=s, padding=p, out=acc, accumulate=True)
        ref.assert_close(acc, 2.0 * ref.conv2d_grad_weight(dy, x, w.shape, s, p, depthwise))
    name = "stride" if case["seed"] % 2 else "padding"
    expect_named_error(lambda: fwd(x, w, b, **{name: bad_arg}), name)


@each_variant
@PER_VARIANT
@given(case=conv_cases(), give_out=st.booleans(), bad_arg=bad_int_args)
def test_conv2d_properties(variant, case, give_out, bad_arg):
    _conv_property(case, False, variant, give_out, bad_arg)


@PROPERTY
@given(case=conv_cases(depthwise=True), give_out=st.booleans(), bad_arg=bad_int_args)
def test_depthwise_properties(case, give_out, bad_arg):
    _conv_property(case, True, None, give_out, bad_arg)


# ---- pointwise, linear, bias, matmul ------------------------------------------------------------------------


@each_variant
@PER_VARIANT
@given(
    n=st.integers(1, 3),
    c_in=st.integers(1, 20),
    c_out=st.integers(1, 20),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    bias=st.booleans(),
    give_out=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_pointwise_properties(variant, n, c_in, c_out, h, w, bias, give_out, seed):
    FIGURES["examples pointwise"] += 1
    rng = np.random.default_rng(seed)
    x, wt = randn(rng, n, c_in, h, w), randn(rng, c_out, c_in, 1, 1)
    b = randn(rng, c_out) if bias else None
    K.set_matmul_variant(variant)
    y = across_teams(lambda: K.pointwise_conv2d_forward(x, wt, b))
    ref.assert_close(y, ref.conv2d(x, wt, b))
    dy = randn(rng, *y.shape)
    dx = across_teams(lambda: K.pointwise_conv2d_grad_input(dy, wt))
    ref.assert_close(dx, ref.conv2d_grad_input(dy, wt, x.shape))
    dw = across_teams(lambda: K.pointwise_conv2d_grad_weight(dy, x))
    ref.assert_close(dw, ref.conv2d_grad_weight(dy, x, wt.shape))
    if give_out:
        check_out(lambda o: K.pointwise_conv2d_forward(x, wt, b, out=o), y, (x, wt, b), "pointwise")
        check_out(lambda o: K.pointwise_conv2d_grad_input(dy, wt, out=o), dx, (dy, wt), "pointwise")
        check_out(lambda o: K.pointwise_conv2d_grad_weight(dy, x, out=o), dw, (dy, x), "pointwise")


@each_variant
@PER_VARIANT
@given(
    n=st.integers(1, 9),
    fin=st.integers(1, 40),
    fout=st.integers(1, 40),
    bias=st.booleans(),
    give_out=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_linear_properties(variant, n, fin, fout, bias, give_out, seed):
    FIGURES["examples linear"] += 1
    rng = np.random.default_rng(seed)
    x, w = randn(rng, n, fin), randn(rng, fout, fin)
    b = randn(rng, fout) if bias else None
    K.set_matmul_variant(variant)
    y = across_teams(lambda: K.linear_forward(x, w, b))
    ref.assert_close(y, ref.linear(x, w, b))
    dy = randn(rng, n, fout)
    dx = across_teams(lambda: K.linear_grad_input(dy, w))
    ref.assert_close(dx, dy.astype(np.float64) @ w.astype(np.float64))
    dw = across_teams(lambda: K.linear_grad_weight(dy, x))
    ref.assert_close(dw, dy.astype(np.float64).T @ x.astype(np.float64))
    db = across_teams(lambda: K.bias_grad(dy))
    ref.assert_close(db, ref.bias_grad(dy))
    c = across_teams(lambda: K.matmul(x, w.T.copy(), variant=variant))
    ref.assert_close(c, x.astype(np.float64) @ w.T.astype(np.float64))
    if give_out:
        check_out(lambda o: K.linear_forward(x, w, b, out=o), y, (x, w, b), "linear")
        check_out(lambda o: K.linear_grad_input(dy, w, out=o), dx, (dy, w), "linear")
        check_out(lambda o: K.linear_grad_weight(dy, x, out=o), dw, (dy, x), "linear")
        check_out(lambda o: K.bias_grad(dy, out=o), db, (dy,), "linear")


# ---- pooling ------------------------------------------------------------------------------------------------


def pool_reference(x, k, s, p, kind):
    """float64 average (count_include_pad) or max pooling with its gradient for dy = ones * weight."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.empty(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            y[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.sum(axis=(2, 3)) / (kh * kw)
    return y


def pool_grad_reference(x, dy, k, s, p, kind):
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    n, c, h, w = x.shape
    dx = np.zeros(x.shape)
    for a in range(n):
        for b in range(c):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    rows = [r for r in range(i * sh - ph, i * sh - ph + kh) if 0 <= r < h]
                    cols = [q for q in range(j * sw - pw, j * sw - pw + kw) if 0 <= q < w]
                    if kind == "avg":
                        for r in rows:
                            for q in cols:
                                dx[a, b, r, q] += dy[a, b, i, j] / (kh * kw)
                    else:  # the first maximum in row-major window order gets the gradient
                        best = max((x[a, b, r, q], -r, -q) for r in rows for q in cols)
                        dx[a, b, -best[1], -best[2]] += dy[a, b, i, j]
    return dx


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), kh + 6))
    w = draw(st.integers(max(1, kw - 2 * pw), kw + 6))
    stride = draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)))
    return {
        "n": draw(st.integers(1, 2)),
        "c": draw(st.integers(1, 3)),
        "h": h,
        "w": w,
        "k": (kh, kw),
        "stride": stride,
        "padding": (ph, pw),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@PROPERTY
@given(case=pool_cases(), kind=st.sampled_from(["avg", "max"]), give_out=st.booleans(), bad_arg=bad_int_args)
def test_pooling_properties(case, kind, give_out, bad_arg):
    FIGURES["examples pooling"] += 1
    rng = np.random.default_rng(case["seed"])
    x = randn(rng, case["n"], case["c"], case["h"], case["w"])
    if kind == "max":
        x = np.round(x * 2).astype(f32)  # ties: the first maximum wins
    k, s, p = case["k"], case["stride"], case["padding"]
    fwd = K.avg_pool2d_forward if kind == "avg" else K.max_pool2d_forward
    y = across_teams(lambda: fwd(x, k, stride=s, padding=p))
    ref.assert_close(y, pool_reference(x, k, s or k, p, kind))
    dy = randn(rng, *y.shape)
    if kind == "avg":
        grad = lambda **o: K.avg_pool2d_grad_input(dy, x.shape, k, stride=s, padding=p, **o)
    else:
        grad = lambda **o: K.max_pool2d_grad_input(dy, x, k, stride=s, padding=p, **o)
    dx = across_teams(grad)
    ref.assert_close(dx, pool_grad_reference(x, dy, k, s or k, p, kind))
    if give_out:
        check_out(lambda o: fwd(x, k, stride=s, padding=p, out=o), y, (x,), "pooling")
        check_out(lambda o: grad(out=o), dx, (dy,) if kind == "avg" else (dy, x), "pooling")
    g = across_teams(lambda: K.global_avg_pool2d_forward(x))
    ref.assert_close(g, x.astype(np.float64).mean(axis=(2, 3), keepdims=True))
    name = ("kernel_size", "stride", "padding")[case["seed"] % 3]
    args = {"kernel_size": k, "stride": s, "padding": p}
    args[name] = bad_arg
    expect_named_error(lambda: fwd(x, args.pop("kernel_size"), **args), name)


# ---- activations --------------------------------------------------------------------------------------------

SPECIALS = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, -6.0, 3e38], f32)


@PROPERTY
@given(
    shape=st.lists(st.integers(1, 70), min_size=1, max_size=3),
    upper=st.sampled_from([None, 6.0, 0.5]),
    accumulate=st.booleans(),
    give_out=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_relu_properties(shape, upper, accumulate, give_out, seed):
    FIGURES["examples activations"] += 1
    rng = np.random.default_rng(seed)
    x = (randn(rng, *shape) * 8).ravel()
    x[rng.integers(0, x.size, min(x.size, 5))] = rng.choice(SPECIALS, min(x.size, 5))
    x = x.reshape(shape)
    y = across_teams(lambda: K.relu_forward(x, upper=upper))
    # numpy's comparisons are false for NaN, like PyTorch's, so NaN passes through
    expected = np.where(x < 0, f32(0), x)
    if upper is not None:
        expected = np.where(expected > upper, f32(upper), expected)
    assert same_bits(y, expected)
    dy = randn(rng, *shape)
    dx = across_teams(lambda: K.relu_grad_input(y, dy, upper=upper))
    blocked = (y <= 0) | ((y >= upper) if upper is not None else False)
    assert same_bits(dx, np.where(blocked, f32(0), dy))
    if accumulate:
        base = randn(rng, *shape)
        acc = base.copy()
        K.relu_grad_input(y, dy, upper=upper, out=acc, accumulate=True)
        assert same_bits(acc, base + dx)
    if give_out:
        check_out(lambda o: K.relu_forward(x, upper=upper, out=o), y, (x,), "activations")
        check_out(lambda o: K.relu_grad_input(y, dy, upper=upper, out=o), dx, (y, dy), "activations")


# ---- BatchNorm ----------------------------------------------------------------------------------------------


def bn_train_reference(x, gamma, beta, rm, rv, eps, momentum):
    x64 = x.astype(np.float64)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x64.mean(axis=(0, 2, 3))
    var = x64.var(axis=(0, 2, 3))
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x64 - mean[:, None, None]) * invstd[:, None, None]
    y = gamma[:, None, None] * xhat + beta[:, None, None]
    new_rm = (1 - momentum) * rm + momentum * mean
    new_rv = (1 - momentum) * rv + momentum * var * m / (m - 1)
    return y, new_rm, new_rv, mean, invstd


def bn_backward_reference(x, dy, gamma, mean, invstd, batch_stats):
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    xhat = (x64 - mean[:, None, None]) * invstd[:, None, None]
    dbeta = dy64.sum(axis=(0, 2, 3))
    dgamma = (dy64 * xhat).sum(axis=(0, 2, 3))
    scale = (gamma * invstd)[:, None, None]
    if not batch_stats:
        return scale * dy64, dgamma, dbeta
    m = x.shape[0] * x.shape[2] * x.shape[3]
    dx = scale * (dy64 - (dbeta / m)[:, None, None] - xhat * (dgamma / m)[:, None, None])
    return dx, dgamma, dbeta


@PROPERTY
@given(
    n=st.integers(1, 4),
    c=st.integers(1, 5),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    eps=st.sampled_from([1e-5, 1e-3]),
    momentum=st.sampled_from([0.0, 0.1, 1.0]),
    give_out=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_batchnorm_properties(n, c, h, w, eps, momentum, give_out, seed):
    FIGURES["examples batchnorm"] += 1
    rng = np.random.default_rng(seed)
    x = randn(rng, n, c, h, w) * 2 + 0.5
    gamma, beta = randn(rng, c) + 1, randn(rng, c)
    rm, rv = randn(rng, c) * 0.1, np.abs(randn(rng, c)) + 0.5
    if n * h * w < 2:
        with pytest.raises(ValueError, match="^x must have more than 1 value per channel"):
            K.batchnorm2d_forward_train(x, gamma, beta, rm.copy(), rv.copy())
        FIGURES["bad x (one value per channel)"] += 1
        return

    def train():
        rm1, rv1 = rm.copy(), rv.copy()
        y, saved = K.batchnorm2d_forward_train(x, gamma, beta, rm1, rv1, eps=eps, momentum=momentum)
        return y, saved, rm1, rv1

    y, saved, rm1, rv1 = across_teams(train)
    y_ref, rm_ref, rv_ref, mean, invstd = bn_train_reference(x, gamma, beta, rm, rv, eps, momentum)
    ref.assert_close(y, y_ref, 1e-4)
    ref.assert_close(rm1, rm_ref)
    ref.assert_close(rv1, rv_ref)
    dy = randn(rng, n, c, h, w)
    grads = across_teams(lambda: K.batchnorm2d_backward(dy, x, gamma, saved, batch_stats=True))
    for got, expected in zip(grads, bn_backward_reference(x, dy, gamma, mean, invstd, True)):
        ref.assert_close(got, expected, 1e-3)
    ye, saved_e = across_teams(lambda: K.batchnorm2d_forward_eval(x, gamma, beta, rm, rv, eps=eps))
    invstd_e = 1.0 / np.sqrt(rv.astype(np.float64) + eps)
    ref.assert_close(ye, gamma[:, None, None] * (x - rm[:, None, None]) * invstd_e[:, None, None] + beta[:, None, None])
    grads_e = across_teams(lambda: K.batchnorm2d_backward(dy, x, gamma, saved_e, batch_stats=False))
    for got, expected in zip(grads_e, bn_backward_reference(x, dy, gamma, rm.astype(np.float64), invstd_e, False)):
        ref.assert_close(got, expected, 1e-3)
    if give_out:
        check_out(
            lambda o: K.batchnorm2d_forward_eval(x, gamma, beta, rm, rv, eps=eps, out=o)[0],
            ye,
            (x, gamma, beta, rm, rv),
            "batchnorm",
        )
        check_out(
            lambda o: K.batchnorm2d_backward(dy, x, gamma, saved, out=o)[0],
            grads[0],
            (dy, x, gamma, saved),
            "batchnorm",
        )


# ---- losses -------------------------------------------------------------------------------------------------


@PROPERTY
@given(
    n=st.integers(1, 20),
    k=st.integers(1, 12),
    scale=st.sampled_from([1.0, 30.0]),
    give_out=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_loss_properties(n, k, scale, give_out, seed):
    FIGURES["examples losses"] += 1
    rng = np.random.default_rng(seed)
    z = randn(rng, n, k) * scale
    labels = rng.integers(0, k, n)
    loss, dz = across_teams(lambda: K.cross_entropy(z, labels))
    z64 = z.astype(np.float64)
    logp = z64 - z64.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    assert abs(loss - (-logp[np.arange(n), labels].mean())) <= 1e-4 * (1 + abs(loss))
    onehot = np.eye(k)[labels]
    ref.assert_close(dz, (np.exp(logp) - onehot) / n)
    t = randn(rng, n, k)
    mloss, dp = across_teams(lambda: K.mse_loss(z, t))
    d = z64 - t
    assert abs(mloss - (d * d).mean()) <= 1e-4 * (1 + (d * d).mean())
    ref.assert_close(dp, 2 * d / d.size)
    if give_out:
        check_out(lambda o: K.cross_entropy(z, labels, out=o)[1], dz, (z,), "losses")
        check_out(lambda o: K.mse_loss(z, t, out=o)[1], dp, (z, t), "losses")


# ---- optimizers ---------------------------------------------------------------------------------------------


@PROPERTY
@given(
    size=st.integers(1, 300),
    momentum=st.sampled_from([0.0, 0.9]),
    dampening=st.sampled_from([0.0, 0.3]),
    weight_decay=st.sampled_from([0.0, 1e-2]),
    nesterov=st.booleans(),
    first=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_sgd_properties(size, momentum, dampening, weight_decay, nesterov, first, seed):
    FIGURES["examples optimizers"] += 1
    nesterov = nesterov and momentum > 0 and dampening == 0
    rng = np.random.default_rng(seed)
    p, g, buf = randn(rng, size), randn(rng, size), randn(rng, size)
    lr = 0.05

    def step():
        p1, b1 = p.copy(), buf.copy()
        K.sgd_step(
            p1,
            g,
            b1,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            first_step=first,
        )
        return p1, b1

    p1, b1 = across_teams(step)
    d = g.astype(np.float64) + weight_decay * p
    b_ref = buf.astype(np.float64)
    if momentum:
        b_ref = d if first else momentum * b_ref + (1 - dampening) * d
        d = d + momentum * b_ref if nesterov else b_ref
        ref.assert_close(b1, b_ref)
    ref.assert_close(p1, p - lr * d)
    for bad_name, bad in (("param", other_byte_order(p)), ("momentum_buffer", other_byte_order(buf))):
        if bad_name == "momentum_buffer" and not momentum:
            continue
        args = {"param": p.copy(), "momentum_buffer": buf.copy()}
        args[bad_name] = bad
        with pytest.raises(TypeError, match=f"^{bad_name} must have dtype float32 in native byte order"):
            K.sgd_step(args["param"], g, args["momentum_buffer"], lr=lr, momentum=momentum)
        FIGURES["bad in-place byte order"] += 1


@PROPERTY
@given(
    size=st.integers(1, 300),
    step=st.integers(1, 50),
    decoupled=st.booleans(),
    weight_decay=st.sampled_from([0.0, 1e-2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_adam_properties(size, step, decoupled, weight_decay, seed):
    FIGURES["examples optimizers"] += 1
    rng = np.random.default_rng(seed)
    p, g, m, v = randn(rng, size), randn(rng, size), randn(rng, size) * 0.1, np.abs(randn(rng, size)) * 0.1
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8

    def run():
        arrays = [p.copy(), m.copy(), v.copy()]
        K.adam_step(
            arrays[0], g, arrays[1], arrays[2], step=step, lr=lr, weight_decay=weight_decay, decoupled=decoupled
        )
        return tuple(arrays)

    p1, m1, v1 = across_teams(run)
    p64, d = p.astype(np.float64), g.astype(np.float64)
    if decoupled:
        p64 = p64 * (1 - lr * weight_decay)
    else:
        d = d + weight_decay * p64
    m_ref, v_ref = b1 * m + (1 - b1) * d, b2 * v + (1 - b2) * d * d
    denom = np.sqrt(v_ref) / np.sqrt(1 - b2**step) + eps
    ref.assert_close(m1, m_ref)
    ref.assert_close(v1, v_ref)
    ref.assert_close(p1, p64 - lr / (1 - b1**step) * m_ref / denom, 1e-3)
    for i, name in enumerate(("param", "exp_avg", "exp_avg_sq")):
        arrays = [p.copy(), m.copy(), v.copy()]
        arrays[i] = other_byte_order(arrays[i])
        with pytest.raises(TypeError, match=f"^{name} must have dtype float32 in native byte order"):
            K.adam_step(arrays[0], g, arrays[1], arrays[2], step=step)
        FIGURES["bad in-place byte order"] += 1


# ---- INT8 kernels -------------------------------------------------------------------------------------------


@st.composite
def int8_conv_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    return {
        "n": draw(st.integers(1, 2)),
        "c_in": draw(st.integers(1, 6)),
        "c_out": draw(st.integers(1, 9)),
        "h": draw(st.integers(max(1, kh - 2 * ph), kh + 7)),
        "w": draw(st.integers(max(1, kw - 2 * pw), kw + 7)),
        "kh": kh,
        "kw": kw,
        "stride": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "padding": (ph, pw),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _int8_args(rng, acc, c):
    bias, m, s, lo, hi = random_requant(rng, acc, c)
    return (bias, m, s), {"clip_min": lo, "clip_max": hi}


@each_microkernel
@PER_MICROKERNEL
@given(case=int8_conv_cases(), depthwise=st.booleans(), give_out=st.booleans(), bad_arg=bad_int_args)
def test_int8_conv_properties(microkernel, case, depthwise, give_out, bad_arg):
    FIGURES["examples int8 conv/depthwise"] += 1
    rng = np.random.default_rng(case["seed"])
    c_out = case["c_in"] if depthwise else case["c_out"]
    x = rng.integers(0, 256, (case["n"], case["c_in"], case["h"], case["w"])).astype(np.uint8)
    w = rng.integers(-128, 128, (c_out, 1 if depthwise else case["c_in"], case["kh"], case["kw"])).astype(np.int8)
    s, p = case["stride"], case["padding"]
    acc = conv_accumulators(x, w, s, p, depthwise)
    rq, clips = _int8_args(rng, acc, c_out)
    fwd = Q.int8_depthwise_conv2d_forward if depthwise else Q.int8_conv2d_forward
    Q.set_int8_microkernel(microkernel)
    y = across_teams(lambda: fwd(x, w, *rq, stride=s, padding=p, **clips))
    np.testing.assert_array_equal(y, requantize(acc, *rq, clips["clip_min"], clips["clip_max"]))
    if give_out:
        check_out(lambda o: fwd(x, w, *rq, stride=s, padding=p, out=o, **clips), y, (x,), "int8")
    name = "stride" if case["seed"] % 2 else "padding"
    expect_named_error(lambda: fwd(x, w, *rq, **{name: bad_arg}), name)


@each_microkernel
@PER_MICROKERNEL
@given(
    n=st.integers(1, 3),
    c_in=st.integers(1, 40),
    c_out=st.integers(1, 12),
    hw=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    linear=st.booleans(),
    give_out=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_int8_pointwise_linear_properties(microkernel, n, c_in, c_out, hw, linear, give_out, seed):
    FIGURES["examples int8 pointwise/linear"] += 1
    rng = np.random.default_rng(seed)
    shape = (n, c_in) if linear else (n, c_in) + hw
    x = rng.integers(0, 256, shape).astype(np.uint8)
    w = rng.integers(-128, 128, (c_out, c_in) if linear else (c_out, c_in, 1, 1)).astype(np.int8)
    acc = np.einsum("oc,nc...->no...", w.reshape(c_out, c_in).astype(np.int64), x.astype(np.int64))
    rq, clips = _int8_args(rng, acc, c_out)
    fwd = Q.int8_linear_forward if linear else Q.int8_pointwise_conv2d_forward
    Q.set_int8_microkernel(microkernel)
    y = across_teams(lambda: fwd(x, w, *rq, **clips))
    np.testing.assert_array_equal(y, requantize(acc, *rq, clips["clip_min"], clips["clip_max"]))
    if give_out:
        check_out(lambda o: fwd(x, w, *rq, out=o, **clips), y, (x,), "int8")


# ---- latent codes -------------------------------------------------------------------------------------------


def pack_reference(codes, bits):
    """The little-endian bit stream of pack_bits, built bit by bit with numpy."""
    stream = ((codes.reshape(-1, 1).astype(np.uint16) >> np.arange(bits)) & 1).astype(np.uint8).ravel()
    return np.packbits(stream, bitorder="little")


@PROPERTY
@given(
    count=st.integers(1, 300),
    bits=st.integers(1, 8),
    scale=st.floats(1e-3, 10.0),
    give_out=st.booleans(),
    bad_bits=st.sampled_from([0, 9, -1, 2**31, 2**63, 2**64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_quant_code_properties(count, bits, scale, give_out, bad_bits, seed):
    FIGURES["examples quant codes"] += 1
    rng = np.random.default_rng(seed)
    x = (np.abs(randn(rng, count)) * scale * 2**bits / 3).astype(f32)
    q = across_teams(lambda: Q.quantize(x, scale, bits))
    np.testing.assert_array_equal(q, np.clip(np.rint(x / f32(scale)), 0, 2**bits - 1).astype(np.uint8))
    deq = across_teams(lambda: Q.dequantize(q, scale))
    assert same_bits(deq, (f32(scale) * q.astype(f32)).astype(f32))
    packed = across_teams(lambda: Q.pack_bits(q, bits))
    assert Q.packed_size(count, bits) == packed.size == -(-count * bits // 8)
    np.testing.assert_array_equal(packed, pack_reference(q, bits))
    np.testing.assert_array_equal(across_teams(lambda: Q.unpack_bits(packed, bits, count)), q)
    if give_out:
        check_out(lambda o: Q.quantize(x, scale, bits, out=o), q, (x,), "quant codes")
        check_out(lambda o: Q.dequantize(q, scale, out=o), deq, (q,), "quant codes")
        check_out(lambda o: Q.pack_bits(q, bits, out=o), packed, (q,), "quant codes")
    expect_named_error(lambda: Q.pack_bits(q, bad_bits), "bits")
    expect_named_error(lambda: Q.unpack_bits(packed, bits, -bad_bits - 1), "count")
