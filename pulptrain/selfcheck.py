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
from pulptrain import kernels as K
from pulptrain import reference as ref

TOLERANCE = 1e-4

# (layer, kind, C_in, C_out, H, W, k, stride, padding): MobileNetV1 128x128 rows of docs/paper.md
LAYERS = [
    ("conv1 3x3 s2 3->32", "conv2d", 3, 32, 128, 128, 3, 2, 1),
    ("dw 3x3 512 @8x8", "depthwise_conv2d", 512, 512, 8, 8, 3, 1, 1),
    ("dw 3x3 s2 512 8->4", "depthwise_conv2d", 512, 512, 8, 8, 3, 2, 1),
    ("pw 512->512 @8x8", "pointwise_conv2d", 512, 512, 8, 8, 1, 1, 0),
    ("pw 512->1024 @4x4", "pointwise_conv2d", 512, 1024, 4, 4, 1, 1, 0),
    ("linear 1024->50", "linear", 1024, 50, 1, 1, 1, 1, 0),
]


def _forward(kind, x, w, b, stride, padding):
    if kind == "linear":
        return K.linear_forward(x, w, b)
    if kind == "pointwise_conv2d":
        return K.pointwise_conv2d_forward(x, w, b)
    return getattr(K, f"{kind}_forward")(x, w, b, stride=stride, padding=padding)


def _grads(kind, x, w, dy, stride, padding):
    """(grad_input, grad_weight) of pulptrain's kernels."""
    if kind == "linear":
        return K.linear_grad_input(dy, w), K.linear_grad_weight(dy, x)
    if kind == "pointwise_conv2d":
        return K.pointwise_conv2d_grad_input(dy, w), K.pointwise_conv2d_grad_weight(dy, x)
    gi, gw = getattr(K, f"{kind}_grad_input"), getattr(K, f"{kind}_grad_weight")
    return (gi(dy, w, x.shape, stride=stride, padding=padding),
            gw(dy, x, w.shape, stride=stride, padding=padding))


def _numpy_reference(kind, x, w, b, dy, stride, padding):
    if kind == "linear":
        return ref.linear(x, w, b), dy.astype(np.float64) @ w, dy.astype(np.float64).T @ x
    dw = kind == "depthwise_conv2d"
    return (ref.conv2d(x, w, b, stride, padding, dw), ref.conv2d_grad_input(dy, w, x.shape, stride, padding, dw),
            ref.conv2d_grad_weight(dy, x, w.shape, stride, padding, dw))


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
        y = _forward(kind, x, w, b, s, p)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        ours = [y, *_grads(kind, x, w, dy, s, p), K.bias_grad(dy)]
        refs = {"numpy float64": list(_numpy_reference(kind, x, w, b, dy, s, p)) + [ref.bias_grad(dy)]}
        if torch is not None:
            refs["torch float64"] = list(_torch_reference(torch, kind, x, w, b, dy, s, p))
        for name, theirs in refs.items():
            for step, o, t in zip(["forward", "grad_input", "grad_weight", "bias_grad"], ours, theirs):
                abs_err, rel_err = _errors(o, t)
                rows.append(dict(layer=layer, kernel=kind, step=step, reference=name, batch=batch,
                                 threads=threads, max_abs_error=abs_err, relative_error=rel_err))
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
        print(f"{r['layer']:22s} {r['step']:12s} {r['reference']:14s} {r['max_abs_error']:11.3g} "
              f"{r['relative_error']:10.3g}")
    worst = max(r["relative_error"] for r in rows)
    ok = worst <= TOLERANCE
    print(f"worst relative error {worst:.3g} ({'ok' if ok else 'FAILED'}: tolerance {TOLERANCE:g}); "
          f"backend {pulptrain.parallel_backend()}, {args.threads} thread(s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tolerance": TOLERANCE, "worst_relative_error": worst, "rows": rows}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
