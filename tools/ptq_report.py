"""Report of the INT8 frozen stage on a MobileNetV1 trained on Fashion-MNIST (issue 6's measurements).

    python tools/ptq_report.py [--weights W.npz | --train-steps 600] [--lr-layers 13,19,23] [--json FILE]

For each LR layer l: cosine similarity of the dequantized INT8 latents with the float ones on the test set,
top-1 test accuracy of the float model and of INT8 frozen stage + float adaptive stage, and the median time
of the frozen-stage forward, INT8 against FP32 (one thread, batch 64, interleaved rounds).
"""

import argparse
import json
import tempfile
import time

import numpy as np

import pulptrain
from pulptrain import models
from pulptrain.data import fashion_mnist
from pulptrain.examples import train_fashion_mnist as example
from pulptrain.quant import quantize_frozen


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="weights saved by the training example (--save); trains one if absent")
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--lr-layers", default="13,19,23")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--json", help="write the rows as JSON")
    a = p.parse_args(argv)
    train_args = [
        "--width",
        "0.25",
        "--first-stride",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]
    if a.weights is None:
        tmp = tempfile.mkdtemp()
        a.weights = f"{tmp}/weights.npz"
        example.main(train_args + ["--max-steps", str(a.train_steps), "--out", f"{tmp}/r.json", "--save", a.weights])
    cfg = example.parse_args(train_args)
    model = models.mobilenet_v1(
        cfg.width, num_classes=10, input_size=cfg.input_size, in_channels=1, first_stride=cfg.first_stride
    )
    model.load(a.weights)
    model.eval()
    pulptrain.set_num_threads(1)
    x_train, _, x_test, y_test = fashion_mnist()
    centre = (cfg.input_size - example.IMAGE) // 2

    def images(x):
        return example.to_canvas(x, cfg.input_size, np.full((len(x), 2), centre))

    x_cal, xt = images(x_train[:512]), images(x_test)
    rows = []
    for l in [int(v) for v in a.lr_layers.split(",")]:
        frozen, adaptive = models.split(model, l)
        qf = quantize_frozen(frozen, x_cal, lr_bits=a.bits)
        float_lat = np.concatenate([frozen.forward(xt[s : s + 500]).copy() for s in range(0, len(xt), 500)])
        int8_lat = np.concatenate([qf.forward(xt[s : s + 500]).values() for s in range(0, len(xt), 500)])
        f, q = float_lat.reshape(-1).astype(np.float64), int8_lat.reshape(-1).astype(np.float64)
        cosine = float(f @ q / (np.linalg.norm(f) * np.linalg.norm(q)))

        def accuracy(lat, adaptive=adaptive):
            pred = np.concatenate([adaptive.forward(lat[s : s + 500]).argmax(1) for s in range(0, len(lat), 500)])
            return float((pred == y_test).mean())

        acc_f, acc_q = accuracy(float_lat), accuracy(int8_lat)
        batch = xt[:64]
        t_f, t_q = [], []
        for _ in range(a.rounds):  # interleaved, so machine noise hits both alike
            t0 = time.perf_counter()
            frozen.forward(batch)
            t_f.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            qf.forward(batch)
            t_q.append(time.perf_counter() - t0)
        row = dict(
            lr_layer=l,
            lr_bits=a.bits,
            cosine=cosine,
            float_accuracy=acc_f,
            int8_accuracy=acc_q,
            accuracy_drop_pp=100 * (acc_f - acc_q),
            fp32_ms=1e3 * float(np.median(t_f)),
            int8_ms=1e3 * float(np.median(t_q)),
        )
        row["int8_over_fp32"] = row["int8_ms"] / row["fp32_ms"]
        rows.append(row)
        print(
            f"l={l:2d}: cosine {cosine:.5f}, accuracy float {100 * acc_f:.2f} % int8 {100 * acc_q:.2f} % "
            f"(drop {row['accuracy_drop_pp']:+.2f} pp), frozen forward N=64: fp32 {row['fp32_ms']:.1f} ms, "
            f"int8 {row['int8_ms']:.1f} ms (ratio {row['int8_over_fp32']:.2f})",
            flush=True,
        )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
