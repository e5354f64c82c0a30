"""Regressions for defects found by an audit: byte order of written arrays, NaN through ReLU, 64-bit
counts, range checks of every int argument (before any allocation, naming the argument), and small
argument checks that PyTorch has too."""

import numpy as np
import pytest

import pulptrain
from pulptrain import _C
from pulptrain import kernels as K
from pulptrain import quant as Q

f32 = np.float32


def ones(*shape, dtype=f32):
    return np.ones(shape, dtype)


# ---- 1. byte order: inputs are converted, arrays written in place or through out= are refused ---------------


def test_big_endian_inputs_are_read_correctly():
    x = np.arange(-4, 5, dtype=">f4").reshape(1, 1, 3, 3)
    w = np.arange(9, dtype=">f4").reshape(1, 1, 3, 3)
    expected = float(np.sum(np.arange(-4, 5, dtype=np.float64) * np.arange(9)))
    np.testing.assert_array_equal(K.conv2d_forward(x, w), np.full((1, 1, 1, 1), expected, f32))
    p = np.arange(4, dtype=f32)
    K.sgd_step(p, np.ones(4, ">f4"), lr=0.5)
    np.testing.assert_array_equal(p, np.arange(4, dtype=f32) - 0.5)
    codes = np.array([1, 2, 3], np.uint8)
    m = np.array([1 << 20], ">i4")
    y = Q.int8_linear_forward(codes.reshape(1, 3), np.ones((1, 3), np.int8), None, m, np.array([20], ">i4"))
    np.testing.assert_array_equal(y, [[6]])


def _sgd(p):
    K.sgd_step(p, ones(4), lr=0.5)


def _sgd_momentum(m):
    K.sgd_step(ones(4), ones(4), m, lr=0.5, momentum=0.9)


def _adam(i):
    def call(a):
        arrays = [ones(4), ones(4), np.zeros(4, f32), np.zeros(4, f32)]
        arrays[i] = a
        K.adam_step(arrays[0], arrays[1], arrays[2], arrays[3], step=1)

    return call


def _bn_train(i):
    def call(a):
        state = [np.zeros(3, f32), ones(3)]
        state[i] = a
        K.batchnorm2d_forward_train(ones(2, 3, 2, 2), ones(3), ones(3), state[0], state[1])

    return call


X4 = np.linspace(-1, 1, 2 * 3 * 4 * 4, dtype=f32).reshape(2, 3, 4, 4)
U8 = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)

