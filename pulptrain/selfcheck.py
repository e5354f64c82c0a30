"""Check every kernel and step against independent references on MobileNetV1 layer shapes.

    python -m pulptrain.selfcheck [--threads T] [--batch N] [--json FILE]

For each layer type and step it runs the pulptrain kernel and compares it with the float64 numpy reference
(pulptrain.reference) and, when PyTorch is installed, with torch autograd in float64. It prints a table of
the largest absolute error and the relative error max|diff| / (1 + max|ref|), writes the same as JSON when
asked, and exits non-zero when any relative error exceeds 1e-4.
"""

import argparse
import json
import sys

import numpy as np

import pulptrain
from pulptrain import ops
from pulptrain.models import mobilenet_v1_layers

TOLERANCE = 1e-4

_KERNEL_OF_KIND = {"conv": "conv2d", "dw": "depthwise_conv2d", "pw": "pointwise_conv2d", "fc": "linear"}


def _mobilenet_row(label, index):
    """(layer, kind, C_in, C_out, H, W, k, stride, padding) of MobileNetV1's layer `index` (width 1.0,
    128x128x3 input, 50 classes) from the model table."""
    layer = mobilenet_v1_layers()[index]
    size = layer.in_size
    return (
        label,
        _KERNEL_OF_KIND[layer.kind],
        layer.in_channels,
        layer.out_channels,
        size,
        size,
        layer.kernel_size,
        layer.stride,
        layer.padding,
    )


LAYERS = [
    _mobilenet_row(label, index)
    for label, index in (
        ("conv1 3x3 s2 3->32", 0),
        ("dw 3x3 512 @8x8", 13),
        ("dw 3x3 s2 512 8->4", 23),
        ("pw 512->512 @8x8", 14),
        ("pw 512->1024 @4x4", 24),
        ("linear 1024->50", 28),
    )
]


STEPS = ("forward", "grad_input", "grad_weight")
RESULTS = {"forward": "y", "grad_input": "dx", "grad_weight": "dw"}  # each step's result in pulptrain.ops


def _ours_and_numpy(kind, x, w, b, dy, stride, padding):
    """pulptrain's forward, grad_input, grad_weight and bias_grad, and their float64 numpy references, both
    through the op table (pulptrain.ops: kind is the op family)."""
    arrays, params = dict(x=x, w=w, bias=b, dy=dy), dict(stride=stride, padding=padding)
    layer_ops = [ops.get(f"{kind}.{step}") for step in STEPS]
    ours = [op.run(arrays, params)[RESULTS[step]] for op, step in zip(layer_ops, STEPS)]
    theirs = [op.reference(arrays, params)[RESULTS[step]] for op, step in zip(layer_ops, STEPS)]
    bias_grad = ops.get("bias_grad")
    return ours + [bias_grad.run(arrays, {})["db"]], theirs + [bias_grad.reference(arrays, {})["db"]]


def _torch_reference(torch, kind, x, w, b, dy, stride, padding):
    F = torch.nn.functional
    xt, wt, bt = (torch.from_numpy(a).double().requires_grad_(True) for a in (x, w, b))
    if kind == "linear":
        y = F.linear(xt, wt, bt)
    else:
        y = F.conv2d(xt, wt, bt, stride=stride, padding=padding, groups=x.shape[1] if kind == "depthwise_conv2d" else 1)
    y.backward(torch.from_numpy(dy).double())
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def _errors(ours, theirs):
    diff = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
    return diff, diff / (1.0 + float(np.max(np.abs(theirs))))


def run(batch=2, threads=1, seed=0):
    """Returns a list of result rows (dicts): layer, step, reference, max_abs_error, relative_error."""
    try:
        import torch
    except ImportError:
        torch = None
    pulptrain.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    rows = []
    for layer, kind, ci, co, h, wd, k, s, p in LAYERS:
        if kind == "linear":
            x, w = rng.standard_normal((batch, ci)), rng.standard_normal((co, ci))
        else:
            x = rng.standard_normal((batch, ci, h, wd))
            w = rng.standard_normal((co, 1 if kind == "depthwise_conv2d" else ci, k, k))
        x, w = x.astype(np.float32), w.astype(np.float32)
        b = rng.standard_normal(co).astype(np.float32)
        y = ops.get(f"{kind}.forward").run(dict(x=x, w=w, bias=b), dict(stride=s, padding=p))["y"]
        dy = rng.standard_normal(y.shape).astype(np.float32)
        ours, numpy_refs = _ours_and_numpy(kind, x, w, b, dy, s, p)
        refs = {"numpy float64": numpy_refs}
        if torch is not None:
            refs["torch float64"] = list(_torch_reference(torch, kind, x, w, b, dy, s, p))
        for name, theirs in refs.items():
            for step, o, t in zip(["forward", "grad_input", "grad_weight", "bias_grad"], ours, theirs):
                abs_err, rel_err = _errors(o, t)
                rows.append(
                    dict(
                        layer=layer,
                        kernel=kind,
                        step=step,
                        reference=name,
                        batch=batch,
                        threads=threads,
                        max_abs_error=abs_err,
                        relative_error=rel_err,
                    )
                )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="batch size N (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="team size (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    args = parser.parse_args(argv)
    rows = run(batch=args.batch, threads=args.threads)
    print(f"{'layer':22s} {'step':12s} {'reference':14s} {'max |diff|':>11s} {'relative':>10s}")
    for r in rows:
        print(
            f"{r['layer']:22s} {r['step']:12s} {r['reference']:14s} {r['max_abs_error']:11.3g} "
            f"{r['relative_error']:10.3g}"
        )
    worst = max(r["relative_error"] for r in rows)
    ok = worst <= TOLERANCE
    print(
        f"worst relative error {worst:.3g} ({'ok' if ok else 'FAILED'}: tolerance {TOLERANCE:g}); "
        f"backend {pulptrain.parallel_backend()}, {args.threads} thread(s)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tolerance": TOLERANCE, "worst_relative_error": worst, "rows": rows}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
