"""pulptrain.nn layers, MobileNetV1 and the optimizers against the same computation in torch."""

import numpy as np
import pytest

import pulptrain
from pulptrain import nn, optim
from pulptrain.models import MobileNetV1, mobilenet_v1, split, use_batch_renorm

torch = pytest.importorskip("torch")  # the reference; the package itself does not need torch


def close(got, ref, tol=1e-4, what=""):
    ref = np.asarray(ref, dtype=np.float64)
    err = np.max(np.abs(np.asarray(got, dtype=np.float64) - ref))
    assert err <= tol * (1 + np.max(np.abs(ref))), f"{what}: max |diff| {err}, max |ref| {np.max(np.abs(ref))}"


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def to_torch(m):
    """The torch module equivalent to a pulptrain module, with the same state_dict names and values."""
    if isinstance(m, MobileNetV1):
        t = torch.nn.Module()
        t.blocks, t.flatten, t.classifier = to_torch(m.blocks), torch.nn.Flatten(), to_torch(m.classifier)
        t.forward = lambda x: t.classifier(t.flatten(t.blocks(x)))
    elif isinstance(m, nn.Sequential):
        t = torch.nn.Sequential(*[to_torch(c) for c in m])
    elif isinstance(m, nn.Conv2d):
        o, i, kh, kw = m.weight.shape
        t = torch.nn.Conv2d(i, o, (kh, kw), m.stride, m.padding, bias=m.bias is not None)
    elif isinstance(m, nn.DepthwiseConv2d):
        c, _, kh, kw = m.weight.shape
        t = torch.nn.Conv2d(c, c, (kh, kw), m.stride, m.padding, groups=c, bias=m.bias is not None)
    elif isinstance(m, nn.PointwiseConv2d):
        o, i = m.weight.shape[:2]
        t = torch.nn.Conv2d(i, o, 1, bias=m.bias is not None)
    elif isinstance(m, nn.Linear):
        t = torch.nn.Linear(m.weight.shape[1], m.weight.shape[0], bias=m.bias is not None)
    elif isinstance(m, nn.BatchNorm2d):
        assert m.r_max is None
        t = torch.nn.BatchNorm2d(m.weight.shape[0], eps=m.eps, momentum=m.momentum)
    elif isinstance(m, nn.ReLU6):
        t = torch.nn.ReLU6()
    elif isinstance(m, nn.ReLU):
        t = torch.nn.ReLU()
    elif isinstance(m, nn.MaxPool2d):
        t = torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding)
    elif isinstance(m, nn.AvgPool2d):
        t = torch.nn.AvgPool2d(m.kernel_size, m.stride, m.padding)
    elif isinstance(m, nn.GlobalAvgPool2d):
        t = torch.nn.AdaptiveAvgPool2d(1)
    elif isinstance(m, nn.Flatten):
        t = torch.nn.Flatten()
    else:
        raise TypeError(type(m))
    t.load_state_dict({k: torch.tensor(np.array(v)) for k, v in m.state_dict().items()})
    t.train(m.training)
    return t


