"""Bad input raises TypeError / ValueError naming the argument; nothing crashes, no out is written."""

import numpy as np
import pytest

from pulptrain import kernels as K

f32 = np.float32


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype)


X, W, DY = z(2, 3, 8, 8), z(4, 3, 3, 3), z(2, 4, 6, 6)
XD, WD, DYD = z(2, 3, 8, 8), z(3, 1, 3, 3), z(2, 3, 6, 6)
WP, DYP = z(5, 3, 1, 1), z(2, 5, 8, 8)
XL, WL, DYL = z(4, 6), z(7, 6), z(4, 7)

# (callable, exception, message fragment)
BAD_CALLS = [
    # wrong dtype
    (lambda: K.conv2d_forward(X.astype(np.float64), W), TypeError, "x must have dtype float32"),
    (lambda: K.conv2d_forward(X, W.astype(np.float16)), TypeError, "w must have dtype float32"),
    (lambda: K.conv2d_forward(X, W, z(4, dtype=np.int32)), TypeError, "bias must have dtype float32"),
    (lambda: K.linear_forward(XL.astype(np.int64), WL), TypeError, "x must have dtype float32"),
    (lambda: K.matmul([[1.0]], z(1, 1)), TypeError, "a must be a numpy.ndarray"),
    # wrong rank
    (lambda: K.conv2d_forward(z(3, 8, 8), W), ValueError, "x must be 4-D"),
    (lambda: K.depthwise_conv2d_forward(XD, z(3, 3, 3)), ValueError, "w must be 4-D"),
    (lambda: K.linear_forward(z(4, 6, 1), WL), ValueError, "x must be 2-D"),
    (lambda: K.bias_grad(z(5)), ValueError, "dy must have at least 2 dimensions"),
    (lambda: K.matmul(z(3), z(3, 2)), ValueError, "a must be 2-D"),
    # inconsistent shapes
    (lambda: K.conv2d_forward(X, z(4, 2, 3, 3)), ValueError, "w must have shape \\(C_out, 3, kh, kw\\)"),
    (lambda: K.conv2d_forward(X, W, z(5)), ValueError, "bias must have shape \\(4,\\)"),
    (lambda: K.conv2d_grad_input(z(2, 4, 5, 6), W, X.shape), ValueError, "dy must have shape \\(2, 4, 6, 6\\)"),
    (lambda: K.conv2d_grad_input(DY, W, (2, 3, 8)), TypeError, "input_shape must be a tuple of 4 ints"),
    (lambda: K.conv2d_grad_input(DY, W, (2, 2, 8, 8)), ValueError, "w must have shape \\(C_out, 2"),
    (lambda: K.conv2d_grad_weight(DY, X, (4, 2, 3, 3)), ValueError, "weight_shape must be \\(C_out, 3"),
    (lambda: K.conv2d_grad_weight(DY, X, (4, 3, 3, 0)), ValueError, "weight_shape must have every size >= 1"),
    (lambda: K.depthwise_conv2d_forward(XD, z(3, 2, 3, 3)), ValueError, "w must have shape \\(3, 1, kh, kw\\)"),
    (lambda: K.depthwise_conv2d_grad_weight(DYD, XD, (4, 1, 3, 3)), ValueError, "weight_shape must have shape"),
    (lambda: K.pointwise_conv2d_forward(X, z(5, 3, 3, 3)), ValueError, "w must have shape \\(C_out, C_in, 1, 1\\)"),
    (lambda: K.pointwise_conv2d_grad_input(DYP, z(4, 3, 1, 1)), ValueError, "w must have shape \\(5, C_in, 1, 1\\)"),
    (lambda: K.pointwise_conv2d_grad_weight(z(2, 5, 7, 8), X), ValueError, "dy must have shape"),
    (lambda: K.linear_forward(XL, z(7, 5)), ValueError, "w must have shape \\(out_features, 6\\)"),
    (lambda: K.linear_grad_weight(z(3, 7), XL), ValueError, "dy must have shape \\(4, out_features\\)"),
    (lambda: K.matmul(z(3, 4), z(5, 2)), ValueError, "b must have shape \\(4, N\\)"),
    (lambda: K.conv2d_forward(z(0, 3, 8, 8), W), ValueError, "x must not be empty"),
    # stride, padding, output size
    (lambda: K.conv2d_forward(X, W, stride=0), ValueError, "stride must be >= 1"),
    (lambda: K.conv2d_forward(X, W, stride=(1, -2)), ValueError, "stride must be >= 1"),
    (lambda: K.conv2d_forward(X, W, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: K.conv2d_forward(X, W, stride=1.5), TypeError, "stride must be an int or a pair"),
    (lambda: K.conv2d_forward(X, W, padding=(1, 2, 3)), TypeError, "padding must be an int or a pair"),
    (lambda: K.depthwise_conv2d_forward(XD, WD, stride=True), TypeError, "stride must be an int or a pair"),
    (lambda: K.conv2d_forward(z(1, 3, 2, 2), W), ValueError, "output size would be <= 0"),
    (lambda: K.depthwise_conv2d_grad_input(DYD, z(3, 1, 11, 3), XD.shape), ValueError, "output size would be <= 0"),
    # matmul variant
    (lambda: K.matmul(z(2, 2), z(2, 2), variant="9x9"), ValueError, "variant must be one of"),
    (lambda: K.set_matmul_variant(3), TypeError, "variant must be a str or None"),
    # accumulate without out
    (lambda: K.conv2d_grad_weight(DY, X, W.shape, accumulate=True), ValueError, "accumulate=True needs out="),
]


@pytest.mark.parametrize("call,exc,match", BAD_CALLS, ids=[str(i) for i in range(len(BAD_CALLS))])
def test_bad_input_raises_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _sentinel(shape, dtype=f32):
    return np.full(shape, 7, dtype)


BAD_OUTS = [
    (lambda out: K.conv2d_forward(X, W, out=out), (2, 4, 6, 6)),
    (lambda out: K.conv2d_grad_input(DY, W, X.shape, out=out), X.shape),
    (lambda out: K.conv2d_grad_weight(DY, X, W.shape, out=out), W.shape),
    (lambda out: K.depthwise_conv2d_forward(XD, WD, out=out), DYD.shape),
    (lambda out: K.depthwise_conv2d_grad_input(DYD, WD, XD.shape, out=out), XD.shape),
    (lambda out: K.depthwise_conv2d_grad_weight(DYD, XD, WD.shape, out=out), WD.shape),
    (lambda out: K.pointwise_conv2d_forward(X, WP, out=out), DYP.shape),
    (lambda out: K.pointwise_conv2d_grad_input(DYP, WP, out=out), X.shape),
    (lambda out: K.pointwise_conv2d_grad_weight(DYP, X, out=out), WP.shape),
    (lambda out: K.linear_forward(XL, WL, out=out), DYL.shape),
    (lambda out: K.linear_grad_input(DYL, WL, out=out), XL.shape),
    (lambda out: K.linear_grad_weight(DYL, XL, out=out), WL.shape),
    (lambda out: K.bias_grad(DY, out=out), (4,)),
    (lambda out: K.matmul(XL, WL.T.copy(), out=out), (4, 7)),
]


@pytest.mark.parametrize("call,shape", BAD_OUTS, ids=[str(i) for i in range(len(BAD_OUTS))])
def test_bad_out_is_rejected_and_left_untouched(call, shape):
    wrong_shape = _sentinel(tuple(s + 1 for s in shape))
    with pytest.raises(ValueError, match="out must have shape"):
        call(wrong_shape)
    assert np.all(wrong_shape == 7)

    wrong_dtype = _sentinel(shape, np.float64)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        call(wrong_dtype)
    assert np.all(wrong_dtype == 7)

    big = _sentinel(tuple(2 * s for s in shape))
    non_contiguous = big[tuple(slice(None, None, 2) for _ in shape)]
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        call(non_contiguous)
    assert np.all(big == 7)

    read_only = _sentinel(shape)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        call(read_only)

    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        call([0.0])


def test_out_overlapping_an_input_is_rejected():
    x = np.ones((2, 4, 5, 5), f32)
    w = np.ones((4, 4, 1, 1), f32)
    with pytest.raises(ValueError, match="out must not overlap an input"):
        K.pointwise_conv2d_forward(x, w, out=x)
    assert np.all(x == 1)


def test_out_overlap_is_judged_by_byte_ranges():
    """Slices of one buffer: a partial overlap is rejected, touching-but-disjoint neighbours are accepted."""
    buf = np.zeros(12, f32)
    x = buf[0:6]
    K.relu_forward(x, out=buf[6:12])  # adjacent, disjoint: fine
    for start in (1, 5):
        with pytest.raises(ValueError, match="out must not overlap an input"):
            K.relu_forward(x, out=buf[start : start + 6])
