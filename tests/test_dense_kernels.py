"""pointwise conv2d, linear, bias_grad and every matmul variant against float64 numpy."""

import numpy as np
import pytest
from conftest import randn
from hypothesis import given, settings
from hypothesis import strategies as st

from pulptrain import kernels as K
from pulptrain import reference as ref

ODD_SIZES = [1, 3, 7, 17, 33]


@pytest.mark.parametrize("variant", K.matmul_variants())
@pytest.mark.parametrize("m", ODD_SIZES)
@pytest.mark.parametrize("n", ODD_SIZES)
@pytest.mark.parametrize("k", ODD_SIZES + [300])
def test_every_matmul_variant_on_odd_sizes(variant, m, n, k):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a, b = randn(rng, m, k), randn(rng, k, n)
    ref.assert_close(K.matmul(a, b, variant=variant), a.astype(np.float64) @ b, 1e-5)


@pytest.mark.parametrize("variant", ["6x16", "4x4"])
@pytest.mark.parametrize("m", [1, 7, 50])
@pytest.mark.parametrize("n", [129, 300])
@pytest.mark.parametrize("k", [1, 4, 5, 32, 33])
def test_short_k_products_match_reference(variant, m, n, k):
    """K <= 4 runs the outer-product path (A and B in place, 1 x 128 row kernel plus single-row tiles for
    the last columns), K <= 32 the row-by-row tile sweep; both overwrite and accumulate."""
    rng = np.random.default_rng(m * 7919 + n * 31 + k)
    a, b = randn(rng, m, k), randn(rng, k, n)
    expected = a.astype(np.float64) @ b
    ref.assert_close(K.matmul(a, b, variant=variant), expected, 1e-5)
    # a batch-1 linear weight gradient is the same product with a transposed (column-major) A
    dy, x = randn(rng, 1 if k == 1 else k, m), randn(rng, 1 if k == 1 else k, n)
    start = randn(rng, m, n)
    dw = start.copy()
    K.linear_grad_weight(dy, x, out=dw, accumulate=True)
    ref.assert_close(dw, start + dy.astype(np.float64).T @ x, 1e-5)


def test_matmul_variant_registry():
    names = K.matmul_variants()
    for required in ["naive", "2x2", "4x2", "6x16"]:
        assert required in names
    assert K.matmul_variant_tile("4x2") == (4, 2)
    assert K.matmul_variant_for(64, 64, 64) in names


@pytest.mark.parametrize("variant", ["2x2", "4x4", "8x1"])
def test_scalar_family_outer_products_with_bias_and_accumulation(variant):
    """The scalar tile families run outer products (K <= 4) and single rows without packing or padding:
    outer products with a column bias (linear forward with one input feature, batch >= out) and
    accumulating (batch-1 weight gradient), a single row accumulating over two K blocks (batch-1
    grad_input, 300 outputs), each large enough to be split across a team, every team size the same bits."""
    import pulptrain

    rng = np.random.default_rng(17)
    x, w, bias = randn(rng, 80, 1), randn(rng, 70, 1), randn(rng, 70)
    dy, xs, start = randn(rng, 1, 64), randn(rng, 1, 1030), randn(rng, 64, 1030)
    dy_row, w_big, dx_start = randn(rng, 1, 300), randn(rng, 300, 1030), randn(rng, 1, 1030)
    results = []
    try:
        K.set_matmul_variant(variant)
        for threads in (1, 3, 8):
            pulptrain.set_num_threads(threads)
            y = K.linear_forward(x, w, bias)
            ref.assert_close(y, x.astype(np.float64) @ w.T + bias, 1e-5)
            dw = start.copy()
            K.linear_grad_weight(dy, xs, out=dw, accumulate=True)
            ref.assert_close(dw, start + dy.astype(np.float64).T @ xs, 1e-5)
            dx = dx_start.copy()
            K.linear_grad_input(dy_row, w_big, out=dx, accumulate=True)
            ref.assert_close(dx, dx_start + dy_row.astype(np.float64) @ w_big, 1e-5)
            results.append((y, dw, dx))
    finally:
        K.set_matmul_variant(None)
        pulptrain.set_num_threads(1)
    for later in results[1:]:
        assert all(np.array_equal(value, first) for value, first in zip(later, results[0]))


def test_forcing_a_matmul_variant_changes_every_kernel_and_restores(rng):
    x, w = randn(rng, 2, 6, 5, 5), randn(rng, 4, 6, 3, 3)
    expected = ref.conv2d(x, w, None, 1, 1)
    try:
        for name in K.matmul_variants():
            K.set_matmul_variant(name)
            assert K.get_matmul_variant() == name
            assert K.matmul_variant_for(10, 10, 10) == name
            ref.assert_close(K.conv2d_forward(x, w, padding=1), expected)
    finally:
        K.set_matmul_variant(None)
    assert K.get_matmul_variant() is None


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 4),
    c_in=st.integers(1, 40),
    c_out=st.integers(1, 40),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_pointwise_all_steps_match_reference(n, c_in, c_out, h, w, with_bias, seed):
    rng = np.random.default_rng(seed)
    x, wt = randn(rng, n, c_in, h, w), randn(rng, c_out, c_in, 1, 1)
    b = randn(rng, c_out) if with_bias else None
    y = K.pointwise_conv2d_forward(x, wt, b)
    ref.assert_close(y, ref.conv2d(x, wt, b))
    dy = randn(rng, *y.shape)
    ref.assert_close(K.pointwise_conv2d_grad_input(dy, wt), ref.conv2d_grad_input(dy, wt, x.shape))
    ref.assert_close(K.pointwise_conv2d_grad_weight(dy, x), ref.conv2d_grad_weight(dy, x, wt.shape))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 9),
    fin=st.integers(1, 70),
    fout=st.integers(1, 70),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_linear_all_steps_match_reference(n, fin, fout, with_bias, seed):
    rng = np.random.default_rng(seed)
    x, w = randn(rng, n, fin), randn(rng, fout, fin)
    b = randn(rng, fout) if with_bias else None
    y = K.linear_forward(x, w, b)
    ref.assert_close(y, ref.linear(x, w, b))
    dy = randn(rng, n, fout)
    ref.assert_close(K.linear_grad_input(dy, w), dy.astype(np.float64) @ w)
    ref.assert_close(K.linear_grad_weight(dy, x), dy.astype(np.float64).T @ x)


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 3, 3), (1, 7, 1, 1), (4, 2, 5)])
def test_bias_grad_sums_all_axes_but_one(rng, shape):
    dy = randn(rng, *shape)
    ref.assert_close(K.bias_grad(dy), ref.bias_grad(dy))
    base = randn(rng, shape[1])
    out = base.copy()
    K.bias_grad(dy, out=out, accumulate=True)
    ref.assert_close(out, base + ref.bias_grad(dy))


def test_pointwise_large_batch_spans_k_blocks(rng):
    """grad_weight reduces over N*HW = 8*64 = 512 > 256 folded across image boundaries."""
    x, w = randn(rng, 8, 40, 8, 8), randn(rng, 24, 40, 1, 1)
    dy = randn(rng, 8, 24, 8, 8)
    ref.assert_close(K.pointwise_conv2d_grad_weight(dy, x), ref.conv2d_grad_weight(dy, x, w.shape))
    ref.assert_close(K.pointwise_conv2d_grad_input(dy, w), ref.conv2d_grad_input(dy, w, x.shape))