LAYERS = [
    (lambda: nn.Conv2d(3, 5, 3, stride=2, padding=1), (2, 3, 9, 9)),
    (lambda: nn.Conv2d(2, 4, (3, 2), stride=(1, 2), padding=(0, 1), bias=False), (2, 2, 6, 7)),
    (lambda: nn.DepthwiseConv2d(4, 3, stride=2, padding=1), (2, 4, 8, 8)),
    (lambda: nn.PointwiseConv2d(4, 6), (3, 4, 5, 5)),
    (lambda: nn.Linear(7, 3), (5, 7)),
    (lambda: nn.BatchNorm2d(4), (3, 4, 5, 5)),
    (lambda: nn.BatchNorm2d(4).eval(), (3, 4, 5, 5)),
    (lambda: nn.ReLU(), (2, 3, 4, 4)),
    (lambda: nn.ReLU6(), (2, 3, 4, 4)),
    (lambda: nn.AvgPool2d(2), (2, 3, 6, 6)),
    (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
    (lambda: nn.GlobalAvgPool2d(), (2, 3, 5, 4)),
    (lambda: nn.Flatten(), (2, 3, 2, 2)),
    (
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.BatchNorm2d(3),
            nn.ReLU6(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(12, 4),
        ),
        (3, 2, 4, 4),
    ),
]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_layer_matches_torch(make, shape):
    layer = make()
    ref = to_torch(layer).double()
    x = rand(*shape) * 4
    y = layer.forward(x)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ty = ref(tx)
    dy = rand(*y.shape, seed=1)
    dx = layer.backward(dy)
    ty.backward(torch.tensor(dy.astype(np.float64)))
    close(y, ty.detach().numpy(), what="y")
    close(dx, tx.grad.numpy(), what="dx")
    tparams = dict(ref.named_parameters())
    for name, p in layer.named_parameters():
        close(p.grad, tparams[name].grad.numpy(), what=name)
    tstate = ref.state_dict()
    for name, b in layer.named_buffers():
        close(b, tstate[name].numpy(), what=name)


def test_layers_reuse_buffers_and_accumulate_grads():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = rand(2, 2, 5, 5)
    y1 = conv.forward(x)
    dy = rand(*y1.shape, seed=1)
    dx1 = conv.backward(dy)
    g1 = conv.weight.grad.copy()
    y2, dx2 = conv.forward(x), conv.backward(dy)
    assert y2 is y1 and dx2 is dx1
    close(conv.weight.grad, 2 * g1, 1e-6)
    conv.zero_grad()
    assert not conv.weight.grad.any()


def test_skip_input_grad_and_frozen_parameters():
    seq = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    seq.needs_input_grad = False
    x = rand(2, 2, 5, 5)
    y = seq.forward(x)
    assert seq.backward(np.ones_like(y)) is None
    assert seq[1].weight.grad.any()
    seq.zero_grad()
    seq[1].requires_grad_(False)
    seq.forward(x)
    seq.backward(np.ones_like(y))
    assert not seq[1].weight.grad.any() and seq[2].weight.grad.any()


def test_state_dict_round_trip(tmp_path):
    model = mobilenet_v1(0.25, num_classes=10, input_size=32, in_channels=1, rng=np.random.default_rng(3))
    x = rand(2, 1, 32, 32)
    model.forward(x)  # moves the running statistics
    path = tmp_path / "model.npz"
    model.save(path)
    other = mobilenet_v1(0.25, num_classes=10, input_size=32, in_channels=1, rng=np.random.default_rng(4))
    other.load(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert k == k2 and np.array_equal(a, b) and a.dtype == b.dtype
    model.eval(), other.eval()
    assert np.array_equal(model.forward(x), other.forward(x))
    state = model.state_dict()
    assert "blocks.0.1.num_batches_tracked" in state and state["blocks.0.1.num_batches_tracked"] == 1
    del state["classifier.bias"]
    with pytest.raises(KeyError, match="classifier.bias"):
        other.load_state_dict(state)
    state["classifier.bias"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="classifier.bias"):
        other.load_state_dict(state)


def test_mobilenet_layer_indexing_matches_paper():
    model = mobilenet_v1()  # width 1.0, 128x128x3, 50 classes
    assert len(model.blocks) == 28
    assert isinstance(model.blocks[0][0], nn.Conv2d) and model.blocks[0][0].stride == (2, 2)
    assert isinstance(model.blocks[19][0], nn.DepthwiseConv2d) and model.blocks[19][0].weight.shape[0] == 512
    assert isinstance(model.blocks[26][0], nn.PointwiseConv2d) and model.blocks[26][0].weight.shape[0] == 1024
    assert isinstance(model.blocks[27], nn.AvgPool2d) and model.blocks[27].kernel_size == (4, 4)
    assert model.classifier.weight.shape == (50, 1024)
    assert sum(p.data.size for p in model.parameters()) == pytest.approx(3.24e6, rel=0.02)
    strided = [i for i in range(1, 27) if i % 2 and model.blocks[i][0].stride == (2, 2)]
    assert strided == [3, 7, 11, 23]


def test_split_composes_to_the_model_and_stops_at_the_boundary():
    model = mobilenet_v1(0.25, num_classes=7, input_size=32, rng=np.random.default_rng(1))
    x = rand(3, 3, 32, 32)
    model.eval()
    full = model.forward(x).copy()
    for l in (-1, 0, 19, 23, 27):
        frozen, adaptive = split(model, l)
        assert len(frozen) == l + 1
        np.testing.assert_array_equal(adaptive.forward(frozen.forward(x)), full)
    frozen, adaptive = split(model, 19)
    model.train()
    latent = frozen.forward(x).copy()
    logits = adaptive.forward(latent)
    assert adaptive.backward(np.ones_like(logits)) is None
    assert not any(p.grad.any() for p in frozen.parameters())
    assert model.blocks[20][0].weight.grad.any() and model.classifier.weight.grad.any()
    with pytest.raises(ValueError, match="l must be"):
        split(model, 28)


def test_mobilenet_training_step_matches_torch():
    """One training step (forward, cross-entropy, backward, SGD with momentum 0.9 and weight decay 5e-4) of a
    width-0.25 MobileNetV1 on 32x32 inputs: loss, parameters and running statistics within 1e-4 relative of
    torch with the same weights, in float32 and in float64.

    (One step: after it, a deep BN network on random data is chaotic enough that float32 torch itself
    drifts from float64 torch by more than 1e-4 in a second step.)"""
    model = mobilenet_v1(0.25, num_classes=10, input_size=32, rng=np.random.default_rng(0))
    refs = [to_torch(model), to_torch(model).double()]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 8)

    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    opt.zero_grad()
    loss = loss_fn(model.forward(x), labels)
    assert model.backward(loss_fn.backward()) is None  # the image gets no gradient
    opt.step()
    for ref in refs:
        dtype = next(ref.parameters()).dtype
        topt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(ref(torch.tensor(x, dtype=dtype)), torch.tensor(labels))
        tloss.backward()
        topt.step()
        close(loss, tloss.item(), what=f"loss ({dtype})")
        tstate = ref.state_dict()
        for name, value in model.state_dict().items():
            close(value, tstate[name].numpy(), what=f"{name} ({dtype})")


def test_training_step_is_thread_invariant():
    def train_once():
        model = mobilenet_v1(0.25, num_classes=5, input_size=32, rng=np.random.default_rng(0))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
        loss_fn = nn.CrossEntropyLoss()
        x = rand(4, 3, 32, 32)
        loss_fn(model.forward(x), np.arange(4) % 5)
        model.backward(loss_fn.backward())
        opt.step()
        return [p.data.copy() for p in model.parameters()]

    saved = pulptrain.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 8):
            pulptrain.set_num_threads(n)
            results.append(train_once())
    finally:
        pulptrain.set_num_threads(saved)
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


