"""A short run of the Fashion-MNIST example: the training loss must fall (CI installs dataset-fashion-mnist)."""
import json

import numpy as np
import pytest

from pulptrain.data import DatasetError, fashion_mnist
from pulptrain.examples import train_fashion_mnist


@pytest.fixture(scope="module")
def dataset_available():
    try:
        fashion_mnist()
    except DatasetError as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")


def test_short_training_run_reduces_the_loss(dataset_available, tmp_path):
    out = tmp_path / "result.json"
    result = train_fashion_mnist.main([
        "--max-steps", "150", "--epochs", "1", "--width", "0.25", "--first-stride", "2", "--batch-size", "32",
        "--lr", "0.05", "--threads", "2", "--test-limit", "500", "--quiet", "--out", str(out)])
    losses = result["losses"]
    assert len(losses) == 150 and result["steps"] == 150
    first, last = np.mean(losses[:25]), np.mean(losses[-25:])
    assert last < 0.6 * first, f"loss did not fall: first 25 steps {first:.3f}, last 25 steps {last:.3f}"
    assert result["test_accuracy"] > 0.5  # chance is 0.1
    with open(out) as f:
        saved = json.load(f)
    assert saved["steps"] == 150 and saved["config"]["width"] == 0.25
