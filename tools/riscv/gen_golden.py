"""Golden data for the RISC-V test driver, produced on the host by the pulptrain Python package.

Every op of pulptrain/ops.py gets golden cases here, keyed by its canonical name (the driver looks the name
up in kernel_step.c's rv_ops and fails on an op without a case): cases() (matmul-backed and depthwise layers,
bias_grad), typed_cases() (INT8 inference, latent codes) and args_cases() (activations, pooling, BatchNorm,
losses, optimizers: operands in the order of the op's c_args, inputs from the op's example).

For a fixed set of small MobileNet-like shapes (stride 1 and 2, padding, odd sizes, K larger than one matmul
K block, batch > 1, accumulation into an existing output) it draws random inputs, runs the package's kernels and
writes a C header with the inputs and expected outputs as exact hexadecimal float literals, so the bare-metal
driver needs no file system and no double precision. When torch is importable, every expected output is first
checked against a float64 torch reference.

The INT8 inference kernels (conv2d, depthwise, pointwise, linear, average pooling) and the latent-code kernels
(quantize, dequantize, pack_bits / unpack_bits for bits 1..8) get "typed" cases: uint8 / int8 / int32 / float
arrays, expected outputs from the package, each checked here against an independent integer (or float32) numpy
reference; the target must reproduce them bit for bit.

Usage: python tools/riscv/gen_golden.py OUT.h   (with pulptrain built in place: setup.py build_ext --inplace)
"""

import os
import re
import sys

import numpy as np

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, REPO_ROOT)

from pulptrain import _C  # noqa: E402
from pulptrain import kernels as K  # noqa: E402
from pulptrain import ops as OPS  # noqa: E402
from pulptrain import quant as Q  # noqa: E402

SEED = 2026
TOLERANCE = 1e-4  # max|diff| <= TOLERANCE * (1 + max|ref|), as in tests/

ROLES = ("a", "b", "bias", "init")


def op_name(op, step):
    """The canonical name of a family's step (single-step ops are named by their family)."""
    return op if op in ("matmul", "bias_grad") else f"{op}.{step}"


def conv(op, step, batch, c_in, h, w, c_out, k, stride, pad, has_bias=False, accumulate=False):
    """A conv-family step; k, stride, pad are ints or (h, w) pairs."""
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    return dict(
        name=op_name(op, step),
        op=op,
        step=step,
        batch=batch,
        c_in=c_in,
        h=h,
        w=w,
        c_out=c_out,
        kh=kh,
        kw=kw,
        stride_h=sh,
        stride_w=sw,
        pad_h=ph,
        pad_w=pw,
        has_bias=has_bias,
        accumulate=accumulate,
    )


def triad(op, *shape, **kwargs):
    """forward (with bias), grad_input and grad_weight of one shape; gradients optionally accumulate."""
    acc = kwargs.pop("accumulate", False)
    return [
        conv(op, "forward", *shape, has_bias=True, **kwargs),
        conv(op, "grad_input", *shape, accumulate=acc, **kwargs),
        conv(op, "grad_weight", *shape, accumulate=acc, **kwargs),
    ]


def dense(op, step, batch, c_in, c_out, hw=(1, 1), has_bias=False, accumulate=False):
    return conv(op, step, batch, c_in, hw[0], hw[1], c_out, 1, 1, 0, has_bias, accumulate)


