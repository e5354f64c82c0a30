"""A short run of the Fashion-MNIST example: the training loss must fall (CI installs dataset-fashion-mnist)."""

import json

import numpy as np


def test_short_training_run_reduces_the_loss(fashion_mnist_run):
    result, weights, args = fashion_mnist_run
    losses = result["losses"]
    assert len(losses) == 150 and result["steps"] == 150
    first, last = np.mean(losses[:25]), np.mean(losses[-25:])
    assert last < 0.6 * first, f"loss did not fall: first 25 steps {first:.3f}, last 25 steps {last:.3f}"
    assert result["test_accuracy"] > 0.5  # chance is 0.1
    with open(args.out) as f:
        saved = json.load(f)
    assert saved["steps"] == 150 and saved["config"]["width"] == 0.25
    assert weights.exists()
