import numpy as np
import pytest

import pulptrain


@pytest.fixture(autouse=True)
def _restore_threads():
    """Every test starts and ends with the default team of one core."""
    pulptrain.set_num_threads(1)
    yield
    pulptrain.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="session")
def fashion_mnist_run(tmp_path_factory):
    """One short training run of the Fashion-MNIST example (150 SGD steps of a width-0.25 MobileNetV1),
    shared by the tests that need a trained model: (result dict, path of the saved weights, CLI args)."""
    from pulptrain.data import DatasetError, fashion_mnist
    from pulptrain.examples import train_fashion_mnist

    try:
        fashion_mnist()
    except DatasetError as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")
    out = tmp_path_factory.mktemp("fashion_mnist")
    args = [
        "--max-steps",
        "150",
        "--epochs",
        "1",
        "--width",
        "0.25",
        "--first-stride",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--threads",
        "2",
        "--test-limit",
        "1000",
        "--quiet",
        "--out",
        str(out / "result.json"),
        "--save",
        str(out / "weights.npz"),
    ]
    return train_fashion_mnist.main(args), out / "weights.npz", train_fashion_mnist.parse_args(args)
