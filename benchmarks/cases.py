"""Benchmark cases shared by the pytest-benchmark suites and the quick side-by-side runner.

One case = (anchor layer of docs/performance.md, step, batch size N). For every case this module builds the
operands once and returns zero-argument callables for each implementation ("pulptrain", "torch", "numpy"); every
callable writes into a preallocated output, so no timed call allocates its result.

Shapes are MobileNetV1 at 128x128 input (docs/paper.md), NCHW float32. FLOPs are 2 x MACs, the same for the
three steps of a layer (the grad steps are the same products, transposed).
"""

import ctypes
import ctypes.util

import numpy as np

import pulptrain
from pulptrain import kernels as K
from pulptrain import ops
from pulptrain.models import mobilenet_v1_layers

try:
    import torch
except ImportError:  # torch is optional: its rows are skipped with a message
    torch = None


def keep_freed_memory():
    """glibc: serve big blocks from the heap and never trim it, so torch's per-call result allocations
    reuse warm pages instead of paying page faults (the anchors of docs/performance.md were measured this way)."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        libc = ctypes.CDLL(libc_name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 2**31 - 1)
    except (OSError, AttributeError):
        pass


keep_freed_memory()  # before any timed allocation, in every process that imports the cases

PEAK_GFLOPS_PER_CORE = 117.0  # the anchor machine's FMA-loop peak, FP32, one Zen 4 core (docs/performance.md)
STEPS = ("forward", "grad_input", "grad_weight")
BATCHES = (1, 16, 128)
IMPLS = ("pulptrain", "torch", "numpy")


OP_FAMILY = {"conv": "conv2d", "dw": "depthwise_conv2d", "pw": "pointwise_conv2d"}  # kind -> pulptrain.ops


class Layer:
    """One anchor layer (docs/performance.md). kind: conv, dw (depthwise 3x3), pw (1x1) or linear."""

    def __init__(self, name, kind, c_in, c_out, hw=1, k=1, stride=1, pad=0):
        self.name, self.kind = name, kind
        self.family = OP_FAMILY.get(kind, kind)  # the op family in pulptrain.ops: "<family>.<step>"
        self.c_in, self.c_out, self.hw, self.k, self.stride, self.pad = c_in, c_out, hw, k, stride, pad
        self.hw_out = (hw + 2 * pad - k) // stride + 1

    def macs(self, n):
        """Multiply-accumulates of one step at batch n."""
        per_output = self.k * self.k * (1 if self.kind == "dw" else self.c_in)
        return n * self.c_out * self.hw_out * self.hw_out * per_output

    def x_shape(self, n):
        return (n, self.c_in) if self.kind == "linear" else (n, self.c_in, self.hw, self.hw)

    def y_shape(self, n):
        return (n, self.c_out) if self.kind == "linear" else (n, self.c_out, self.hw_out, self.hw_out)

    def w_shape(self):
        if self.kind == "linear":
            return (self.c_out, self.c_in)
        return (self.c_out, 1 if self.kind == "dw" else self.c_in, self.k, self.k)


MOBILENET_V1_128 = mobilenet_v1_layers()  # the model table at width 1.0, 128x128x3 input, 50 classes


def mobilenet_layer(index, name=None):
    """Layer `index` of MobileNetV1 (MOBILENET_V1_128) as a benchmark Layer, named `name` (default: the
    table's name)."""
    shape = MOBILENET_V1_128[index]
    kind = "linear" if shape.kind == "fc" else shape.kind
    return Layer(
        name or shape.name,
        kind,
        shape.in_channels,
        shape.out_channels,
        hw=shape.in_size,
        k=shape.kernel_size,
        stride=shape.stride,
        pad=shape.padding,
    )


LAYERS = [
    mobilenet_layer(0, "conv1 3x3 s2 3->32 128->64"),
    Layer("conv 3x3 64->64 @32x32", "conv", 64, 64, hw=32, k=3, stride=1, pad=1),
    mobilenet_layer(13, "dw 3x3 512 @8x8"),
    mobilenet_layer(14, "pw 512->512 @8x8"),
    mobilenet_layer(23, "dw 3x3 s2 512 8->4"),
    mobilenet_layer(24, "pw 512->1024 @4x4"),
    mobilenet_layer(25, "dw 3x3 1024 @4x4"),
    mobilenet_layer(26, "pw 1024->1024 @4x4"),
    mobilenet_layer(28, "linear 1024->50"),
]
LAYER_BY_NAME = {layer.name: layer for layer in LAYERS}


def set_threads(threads):
    """Same team size for pulptrain and torch (numpy's BLAS is pinned by OPENBLAS_NUM_THREADS, see conftest)."""
    pulptrain.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)