# (argument name, call(array), a good array whose byte-swapped twin the call must refuse)
WRITTEN_ARRAYS = [
    ("param", _sgd, np.arange(4, dtype=f32)),
    ("momentum_buffer", _sgd_momentum, np.zeros(4, f32)),
    ("param", _adam(0), ones(4)),
    ("exp_avg", _adam(2), np.zeros(4, f32)),
    ("exp_avg_sq", _adam(3), np.zeros(4, f32)),
    ("running_mean", _bn_train(0), np.zeros(3, f32)),
    ("running_var", _bn_train(1), ones(3)),
    ("out", lambda a: K.conv2d_forward(X4, ones(2, 3, 3, 3), out=a), np.zeros((2, 2, 2, 2), f32)),
    ("out", lambda a: K.conv2d_grad_input(ones(2, 2, 2, 2), ones(2, 3, 3, 3), X4.shape, out=a), np.zeros_like(X4)),
    ("out", lambda a: K.depthwise_conv2d_forward(X4, ones(3, 1, 3, 3), out=a), np.zeros((2, 3, 2, 2), f32)),
    ("out", lambda a: K.pointwise_conv2d_forward(X4, ones(5, 3, 1, 1), out=a), np.zeros((2, 5, 4, 4), f32)),
    ("out", lambda a: K.linear_forward(ones(2, 3), ones(4, 3), out=a), np.zeros((2, 4), f32)),
    ("out", lambda a: K.linear_grad_weight(ones(2, 4), ones(2, 3), out=a, accumulate=True), np.zeros((4, 3), f32)),
    ("out", lambda a: K.bias_grad(X4, out=a), np.zeros(3, f32)),
    ("out", lambda a: K.matmul(ones(2, 3), ones(3, 4), out=a), np.zeros((2, 4), f32)),
    ("out", lambda a: K.relu_forward(X4, out=a), np.zeros_like(X4)),
    ("out", lambda a: K.relu_grad_input(X4, X4, out=a), np.zeros_like(X4)),
    ("out", lambda a: K.avg_pool2d_forward(X4, 2, out=a), np.zeros((2, 3, 2, 2), f32)),
    ("out", lambda a: K.max_pool2d_grad_input(ones(2, 3, 2, 2), X4, 2, out=a), np.zeros_like(X4)),
    ("out", lambda a: K.batchnorm2d_forward_eval(X4, ones(3), ones(3), ones(3), ones(3), out=a), np.zeros_like(X4)),
    (
        "saved",
        lambda a: K.batchnorm2d_forward_train(X4, ones(3), ones(3), ones(3), ones(3), saved=a),
        np.zeros((4, 3), f32),
    ),
    ("dgamma_out", lambda a: K.batchnorm2d_backward(X4, X4, ones(3), ones(4, 3), dgamma_out=a), np.zeros(3, f32)),
    ("dbeta_out", lambda a: K.batchnorm2d_backward(X4, X4, ones(3), ones(4, 3), dbeta_out=a), np.zeros(3, f32)),
    ("out", lambda a: K.cross_entropy(ones(2, 3), np.array([0, 2]), out=a), np.zeros((2, 3), f32)),
    ("out", lambda a: K.mse_loss(ones(2, 3), ones(2, 3), out=a), np.zeros((2, 3), f32)),
    ("out", lambda a: Q.dequantize(U8, 0.5, out=a), np.zeros(U8.shape, f32)),
]


@pytest.mark.parametrize("name,call,good", WRITTEN_ARRAYS, ids=[f"{i}-{w[0]}" for i, w in enumerate(WRITTEN_ARRAYS)])
def test_written_array_in_other_byte_order_is_refused(name, call, good):
    call(good.copy())  # the native array is accepted
    swapped = good.astype(good.dtype.newbyteorder(">" if np.little_endian else "<"))
    before = swapped.copy()
    with pytest.raises(TypeError, match=f"^{name} must have dtype float32 in native byte order"):
        call(swapped)
    np.testing.assert_array_equal(swapped, before)  # untouched


def test_int_outputs_have_no_byte_order_issue_but_int32_parameters_are_converted():
    # uint8 outputs have no byte order; int32 requantization parameters are inputs (converted)
    w = np.ones((1, 3), np.int8)
    y = Q.int8_linear_forward(np.array([[1, 2, 3]], np.uint8), w, np.array([4], ">i4"), 1, 0)
    np.testing.assert_array_equal(y, [[10]])


# ---- 2. ReLU / ReLU6 propagate NaN, as PyTorch ---------------------------------------------------------------


@pytest.mark.parametrize("upper", [None, 6.0])
def test_relu_propagates_nan_and_keeps_negative_zero(upper):
    x = np.array([np.nan, -np.nan, -1.0, -0.0, 0.0, 3.0, 7.0, np.inf, -np.inf] * 10, f32)
    for n in (1, 2, 3):
        pulptrain.set_num_threads(n)
        y = K.relu_forward(x, upper=upper)
        expected = np.where(x < 0, f32(0), x)  # numpy's comparison is false for NaN, like torch.relu
        if upper is not None:
            expected = np.where(expected > upper, f32(upper), expected)
        np.testing.assert_array_equal(y, expected)  # NaN == NaN here
        np.testing.assert_array_equal(np.signbit(y), np.signbit(expected))


