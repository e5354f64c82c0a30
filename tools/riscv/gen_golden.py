"""Golden data for the RISC-V test driver, produced on the host by the pulptrain Python package.

For a fixed set of small MobileNet-like shapes (stride 1 and 2, padding, odd sizes, K larger than one matmul
K block, batch > 1, accumulation into an existing output) it draws random inputs, runs the package's kernels and
writes a C header with the inputs and expected outputs as exact hexadecimal float literals, so the bare-metal
driver needs no file system and no double precision. When torch is importable, every expected output is first
checked against a float64 torch reference.

Usage: python tools/riscv/gen_golden.py OUT.h   (with pulptrain built in place: setup.py build_ext --inplace)
"""
import os
import re
import sys

import numpy as np

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, REPO_ROOT)

from pulptrain import kernels as K  # noqa: E402

SEED = 2026
TOLERANCE = 1e-4  # max|diff| <= TOLERANCE * (1 + max|ref|), as in tests/

ROLES = ("a", "b", "bias", "init")


def conv(op, step, batch, c_in, h, w, c_out, k, stride, pad, has_bias=False, accumulate=False):
    """A conv-family step; k, stride, pad are ints or (h, w) pairs."""
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    return dict(op=op, step=step, batch=batch, c_in=c_in, h=h, w=w, c_out=c_out, kh=kh, kw=kw,
                stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw, has_bias=has_bias, accumulate=accumulate)


def triad(op, *shape, **kwargs):
    """forward (with bias), grad_input and grad_weight of one shape; gradients optionally accumulate."""
    acc = kwargs.pop("accumulate", False)
    return [conv(op, "forward", *shape, has_bias=True, **kwargs),
            conv(op, "grad_input", *shape, accumulate=acc, **kwargs),
            conv(op, "grad_weight", *shape, accumulate=acc, **kwargs)]


def dense(op, step, batch, c_in, c_out, hw=(1, 1), has_bias=False, accumulate=False):
    return conv(op, step, batch, c_in, hw[0], hw[1], c_out, 1, 1, 0, has_bias, accumulate)


def cases():
    """The fixed case list: small enough for QEMU, shaped like MobileNetV1 layers."""
    out = [dict(op="matmul", step="forward", m=m, n=n, k=k) for m, n, k in
           [(7, 5, 3), (24, 40, 36), (33, 19, 300), (64, 64, 64)]]
    # conv2d: the stem (3 -> 8, 3x3, stride 2, pad 1), a stride-1 case, a rectangular kernel/stride/pad.
    out += triad("conv2d", 2, 3, 17, 17, 8, 3, 2, 1)
    out += triad("conv2d", 1, 4, 9, 11, 6, 3, 1, 1, accumulate=True)
    out += triad("conv2d", 1, 5, 8, 7, 4, (3, 2), (2, 1), (1, 0))
    # depthwise 3x3: stride 1 pad 1, stride 2 pad 1 (the downsampling blocks), stride 2 without padding.
    out += triad("depthwise", 2, 8, 10, 10, 8, 3, 1, 1)
    out += triad("depthwise", 1, 16, 9, 9, 16, 3, 2, 1, accumulate=True)
    out += triad("depthwise", 1, 5, 7, 6, 5, 3, 2, 0)
    # pointwise: batch 2, a conv5-like 8x8 plane, odd channel counts.
    for batch, c_in, c_out, hw, acc in [(2, 16, 24, (6, 6), False), (1, 64, 32, (8, 8), True),
                                        (1, 40, 72, (3, 3), False)]:
        out += [dense("pointwise", "forward", batch, c_in, c_out, hw, has_bias=True),
                dense("pointwise", "grad_input", batch, c_in, c_out, hw, accumulate=acc),
                dense("pointwise", "grad_weight", batch, c_in, c_out, hw, accumulate=acc)]
    # linear: the classifier (in -> 50 classes) and a small batch.
    for batch, c_in, c_out, acc in [(1, 128, 50, False), (3, 64, 10, True)]:
        out += [dense("linear", "forward", batch, c_in, c_out, has_bias=True),
                dense("linear", "grad_input", batch, c_in, c_out, accumulate=acc),
                dense("linear", "grad_weight", batch, c_in, c_out, accumulate=acc)]
    out += [dense("bias", "grad_bias", 2, 1, 8, (5, 5)), dense("bias", "grad_bias", 1, 1, 50, accumulate=True)]
    return out


