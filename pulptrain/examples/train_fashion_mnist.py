"""Train a small MobileNetV1 on Fashion-MNIST with pulptrain kernels only (no torch).

    python -m pulptrain.examples.train_fashion_mnist                  # full run (see --help for options)
    python -m pulptrain.examples.train_fashion_mnist --max-steps 200  # a short smoke run

Every forward, backward, loss and SGD update runs in the C kernels; numpy only shuffles, pads and batches
the images. The 28x28 images are placed in a 32x32 canvas (at a random offset of up to +-2 pixels while
training, centred for testing) and normalised with the training set's mean and standard deviation. The
network is MobileNetV1 with the paper's 28 layers, a width multiplier and, by default, no downsampling in
the first convolution (a 32x32 input then ends in 2x2 feature maps). SGD with Nesterov momentum and a
cosine learning-rate schedule. Progress is shown with tqdm; the result (config, per-epoch loss and
accuracy, wall time) is written as JSON.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import pulptrain
from pulptrain import nn, optim
from pulptrain.data import fashion_mnist
from pulptrain.models import mobilenet_v1

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics (pixels / 255)
IMAGE = 28


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m pulptrain.examples.train_fashion_mnist",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=4, help="passes over the training set (default 4)")
    p.add_argument("--width", type=float, default=0.25, help="MobileNetV1 width multiplier (default 0.25)")
    p.add_argument("--input-size", type=int, default=32, help="canvas size the 28x28 images are placed in (>= 28)")
    p.add_argument("--first-stride", type=int, default=1, choices=(1, 2), help="stride of layer 0 (paper: 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (cosine decay to 0)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="kernel team size (default: all cores)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many SGD steps (short runs)")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data",
        default=None,
        help="folder with the IDX files (default $PULPTRAIN_DATA or the Debian dataset-fashion-mnist location)",
    )
    p.add_argument("--out", default="fashion_mnist_result.json", help="JSON result file")
    p.add_argument("--save", default=None, help="also write the trained weights to this .npz file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.input_size < IMAGE:
        p.error(f"--input-size must be >= {IMAGE}")
    return args


def to_canvas(images, size, offsets):
    """uint8 (N, 28, 28) -> normalised float32 (N, 1, size, size), image n placed at offsets[n] (row, col)."""
    n = images.shape[0]
    out = np.full((n, 1, size, size), -MEAN / STD, dtype=np.float32)  # the background is a 0 pixel
    pixels = (images.astype(np.float32) / 255.0 - MEAN) / STD
    for i in range(n):
        r, c = offsets[i]
        out[i, 0, r : r + IMAGE, c : c + IMAGE] = pixels[i]
    return out


def evaluate(model, x_test, y_test, size, batch=500):
    """Test accuracy (fraction) in eval mode (BN running statistics)."""
    model.eval()
    centre = (size - IMAGE) // 2
    correct = 0
    for s in range(0, len(x_test), batch):
        images = x_test[s : s + batch]
        x = to_canvas(images, size, np.full((len(images), 2), centre))
        correct += int((model.forward(x).argmax(axis=1) == y_test[s : s + batch]).sum())
    model.train()
    return correct / len(x_test)


def main(argv=None):
    args = parse_args(argv)
    pulptrain.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    x_train, y_train, x_test, y_test = fashion_mnist(args.data)
    if args.test_limit:
        x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]

    model = mobilenet_v1(
        args.width, num_classes=10, input_size=args.input_size, in_channels=1, first_stride=args.first_stride, rng=rng
    )
    opt = optim.SGD(
        model.parameters(),
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        nesterov=args.momentum > 0,
    )
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = len(x_train) // args.batch_size
    total_steps = args.epochs * steps_per_epoch
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    shift = args.input_size - IMAGE

    result = {
        "command": "python -m pulptrain.examples.train_fashion_mnist "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "config": vars(args),
        "parallel_backend": pulptrain.parallel_backend(),
        "parameters": int(sum(p.data.size for p in model.parameters())),
        "epochs": [],
        "losses": [],
    }
    start = time.perf_counter()
    step = 0
    for epoch in range(args.epochs):
        if step >= total_steps:
            break
        order = rng.permutation(len(x_train))
        epoch_start, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
        n_steps = min(steps_per_epoch, total_steps - step)
        bar = tqdm(
            range(n_steps), desc=f"epoch {epoch + 1}/{args.epochs}", unit="step", disable=args.quiet, dynamic_ncols=True
        )
        for i in bar:
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            x = to_canvas(x_train[idx], args.input_size, rng.integers(0, shift + 1, (len(idx), 2)))
            labels = y_train[idx]
            opt.lr = 0.5 * args.lr * (1 + math.cos(math.pi * step / total_steps))
            opt.zero_grad()
            logits = model.forward(x)
            loss = loss_fn.forward(logits, labels)
            correct += int((logits.argmax(axis=1) == labels).sum())
            model.backward(loss_fn.backward())
            opt.step()
            step += 1
            seen += len(idx)
            loss_sum += loss * len(idx)
            result["losses"].append(round(loss, 5))
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", lr=f"{opt.lr:.4f}")
        train_seconds = time.perf_counter() - epoch_start
        test_acc = evaluate(model, x_test, y_test, args.input_size)
        result["epochs"].append(
            {
                "epoch": epoch + 1,
                "steps": n_steps,
                "train_loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "test_accuracy": test_acc,
                "train_seconds": train_seconds,
                "images_per_second": seen / train_seconds,
            }
        )
        if not args.quiet:
            print(
                f"epoch {epoch + 1}: train loss {loss_sum / seen:.4f}, train acc {correct / seen:.4f}, "
                f"test acc {test_acc:.4f}, {seen / train_seconds:.0f} images/s",
                flush=True,
            )
    result["steps"] = step
    result["test_accuracy"] = result["epochs"][-1]["test_accuracy"] if result["epochs"] else None
    result["wall_seconds"] = time.perf_counter() - start
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    if args.save:
        model.save(args.save)
    if not args.quiet:
        print(
            f"test accuracy {result['test_accuracy']:.4f} after {step} steps, {result['wall_seconds']:.0f} s; "
            f"result written to {args.out}"
        )
    return result


if __name__ == "__main__":
    main()
