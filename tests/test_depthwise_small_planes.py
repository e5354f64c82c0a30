"""Depthwise 3x3 on small planes, on every tier the build has (the channel-block kernels on SIMD hosts, the
plane kernels, the generic loops; each forced in turn): channel counts that are not a multiple of 8, strides 1
and 2, paddings 0 to 2, N > 1, accumulation."""

import numpy as np
import pytest
from conftest import randn

from pulptrain import kernels as K
from pulptrain import reference as ref

# (n, channels, h, w, stride, padding): MobileNet's 8x8 / 4x4 / 16x16 rows, odd planes whose pixel count is not a
# multiple of 8, unequal strides and paddings, a 1x1 plane that is all border
SHAPES = [
    (1, 8, 8, 8, 1, 1),
    (2, 13, 8, 8, 2, 1),
    (3, 5, 4, 4, 1, 1),
    (2, 21, 4, 4, 2, 1),
    (2, 16, 8, 8, 2, 0),
    (1, 9, 16, 16, 1, 1),
    (2, 3, 16, 16, 2, 1),
    (2, 11, 7, 5, 1, 1),
    (3, 7, 5, 7, 2, 1),
    (2, 10, 6, 6, (1, 2), (1, 0)),
    (1, 17, 3, 3, 1, 2),
    (2, 12, 3, 4, (2, 1), 2),
    (2, 1, 1, 1, 1, 1),
    (1, 24, 9, 9, 2, 0),
    (2, 1030, 4, 4, 1, 1),  # more channel blocks than the kernels keep tap vectors for at once
]


@pytest.fixture(params=K.depthwise_tiers())
def tier(request):
    """Each depthwise tier of this build, forced for the test (the automatic choice restored after)."""
    K.set_depthwise_tier(request.param)
    yield request.param
    K.set_depthwise_tier(None)


def _case(rng, n, c, h, w, stride, padding):
    x, wt, b = randn(rng, n, c, h, w), randn(rng, c, 1, 3, 3), randn(rng, c)
    y_ref = ref.conv2d(x, wt, b, stride, padding, depthwise=True)
    return x, wt, b, y_ref, randn(rng, *y_ref.shape)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "n{}c{}_{}x{}_s{}_p{}".format(*s))
def test_all_steps_match_reference(rng, shape, tier):
    n, c, h, w, stride, padding = shape
    x, wt, b, y_ref, dy = _case(rng, *shape)
    ref.assert_close(K.depthwise_conv2d_forward(x, wt, b, stride=stride, padding=padding), y_ref)
    ref.assert_close(
        K.depthwise_conv2d_forward(x, wt, stride=stride, padding=padding),
        ref.conv2d(x, wt, None, stride, padding, depthwise=True),
    )
    dx_ref = ref.conv2d_grad_input(dy, wt, x.shape, stride, padding, depthwise=True)
    dw_ref = ref.conv2d_grad_weight(dy, x, wt.shape, stride, padding, depthwise=True)
    ref.assert_close(K.depthwise_conv2d_grad_input(dy, wt, x.shape, stride=stride, padding=padding), dx_ref)
    ref.assert_close(K.depthwise_conv2d_grad_weight(dy, x, wt.shape, stride=stride, padding=padding), dw_ref)

    dx_base, dw_base = randn(rng, *x.shape), randn(rng, *wt.shape)
    dx, dwt = dx_base.copy(), dw_base.copy()
    K.depthwise_conv2d_grad_input(dy, wt, x.shape, stride=stride, padding=padding, out=dx, accumulate=True)
    K.depthwise_conv2d_grad_weight(dy, x, wt.shape, stride=stride, padding=padding, out=dwt, accumulate=True)
    ref.assert_close(dx, dx_base + dx_ref)
    ref.assert_close(dwt, dw_base + dw_ref)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hw", [4, 8, 7])
def test_a_channel_gets_the_same_bits_in_any_block_position(rng, stride, hw, tier):
    """Channels 5..16 of a 19-channel call (a full block of 8, then 3 in the last, part-filled block) run
    again as a 12-channel call and as one channel at a time: every result is bitwise the same. (Not promised
    by the plane tier: there the first and last plane of a tensor take the buffered path, the others the
    lane-masked one, which may round differently.)"""
    if tier == "plane":
        pytest.skip("the plane tier's result may depend on a plane's position in the tensor")
    x, wt, b, _, dy = _case(rng, 2, 19, hw, hw, stride, 1)
    full = (
        K.depthwise_conv2d_forward(x, wt, b, stride=stride, padding=1),
        K.depthwise_conv2d_grad_input(dy, wt, x.shape, stride=stride, padding=1),
        K.depthwise_conv2d_grad_weight(dy, x, wt.shape, stride=stride, padding=1),
    )

    def steps(lo, hi):
        xs, dys, ws = np.ascontiguousarray(x[:, lo:hi]), np.ascontiguousarray(dy[:, lo:hi]), wt[lo:hi]
        return (
            K.depthwise_conv2d_forward(xs, ws, b[lo:hi], stride=stride, padding=1),
            K.depthwise_conv2d_grad_input(dys, ws, xs.shape, stride=stride, padding=1),
            K.depthwise_conv2d_grad_weight(dys, xs, ws.shape, stride=stride, padding=1),
        )

    for lo, hi in [(5, 17)] + [(c, c + 1) for c in range(5, 17)]:
        for name, got, want in zip(("forward", "grad_input", "grad_weight"), steps(lo, hi), full):
            axis = 0 if name == "grad_weight" else 1
            assert np.array_equal(got, np.take(want, range(lo, hi), axis=axis)), f"{name} channels {lo}..{hi}"


def test_tier_setting_round_trips_and_refuses_unknown_names():
    tiers = K.depthwise_tiers()
    assert tiers[:2] == ["generic", "plane"] and set(tiers) <= {"generic", "plane", "channel-blocks"}
    assert K.get_depthwise_tier() is None
    try:
        for name in tiers:
            K.set_depthwise_tier(name)
            assert K.get_depthwise_tier() == name
        with pytest.raises(ValueError, match="name must be None or one of"):
            K.set_depthwise_tier("avx9")
        with pytest.raises(TypeError, match="name must be a str or None"):
            K.set_depthwise_tier(2)
        assert K.get_depthwise_tier() == tiers[-1]  # a refused name leaves the setting alone
    finally:
        K.set_depthwise_tier(None)