def operand_shapes(c):
    """Shapes of a, b, bias and out for one case (None where the step has no such operand)."""
    op, step = c["op"], c["step"]
    if op == "matmul":
        return (c["m"], c["k"]), (c["k"], c["n"]), None, (c["m"], c["n"])
    if op == "bias":
        return (c["batch"], c["c_out"], c["h"], c["w"]), None, None, (c["c_out"],)
    n, ci, co = c["batch"], c["c_in"], c["c_out"]
    if op == "linear":
        x, w, y = (n, ci), (co, ci), (n, co)
    else:
        if op == "depthwise":
            co = ci
        ho = (c["h"] + 2 * c["pad_h"] - c["kh"]) // c["stride_h"] + 1
        wo = (c["w"] + 2 * c["pad_w"] - c["kw"]) // c["stride_w"] + 1
        x, y = (n, ci, c["h"], c["w"]), (n, co, ho, wo)
        w = (co, 1 if op == "depthwise" else ci, c["kh"], c["kw"])
    bias = (co,) if c.get("has_bias") else None
    return {"forward": (x, w, bias, y), "grad_input": (y, w, None, x), "grad_weight": (y, x, None, w)}[step]


def run_package(c, a, b, bias, init):
    """Expected output computed by pulptrain (into a copy of init when accumulating)."""
    op, step = c["op"], c["step"]
    out = init.copy() if init is not None else None
    acc = dict(out=out, accumulate=True) if init is not None else {}
    if op == "matmul":
        return K.matmul(a, b)
    if op == "bias":
        return K.bias_grad(a, **acc)
    if op == "linear" or op == "pointwise":
        fw, gi, gw = (getattr(K, f"{op if op == 'linear' else 'pointwise_conv2d'}_{s}")
                      for s in ("forward", "grad_input", "grad_weight"))
        return {"forward": lambda: fw(a, b, bias), "grad_input": lambda: gi(a, b, **acc),
                "grad_weight": lambda: gw(a, b, **acc)}[step]()
    prefix = "conv2d" if op == "conv2d" else "depthwise_conv2d"
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
    elif op == "bias":
        ref = a.sum(dim=(0, 2, 3))
    elif op == "linear":
        ref = {"forward": lambda: F.linear(a, b, bias), "grad_input": lambda: a @ b,
               "grad_weight": lambda: a.T @ b}[step]()
    else:
        geo = dict(stride=(c["stride_h"], c["stride_w"]), padding=(c["pad_h"], c["pad_w"]))
        geo["groups"] = c["c_in"] if op == "depthwise" else 1
        x_shape, w_shape = operand_shapes(dict(c, step="forward"))[0:2]
        if step == "forward":
            ref = F.conv2d(a, b, bias, **geo)
        elif step == "grad_input":
            ref = torch.nn.grad.conv2d_input(x_shape, b, a, **geo)
        else:
            ref = torch.nn.grad.conv2d_weight(b, w_shape, a, **geo)
    ref = ref.numpy()
    return ref + init if init is not None else ref


def c_floats(name, values):
    """A C array of exact hexadecimal float literals."""
    flat = [re.sub(r"\.?0*p", "p", float(v).hex()) + "f" for v in np.asarray(values, dtype=np.float32).ravel()]
    rows = [", ".join(flat[i:i + 8]) for i in range(0, len(flat), 8)]
    return f"static const float {name}[{len(flat)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


def c_case(i, c, arrays):
    fields = [f".op = OP_{c['op'].upper()}", f".step = STEP_{c['step'].upper()}"]
    for key in ("m", "n", "k", "batch", "c_in", "h", "w", "c_out", "kh", "kw", "stride_h", "stride_w",
                "pad_h", "pad_w", "has_bias", "accumulate"):
        if key in c:
            fields.append(f".{key} = {int(c[key])}")
    ptr = lambda role: f"golden_{i}_{role}" if arrays.get(role) is not None else "NULL"  # noqa: E731
    size = lambda role: arrays[role].size if arrays.get(role) is not None else 0  # noqa: E731
    return ("    {{" + ", ".join(fields) + "},\n     "
            + ", ".join(f"{ptr(r)}, {size(r)}" for r in ROLES + ("expected",)) + "},\n")


def main(path):
    rng = np.random.default_rng(SEED)
    body, table = [], []
    for i, c in enumerate(cases()):
        shapes = operand_shapes(c)
        arrays = {role: None if shape is None else rng.uniform(-1, 1, shape).astype(np.float32)
                  for role, shape in zip(("a", "b", "bias"), shapes[:3])}
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
    with open(path, "w") as f:
        f.write("/* Generated by tools/riscv/gen_golden.py from the pulptrain package: do not edit. */\n")
        f.write(f"#define GOLDEN_TOLERANCE {TOLERANCE}f\n\n")
        f.writelines(body)
        f.write("\nstatic const golden_case golden_cases[] = {\n")
        f.writelines(table)
        f.write("};\n#define GOLDEN_NUM_CASES ((int)(sizeof(golden_cases) / sizeof(golden_cases[0])))\n")
    print(f"gen_golden: {len(table)} cases -> {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