def test_adam_optimizer_matches_torch():
    layer = nn.Linear(6, 4, rng=np.random.default_rng(0))
    ref = to_torch(layer)
    opt = optim.Adam(layer.parameters(), lr=0.01, weight_decay=1e-3)
    topt = torch.optim.Adam(ref.parameters(), lr=0.01, weight_decay=1e-3)
    for s in range(3):
        x = rand(5, 6, seed=s)
        opt.zero_grad()
        layer.forward(x)
        layer.backward(np.ones((5, 4), np.float32))
        opt.step()
        topt.zero_grad()
        ref(torch.tensor(x)).sum().backward()
        topt.step()
    for name, value in layer.state_dict().items():
        close(value, ref.state_dict()[name].numpy(), 1e-5, name)


def test_layer_bad_inputs():
    with pytest.raises(TypeError, match="Conv2d"):
        nn.Conv2d(2, 3, 3).forward([1, 2])
    with pytest.raises(ValueError, match="4-D"):
        nn.Conv2d(2, 3, 3).forward(rand(2, 5, 5))
    with pytest.raises(ValueError, match="kernel"):
        nn.MaxPool2d(4).forward(rand(1, 1, 3, 3))
    with pytest.raises(ValueError, match="x"):
        nn.Conv2d(2, 3, 3).forward(rand(1, 4, 5, 5))
    with pytest.raises(ValueError, match="labels"):
        nn.CrossEntropyLoss()(rand(2, 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="first_stride"):
        mobilenet_v1(first_stride=3)


def test_mse_loss_module_matches_torch():
    pred, target = rand(4, 6), rand(4, 6, seed=1)
    loss_fn = nn.MSELoss()
    loss = loss_fn(pred, target)
    grad = loss_fn.backward()
    tp = torch.tensor(pred, requires_grad=True)
    tl = torch.nn.functional.mse_loss(tp, torch.tensor(target))
    tl.backward()
    close(loss, tl.item(), 1e-6)
    close(grad, tp.grad.numpy(), 1e-6)
    assert loss_fn.backward() is grad
    with pytest.raises(RuntimeError, match="forward"):
        nn.CrossEntropyLoss().backward()


def test_batch_renorm_layer_trains_and_evaluates():
    bn = nn.BatchRenorm2d(3)
    assert (bn.r_max, bn.d_max, bn.momentum) == (1.25, 0.5, 0.01)
    x = rand(4, 3, 5, 5) * 3 + 2
    y = bn.forward(x)
    # first batch: running stats are (0, 1), so r = clip(sigma, 0.8, 1.25) and d = clip(mean, -0.5, 0.5)
    sigma = np.sqrt(x.astype(np.float64).var(axis=(0, 2, 3)) + bn.eps)
    mean = x.astype(np.float64).mean(axis=(0, 2, 3))
    xhat = (x - mean[None, :, None, None]) / sigma[None, :, None, None]
    ref = xhat * np.clip(sigma, 0.8, 1.25)[None, :, None, None] + np.clip(mean, -0.5, 0.5)[None, :, None, None]
    close(y, ref)
    bn.backward(np.ones_like(y))
    assert int(bn.num_batches_tracked) == 1 and bn.running_mean.any()
    bn.eval()
    close(
        bn.forward(x),
        (x - bn.running_mean[None, :, None, None]) / np.sqrt(bn.running_var[None, :, None, None] + bn.eps),
    )


def test_use_batch_renorm_above_the_latent_replay_layer():
    model = mobilenet_v1(0.25, num_classes=5, input_size=32, rng=np.random.default_rng(2))
    model.forward(rand(2, 3, 32, 32))
    before = model.state_dict()
    use_batch_renorm(model, 19)
    assert type(model.blocks[19][1]) is nn.BatchNorm2d
    assert all(isinstance(model.blocks[i][1], nn.BatchRenorm2d) for i in range(20, 27))
    after = model.state_dict()
    assert list(before) == list(after) and all(np.array_equal(before[k], after[k]) for k in before)
    assert model.blocks[20][1] in [m for m in model.blocks[20]]
    frozen, adaptive = split(model, 19)
    adaptive.forward(frozen.forward(rand(2, 3, 32, 32)))
    adaptive.backward(np.ones((2, 5), np.float32))
    assert model.blocks[20][1].weight.grad.any()