def _operands(layer, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer.x_shape(n), dtype=np.float32)
    w = (rng.standard_normal(layer.w_shape(), dtype=np.float32) * 0.05).astype(np.float32)
    dy = rng.standard_normal(layer.y_shape(n), dtype=np.float32)
    b = rng.standard_normal(layer.c_out, dtype=np.float32) if layer.kind == "linear" else None
    return x, w, dy, b


def _output_shape(layer, step, n):
    return {"forward": layer.y_shape(n), "grad_input": layer.x_shape(n), "grad_weight": layer.w_shape()}[step]


# ---- pulptrain ------------------------------------------------------------------------------------------


def _pulptrain_call(layer, step, x, w, dy, b, out):
    """The op "<family>.<step>" of pulptrain.ops, writing into out (no allocation in the timed call)."""
    fn = ops.get(f"{layer.family}.{step}").function
    windowed = layer.family in ("conv2d", "depthwise_conv2d")  # these take the other operand's shape too
    geometry = dict(stride=layer.stride, padding=layer.pad) if windowed else {}
    if step == "forward":
        return lambda: fn(x, w, b, out=out, **geometry)
    if step == "grad_input":
        return lambda: fn(dy, w, *([x.shape] if windowed else []), out=out, **geometry)
    return lambda: fn(dy, x, *([w.shape] if windowed else []), out=out, **geometry)


def make_op_call(name, size, seed=0):
    """Zero-argument callable running any op of pulptrain.ops by name on its example arguments for a size spec
    (pulptrain/ops.py; e.g. make_op_call("batchnorm2d.forward_train", dict(batch=16, c_in=64, h=16, w=16))).
    The op's results are allocated by each call."""
    op = ops.get(name)
    arrays, params = op.example(np.random.default_rng(seed), size)
    fn = lambda: op.run(arrays, params)  # noqa: E731
    fn()  # warm-up
    return fn


# ---- torch ----------------------------------------------------------------------------------------------


def _torch_call(layer, step, x, w, dy, b, out):
    tx, tw, tdy, tout = (torch.from_numpy(a) for a in (x, w, dy, out))
    if layer.kind == "linear":
        tb = torch.from_numpy(b)
        return {
            "forward": lambda: torch.addmm(tb, tx, tw.t(), out=tout),
            "grad_input": lambda: torch.mm(tdy, tw, out=tout),
            "grad_weight": lambda: torch.mm(tdy.t(), tx, out=tout),
        }[step]
    stride, pad = [layer.stride] * 2, [layer.pad] * 2
    groups = layer.c_in if layer.kind == "dw" else 1
    conv_bwd = torch.ops.aten.convolution_backward
    # oneDNN's convolutions have no out= path that avoids a copy, so torch allocates its result; conftest
    # tunes malloc so that freed blocks are reused instead of page-faulted in again (docs/performance.md).
    if step == "forward":
        return lambda: torch.nn.functional.conv2d(tx, tw, None, stride, pad, 1, groups)
    mask = [True, False, False] if step == "grad_input" else [False, True, False]
    return lambda: conv_bwd(tdy, tx, tw, None, stride, pad, [1, 1], False, [0, 0], groups, mask)


# ---- numpy ----------------------------------------------------------------------------------------------


def _pad(a, p):
    return a if p == 0 else np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))


def _patches(xp, k, s, ho):
    """(N, C, ho, ho, k, k) strided view of the padded input: the im2col matrix without a copy."""
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return win[:, :, ::s, ::s][:, :, :ho, :ho]


