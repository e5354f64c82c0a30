"""Finite-difference checks: each grad kernel is the derivative of its forward kernel.

For L(x, w) = sum(forward(x, w) * r), the directional derivative along a random direction v is
<grad_input(r), v> (and likewise for w). The layers are linear in each argument, so a central difference
with a moderate step is exact up to float32 rounding.
"""

import numpy as np
import pytest
from conftest import randn

from pulptrain import kernels as K

CASES = [
    ("conv2d", (2, 3, 7, 6), (4, 3, 3, 2), dict(stride=(2, 1), padding=(1, 0))),
    ("depthwise_conv2d", (2, 4, 6, 7), (4, 1, 3, 3), dict(stride=2, padding=1)),
    ("pointwise_conv2d", (2, 5, 3, 4), (6, 5, 1, 1), {}),
    ("linear", (3, 7), (5, 7), {}),
]


def _loss(fwd, x, w, b, r, kw):
    return float(np.sum(fwd(x, w, b, **kw).astype(np.float64) * r))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradients_match_finite_differences(case, rng):
    name, xs, ws, kw = case
    fwd = getattr(K, f"{name}_forward")
    gin, gw = getattr(K, f"{name}_grad_input"), getattr(K, f"{name}_grad_weight")
    x, w, b = randn(rng, *xs), randn(rng, *ws), randn(rng, ws[0])
    r = randn(rng, *fwd(x, w, b, **kw).shape)
    if name in ("conv2d", "depthwise_conv2d"):
        dx, dw = gin(r, w, x.shape, **kw), gw(r, x, w.shape, **kw)
    else:
        dx, dw = gin(r, w), gw(r, x)
    db = K.bias_grad(r)
    eps = 0.5
    for grad, arg in [(dx, 0), (dw, 1), (db, 2)]:
        v = randn(rng, *grad.shape)
        args_p = [x, w, b]
        args_m = [x, w, b]
        args_p[arg] = (args_p[arg] + eps * v).astype(np.float32)
        args_m[arg] = (args_m[arg] - eps * v).astype(np.float32)
        numeric = (_loss(fwd, *args_p, r, kw) - _loss(fwd, *args_m, r, kw)) / (2 * eps)
        analytic = float(np.sum(grad.astype(np.float64) * v))
        assert abs(numeric - analytic) <= 1e-3 * (1 + abs(analytic)), (arg, numeric, analytic)