def cases():
    """The fixed case list: small enough for QEMU, shaped like MobileNetV1 layers."""
    out = [
        dict(name="matmul", op="matmul", step="forward", m=m, n=n, k=k)
        for m, n, k in [(7, 5, 3), (24, 40, 36), (33, 19, 300), (64, 64, 64)]
    ]
    # conv2d: the stem (3 -> 8, 3x3, stride 2, pad 1), a stride-1 case, a rectangular kernel/stride/pad.
    out += triad("conv2d", 2, 3, 17, 17, 8, 3, 2, 1)
    out += triad("conv2d", 1, 4, 9, 11, 6, 3, 1, 1, accumulate=True)
    out += triad("conv2d", 1, 5, 8, 7, 4, (3, 2), (2, 1), (1, 0))
    # depthwise 3x3: stride 1 pad 1, stride 2 pad 1 (the downsampling blocks), stride 2 without padding.
    out += triad("depthwise_conv2d", 2, 8, 10, 10, 8, 3, 1, 1)
    out += triad("depthwise_conv2d", 1, 16, 9, 9, 16, 3, 2, 1, accumulate=True)
    out += triad("depthwise_conv2d", 1, 5, 7, 6, 5, 3, 2, 0)
    # pointwise: batch 2, a conv5-like 8x8 plane, odd channel counts.
    for batch, c_in, c_out, hw, acc in [
        (2, 16, 24, (6, 6), False),
        (1, 64, 32, (8, 8), True),
        (1, 40, 72, (3, 3), False),
    ]:
        out += [
            dense("pointwise_conv2d", "forward", batch, c_in, c_out, hw, has_bias=True),
            dense("pointwise_conv2d", "grad_input", batch, c_in, c_out, hw, accumulate=acc),
            dense("pointwise_conv2d", "grad_weight", batch, c_in, c_out, hw, accumulate=acc),
        ]
    # linear: the classifier (in -> 50 classes) and a small batch.
    for batch, c_in, c_out, acc in [(1, 128, 50, False), (3, 64, 10, True)]:
        out += [
            dense("linear", "forward", batch, c_in, c_out, has_bias=True),
            dense("linear", "grad_input", batch, c_in, c_out, accumulate=acc),
            dense("linear", "grad_weight", batch, c_in, c_out, accumulate=acc),
        ]
    out += [
        dense("bias_grad", "grad_bias", 2, 1, 8, (5, 5)),
        dense("bias_grad", "grad_bias", 1, 1, 50, accumulate=True),
    ]
    return out


def operand_shapes(c):
    """Shapes of a, b, bias and out for one case (None where the step has no such operand)."""
    op, step = c["op"], c["step"]
    if op == "matmul":
        return (c["m"], c["k"]), (c["k"], c["n"]), None, (c["m"], c["n"])
    if op == "bias_grad":
        return (c["batch"], c["c_out"], c["h"], c["w"]), None, None, (c["c_out"],)
    n, ci, co = c["batch"], c["c_in"], c["c_out"]
    if op == "linear":
        x, w, y = (n, ci), (co, ci), (n, co)
    else:
        if op == "depthwise_conv2d":
            co = ci
        ho = (c["h"] + 2 * c["pad_h"] - c["kh"]) // c["stride_h"] + 1
        wo = (c["w"] + 2 * c["pad_w"] - c["kw"]) // c["stride_w"] + 1
        x, y = (n, ci, c["h"], c["w"]), (n, co, ho, wo)
        w = (co, 1 if op == "depthwise_conv2d" else ci, c["kh"], c["kw"])
    bias = (co,) if c.get("has_bias") else None
    return {"forward": (x, w, bias, y), "grad_input": (y, w, None, x), "grad_weight": (y, x, None, w)}[step]


def run_package(c, a, b, bias, init):
    """Expected output computed by pulptrain (into a copy of init when accumulating)."""
    op, step = c["op"], c["step"]
    out = init.copy() if init is not None else None
    acc = dict(out=out, accumulate=True) if init is not None else {}
    if op == "matmul":
        return K.matmul(a, b)
    if op == "bias_grad":
        return K.bias_grad(a, **acc)
    if op == "linear" or op == "pointwise_conv2d":
        fw, gi, gw = (getattr(K, f"{op}_{s}") for s in ("forward", "grad_input", "grad_weight"))
        return {
            "forward": lambda: fw(a, b, bias),
            "grad_input": lambda: gi(a, b, **acc),
            "grad_weight": lambda: gw(a, b, **acc),
        }[step]()
    prefix = op
    geo = dict(stride=(c["stride_h"], c["stride_w"]), padding=(c["pad_h"], c["pad_w"]))
    x_shape, w_shape = operand_shapes(dict(c, step="forward"))[0:2]
    if step == "forward":
        return getattr(K, prefix + "_forward")(a, b, bias, **geo)
    if step == "grad_input":
        return getattr(K, prefix + "_grad_input")(a, b, x_shape, **geo, **acc)
    return getattr(K, prefix + "_grad_weight")(a, b, w_shape, **geo, **acc)