def _numpy_call(layer, step, x, w, dy, b, out):
    """Plain numpy: matmul for dense layers, im2col (strided views) + einsum for convs, tap loops for dw."""
    n = x.shape[0]
    if layer.kind == "linear":
        return {
            "forward": lambda: np.add(np.matmul(x, w.T, out=out), b, out=out),
            "grad_input": lambda: np.matmul(dy, w, out=out),
            "grad_weight": lambda: np.matmul(dy.T, x, out=out),
        }[step]
    if layer.kind == "pw":
        ci, co, hw = layer.c_in, layer.c_out, layer.hw * layer.hw
        x3, dy3, w2 = x.reshape(n, ci, hw), dy.reshape(n, co, hw), w.reshape(co, ci)
        return {
            "forward": lambda: np.matmul(w2, x3, out=out.reshape(n, co, hw)),
            "grad_input": lambda: np.matmul(w2.T, dy3, out=out.reshape(n, ci, hw)),
            "grad_weight": lambda: np.tensordot(dy3, x3, axes=([0, 2], [0, 2])).reshape(out.shape),
        }[step]
    k, s, p, ho = layer.k, layer.stride, layer.pad, layer.hw_out
    if layer.kind == "conv":

        def forward():
            out[...] = np.einsum("nchwij,ocij->nohw", _patches(_pad(x, p), k, s, ho), w, optimize=True)

        def grad_weight():
            out[...] = np.einsum("nchwij,nohw->ocij", _patches(_pad(x, p), k, s, ho), dy, optimize=True)

        def grad_input():
            dcol = np.einsum("ocij,nohw->ncijhw", w, dy, optimize=True)
            dxp = np.zeros((n, layer.c_in, layer.hw + 2 * p, layer.hw + 2 * p), np.float32)
            for i in range(k):
                for j in range(k):
                    dxp[:, :, i : i + s * ho : s, j : j + s * ho : s] += dcol[:, :, i, j]
            out[...] = dxp[:, :, p : p + layer.hw, p : p + layer.hw]

        return {"forward": forward, "grad_input": grad_input, "grad_weight": grad_weight}[step]

    w3 = w.reshape(layer.c_in, k, k)

    def dw_forward():
        xp = _pad(x, p)
        out[...] = 0
        for i in range(k):
            for j in range(k):
                out[...] += xp[:, :, i : i + s * ho : s, j : j + s * ho : s] * w3[None, :, i, j, None, None]

    def dw_grad_input():
        dxp = np.zeros((n, layer.c_in, layer.hw + 2 * p, layer.hw + 2 * p), np.float32)
        for i in range(k):
            for j in range(k):
                dxp[:, :, i : i + s * ho : s, j : j + s * ho : s] += dy * w3[None, :, i, j, None, None]
        out[...] = dxp[:, :, p : p + layer.hw, p : p + layer.hw]

    def dw_grad_weight():
        xp = _pad(x, p)
        for i in range(k):
            for j in range(k):
                out[:, 0, i, j] = np.einsum("nchw,nchw->c", xp[:, :, i : i + s * ho : s, j : j + s * ho : s], dy)

    return {"forward": dw_forward, "grad_input": dw_grad_input, "grad_weight": dw_grad_weight}[step]


_BUILDERS = {"pulptrain": _pulptrain_call, "torch": _torch_call, "numpy": _numpy_call}


def make_call(impl, layer, step, n):
    """Zero-argument callable running one step of `layer` at batch n with implementation `impl`."""
    if impl == "torch" and torch is None:
        raise RuntimeError("torch is not installed")
    x, w, dy, b = _operands(layer, n)
    out = np.zeros(_output_shape(layer, step, n), np.float32)
    fn = _BUILDERS[impl](layer, step, x, w, dy, b, out)
    fn()  # warm-up: scratch buffers, oneDNN primitive caches, first-touch page faults
    return fn


# ---- whole adaptive stage -------------------------------------------------------------------------------

# conv5_1..conv6 dw+pw pairs (layers 13..26 of the model table), then the 4x4 average pool and the
# classifier: the whole-stage anchor (665 MFLOP per image for fwd + both grads).
STAGE_LAYERS = [mobilenet_layer(index) for index in range(13, 27)]
STAGE_CLASSIFIER = mobilenet_layer(28)


def stage_macs(n):
    return 3 * (sum(layer.macs(n) for layer in STAGE_LAYERS) + STAGE_CLASSIFIER.macs(n))


