"""Dataset loaders (numpy arrays; no network access).

Fashion-MNIST comes as four IDX files, gzip-compressed or plain; the Debian/Ubuntu package
``dataset-fashion-mnist`` installs them in /usr/share/datasets/fashion-mnist.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
from numpy.typing import NDArray

__all__ = ["fashion_mnist", "DatasetError", "FASHION_MNIST_CLASSES"]

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FASHION_MNIST_FILES = {  # (stem, expected shape)
    "x_train": ("train-images-idx3-ubyte", (60000, 28, 28)),
    "y_train": ("train-labels-idx1-ubyte", (60000,)),
    "x_test": ("t10k-images-idx3-ubyte", (10000, 28, 28)),
    "y_test": ("t10k-labels-idx1-ubyte", (10000,)),
}
_HOW_TO_GET = (
    "install the Debian/Ubuntu package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    "or download the four IDX files of Fashion-MNIST and give their folder as --data-root (pulptrain "
    "commands), root= (Python) or PULPTRAIN_DATA"
)


class DatasetError(FileNotFoundError):
    """A dataset file is missing, truncated or not in the expected format."""


def _read_idx(path: str, expected_shape: tuple[int, ...]) -> NDArray[np.uint8]:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # EOFError / BadGzipFile: a truncated or corrupt .gz
        raise DatasetError(f"cannot read {path}: {e}; {_HOW_TO_GET}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes; {_HOW_TO_GET}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path} is truncated (incomplete header); {_HOW_TO_GET}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape != expected_shape:
        raise DatasetError(f"{path} holds shape {shape}, expected {expected_shape}; {_HOW_TO_GET}")
    count = int(np.prod(shape))
    if len(data) - header < count:
        raise DatasetError(f"{path} is truncated: {len(data) - header} of {count} data bytes; {_HOW_TO_GET}")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=header).reshape(shape)


def _find(root: str, stem: str) -> str:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        path = os.path.join(root, name)
        if os.path.exists(path):
            return path
    raise DatasetError(f"Fashion-MNIST file {stem}[.gz] not found in {root}; {_HOW_TO_GET}")


def fashion_mnist(
    root: str | os.PathLike[str] | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8], NDArray[np.int64]]:
    """Fashion-MNIST as numpy arrays: (x_train uint8 (60000, 28, 28), y_train int64 (60000,),
    x_test uint8 (10000, 28, 28), y_test int64 (10000,)); labels 0..9 (FASHION_MNIST_CLASSES).

    root: the folder with the IDX files (train-images-idx3-ubyte[.gz], ...); default $PULPTRAIN_DATA if
    set, else /usr/share/datasets/fashion-mnist. Raises DatasetError (a FileNotFoundError) saying what to
    install or where to point when a file is missing or truncated.
    """
    if root is None:
        root = os.environ.get("PULPTRAIN_DATA") or DEBIAN_FASHION_MNIST
    root = os.fspath(root)  # str: a str or PathLike[str] given
    if not os.path.isdir(root):
        raise DatasetError(f"Fashion-MNIST folder {root} does not exist; {_HOW_TO_GET}")
    arrays = {key: _read_idx(_find(root, stem), shape) for key, (stem, shape) in _FASHION_MNIST_FILES.items()}
    for split in ("train", "test"):
        if arrays["y_" + split].max() > 9:
            raise DatasetError(f"Fashion-MNIST {split} labels in {root} are outside 0..9")
    return (arrays["x_train"], arrays["y_train"].astype(np.int64), arrays["x_test"], arrays["y_test"].astype(np.int64))
