import gzip
import os

import numpy as np
import pytest

from pulptrain.data import DEBIAN_FASHION_MNIST, DatasetError, fashion_mnist


def write_idx(path, array, compress):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb", compresslevel=1) if compress else open(path, "wb") as f:
        f.write(data)


def fake_dataset(root, compress, n_train=60000, n_test=10000):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for stem, a in arrays.items():
        write_idx(os.path.join(root, stem + (".gz" if compress else "")), a, compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzip_and_plain_idx(tmp_path, compress):
    arrays = fake_dataset(str(tmp_path), compress)
    x_train, y_train, x_test, y_test = fashion_mnist(tmp_path)
    assert x_train.dtype == np.uint8 and x_train.shape == (60000, 28, 28)
    assert y_train.dtype == np.int64 and y_test.shape == (10000,)
    assert np.array_equal(x_test, arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(y_train, arrays["train-labels-idx1-ubyte"])


def test_environment_variable_sets_the_root(tmp_path, monkeypatch):
    fake_dataset(str(tmp_path), True)
    monkeypatch.setenv("PULPTRAIN_DATA", str(tmp_path))
    assert fashion_mnist()[0].shape == (60000, 28, 28)


def test_missing_or_truncated_files_say_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        fashion_mnist(tmp_path / "nowhere")
    fake_dataset(str(tmp_path), False)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*PULPTRAIN_DATA"):
        fashion_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10000), False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        fashion_mnist(tmp_path)


def test_truncated_gzip(tmp_path):
    fake_dataset(str(tmp_path), True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="train-labels"):
        fashion_mnist(tmp_path)


@pytest.mark.skipif(not os.path.isdir(DEBIAN_FASHION_MNIST), reason="dataset-fashion-mnist is not installed")
def test_installed_fashion_mnist():
    x_train, y_train, x_test, y_test = fashion_mnist(DEBIAN_FASHION_MNIST)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