def torch_reference(c, a, b, bias, init):
    """Independent float64 reference (torch), or None when torch is not installed."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    t = lambda v: None if v is None else torch.from_numpy(np.asarray(v, dtype=np.float64))  # noqa: E731
    a, b, bias = t(a), t(b), t(bias)
    op, step = c["op"], c["step"]
    if op == "matmul":
        ref = a @ b
    elif op == "bias_grad":
        ref = a.sum(dim=(0, 2, 3))
    elif op == "linear":
        ref = {"forward": lambda: F.linear(a, b, bias), "grad_input": lambda: a @ b, "grad_weight": lambda: a.T @ b}[
            step
        ]()
    else:
        geo = dict(stride=(c["stride_h"], c["stride_w"]), padding=(c["pad_h"], c["pad_w"]))
        geo["groups"] = c["c_in"] if op == "depthwise_conv2d" else 1
        x_shape, w_shape = operand_shapes(dict(c, step="forward"))[0:2]
        if step == "forward":
            ref = F.conv2d(a, b, bias, **geo)
        elif step == "grad_input":
            ref = torch.nn.grad.conv2d_input(x_shape, b, a, **geo)
        else:
            ref = torch.nn.grad.conv2d_weight(b, w_shape, a, **geo)
    ref = ref.numpy()
    return ref + init if init is not None else ref


# ---- INT8 inference and latent codes: typed operands, bit-exact expected outputs ----------------------------


def int8(op, batch, c_in, h, w, c_out, k, stride, pad, has_bias=True, clip=(0, 255)):
    """An INT8 forward case (op: int8_conv2d, int8_depthwise_conv2d, int8_pointwise_conv2d, int8_linear,
    int8_avg_pool2d, int8_global_avg_pool2d)."""
    return dict(conv(op, "forward", batch, c_in, h, w, c_out, k, stride, pad, has_bias), clip=clip)


def latent(op, count, bits=8, scale=1.0):
    """A latent-code case (op: quantize, dequantize, pack_bits, unpack_bits)."""
    return dict(name=f"quant.{op}", op=op, step="forward", count=count, bits=bits, scale=scale)


PARALLEL_COUNT = 20003  # codes: above quant.c's serial threshold, so teams really split it (not a multiple of 8)


def typed_cases():
    """INT8 layers shaped like MobileNetV1 (stride 2, padding, tails of the 4x2 tile, several pixel panels) and
    the latent codes at every bit width."""
    out = [
        int8("int8_conv2d", 2, 3, 17, 17, 8, 3, 2, 1),  # the stem
        int8("int8_conv2d", 1, 4, 9, 11, 6, 3, 1, 1, clip=(3, 200)),  # ReLU6-like clip, c_out % 4 != 0
        int8("int8_conv2d", 1, 5, 8, 7, 4, (3, 2), (2, 1), (1, 0), has_bias=False),
        int8("int8_depthwise_conv2d", 2, 8, 10, 10, 8, 3, 1, 1),
        int8("int8_depthwise_conv2d", 1, 16, 9, 9, 16, 3, 2, 1, clip=(0, 120)),
        int8("int8_depthwise_conv2d", 1, 5, 7, 6, 5, 3, 2, 0, has_bias=False),
        int8("int8_depthwise_conv2d", 1, 2, 4, 300, 2, 3, 1, 1),  # rows longer than one column chunk
        int8("int8_pointwise_conv2d", 2, 16, 6, 6, 24, 1, 1, 0),
        int8("int8_pointwise_conv2d", 1, 64, 8, 8, 32, 1, 1, 0, clip=(0, 100)),
        int8("int8_pointwise_conv2d", 1, 40, 3, 3, 70, 1, 1, 0),  # odd pixels, c_out % 4 == 2
        int8("int8_pointwise_conv2d", 1, 8, 20, 20, 12, 1, 1, 0),  # 400 pixels: several panels
        int8("int8_linear", 1, 128, 1, 1, 50, 1, 1, 0),
        int8("int8_linear", 3, 64, 1, 1, 10, 1, 1, 0, has_bias=False),
        int8("int8_avg_pool2d", 2, 8, 8, 8, 8, 2, 2, 0),
        int8("int8_global_avg_pool2d", 1, 16, 4, 4, 16, 4, 4, 0),  # global 4x4 (pool6)
        int8("int8_avg_pool2d", 1, 3, 7, 7, 3, 3, 2, 0),
    ]  # odd windows: rounding half up
    out += [latent("quantize", 1000, bits, 0.25) for bits in (1, 4, 7, 8)]
    out += [
        latent("quantize", PARALLEL_COUNT, 8, 0.0371),
        latent("dequantize", 777, 8, 0.0371),
        latent("dequantize", PARALLEL_COUNT, 8, 1.7),
    ]
    for op in ("pack_bits", "unpack_bits"):
        out += [latent(op, 1001, bits) for bits in range(1, 9)]
        out += [latent(op, PARALLEL_COUNT, bits) for bits in (3, 7)]
    return out


def int8_operand_shapes(c):
    """Shapes of x, w and y of an INT8 case (w None for pooling): those of the float forward."""
    if c["op"].endswith("avg_pool2d"):
        x, _, _, y = operand_shapes(dict(c, op="depthwise_conv2d"))
        return x, None, y
    x, w, _, y = operand_shapes(dict(c, op=c["op"][len("int8_") :]))
    return x, w, y


def int8_accumulators(c, x, w):
    """Exact int64 sums of products (pooling: window sums), computed tap by tap on the padded input."""
    if c["op"] == "int8_linear":
        return x.astype(np.int64) @ w.astype(np.int64).T
    sh, sw, ph, pw, kh, kw = (c[k] for k in ("stride_h", "stride_w", "pad_h", "pad_w", "kh", "kw"))
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    acc = 0
    for ky in range(kh):
        for kx in range(kw):
            tap = xp[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]
            if c["op"].endswith("avg_pool2d"):
                acc = acc + tap
            elif c["op"] == "int8_depthwise_conv2d":
                acc = acc + tap * w[None, :, 0, ky, kx, None, None].astype(np.int64)
            else:
                acc = acc + np.einsum("oc,nchw->nohw", w[:, :, ky, kx].astype(np.int64), tap)
    return acc


def requant_reference(acc, bias, multiplier, shift, clip):
    """clip(floor((acc + bias) * multiplier / 2**shift + 1/2)) per channel (axis 1), in Python integers."""
    y = np.empty(acc.shape, dtype=np.int64)
    for ch in range(acc.shape[1]):
        m, s = int(multiplier[ch]), int(shift[ch])
        b = 0 if bias is None else int(bias[ch])
        y[:, ch] = np.reshape([((int(a) + b) * m + (1 << s >> 1)) >> s for a in acc[:, ch].ravel()], y[:, ch].shape)
    return np.clip(y, *clip).astype(np.uint8)


def int8_case(c, rng):
    """Inputs, requantization and the expected uint8 output of an INT8 case, checked against numpy."""
    x_shape, w_shape, y_shape = int8_operand_shapes(c)
    x = rng.integers(0, 256, x_shape, dtype=np.uint8)
    if c["op"].endswith("avg_pool2d"):
        kh, kw, stride = c["kh"], c["kw"], (c["stride_h"], c["stride_w"])
        y = np.asarray(Q.int8_avg_pool2d(x, (kh, kw), stride=stride))
        count = kh * kw
        assert np.array_equal(y, (int8_accumulators(c, x, None) + count // 2) // count), c
        return dict(a=x, expected=y)
    w = rng.integers(-127, 128, w_shape, dtype=np.int8)
    acc = int8_accumulators(c, x, w)
    channels = w_shape[0]
    bias = rng.integers(-(2**12), 2**12, channels).astype(np.int32) if c["has_bias"] else None
    # Real factors that spread the outputs over (and past) the uint8 range; one channel has multiplier 0.
    real = 200.0 / max(1.0, float(np.abs(acc).max())) * rng.uniform(0.25, 4.0, channels)
    real[channels // 2] = 0.0
    multiplier, shift = Q.quantize_multiplier(real)
    geo = dict(stride=(c["stride_h"], c["stride_w"]), padding=(c["pad_h"], c["pad_w"]))
    requant = dict(clip_min=c["clip"][0], clip_max=c["clip"][1])
    run = {
        "int8_conv2d": lambda: Q.int8_conv2d_forward(x, w, bias, multiplier, shift, **geo, **requant),
        "int8_depthwise_conv2d": lambda: Q.int8_depthwise_conv2d_forward(
            x, w, bias, multiplier, shift, **geo, **requant
        ),
        "int8_pointwise_conv2d": lambda: Q.int8_pointwise_conv2d_forward(x, w, bias, multiplier, shift, **requant),
        "int8_linear": lambda: Q.int8_linear_forward(x, w, bias, multiplier, shift, **requant),
    }[c["op"]]
    y = np.asarray(run())
    assert y.shape == y_shape, (c, y.shape, y_shape)
    assert np.array_equal(y, requant_reference(acc, bias, multiplier, shift, c["clip"])), f"int8 mismatch on {c}"
    assert 0 < np.count_nonzero((y > c["clip"][0]) & (y < c["clip"][1])), f"outputs all clipped on {c}"
    return dict(a=x, b=w, bias=bias, multiplier=multiplier, shift=shift, expected=y)


def latent_case(c, rng):
    """Inputs and the expected output of a latent-code case, checked against numpy."""
    count, bits, scale = c["count"], c["bits"], c["scale"]
    top = (1 << bits) - 1
    if c["op"] == "quantize":
        # Exact halves (x = (k + 1/2) * scale with scale a power of two) test round-half-to-even; negatives,
        # values past the top code and +-inf test the clip.
        x = (rng.integers(-4 * top - 8, 4 * top + 8, count) / 2.0 * scale).astype(np.float32)
        x[rng.integers(0, count, 8)] = rng.choice([np.inf, -np.inf], 8)
        expected = np.asarray(Q.quantize(x, scale, bits))
        assert np.array_equal(expected, np.clip(np.rint(x / np.float32(scale)), 0, top).astype(np.uint8))
        return dict(a=x, expected=expected)
    codes = rng.integers(0, top + 1, count, dtype=np.uint8)
    if c["op"] == "dequantize":
        expected = np.asarray(Q.dequantize(codes, scale))
        assert np.array_equal(expected, np.float32(scale) * codes.astype(np.float32))
        return dict(a=codes, expected=expected)
    # The packed stream: bit b of code i is stream bit i * bits + b, little-endian within each byte.
    stream = ((codes[:, None] >> np.arange(bits)) & 1).astype(np.uint8).ravel()
    packed = np.packbits(stream, bitorder="little")
    assert packed.size == Q.packed_size(count, bits) == -(-count * bits // 8)
    if c["op"] == "pack_bits":
        expected = np.asarray(Q.pack_bits(codes, bits))
        assert np.array_equal(expected, packed), c
        return dict(a=codes, expected=expected)
    expected = np.asarray(Q.unpack_bits(packed, bits, count))
    assert np.array_equal(expected, codes), c
    return dict(a=packed, expected=expected)


# ---- activations, pooling, BatchNorm, losses, optimizers: operand lists from pulptrain/ops.py ------------


def pool(batch, c_in, h, w, k, stride, pad):
    return dict(batch=batch, c_in=c_in, h=h, w=w, kh=k, kw=k, stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad)


POOL_CASES = [pool(2, 5, 9, 8, 3, 2, 1), pool(1, 3, 6, 6, 2, 2, 0), pool(1, 4, 7, 7, 3, 1, 1)]
PLANE_CASES = [dict(batch=3, c_in=6, h=5, w=4), dict(batch=1, c_in=4, h=3, w=3)]
FLAT_CASES = [dict(count=1001), dict(count=2500)]  # 2500: several loss blocks (PT_MSE_BLOCK) and chunks


def args_cases():
    """Size specs per op name (the sizes of pulptrain/ops.py's examples): small, with several work units."""
    out = {}
    for family in ("relu", "relu6"):
        out.update({f"{family}.forward": FLAT_CASES[:1], f"{family}.grad_input": FLAT_CASES[:1]})
    for family in ("avg_pool2d", "max_pool2d"):
        out.update({f"{family}.forward": POOL_CASES, f"{family}.grad_input": POOL_CASES})
    out.update({"global_avg_pool2d.forward": PLANE_CASES[:1], "global_avg_pool2d.grad_input": PLANE_CASES[:1]})
    for step in ("forward_train", "forward_renorm", "forward_eval", "backward", "backward_eval"):
        out[f"batchnorm2d.{step}"] = PLANE_CASES
    out.update(
        {
            "cross_entropy": [dict(batch=7, c_out=10), dict(batch=1, c_out=50)],
            "mse_loss": FLAT_CASES,
            "sgd_step": FLAT_CASES[:1],
            "adam_step": FLAT_CASES[:1],
        }
    )
    return out


PT_RELU_NO_CLIP = -1.0  # csrc/fp32/activation.h


def args_step_fields(name, size, params):
    """The rv_kernel_step fields of an RV_ARGS case: the size spec plus the op's scalar parameters."""
    fields = dict(size)
    family = name.split(".")[0]
    if family in ("relu", "relu6"):
        fields["upper"] = PT_RELU_NO_CLIP if params["upper"] is None else params["upper"]
    if family == "global_avg_pool2d":
        fields.update(kh=size["h"], kw=size["w"], stride_h=size["h"], stride_w=size["w"], pad_h=0, pad_w=0)
    if family == "batchnorm2d" and "batch_stats" in params:
        fields["batch_stats"] = int(params["batch_stats"])
    elif family == "batchnorm2d":
        fields["bn"] = dict(
            eps=params["eps"],
            momentum=params.get("momentum", 0.0),
            r_max=params.get("r_max") or 0.0,
            d_max=params.get("d_max") or 0.0,
        )
    if family == "sgd_step":
        fields["sgd"] = dict(
            lr=params["lr"],
            momentum=params["momentum"],
            dampening=params["dampening"],
            weight_decay=params["weight_decay"],
            nesterov=int(params["nesterov"]),
        )
        fields["first_step"] = int(params.get("first_step", False))
    if family == "adam_step":
        fields["adam"] = dict(
            lr=params["lr"],
            beta1=params["betas"][0],
            beta2=params["betas"][1],
            eps=params["eps"],
            weight_decay=params["weight_decay"],
            decoupled=int(params["decoupled"]),
        )
        fields["adam_step"] = params["step"]
    return fields


# The integer fields of rv_kernel_step that a case may set (kernel_step.h), in declaration order.
STEP_INT_FIELDS = (
    "m",
    "n",
    "k",
    "batch",
    "c_in",
    "h",
    "w",
    "c_out",
    "kh",
    "kw",
    "stride_h",
    "stride_w",
    "pad_h",
    "pad_w",
    "count",
    "bits",
    "has_bias",
    "accumulate",
)


def c_step_fields(case, skip=()):
    """The step fields a golden case sets (but those in `skip`), as ints, for c_initializer."""
    return {key: int(case[key]) for key in STEP_INT_FIELDS if key in case and key not in skip}


def c_initializer(fields):
    """C designated initializers: ints as ints, floats as exact hexadecimal literals, dicts nested."""

    def value(v):
        if isinstance(v, dict):
            return "{" + c_initializer(v) + "}"
        if isinstance(v, (bool, int, np.integer)):
            return str(int(v))
        return float(np.float32(v)).hex() + "f"

    return ", ".join(f".{key} = {value(v)}" for key, v in fields.items())


def args_case(op, size, rng):
    """(step fields, [(data, expected) per C operand]) of one case: the op's example, run by the package."""
    arrays, params = op.example(rng, size)
    results = op.run(arrays, params)
    operands = []
    for name, kind in op.c_args:
        data = np.asarray(arrays[name]) if kind in ("in", "inout") else None
        expected = np.asarray(results[name], dtype=np.float32).reshape(-1) if kind in ("out", "inout") else None
        assert data is not None or expected is not None, (op.name, name)
        operands.append((data, expected))
    return args_step_fields(op.name, size, params), operands


def c_args_case(i, name, fields, operands):
    def entry(j, data, expected):
        ptr = lambda v, role: f"golden_a{i}_{j}_{role}" if v is not None else "NULL"  # noqa: E731
        nbytes = (data if data is not None else expected).nbytes
        return f"{{{ptr(data, 'data')}, {ptr(expected, 'expected')}, {nbytes}}}"

    entries = ", ".join(entry(j, d, e) for j, (d, e) in enumerate(operands))
    return f'    {{"{name}", {{{c_initializer(fields)}}},\n     {len(operands)}, {{{entries}}}}},\n'


C_TYPES = {
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int8): "int8_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int64): "int64_t",
}
TYPED_ROLES = ("a", "b", "bias", "multiplier", "shift", "expected")


