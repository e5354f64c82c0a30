"""Activation, pooling, BatchNorm, loss and optimizer kernels against float64 torch / numpy references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pulptrain
from pulptrain import kernels as K

torch = pytest.importorskip("torch")  # the float64 reference; the package itself does not need torch
F = torch.nn.functional

THREADS = (1, 2, 3, 8)


def close(got, ref, tol=1e-4):
    ref = np.asarray(ref, dtype=np.float64)
    err = np.max(np.abs(np.asarray(got, dtype=np.float64) - ref)) if ref.size else 0.0
    assert err <= tol * (1 + np.max(np.abs(ref))), f"max |diff| {err} vs max |ref| {np.max(np.abs(ref))}"


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def each_thread_count(fn):
    """Runs fn() under 1, 2, 3 and 8 threads and checks every result is bitwise the same."""
    saved = pulptrain.get_num_threads()
    try:
        results = []
        for n in THREADS:
            pulptrain.set_num_threads(n)
            out = fn()
            results.append([np.array(o, copy=True) for o in (out if isinstance(out, tuple) else (out,))])
    finally:
        pulptrain.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b, equal_nan=True), "result depends on the thread count"
    return results[0]


# ---- ReLU / ReLU6 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("upper", [None, 6.0])
def test_relu_forward_backward_match_torch(upper):
    x = rand(3, 5, 7, 9, scale=5.0)
    dy = rand(3, 5, 7, 9, seed=1)
    y = K.relu_forward(x, upper=upper)
    dx = K.relu_grad_input(y, dy, upper=upper)
    tx = t64(x, True)
    ty = F.relu(tx) if upper is None else F.hardtanh(tx, 0.0, upper)
    ty.backward(t64(dy))
    close(y, ty.detach().numpy(), 0)
    close(dx, tx.grad.numpy(), 0)
    ref = np.clip(x, 0, np.inf if upper is None else upper)
    assert np.array_equal(y, ref)


def test_relu_accumulate_and_threads():
    x, dy = rand(1000, 37, scale=3), rand(1000, 37, seed=2)
    y = K.relu_forward(x, upper=6.0)
    base = rand(1000, 37, seed=3)
    out = base.copy()
    K.relu_grad_input(y, dy, upper=6.0, out=out, accumulate=True)
    close(out, base + np.where((x > 0) & (x < 6), dy, 0), 1e-6)
    each_thread_count(lambda: (K.relu_forward(x), K.relu_grad_input(y, dy, upper=6.0)))


def test_relu_bad_inputs():
    x = rand(4, 4)
    with pytest.raises(TypeError, match="x"):
        K.relu_forward(x.astype(np.float64))
    with pytest.raises(ValueError, match="upper"):
        K.relu_forward(x, upper=-1.0)
    with pytest.raises(ValueError, match="dy"):
        K.relu_grad_input(x, rand(4, 5))
    with pytest.raises(ValueError, match="overlap"):
        K.relu_forward(x, out=x)


# ---- pooling ----------------------------------------------------------------------------------------------

POOL_CASES = [  # (shape, kernel, stride, padding)
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 9, 7), 3, 2, 1),
    ((1, 4, 5, 6), (2, 3), (1, 2), (1, 0)),
    ((3, 2, 4, 4), 4, None, 0),
]


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
def test_avg_pool_matches_torch(shape, k, s, p):
    x = rand(*shape)
    y = K.avg_pool2d_forward(x, k, stride=s, padding=p)
    tx = t64(x, True)
    ty = F.avg_pool2d(tx, k, stride=s, padding=p, count_include_pad=True)
    dy = rand(*ty.shape, seed=5)
    ty.backward(t64(dy))
    close(y, ty.detach().numpy(), 1e-6)
    close(K.avg_pool2d_grad_input(dy, shape, k, stride=s, padding=p), tx.grad.numpy(), 1e-6)
    each_thread_count(
        lambda: (
            K.avg_pool2d_forward(x, k, stride=s, padding=p),
            K.avg_pool2d_grad_input(dy, shape, k, stride=s, padding=p),
        )
    )


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
def test_max_pool_matches_torch(shape, k, s, p):
    x = rand(*shape)
    y = K.max_pool2d_forward(x, k, stride=s, padding=p)
    tx = t64(x, True)
    ty = F.max_pool2d(tx, k, stride=s, padding=p)
    dy = rand(*ty.shape, seed=5)
    ty.backward(t64(dy))
    close(y, ty.detach().numpy(), 0)
    close(K.max_pool2d_grad_input(dy, x, k, stride=s, padding=p), tx.grad.numpy(), 1e-6)
    each_thread_count(
        lambda: (
            K.max_pool2d_forward(x, k, stride=s, padding=p),
            K.max_pool2d_grad_input(dy, x, k, stride=s, padding=p),
        )
    )


def test_max_pool_ties_go_to_first_maximum():
    x = np.zeros((1, 1, 2, 2), np.float32)
    dx = K.max_pool2d_grad_input(np.ones((1, 1, 1, 1), np.float32), x, 2)
    assert dx.ravel().tolist() == [1, 0, 0, 0]


def test_global_avg_pool_matches_numpy():
    x = rand(4, 6, 5, 3)
    y = K.global_avg_pool2d_forward(x)
    close(y, x.astype(np.float64).mean(axis=(2, 3), keepdims=True), 1e-6)
    dy = rand(4, 6, 1, 1, seed=1)
    close(K.global_avg_pool2d_grad_input(dy, x.shape), np.broadcast_to(dy / 15.0, x.shape), 1e-6)


def test_pool_bad_inputs():
    x = rand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="padding"):
        K.max_pool2d_forward(x, 2, padding=2)
    with pytest.raises(ValueError, match="kernel"):
        K.avg_pool2d_forward(x, 5)
    with pytest.raises(ValueError, match="dy"):
        K.avg_pool2d_grad_input(rand(1, 2, 3, 3), x.shape, 2)
    with pytest.raises(TypeError, match="kernel_size"):
        K.avg_pool2d_forward(x, 2.5)
    with pytest.raises(ValueError, match="x"):
        K.max_pool2d_forward(rand(2, 4, 4), 2)


# ---- BatchNorm2d ------------------------------------------------------------------------------------------


def bn_inputs(n=4, c=5, h=6, w=7):
    x = rand(n, c, h, w, scale=2.0) + 0.5
    gamma, beta = rand(c, seed=1) + 1.0, rand(c, seed=2)
    rm, rv = rand(c, seed=3) * 0.1, np.abs(rand(c, seed=4)) + 0.5
    dy = rand(n, c, h, w, seed=6)
    return x, gamma, beta, rm, rv, dy


def test_batchnorm_train_matches_torch():
    x, gamma, beta, rm, rv, dy = bn_inputs()
    rm_ours, rv_ours = rm.copy(), rv.copy()
    y, saved = K.batchnorm2d_forward_train(x, gamma, beta, rm_ours, rv_ours, eps=1e-5, momentum=0.1)
    dx, dg, db = K.batchnorm2d_backward(dy, x, gamma, saved)
    tx, tg, tb = t64(x, True), t64(gamma, True), t64(beta, True)
    trm, trv = t64(rm), t64(rv)
    ty = F.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.1, eps=1e-5)
    ty.backward(t64(dy))
    close(y, ty.detach().numpy())
    close(rm_ours, trm.numpy())
    close(rv_ours, trv.numpy())
    close(dx, tx.grad.numpy())
    close(dg, tg.grad.numpy())
    close(db, tb.grad.numpy())


def test_batchnorm_eval_matches_torch():
    x, gamma, beta, rm, rv, dy = bn_inputs()
    y, saved = K.batchnorm2d_forward_eval(x, gamma, beta, rm, rv, eps=1e-3)
    dx, dg, db = K.batchnorm2d_backward(dy, x, gamma, saved, batch_stats=False)
    tx, tg, tb = t64(x, True), t64(gamma, True), t64(beta, True)
    ty = F.batch_norm(tx, t64(rm), t64(rv), tg, tb, training=False, eps=1e-3)
    ty.backward(t64(dy))
    close(y, ty.detach().numpy())
    close(dx, tx.grad.numpy())
    close(dg, tg.grad.numpy())
    close(db, tb.grad.numpy())


def renorm_reference(x, gamma, beta, rm, rv, dy, eps, momentum, r_max, d_max):
    """Batch Renormalization in float64 torch: r and d are constants (detached) in the backward."""
    tx, tg, tb = t64(x, True), t64(gamma, True), t64(beta, True)
    mean = tx.mean(dim=(0, 2, 3))
    var = tx.var(dim=(0, 2, 3), unbiased=False)
    sigma = torch.sqrt(var + eps)
    sigma_run = torch.sqrt(t64(rv) + eps)
    r = (sigma.detach() / sigma_run).clamp(1 / r_max, r_max)
    d = ((mean.detach() - t64(rm)) / sigma_run).clamp(-d_max, d_max)
    xhat = (tx - mean[None, :, None, None]) / sigma[None, :, None, None]
    ty = tg[None, :, None, None] * (xhat * r[None, :, None, None] + d[None, :, None, None]) + tb[None, :, None, None]
    ty.backward(t64(dy))
    m = x.shape[0] * x.shape[2] * x.shape[3]
    new_rm = (1 - momentum) * rm + momentum * mean.detach().numpy()
    new_rv = (1 - momentum) * rv + momentum * var.detach().numpy() * m / (m - 1)
    return ty.detach().numpy(), tx.grad.numpy(), tg.grad.numpy(), tb.grad.numpy(), new_rm, new_rv, r.numpy(), d.numpy()


def test_batch_renorm_matches_reference():
    x, gamma, beta, rm, rv, dy = bn_inputs()
    rv[:2] *= 0.2  # makes some r and d clip
    rm[0] = 3.0
    ref = renorm_reference(x, gamma, beta, rm, rv, dy, 1e-5, 0.01, 1.25, 0.5)
    assert np.any(np.abs(ref[6]) == 1.25) and np.any(np.abs(ref[7]) == 0.5)  # the clips are exercised
    rm_ours, rv_ours = rm.copy(), rv.copy()
    y, saved = K.batchnorm2d_forward_train(x, gamma, beta, rm_ours, rv_ours, momentum=0.01, r_max=1.25, d_max=0.5)
    dx, dg, db = K.batchnorm2d_backward(dy, x, gamma, saved)
    for got, want in zip((y, dx, dg, db, rm_ours, rv_ours, saved[2], saved[3]), ref):
        close(got, want)


def test_batchnorm_threads_and_accumulate():
    x, gamma, beta, rm, rv, dy = bn_inputs(n=3, c=11, h=5, w=5)

    def run():
        y, saved = K.batchnorm2d_forward_train(x, gamma, beta, rm.copy(), rv.copy(), r_max=2.0, d_max=1.0)
        return (y, saved) + K.batchnorm2d_backward(dy, x, gamma, saved)

    y, saved, dx, dg, db = each_thread_count(run)
    dg_acc, db_acc = np.ones(11, np.float32), np.ones(11, np.float32)
    dx2, _, _ = K.batchnorm2d_backward(
        dy, x, gamma, saved, input_grad=False, dgamma_out=dg_acc, dbeta_out=db_acc, accumulate_params=True
    )
    assert dx2 is None
    close(dg_acc, dg + 1, 1e-6)
    close(db_acc, db + 1, 1e-6)


def test_batchnorm_bad_inputs():
    x, gamma, beta, rm, rv, dy = bn_inputs()
    with pytest.raises(ValueError, match="gamma"):
        K.batchnorm2d_forward_train(x, gamma[:3], beta, rm, rv)
    with pytest.raises(ValueError, match="r_max and d_max"):
        K.batchnorm2d_forward_train(x, gamma, beta, rm, rv, r_max=1.5)
    with pytest.raises(ValueError, match="r_max"):
        K.batchnorm2d_forward_train(x, gamma, beta, rm, rv, r_max=0.5, d_max=0.5)
    with pytest.raises(ValueError, match="momentum"):
        K.batchnorm2d_forward_train(x, gamma, beta, rm, rv, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        K.batchnorm2d_forward_eval(x, gamma, beta, rm, rv, eps=0.0)
    with pytest.raises(ValueError, match="running_mean"):
        K.batchnorm2d_forward_train(x, gamma, beta, rm[::-1], rv)
    with pytest.raises(TypeError, match="running_var"):
        K.batchnorm2d_forward_train(x, gamma, beta, rm, rv.astype(np.float64))
    with pytest.raises(ValueError, match="saved"):
        K.batchnorm2d_backward(dy, x, gamma, np.zeros((3, 5), np.float32))


# ---- losses -----------------------------------------------------------------------------------------------


def test_cross_entropy_matches_torch():
    logits = rand(37, 10, scale=4.0)
    labels = np.random.default_rng(1).integers(0, 10, 37)
    loss, dz = K.cross_entropy(logits, labels)
    tz = t64(logits, True)
    tl = F.cross_entropy(tz, torch.tensor(labels))
    tl.backward()
    close(loss, tl.item(), 1e-6)
    close(dz, tz.grad.numpy(), 1e-6)
    loss2, none = K.cross_entropy(logits, labels.astype(np.int32), grad=False)
    assert none is None and loss2 == loss
    each_thread_count(lambda: (np.float32(K.cross_entropy(logits, labels)[0]), K.cross_entropy(logits, labels)[1]))


def test_mse_matches_torch():
    pred, target = rand(7, 1500), rand(7, 1500, seed=1)
    loss, dp = K.mse_loss(pred, target)
    tp = t64(pred, True)
    tl = F.mse_loss(tp, t64(target))
    tl.backward()
    close(loss, tl.item(), 1e-6)
    close(dp, tp.grad.numpy(), 1e-6)
    each_thread_count(lambda: (np.float32(K.mse_loss(pred, target)[0]), K.mse_loss(pred, target)[1]))


def test_loss_bad_inputs():
    z = rand(4, 3)
    with pytest.raises(ValueError, match="labels"):
        K.cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="labels"):
        K.cross_entropy(z, np.array([0, 1, -1, 2]))
    with pytest.raises(ValueError, match="labels"):
        K.cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="labels"):
        K.cross_entropy(z, np.array([0.0, 1, 2, 1]))
    with pytest.raises(ValueError, match="target"):
        K.mse_loss(z, rand(4, 4))


# ---- optimizers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(momentum=0.0),
        dict(momentum=0.9, weight_decay=5e-4),
        dict(momentum=0.9, nesterov=True, weight_decay=1e-2),
        dict(momentum=0.5, dampening=0.3),
    ],
)
def test_sgd_matches_torch(kw):
    p, grads = rand(13, 17), [rand(13, 17, seed=s) for s in range(1, 5)]
    tp = torch.nn.Parameter(torch.tensor(p.astype(np.float64)))
    opt = torch.optim.SGD([tp], lr=0.05, **kw)
    buf = np.zeros_like(p)
    for i, g in enumerate(grads):
        K.sgd_step(p, g, buf, lr=0.05, first_step=(i == 0), **kw)
        tp.grad = torch.tensor(g.astype(np.float64))
        opt.step()
    close(p, tp.detach().numpy(), 1e-5)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_matches_torch(decoupled):
    p, grads = rand(9, 11), [rand(9, 11, seed=s) for s in range(1, 6)]
    tp = torch.nn.Parameter(torch.tensor(p.astype(np.float64)))
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls([tp], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for i, g in enumerate(grads):
        K.adam_step(p, g, m, v, step=i + 1, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, decoupled=decoupled)
        tp.grad = torch.tensor(g.astype(np.float64))
        opt.step()
    close(p, tp.detach().numpy(), 1e-5)


def test_optimizers_thread_invariant():
    p0, g = rand(3001), rand(3001, seed=1)

    def run():
        p, b, m, v = p0.copy(), np.ones_like(p0), np.zeros_like(p0), np.zeros_like(p0)
        K.sgd_step(p, g, b, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)
        K.adam_step(p, g, m, v, step=3, lr=0.01, weight_decay=1e-2)
        return p, b, m, v

    each_thread_count(run)


def test_optimizer_bad_inputs():
    p, g = rand(5), rand(5)
    with pytest.raises(ValueError, match="momentum_buffer"):
        K.sgd_step(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="nesterov"):
        K.sgd_step(p, g, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="lr"):
        K.sgd_step(p, g, lr=-0.1)
    with pytest.raises(ValueError, match="grad"):
        K.sgd_step(p, rand(6), lr=0.1)
    with pytest.raises(ValueError, match="param"):
        K.sgd_step(p[::2], g[:3], lr=0.1)
    with pytest.raises(ValueError, match="step"):
        K.adam_step(p, g, np.zeros(5, np.float32), np.zeros(5, np.float32), step=0)
    with pytest.raises(ValueError, match="overlap"):
        K.adam_step(p, g, p, np.zeros(5, np.float32), step=1)


# ---- random geometries ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
    seed=st.integers(0, 1000),
)
def test_pooling_random_geometry_matches_torch(n, c, h, w, k, s, p, seed):
    if h + 2 * p < k or w + 2 * p < k or 2 * p > k:
        return  # no output, or a padding torch refuses
    x = rand(n, c, h, w, seed=seed)
    tx = t64(x, True)
    ty = F.avg_pool2d(tx, k, stride=s, padding=p)
    dy = rand(*ty.shape, seed=seed + 1)
    ty.backward(t64(dy))
    close(K.avg_pool2d_forward(x, k, stride=s, padding=p), ty.detach().numpy(), 1e-6)
    close(K.avg_pool2d_grad_input(dy, x.shape, k, stride=s, padding=p), tx.grad.numpy(), 1e-6)
    tx = t64(x, True)
    ty = F.max_pool2d(tx, k, stride=s, padding=p)
    ty.backward(t64(dy))
    close(K.max_pool2d_forward(x, k, stride=s, padding=p), ty.detach().numpy(), 0)
    close(K.max_pool2d_grad_input(dy, x, k, stride=s, padding=p), tx.grad.numpy(), 1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 6), h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 1000))
def test_batchnorm_random_shapes_match_torch(n, c, h, w, seed):
    if n * h * w < 2:
        return  # torch refuses a batch variance of one value
    x = rand(n, c, h, w, seed=seed) * 3
    gamma, beta, dy = rand(c, seed=seed + 1), rand(c, seed=seed + 2), rand(n, c, h, w, seed=seed + 3)
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    y, saved = K.batchnorm2d_forward_train(x, gamma, beta, rm, rv)
    dx, dg, db = K.batchnorm2d_backward(dy, x, gamma, saved)
    tx, tg, tb = t64(x, True), t64(gamma, True), t64(beta, True)
    trm, trv = t64(np.zeros(c)), t64(np.ones(c))
    ty = F.batch_norm(tx, trm, trv, tg, tb, training=True)
    ty.backward(t64(dy))
    for got, ref in ((y, ty), (dx, tx.grad), (dg, tg.grad), (db, tb.grad), (rm, trm), (rv, trv)):
        close(got, ref.detach().numpy())