@pytest.mark.parametrize("upper", [None, 6.0])
def test_relu_gradient_at_nan_matches_torch(upper):
    torch = pytest.importorskip("torch")
    x = np.array([np.nan, -1.0, 0.0, 3.0, 6.0, 7.0], f32)
    for dy in (np.ones_like(x), np.full_like(x, np.nan), np.arange(6, dtype=f32)):
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        yt = torch.relu(xt) if upper is None else torch.nn.functional.relu6(xt)
        yt.backward(torch.tensor(dy, dtype=torch.float64))
        y = K.relu_forward(x, upper=upper)
        np.testing.assert_array_equal(y, yt.detach().numpy().astype(f32))
        np.testing.assert_array_equal(K.relu_grad_input(y, dy, upper=upper), xt.grad.numpy().astype(f32))


# ---- 3. counts of 2**31 and more -----------------------------------------------------------------------------


def test_packed_size_takes_64_bit_counts():
    for count in (2**31 - 1, 2**31, 2**32 + 3, 2**62):
        for bits in (1, 3, 8):
            assert Q.packed_size(count, bits) == -(-count * bits // 8)
    with pytest.raises(ValueError, match=r"count must be in \[0, 4611686018427387904\]"):
        Q.packed_size(2**62 + 1, 8)
    with pytest.raises(ValueError, match="count must be in"):
        Q.packed_size(2**64, 8)


def test_unpack_bits_takes_a_count_above_2_31():
    count = 2**31 + 8
    packed = np.zeros(Q.packed_size(count, 1), np.uint8)  # 256 MiB
    packed[-1] = 0b10000001
    codes = Q.unpack_bits(packed, 1, count)
    assert codes.shape == (count,)
    assert codes[-8] == 1 and codes[-1] == 1 and codes[-2] == 0 and not codes[:-8].any()


# ---- 4. huge or odd int arguments: clear errors naming the argument, before any allocation --------------------

XU = np.zeros((1, 2, 5, 5), np.uint8)
WU = np.zeros((2, 1, 3, 3), np.int8)
XF = np.zeros((1, 2, 5, 5), f32)
WF = np.zeros((3, 2, 3, 3), f32)
WD = np.zeros((2, 1, 3, 3), f32)

HUGE = [2**31, 2**32, 2**62 + 1, 2**63, 2**64, 10**30]

DY3 = np.zeros((1, 3, 3, 3), f32)
EXTENT = 2**31  # the smallest size, stride or padding above the limit
W8 = np.zeros((3, 2, 3, 3), np.int8)

# (callable(value), argument named in the message, smallest bad value among HUGE)
HUGE_ARGUMENTS = [
    (lambda v: K.conv2d_forward(XF, WF, stride=v), "stride", EXTENT),
    (lambda v: K.conv2d_forward(XF, WF, stride=(1, v)), "stride", EXTENT),
    (lambda v: K.conv2d_forward(XF, WF, padding=v), "padding", EXTENT),
    (lambda v: K.conv2d_grad_input(DY3, WF, XF.shape, padding=(v, 0)), "padding", EXTENT),
    (lambda v: K.depthwise_conv2d_grad_weight(DY3[:, :2], XF, WD.shape, stride=v), "stride", EXTENT),
    (lambda v: Q.int8_depthwise_conv2d_forward(XU, WU, None, 1, 0, stride=(1, v)), "stride", EXTENT),
    (lambda v: Q.int8_depthwise_conv2d_forward(XU, WU, None, 1, 0, stride=v), "stride", EXTENT),
    (lambda v: Q.int8_depthwise_conv2d_forward(XU, WU, None, 1, 0, padding=v), "padding", EXTENT),
    (lambda v: Q.int8_conv2d_forward(XU, W8, None, 1, 0, stride=v), "stride", EXTENT),
    (lambda v: K.avg_pool2d_forward(XF, v), "kernel_size", EXTENT),
    (lambda v: K.max_pool2d_forward(XF, 2, stride=v), "stride", EXTENT),
    (lambda v: Q.int8_avg_pool2d(XU, (1, v)), "kernel_size", EXTENT),
    (lambda v: K.conv2d_grad_input(DY3, WF, (v, 2, 5, 5)), "input_shape", EXTENT),
    (lambda v: K.conv2d_grad_weight(DY3, XF, (3, 2, v, 3)), "weight_shape", EXTENT),
    (lambda v: K.avg_pool2d_grad_input(np.zeros((1, 2, 1, 1), f32), (1, 2, v, 5), 5), "input_shape", EXTENT),
    (lambda v: K.global_avg_pool2d_grad_input(np.zeros((1, 2, 1, 1), f32), (1, 2, 5, v)), "input_shape", EXTENT),
    (lambda v: Q.packed_size(v, 8), "count", 2**62 + 1),
    (lambda v: Q.unpack_bits(np.zeros(1, np.uint8), 1, v), "count", 2**62 + 1),
    (lambda v: Q.pack_bits(np.zeros(3, np.uint8), v), "bits", EXTENT),
    (lambda v: Q.int8_depthwise_conv2d_forward(XU, WU, None, v, 0), "multiplier", EXTENT),
    (lambda v: Q.int8_depthwise_conv2d_forward(XU, WU, None, 1, v), "shift", EXTENT),
    (lambda v: Q.int8_depthwise_conv2d_forward(XU, WU, None, 1, 0, clip_max=v), "clip_max", EXTENT),
    (lambda v: K.adam_step(*(np.zeros(2, f32) for _ in range(4)), step=v), "step", 2**63),
    (lambda v: K.matmul_variant_for(v, 1, 1), "M", 2**62 + 1),
    (lambda v: K.matmul_variant_for(1, 1, v), "K", 2**62 + 1),
]
HUGE_CASES = [(call, name, value) for call, name, smallest in HUGE_ARGUMENTS for value in HUGE if value >= smallest]


@pytest.mark.parametrize("call,name,value", HUGE_CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(HUGE_CASES)])
def test_huge_int_argument_raises_value_error_naming_it(call, name, value):
    with pytest.raises(ValueError, match=f"^{name} must"):
        call(value)


