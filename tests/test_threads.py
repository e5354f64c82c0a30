"""Results are bitwise identical for every team size, and kernels are safe to call from Python threads."""

import threading

import numpy as np
import pytest
from conftest import randn

import pulptrain
from pulptrain import kernels as K
from pulptrain import ops
from pulptrain import reference as ref

THREAD_COUNTS = [1, 2, 3, 8]


def _all_kernel_outputs(rng):
    """Every kernel and step on shapes with many work units (N = 1 with many pixels, N = 3, K > 256)."""
    out = {}
    for n in (1, 3):
        x, w, b = randn(rng, n, 20, 23, 19), randn(rng, 13, 20, 3, 3), randn(rng, 13)
        y = K.conv2d_forward(x, w, b, stride=(2, 1), padding=1)
        dy = randn(rng, *y.shape)
        out[f"conv_fw{n}"] = y
        out[f"conv_ig{n}"] = K.conv2d_grad_input(dy, w, x.shape, stride=(2, 1), padding=1)
        out[f"conv_wg{n}"] = K.conv2d_grad_weight(dy, x, w.shape, stride=(2, 1), padding=1)
        # stride 1: grad_input runs as a forward conv of dY; 380 pixels span two grad_weight chunks
        w1 = randn(rng, 11, 20, 3, 2)
        y1 = K.conv2d_forward(x, w1, None, stride=1, padding=(1, 0))
        dy1 = randn(rng, *y1.shape)
        out[f"conv_s1_fw{n}"] = y1
        out[f"conv_s1_ig{n}"] = K.conv2d_grad_input(dy1, w1, x.shape, stride=1, padding=(1, 0))
        out[f"conv_s1_wg{n}"] = K.conv2d_grad_weight(dy1, x, w1.shape, stride=1, padding=(1, 0))
        wd = randn(rng, 20, 1, 3, 3)
        yd = K.depthwise_conv2d_forward(x, wd, b[:1].repeat(20), stride=2, padding=1)
        dyd = randn(rng, *yd.shape)
        out[f"dw_fw{n}"] = yd
        out[f"dw_ig{n}"] = K.depthwise_conv2d_grad_input(dyd, wd, x.shape, stride=2, padding=1)
        out[f"dw_wg{n}"] = K.depthwise_conv2d_grad_weight(dyd, x, wd.shape, stride=2, padding=1)
        for c, hw, s in ((45, 8, 1), (100, 16, 2), (300, 4, 1)):  # small planes: channel blocks of 8 + a rest
            xs, ws = randn(rng, n, c, hw, hw), randn(rng, c, 1, 3, 3)
            ys = K.depthwise_conv2d_forward(xs, ws, randn(rng, c), stride=s, padding=1)
            dys = randn(rng, *ys.shape)
            out[f"dw{c}_fw{n}"] = ys
            out[f"dw{c}_ig{n}"] = K.depthwise_conv2d_grad_input(dys, ws, xs.shape, stride=s, padding=1)
            out[f"dw{c}_wg{n}"] = K.depthwise_conv2d_grad_weight(dys, xs, ws.shape, stride=s, padding=1)
        wp = randn(rng, 37, 20, 1, 1)
        yp = K.pointwise_conv2d_forward(x, wp, None)
        dyp = randn(rng, *yp.shape)
        out[f"pw_fw{n}"] = yp
        out[f"pw_ig{n}"] = K.pointwise_conv2d_grad_input(dyp, wp)
        out[f"pw_wg{n}"] = K.pointwise_conv2d_grad_weight(dyp, x)
        xl, wl, bl = randn(rng, n * 5, 300), randn(rng, 50, 300), randn(rng, 50)
        dyl = randn(rng, n * 5, 50)
        out[f"lin_fw{n}"] = K.linear_forward(xl, wl, bl)
        out[f"lin_ig{n}"] = K.linear_grad_input(dyl, wl)
        out[f"lin_wg{n}"] = K.linear_grad_weight(dyl, xl)
        out[f"lin_wg_batch1_{n}"] = K.linear_grad_weight(dyl[:1], randn(rng, 1, 1000))  # outer-product path
        out[f"bias{n}"] = K.bias_grad(dy)
    a, bm = randn(rng, 70, 300), randn(rng, 300, 90)
    for v in K.matmul_variants():
        out[f"matmul_{v}"] = K.matmul(a, bm, variant=v)
    return out


def test_every_kernel_is_bitwise_identical_for_any_thread_count():
    results = {}
    for t in THREAD_COUNTS:
        pulptrain.set_num_threads(t)
        assert pulptrain.get_num_threads() == t
        results[t] = _all_kernel_outputs(np.random.default_rng(7))
    for t in THREAD_COUNTS[1:]:
        for name, value in results[1].items():
            assert np.array_equal(value, results[t][name]), f"{name} differs between 1 and {t} threads"


def test_conv_grad_weight_with_shared_columns_over_rounds():
    """conv1's channels (3: a single patch-row panel) on 256x256 images: from 2 cores on, the team writes the
    columns of a round of images once (2 images of 16384 pixels per round, so 3 images take two rounds) and cuts
    dW's rows instead of repeating the columns per row block. Every team size gives the 1-core bits, which match
    float64."""
    rng = np.random.default_rng(3)
    x, w = randn(rng, 3, 3, 256, 256), randn(rng, 32, 3, 3, 3)
    dy = randn(rng, 3, 32, 128, 128)
    results = {}
    for t in THREAD_COUNTS:
        pulptrain.set_num_threads(t)
        results[t] = K.conv2d_grad_weight(dy, x, w.shape, stride=2, padding=1)
    pulptrain.set_num_threads(1)
    for t in THREAD_COUNTS[1:]:
        assert np.array_equal(results[1], results[t]), f"differs between 1 and {t} threads"
    ref.assert_close(results[1], ref.conv2d_grad_weight(dy, x, w.shape, 2, 1))


