"""conv2d and depthwise conv2d against the float64 numpy reference, over hypothesis-drawn geometries."""

import numpy as np
import pytest
from conftest import randn
from hypothesis import given, settings
from hypothesis import strategies as st

from pulptrain import _C as C
from pulptrain import kernels as K
from pulptrain import reference as ref


@st.composite
def conv_cases(draw, depthwise=False):
    n = draw(st.integers(1, 3))
    c_in = draw(st.integers(1, 6))
    c_out = c_in if depthwise else draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), kh - 2 * ph + 9))
    w = draw(st.integers(max(1, kw - 2 * pw), kw - 2 * pw + 9))
    with_bias = draw(st.booleans())
    as_pair = draw(st.booleans())
    stride = (sh, sw) if as_pair or sh != sw else sh
    padding = (ph, pw) if as_pair or ph != pw else ph
    seed = draw(st.integers(0, 2**31))
    return dict(
        n=n,
        c_in=c_in,
        c_out=c_out,
        kh=kh,
        kw=kw,
        h=h,
        w=w,
        stride=stride,
        padding=padding,
        with_bias=with_bias,
        seed=seed,
    )


def _run_all_steps(case, depthwise):
    rng = np.random.default_rng(case["seed"])
    x = randn(rng, case["n"], case["c_in"], case["h"], case["w"])
    w = randn(rng, case["c_out"], 1 if depthwise else case["c_in"], case["kh"], case["kw"])
    b = randn(rng, case["c_out"]) if case["with_bias"] else None
    s, p = case["stride"], case["padding"]
    fwd = K.depthwise_conv2d_forward if depthwise else K.conv2d_forward
    gin = K.depthwise_conv2d_grad_input if depthwise else K.conv2d_grad_input
    gw = K.depthwise_conv2d_grad_weight if depthwise else K.conv2d_grad_weight

    y = fwd(x, w, b, stride=s, padding=p)
    ref.assert_close(y, ref.conv2d(x, w, b, s, p, depthwise))
    dy = randn(rng, *y.shape)
    ref.assert_close(gin(dy, w, x.shape, stride=s, padding=p), ref.conv2d_grad_input(dy, w, x.shape, s, p, depthwise))
    ref.assert_close(gw(dy, x, w.shape, stride=s, padding=p), ref.conv2d_grad_weight(dy, x, w.shape, s, p, depthwise))


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_conv2d_all_steps_match_reference(case):
    _run_all_steps(case, depthwise=False)


@settings(max_examples=60, deadline=None)
@given(conv_cases(depthwise=True))
def test_depthwise_all_steps_match_reference(case):
    _run_all_steps(case, depthwise=True)


def test_conv2d_mobilenet_first_layer(rng):
    """conv1: 3->32, 3x3, stride 2, padding 1 on a 32x32 image (many pixel blocks per image)."""
    x, w, b = randn(rng, 2, 3, 32, 32), randn(rng, 32, 3, 3, 3), randn(rng, 32)
    y = K.conv2d_forward(x, w, b, stride=2, padding=1)
    ref.assert_close(y, ref.conv2d(x, w, b, 2, 1))
    dy = randn(rng, *y.shape)
    ref.assert_close(
        K.conv2d_grad_weight(dy, x, w.shape, stride=2, padding=1), ref.conv2d_grad_weight(dy, x, w.shape, 2, 1)
    )
    ref.assert_close(
        K.conv2d_grad_input(dy, w, x.shape, stride=2, padding=1), ref.conv2d_grad_input(dy, w, x.shape, 2, 1)
    )


def test_conv2d_large_reduction_spans_several_k_blocks(rng):
    """K = 64*3*3 = 576 > 256 and 40x40 output pixels > 1024: exercises the K blocking and pixel chunks."""
    x, w = randn(rng, 1, 64, 40, 40), randn(rng, 8, 64, 3, 3)
    y = K.conv2d_forward(x, w, padding=1)
    ref.assert_close(y, ref.conv2d(x, w, None, 1, 1))
    dy = randn(rng, *y.shape)
    ref.assert_close(K.conv2d_grad_weight(dy, x, w.shape, padding=1), ref.conv2d_grad_weight(dy, x, w.shape, 1, 1))