def c_array(name, values):
    """A C array of a typed golden operand: exact float literals, or integers."""
    values = np.asarray(values)
    if values.dtype == np.float32:
        return c_floats(name, values)
    flat = [str(int(v)) for v in values.ravel()]
    rows = [", ".join(flat[i : i + 24]) for i in range(0, len(flat), 24)]
    return f"static const {C_TYPES[values.dtype]} {name}[{len(flat)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


def c_typed_case(i, c, arrays):
    fields = c_step_fields(c, skip=("has_bias", "accumulate"))  # INT8 steps always take a bias, never accumulate
    if "scale" in c:
        fields["scale"] = c["scale"]
    ptr = lambda role: f"golden_t{i}_{role}" if arrays.get(role) is not None else "NULL"  # noqa: E731
    nbytes = lambda role: arrays[role].nbytes if arrays.get(role) is not None else 0  # noqa: E731
    channels = arrays["multiplier"].size if arrays.get("multiplier") is not None else 0
    clip = c.get("clip", (0, 0))
    return (
        f'    {{"{c["name"]}", {{{c_initializer(fields)}}},\n     '
        f"{ptr('a')}, {nbytes('a')}, {ptr('b')}, {nbytes('b')}, "
        f"{ptr('bias')}, {ptr('multiplier')}, {ptr('shift')}, {channels}, {clip[0]}, {clip[1]}, "
        f"{ptr('expected')}, {nbytes('expected')}}},\n"
    )