@pytest.mark.parametrize("op", ops.OPS, ids=lambda op: op.name)
def test_every_op_of_the_table_is_bitwise_identical_for_any_thread_count(op):
    """Every op of pulptrain/ops.py on its sizes, with every variant of its tier (matmul variants, INT8
    microkernels): the results for 2, 3 and 8 threads equal the 1-thread results bit for bit."""
    rng = np.random.default_rng(11)
    examples = [op.example(rng, size) for size in op.sizes]
    try:
        for variant in ops.tiers(op):
            ops.use_tier(op, variant)
            results = {}
            for t in THREAD_COUNTS:
                pulptrain.set_num_threads(t)
                results[t] = [op.run(arrays, params) for arrays, params in examples]
            for t in THREAD_COUNTS[1:]:
                for single, team in zip(results[1], results[t]):
                    for name, value in single.items():
                        assert np.array_equal(np.asarray(value), np.asarray(team[name])), (
                            f"{op.name} {name} (variant {variant}) differs between 1 and {t} threads"
                        )
    finally:
        ops.use_tier(op, None)


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="n must be >= 1"):
        pulptrain.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        pulptrain.set_num_threads(2.0)
    with pytest.raises(ValueError, match=r"n must be <= 256 \(the largest team\), got 1000"):
        pulptrain.set_num_threads(1000)
    assert pulptrain.get_num_threads() == 1  # a refused value leaves the default alone


def test_parallel_backend_is_reported():
    assert pulptrain.parallel_backend() in ("openmp", "serial")


def test_concurrent_calls_from_python_threads_are_correct():
    """The GIL is released and each Python thread has its own scratch buffer."""
    rng = np.random.default_rng(3)
    cases = [(randn(rng, 2, 8, 16, 16), randn(rng, 8, 8, 3, 3)) for _ in range(4)]
    expected = [ref.conv2d(x, w, None, 1, 1) for x, w in cases]
    errors = []

    def work(i):
        try:
            for _ in range(20):
                ref.assert_close(K.conv2d_forward(cases[i][0], cases[i][1], padding=1), expected[i])
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors


def _matmul_step_outputs(rng):
    """conv2d / pointwise / linear steps whose blocking follows the team size (N = 1 with few channels per
    core; odd channel counts leave short edge blocks)."""
    out = {}
    # 1x1 with padding: grad_input goes through dcol + col2im, in channel blocks cut for the team
    dy, w = randn(rng, 1, 48, 10, 22), randn(rng, 48, 46, 1, 1)
    out["conv1x1_pad_ig"] = K.conv2d_grad_input(dy, w, (1, 46, 8, 20), padding=1)
    out["conv1x1_pad_wg"] = K.conv2d_grad_weight(dy, randn(rng, 1, 46, 8, 20), w.shape, padding=1)
    for n, c_in, c_out, k, s in ((1, 13, 29, 3, 2), (2, 37, 8, 3, 1), (1, 70, 21, 5, 2)):
        x, w = randn(rng, n, c_in, 15, 17), randn(rng, c_out, c_in, k, k)
        y = K.conv2d_forward(x, w, randn(rng, c_out), stride=s, padding=1)
        dy = randn(rng, *y.shape)
        out[f"conv{c_in}_fw"] = y
        out[f"conv{c_in}_ig"] = K.conv2d_grad_input(dy, w, x.shape, stride=s, padding=1)
        out[f"conv{c_in}_wg"] = K.conv2d_grad_weight(dy, x, w.shape, stride=s, padding=1)
    for n, c_in, c_out, hw in ((1, 46, 48, 9), (3, 17, 100, 5)):
        x, w = randn(rng, n, c_in, hw, hw + 2), randn(rng, c_out, c_in, 1, 1)
        y = K.pointwise_conv2d_forward(x, w, randn(rng, c_out))
        dy = randn(rng, *y.shape)
        out[f"pw{c_in}_fw"] = y
        out[f"pw{c_in}_ig"] = K.pointwise_conv2d_grad_input(dy, w)
        out[f"pw{c_in}_wg"] = K.pointwise_conv2d_grad_weight(dy, x)
    for n, f_in, f_out in ((1, 300, 50), (7, 45, 130), (33, 20, 9)):
        x, w, dy = randn(rng, n, f_in), randn(rng, f_out, f_in), randn(rng, n, f_out)
        out[f"lin{n}_fw"] = K.linear_forward(x, w, randn(rng, f_out))
        out[f"lin{n}_ig"] = K.linear_grad_input(dy, w)
        out[f"lin{n}_wg"] = K.linear_grad_weight(dy, x)
    return out


@pytest.mark.parametrize("variant", K.matmul_variants())
def test_forced_matmul_variant_is_bitwise_identical_for_any_thread_count(variant):
    K.set_matmul_variant(variant)
    try:
        results = {}
        for t in THREAD_COUNTS:
            pulptrain.set_num_threads(t)
            results[t] = _matmul_step_outputs(np.random.default_rng(5))
    finally:
        K.set_matmul_variant(None)
    for t in THREAD_COUNTS[1:]:
        for name, value in results[1].items():
            assert np.array_equal(value, results[t][name]), (
                f"{name} with variant {variant} differs between 1 and {t} threads"
            )