def test_int8_depthwise_stride_above_its_limit_names_stride():
    x = np.zeros((1, 2, 5, 200), np.uint8)
    with pytest.raises(ValueError, match=r"^stride must be >= 1 and <= 64 along the width"):
        Q.int8_depthwise_conv2d_forward(x, WU, None, 1, 0, stride=(1, 65))
    # 64 itself works, and so does a stride wider than a narrow input (as in PyTorch)
    assert Q.int8_depthwise_conv2d_forward(x, WU, None, 1, 0, stride=(1, 64)).shape == (1, 2, 3, 4)
    assert Q.int8_depthwise_conv2d_forward(XU, WU, None, 1, 0, stride=9).shape == (1, 2, 1, 1)


def test_output_too_large_is_refused_before_allocating():
    x, w = np.zeros((1, 1, 3, 3), f32), np.zeros((1, 1, 3, 3), f32)
    with pytest.raises(ValueError, match=r"output \(N, C_out, H_out, W_out\) would hold \d+ elements, more than"):
        K.conv2d_forward(x, w, padding=2**30)
    with pytest.raises(ValueError, match="the padded input plane"):
        K.conv2d_forward(x, w, padding=2**30, stride=2**31 - 1)  # a 1x1 output, but a 2**62 padded plane


def _scratch_bytes():
    buf = getattr(_C._local, "buf", None)
    return 0 if buf is None else buf.nbytes


def test_refused_arguments_allocate_no_workspace():
    """The audit's stride=(1, 2**31) first grew the thread's scratch buffer to 20 GiB, then failed in C and
    kept it. Arguments are now checked before the workspace is sized (and a failure in C drops it)."""
    K.conv2d_forward(np.zeros((1, 2, 4, 4), f32), np.zeros((2, 2, 3, 3), f32))
    before = _scratch_bytes()
    x = np.zeros((1, 2, 5, 500), np.uint8)
    for stride in [(1, 65), (1, 2**31), (2**31, 1), 2**62]:
        with pytest.raises(ValueError, match="^stride must"):
            Q.int8_depthwise_conv2d_forward(x, WU, None, 1, 0, stride=stride)
        assert _scratch_bytes() == before