def c_floats(name, values):
    """A C array of exact hexadecimal float literals (INFINITY for infinities)."""
    flat = [
        ("-INFINITY" if v < 0 else "INFINITY") if np.isinf(v) else re.sub(r"\.?0*p", "p", float(v).hex()) + "f"
        for v in np.asarray(values, dtype=np.float32).ravel()
    ]
    rows = [", ".join(flat[i : i + 8]) for i in range(0, len(flat), 8)]
    return f"static const float {name}[{len(flat)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


def c_case(i, c, arrays):
    fields = c_step_fields(c)
    ptr = lambda role: f"golden_{i}_{role}" if arrays.get(role) is not None else "NULL"  # noqa: E731
    size = lambda role: arrays[role].size if arrays.get(role) is not None else 0  # noqa: E731
    return (
        f'    {{"{c["name"]}", {{'
        + c_initializer(fields)
        + "},\n     "
        + ", ".join(f"{ptr(r)}, {size(r)}" for r in ROLES + ("expected",))
        + "},\n"
    )


def main(path):
    rng = np.random.default_rng(SEED)
    float_cases, typed, by_name = cases(), typed_cases(), args_cases()
    covered = [c["name"] for c in float_cases + typed] + list(by_name)
    missing, unknown = set(OPS.BY_NAME) - set(covered), set(covered) - set(OPS.BY_NAME)
    assert not missing and not unknown, f"ops without golden cases: {missing}; cases of unknown ops: {unknown}"
    body, table = [], []
    for i, c in enumerate(float_cases):
        shapes = operand_shapes(c)
        arrays = {
            role: None if shape is None else rng.uniform(-1, 1, shape).astype(np.float32)
            for role, shape in zip(("a", "b", "bias"), shapes[:3])
        }
        arrays["init"] = rng.uniform(-1, 1, shapes[3]).astype(np.float32) if c.get("accumulate") else None
        expected = np.asarray(run_package(c, arrays["a"], arrays["b"], arrays["bias"], arrays["init"]))
        assert expected.shape == shapes[3], (c, expected.shape, shapes[3])
        ref = torch_reference(c, arrays["a"], arrays["b"], arrays["bias"], arrays["init"])
        if ref is not None:
            err = np.abs(expected - ref).max()
            assert err <= TOLERANCE * (1 + np.abs(ref).max()), f"pulptrain disagrees with torch on {c}: {err}"
        arrays["expected"] = expected
        body += [c_floats(f"golden_{i}_{role}", v) for role, v in arrays.items() if v is not None]
        table.append(c_case(i, c, arrays))
    typed_table = []
    for i, c in enumerate(typed):
        arrays = (int8_case if c["op"].startswith("int8_") else latent_case)(c, rng)
        body += [c_array(f"golden_t{i}_{role}", arrays[role]) for role in TYPED_ROLES if arrays.get(role) is not None]
        typed_table.append(c_typed_case(i, c, arrays))
    args_table = []
    for name, sizes in by_name.items():
        for size in sizes:
            i = len(args_table)
            fields, operands = args_case(OPS.get(name), size, rng)
            body += [
                c_array(f"golden_a{i}_{j}_{role}", v)
                for j, pair in enumerate(operands)
                for role, v in zip(("data", "expected"), pair)
                if v is not None
            ]
            args_table.append(c_args_case(i, name, fields, operands))
    with open(path, "w") as f:
        f.write("/* Generated by tools/riscv/gen_golden.py from the pulptrain package: do not edit. */\n")
        f.write("#include <math.h> /* INFINITY */\n")
        f.write(f"#define GOLDEN_TOLERANCE {TOLERANCE}f\n\n")
        f.writelines(body)
        f.write("\nstatic const golden_case golden_cases[] = {\n")
        f.writelines(table)
        f.write("};\n#define GOLDEN_NUM_CASES ((int)(sizeof(golden_cases) / sizeof(golden_cases[0])))\n")
        f.write("\nstatic const golden_typed_case golden_typed_cases[] = {\n")
        f.writelines(typed_table)
        f.write(
            "};\n#define GOLDEN_NUM_TYPED_CASES ((int)(sizeof(golden_typed_cases) / sizeof(golden_typed_cases[0])))\n"
        )
        f.write("\nstatic const golden_args_case golden_args_cases[] = {\n")
        f.writelines(args_table)
        f.write("};\n#define GOLDEN_NUM_ARGS_CASES ((int)(sizeof(golden_args_cases) / sizeof(golden_args_cases[0])))\n")
    print(
        f"gen_golden: {len(OPS.OPS)} ops, {len(table)} float cases, {len(typed_table)} INT8 / latent-code cases, "
        f"{len(args_table)} activation / pooling / BatchNorm / loss / optimizer cases -> {path}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    # The golden data come from the portable microkernels, the C the target compiles: the x86 levels' fused
    # multiply-adds and tile shapes round differently (within TOLERANCE either way). Set here, not at import, so
    # a process that imports this module keeps its level (and its subprocesses their environment).
    _C.set_isa("generic")
    main(sys.argv[1])