def test_one_by_one_conv2d_uses_direct_path_correctly(rng):
    x, w, b = randn(rng, 2, 5, 7, 6), randn(rng, 4, 5, 1, 1), randn(rng, 4)
    ref.assert_close(K.conv2d_forward(x, w, b), ref.conv2d(x, w, b))


def test_accumulate_adds_into_out(rng):
    x, w = randn(rng, 2, 3, 8, 8), randn(rng, 4, 3, 3, 3)
    dy = randn(rng, 2, 4, 6, 6)
    base = randn(rng, *w.shape)
    out = base.copy()
    K.conv2d_grad_weight(dy, x, w.shape, out=out, accumulate=True)
    ref.assert_close(out, base + ref.conv2d_grad_weight(dy, x, w.shape))
    dbase = randn(rng, *x.shape)
    dx = dbase.copy()
    K.depthwise_conv2d_grad_input(dy[:, :3], w[:3, :1], x.shape, out=dx, accumulate=True)
    ref.assert_close(dx, dbase + ref.conv2d_grad_input(dy[:, :3], w[:3, :1], x.shape, depthwise=True))


def test_conv2d_grad_input_accumulates_on_both_paths(rng):
    """Stride 1 (a forward conv of dY with the flipped weight) and stride 2 (product + col2im)."""
    x, w = randn(rng, 2, 3, 9, 8), randn(rng, 5, 3, 3, 3)
    for stride in (1, 2):
        dy = randn(rng, *ref.conv2d(x, w, None, stride, 1).shape)
        base = randn(rng, *x.shape)
        dx = base.copy()
        K.conv2d_grad_input(dy, w, x.shape, stride=stride, padding=1, out=dx, accumulate=True)
        ref.assert_close(dx, base + ref.conv2d_grad_input(dy, w, x.shape, stride, 1))


@pytest.fixture(params=C.isa_levels())
def isa_level(request):
    """Every ISA level this CPU has (each has its own tiles, panel widths and im2col copies), restored after."""
    C.set_isa(request.param)
    yield request.param
    C.set_isa("auto")


@pytest.mark.usefixtures("isa_level")
def test_conv2d_stride_one_odd_shapes_and_chunk_boundaries(rng):
    """Stride 1 with padding below, at and above kernel size - 1 (the last falls back from the flipped-weight
    forward), patch rows not a multiple of the 16- or 32-wide panel or of the 8-row transposed blocks
    (K = 7*3*5 = 105), several images with more pixels than one grad_weight chunk (256), chunks that start
    inside an output row, and output rows that do not fill whole panels."""
    x = randn(rng, 3, 7, 19, 23)
    for kh, kw, pad in ((3, 5, (1, 2)), (3, 5, (2, 4)), (3, 5, (3, 1)), (1, 1, 1), (2, 3, 0)):
        w, b = randn(rng, 9, 7, kh, kw), randn(rng, 9)
        y = K.conv2d_forward(x, w, b, padding=pad)
        ref.assert_close(y, ref.conv2d(x, w, b, 1, pad))
        dy = randn(rng, *y.shape)
        ref.assert_close(
            K.conv2d_grad_input(dy, w, x.shape, padding=pad), ref.conv2d_grad_input(dy, w, x.shape, 1, pad)
        )
        ref.assert_close(
            K.conv2d_grad_weight(dy, x, w.shape, padding=pad), ref.conv2d_grad_weight(dy, x, w.shape, 1, pad)
        )


def test_out_is_filled_and_returned(rng):
    x, w = randn(rng, 1, 2, 5, 5), randn(rng, 3, 2, 3, 3)
    out = np.full((1, 3, 3, 3), np.nan, np.float32)
    res = K.conv2d_forward(x, w, out=out)
    assert res is out
    ref.assert_close(out, ref.conv2d(x, w))


def test_non_contiguous_inputs_are_accepted(rng):
    x = randn(rng, 2, 3, 9, 9)[:, :, ::2, ::2]  # strided view
    w = np.ascontiguousarray(randn(rng, 3, 4, 3, 3).transpose(1, 0, 2, 3))  # (4, 3, 3, 3)
    wt = randn(rng, 3, 4, 3, 3).transpose(1, 0, 2, 3)  # non-contiguous weight
    ref.assert_close(K.conv2d_forward(x, w, padding=1), ref.conv2d(x, w, None, 1, 1))
    ref.assert_close(K.conv2d_forward(x, wt, padding=1), ref.conv2d(x, wt, None, 1, 1))