def test_c_geometry_init_rejects_overflowing_values(tmp_path):
    """A C caller is safe too: pt_conv_geometry_init checks its bounds before any arithmetic (no signed
    overflow under UBSan) and refuses every out-of-range size, stride or padding."""
    import os
    import shutil
    import subprocess

    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("no C compiler")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = str(tmp_path / "geometry_limits")
    flags = ["-std=c11", "-Wall", "-Werror", "-fsanitize=undefined", "-fno-sanitize-recover=all"]
    includes = [f"-I{os.path.join(root, 'csrc', d)}" for d in ("core", "gemm")]
    build = subprocess.run(
        [
            cc,
            *flags,
            *includes,
            os.path.join(root, "tests", "c", "geometry_limits.c"),
            os.path.join(root, "csrc", "gemm", "im2col.c"),
            "-o",
            exe,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0 and "sanitize" in build.stderr:
        pytest.skip(f"the C compiler has no UBSan: {build.stderr.strip()[:200]}")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([exe], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    accepted, big_stride, big_padding = run.stdout.splitlines()
    assert accepted == "0"
    assert big_stride == "1 1"  # (5 - 3) // (2**31 - 1) + 1
    assert big_padding == f"{2 * 2**20 + 1} {2 * 2**20 + 1}"  # 1 + 2 * 2**20 - 1 + 1


# ---- 5. small argument checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), "1"])
def test_relu_clip_max_needs_a_positive_finite_scale(scale):
    with pytest.raises((ValueError, TypeError), match="^out_scale must be"):
        Q.relu_clip_max(scale, relu6=True)


def test_relu_clip_max_values():
    assert Q.relu_clip_max(0.05, relu6=True) == 120
    assert Q.relu_clip_max(1e-9, relu6=True) == 255  # 6 / scale above the top code: clipped to it
    assert Q.relu_clip_max(0.1, relu6=True, out_bits=4) == 15
    assert Q.relu_clip_max(0.0) == 255  # plain ReLU: the scale is not used


def test_avg_pool_padding_above_half_the_kernel_names_padding():
    torch = pytest.importorskip("torch")
    x = np.arange(2 * 3 * 6 * 6, dtype=f32).reshape(2, 3, 6, 6)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        torch.nn.functional.avg_pool2d(torch.from_numpy(x), 2, padding=2)
    for padding in (2, (0, 2), 3):
        with pytest.raises(ValueError, match="^padding must be at most half the kernel size"):
            K.avg_pool2d_forward(x, 2, padding=padding)
        with pytest.raises(ValueError, match="^padding must be at most half the kernel size"):
            K.avg_pool2d_grad_input(np.zeros((2, 3, 5, 5), f32), x.shape, 2, padding=padding)
    y = K.avg_pool2d_forward(x, 2, padding=1)  # exactly half is allowed, as in torch
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 2, padding=1).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 1, 1, 1)])
def test_batchnorm_training_with_one_value_per_channel_is_refused(shape):
    torch = pytest.importorskip("torch")
    x = np.ones(shape, f32)
    c = shape[1]
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.functional.batch_norm(torch.from_numpy(x), torch.zeros(c), torch.ones(c), training=True)
    rm, rv = np.zeros(c, f32), np.ones(c, f32)
    with pytest.raises(ValueError, match="^x must have more than 1 value per channel when training"):
        K.batchnorm2d_forward_train(x, ones(c), ones(c), rm, rv)
    with pytest.raises(ValueError, match="^x must have more than 1 value per channel when training"):
        K.batchnorm2d_forward_train(x, ones(c), ones(c), rm, rv, r_max=3.0, d_max=5.0)
    np.testing.assert_array_equal(rm, 0)  # running statistics untouched
    np.testing.assert_array_equal(rv, 1)
    K.batchnorm2d_forward_eval(x, ones(c), ones(c), rm, rv)  # evaluation mode has no such limit
    K.batchnorm2d_forward_train(np.ones((2, c, 1, 1), f32), ones(c), ones(c), rm, rv)  # two values: fine
