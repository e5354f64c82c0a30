"""Every kernel and step against PyTorch autograd on MobileNetV1-like shapes (skipped without torch)."""

import numpy as np
import pytest
from conftest import randn

from pulptrain import kernels as K
from pulptrain import reference as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (name, N, C_in, C_out, H, W, k, stride, padding, kind)
SHAPES = [
    ("conv1", 2, 3, 32, 32, 32, 3, 2, 1, "conv"),
    ("conv3x3", 1, 16, 16, 16, 16, 3, 1, 1, "conv"),
    ("conv5x3_rect", 2, 4, 6, 11, 9, (5, 3), (2, 1), (2, 1), "conv"),
    ("dw_s1", 2, 64, 64, 8, 8, 3, 1, 1, "depthwise"),
    ("dw_s2", 2, 64, 64, 8, 8, 3, 2, 1, "depthwise"),
    ("dw_5x5", 1, 8, 8, 13, 13, 5, 2, 2, "depthwise"),
    ("pw", 3, 128, 96, 8, 8, 1, 1, 0, "pointwise"),
    ("pw_4x4", 2, 256, 128, 4, 4, 1, 1, 0, "pointwise"),
]


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a)).double().requires_grad_(True)


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_conv_kinds_match_torch_autograd(shape):
    name, n, ci, co, h, w, k, stride, padding, kind = shape
    rng = np.random.default_rng(hash(name) % 2**32)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = randn(rng, n, ci, h, w)
    wt = randn(rng, co, 1 if kind == "depthwise" else ci, kh, kw)
    b = randn(rng, co)
    groups = ci if kind == "depthwise" else 1
    xt, wtt, bt = _t(x), _t(wt), _t(b)
    yt = F.conv2d(xt, wtt, bt, stride=stride, padding=padding, groups=groups)
    dy = randn(rng, *yt.shape)
    yt.backward(torch.from_numpy(dy).double())

    if kind == "conv":
        y = K.conv2d_forward(x, wt, b, stride=stride, padding=padding)
        dx = K.conv2d_grad_input(dy, wt, x.shape, stride=stride, padding=padding)
        dw = K.conv2d_grad_weight(dy, x, wt.shape, stride=stride, padding=padding)
        # torch.nn.grad in float32, the API users already know
        dx32 = torch.nn.grad.conv2d_input(
            x.shape, torch.from_numpy(wt), torch.from_numpy(dy), stride=stride, padding=padding
        ).numpy()
        dw32 = torch.nn.grad.conv2d_weight(
            torch.from_numpy(x), wt.shape, torch.from_numpy(dy), stride=stride, padding=padding
        ).numpy()
        ref.assert_close(dx, dx32)
        ref.assert_close(dw, dw32)
    elif kind == "depthwise":
        y = K.depthwise_conv2d_forward(x, wt, b, stride=stride, padding=padding)
        dx = K.depthwise_conv2d_grad_input(dy, wt, x.shape, stride=stride, padding=padding)
        dw = K.depthwise_conv2d_grad_weight(dy, x, wt.shape, stride=stride, padding=padding)
    else:
        y = K.pointwise_conv2d_forward(x, wt, b)
        dx = K.pointwise_conv2d_grad_input(dy, wt)
        dw = K.pointwise_conv2d_grad_weight(dy, x)
    db = K.bias_grad(dy)
    for _step, ours, theirs in [
        ("forward", y, yt.detach().numpy()),
        ("grad_input", dx, xt.grad.numpy()),
        ("grad_weight", dw, wtt.grad.numpy()),
        ("bias_grad", db, bt.grad.numpy()),
    ]:
        ref.assert_close(ours, theirs)


@pytest.mark.parametrize("n,fin,fout", [(1, 1024, 50), (16, 1024, 50), (5, 33, 7)])
def test_linear_matches_torch_autograd(n, fin, fout):
    rng = np.random.default_rng(n + fin + fout)
    x, w, b = randn(rng, n, fin), randn(rng, fout, fin), randn(rng, fout)
    xt, wt, bt = _t(x), _t(w), _t(b)
    yt = F.linear(xt, wt, bt)
    dy = randn(rng, n, fout)
    yt.backward(torch.from_numpy(dy).double())
    ref.assert_close(K.linear_forward(x, w, b), yt.detach().numpy())
    ref.assert_close(K.linear_grad_input(dy, w), xt.grad.numpy())
    ref.assert_close(K.linear_grad_weight(dy, x), wt.grad.numpy())
    ref.assert_close(K.bias_grad(dy), bt.grad.numpy())