class _StageBuffers:
    """Weights, activations and gradients of the stage, allocated once (no BN / ReLU, like the anchor)."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        self.n = n
        self.x = rng.standard_normal(STAGE_LAYERS[0].x_shape(n), dtype=np.float32)
        self.w = [(rng.standard_normal(l.w_shape(), dtype=np.float32) * 0.05) for l in STAGE_LAYERS]
        self.acts = [self.x] + [np.zeros(l.y_shape(n), np.float32) for l in STAGE_LAYERS]
        self.grads = [np.zeros(a.shape, np.float32) for a in self.acts]
        self.dws = [np.zeros(w.shape, np.float32) for w in self.w]
        fc = STAGE_CLASSIFIER
        self.fc_w = rng.standard_normal(fc.w_shape(), dtype=np.float32) * 0.05
        self.fc_b = np.zeros(fc.c_out, np.float32)
        self.pooled = np.zeros((n, fc.c_in), np.float32)
        self.logits = np.zeros((n, fc.c_out), np.float32)
        self.dlogits = rng.standard_normal((n, fc.c_out), dtype=np.float32)
        self.dpooled = np.zeros((n, fc.c_in), np.float32)
        self.fc_dw = np.zeros(fc.w_shape(), np.float32)


def _pulptrain_stage(buf):
    def step():
        for i, layer in enumerate(STAGE_LAYERS):
            _pulptrain_call(layer, "forward", buf.acts[i], buf.w[i], None, None, buf.acts[i + 1])()
        np.mean(buf.acts[-1], axis=(2, 3), out=buf.pooled)
        K.linear_forward(buf.pooled, buf.fc_w, buf.fc_b, out=buf.logits)
        K.linear_grad_weight(buf.dlogits, buf.pooled, out=buf.fc_dw)
        K.linear_grad_input(buf.dlogits, buf.fc_w, out=buf.dpooled)
        last = buf.grads[-1]
        np.multiply(buf.dpooled[:, :, None, None], 1.0 / (last.shape[2] * last.shape[3]), out=last)
        for i in reversed(range(len(STAGE_LAYERS))):
            layer = STAGE_LAYERS[i]
            _pulptrain_call(layer, "grad_weight", buf.acts[i], buf.w[i], buf.grads[i + 1], None, buf.dws[i])()
            _pulptrain_call(layer, "grad_input", buf.acts[i], buf.w[i], buf.grads[i + 1], None, buf.grads[i])()

    return step


def _torch_stage(buf):
    acts = [torch.from_numpy(buf.x)]
    ws = [torch.from_numpy(w) for w in buf.w]
    fc_w, fc_b, dlogits = (torch.from_numpy(a) for a in (buf.fc_w, buf.fc_b, buf.dlogits))

    def conv(layer, i, x):
        groups = layer.c_in if layer.kind == "dw" else 1
        return torch.nn.functional.conv2d(x, ws[i], None, layer.stride, layer.pad, 1, groups)

    def step():
        xs = [acts[0]]
        for i, layer in enumerate(STAGE_LAYERS):
            xs.append(conv(layer, i, xs[-1]))
        pooled = xs[-1].mean(dim=(2, 3))
        torch.addmm(fc_b, pooled, fc_w.t())
        torch.mm(dlogits.t(), pooled)
        g = torch.mm(dlogits, fc_w)
        g = (g / (xs[-1].shape[2] * xs[-1].shape[3]))[:, :, None, None].expand_as(xs[-1]).contiguous()
        for i in reversed(range(len(STAGE_LAYERS))):
            layer = STAGE_LAYERS[i]
            groups = layer.c_in if layer.kind == "dw" else 1
            g, _, _ = torch.ops.aten.convolution_backward(
                g,
                xs[i],
                ws[i],
                None,
                [layer.stride] * 2,
                [layer.pad] * 2,
                [1, 1],
                False,
                [0, 0],
                groups,
                [True, True, False],
            )

    return step


def make_stage_call(impl, n):
    """Zero-argument callable: one training step (fwd + grad_input + grad_weight) of the whole stage."""
    if impl not in ("pulptrain", "torch"):
        raise ValueError(f"no whole-stage implementation for {impl!r}")
    if impl == "torch" and torch is None:
        raise RuntimeError("torch is not installed")
    fn = (_pulptrain_stage if impl == "pulptrain" else _torch_stage)(_StageBuffers(n))
    fn()
    return fn


MATMUL_SIZE = 512


def make_matmul_call(impl, size=MATMUL_SIZE):
    """A square size^3 float32 matmul into a preallocated C (the matmul-efficiency row)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    c = np.zeros((size, size), np.float32)
    if impl == "pulptrain":
        fn = lambda: K.matmul(a, b, out=c)
    elif impl == "torch":
        ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))
        fn = lambda: torch.mm(ta, tb, out=tc)
    else:
        fn = lambda: np.matmul(a, b, out=c)
    fn()
    return fn
