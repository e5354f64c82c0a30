"""Continual-learning scenarios: a stream of training batches in a fixed order plus a fixed test set.

Two sources:

* :func:`core50` reads the CORe50 benchmark files (``core50_imgs.npz``, ``paths.pkl``, ``LUP.pkl``,
  ``labels.pkl``) for one scenario (``nicv2_391`` and the others) and one run. The ``.pkl`` files are
  read with a restricted unpickler that accepts plain data only (lists, dicts, tuples, ints, strings) and
  refuses any other global, the way a pickle runs code; still, read only a data folder you trust.
* :func:`nic_stream` builds a NIC-style stream (new instances and new classes) over any labelled arrays,
  Fashion-MNIST in practice (:func:`fashion_mnist_stream`).

Both return a :class:`Stream`: ``len(stream)`` training batches, ``stream.batch(i) -> (x, y)``, iteration
over the batches in order, and ``stream.test() -> (x, y)``. Images are kept as the raw uint8 array (the
full CORe50 array is 8 GB, so it is memory-mapped when the archive allows it) and converted batch by batch
by the stream's ``transform`` into float32 NCHW.
"""

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from pulptrain.cl._validate import check_int

__all__ = [
    "Stream",
    "core50",
    "core50_preprocess",
    "CORE50_SCENARIOS",
    "CORE50_NUM_CLASSES",
    "nic_stream",
    "fashion_mnist_stream",
    "fashion_mnist_preprocess",
]

#: Number of training batches of every CORe50 scenario in the official ``LUP.pkl`` (the files the tests
#: generate may hold fewer: the loader reads the count from the file).
CORE50_SCENARIOS = {"ni": 8, "nc": 9, "nic": 79, "nicv2_79": 79, "nicv2_196": 196, "nicv2_391": 391}
CORE50_NUM_CLASSES = 50
CORE50_RUNS = 10
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class Stream:
    """An ordered stream of training batches over one image array, and a fixed test set.

    ``train_images[batch_indices[i]]`` with labels ``batch_labels[i]`` is training batch ``i``;
    ``test_images[test_indices]`` with ``test_labels`` is the test set. ``transform`` maps a uint8 image
    batch to the float32 array the model takes (identity when None). ``info`` records how the stream was
    made (scenario, run, seed, protocol parameters), for results files.
    """

    name: str
    num_classes: int
    train_images: np.ndarray
    batch_indices: list
    batch_labels: list
    test_images: np.ndarray
    test_indices: np.ndarray
    test_labels: np.ndarray
    transform: Optional[Callable[[np.ndarray], np.ndarray]] = None
    info: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.batch_indices)

    def __iter__(self):
        for i in range(len(self)):
            yield self.batch(i)

    def _images(self, images, indices):
        # Sorted reads are much faster on a memory-mapped array; undo the sort afterwards.
        order = np.argsort(indices, kind="stable")
        picked = np.empty((len(indices),) + images.shape[1:], dtype=images.dtype)
        picked[order] = images[np.asarray(indices)[order]]
        return self.transform(picked) if self.transform is not None else picked

    def batch(self, i):
        """Training batch ``i`` as ``(x, y)``: x transformed images, y int64 labels of shape (n,)."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch index {i} out of range for a stream of {len(self)} batches")
        return self._images(self.train_images, self.batch_indices[i]), np.asarray(self.batch_labels[i], np.int64)

    def batch_classes(self, i):
        """Sorted array of the classes present in training batch ``i``."""
        return np.unique(self.batch_labels[i])

    def test(self):
        """The test set as ``(x, y)``."""
        return self._images(self.test_images, self.test_indices), np.asarray(self.test_labels, np.int64)


# ----------------------------------------------------------------------------------------------- CORe50


def core50_preprocess(images):
    """The reference preprocessing: uint8 (N, H, W, 3) RGB -> float32 (N, 3, H, W), x/255 then ImageNet
    mean/std per channel, no augmentation."""
    x = images.astype(np.float32) / np.float32(255.0)
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global that :class:`_DataPickleUnpickler` does not allow."""


class _DataPickleUnpickler(pickle.Unpickler):
    """Unpickles plain data only: the CORe50 files hold lists, dicts, ints and strings, which need no global
    at all; any other global (a class or function: how a pickle runs code) is refused. The built-in
    containers below are the only ones a Python 2 pickle may name explicitly."""

    ALLOWED = frozenset(
        {("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset", "int", "str")}
        | {
            ("__builtin__", name)
            for name in ("list", "dict", "tuple", "set", "frozenset", "int", "long", "str", "unicode")
        }
    )

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise _RefusedGlobal(
                f"it names {module}.{name}, and only lists, dicts, tuples, ints and "
                f"strings are accepted (a pickle can run code: use a data folder you "
                f"trust)"
            )
        return super().find_class(module, name)


def _load_pickle(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CORe50: {what} not found: {path}")
    try:
        with open(path, "rb") as f:
            # latin1 lets Python 3 read the Python 2 pickles of the official distribution.
            return _DataPickleUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as e:
        raise ValueError(f"CORe50: {path} is refused: {e}") from e
    except Exception as e:  # truncated or not a pickle at all
        raise ValueError(f"CORe50: {path} is not a readable pickle ({type(e).__name__}: {e})") from e


def _npz_member_memmap(path, member):
    """Memory-map an uncompressed member of a .npz archive; None when it is compressed."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local_header = f.read(30)
        if local_header[:4] != b"PK\x03\x04":
            raise ValueError("bad local file header")
        name_len = int.from_bytes(local_header[26:28], "little")
        extra_len = int.from_bytes(local_header[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
    if fortran_order or dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset)


def _load_core50_images(path, mmap):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CORe50: image archive not found: {path}")
    try:
        images = _npz_member_memmap(path, "x.npy") if mmap else None
        if images is None:
            with np.load(path) as archive:
                if "x" not in archive.files:
                    raise KeyError(f"no array named 'x' (found {archive.files})")
                images = archive["x"]
    except KeyError as e:
        raise ValueError(f"CORe50: {path} has no array 'x': {e}") from e
    except Exception as e:
        raise ValueError(f"CORe50: {path} is not a readable .npz archive ({type(e).__name__}: {e})") from e
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"CORe50: {path}['x'] must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    return images


def _label_from_path(path):
    # sK/oJ/C_SS_OO_FFF.png: the object directory oJ gives label J - 1.
    parts = str(path).replace("\\", "/").split("/")
    if len(parts) < 2 or not parts[-2].startswith("o") or not parts[-2][1:].isdigit():
        raise ValueError(f"CORe50: malformed path in paths.pkl: {path!r} (expected sK/oJ/C_SS_OO_FFF.png)")
    return int(parts[-2][1:]) - 1


def core50(
    root, scenario="nicv2_391", run=0, *, test_every=1, mmap=True, transform=core50_preprocess, check_labels=True
):
    """Load one run of one CORe50 scenario.

    Parameters
    ----------
    root : directory holding ``core50_imgs.npz``, ``paths.pkl``, ``LUP.pkl`` and ``labels.pkl``.
    scenario : one of ``CORE50_SCENARIOS`` (``nicv2_391`` is the paper's benchmark).
    run : run index 0..9 (the order of the batches differs between runs).
    test_every : keep every k-th test frame (1 keeps the whole 44,972-image test set, 20 keeps 2,249).
    mmap : memory-map the images when the archive is uncompressed (``np.savez``); a compressed archive
        is read whole into memory (about 8 GB for the full data set).
    transform : applied to every uint8 (N, 128, 128, 3) batch; the default gives float32 (N, 3, 128, 128).
    check_labels : verify that every label in ``labels.pkl`` matches the object id in ``paths.pkl``.

    Returns a :class:`Stream` with ``len(stream)`` training batches (batch 0 is the initial batch).
    Missing files raise FileNotFoundError; corrupt or inconsistent files raise ValueError saying which file
    and what is wrong.
    """
    if scenario not in CORE50_SCENARIOS:
        raise ValueError(f"scenario must be one of {sorted(CORE50_SCENARIOS)}, got {scenario!r}")
    run = check_int(run, "run", 0)
    test_every = check_int(test_every, "test_every", 1)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CORe50: data root is not a directory: {root}")

    paths = _load_pickle(os.path.join(root, "paths.pkl"), "paths.pkl")
    lup = _load_pickle(os.path.join(root, "LUP.pkl"), "LUP.pkl")
    labels = _load_pickle(os.path.join(root, "labels.pkl"), "labels.pkl")
    images = _load_core50_images(os.path.join(root, "core50_imgs.npz"), mmap)

    if not isinstance(paths, (list, tuple, np.ndarray)) or len(paths) != images.shape[0]:
        n = len(paths) if hasattr(paths, "__len__") else type(paths).__name__
        raise ValueError(f"CORe50: paths.pkl must list one path per image: {n} paths for {images.shape[0]} images")
    runs_idx, runs_lab = _scenario_runs(lup, "LUP.pkl", scenario), _scenario_runs(labels, "labels.pkl", scenario)
    if run >= len(runs_idx) or run >= len(runs_lab):
        raise ValueError(
            f"CORe50: run {run} not available for {scenario} "
            f"(LUP.pkl has {len(runs_idx)} runs, labels.pkl {len(runs_lab)})"
        )
    run_idx, run_lab = runs_idx[run], runs_lab[run]
    if len(run_idx) < 2 or len(run_idx) != len(run_lab):
        raise ValueError(
            f"CORe50: {scenario} run {run}: LUP.pkl has {len(run_idx)} entries and labels.pkl "
            f"{len(run_lab)}; both need the training batches followed by the test set"
        )

    path_labels = np.array([_label_from_path(p) for p in paths], dtype=np.int64) if check_labels else None
    batches_idx, batches_lab = [], []
    for b, (idx, lab) in enumerate(zip(run_idx, run_lab)):
        where = f"{scenario} run {run} " + ("test set" if b == len(run_idx) - 1 else f"batch {b}")
        idx, lab = _index_array(idx, where, images.shape[0]), _label_array(lab, where)
        if len(idx) != len(lab):
            raise ValueError(f"CORe50: {where}: {len(idx)} indices in LUP.pkl but {len(lab)} labels in labels.pkl")
        if check_labels and not np.array_equal(path_labels[idx], lab):
            bad = int(np.flatnonzero(path_labels[idx] != lab)[0])
            raise ValueError(
                f"CORe50: {where}: labels.pkl says {int(lab[bad])} for image {int(idx[bad])} "
                f"but paths.pkl names object {path_labels[idx[bad]] + 1} ({paths[idx[bad]]})"
            )
        batches_idx.append(idx)
        batches_lab.append(lab)
    test_set_size = len(batches_idx[-1])
    test_idx, test_lab = batches_idx.pop()[::test_every], batches_lab.pop()[::test_every]
    return Stream(
        name=f"core50-{scenario}-run{run}",
        num_classes=CORE50_NUM_CLASSES,
        train_images=images,
        batch_indices=batches_idx,
        batch_labels=batches_lab,
        test_images=images,
        test_indices=test_idx,
        test_labels=test_lab,
        transform=transform,
        info={
            "dataset": "core50",
            "scenario": scenario,
            "run": int(run),
            "test_every": int(test_every),
            "test_set_size": test_set_size,
            "num_batches": len(batches_idx),
        },
    )


def _scenario_runs(table, what, scenario):
    if not isinstance(table, dict):
        raise ValueError(f"CORe50: {what} must hold a dict {{scenario: runs}}, got {type(table).__name__}")
    if scenario not in table:
        raise ValueError(f"CORe50: {what} has no scenario {scenario!r} (it has {sorted(table)})")
    runs = table[scenario]
    if not isinstance(runs, (list, tuple)):
        raise ValueError(f"CORe50: {what}[{scenario!r}] must be a list of runs, got {type(runs).__name__}")
    return runs


def _index_array(values, where, num_images):
    try:
        idx = np.asarray(values)
    except Exception as e:
        raise ValueError(f"CORe50: {where}: LUP.pkl entry is not an index list ({e})") from e
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"CORe50: {where}: LUP.pkl entry must be a flat list of ints, got {idx.dtype} {idx.shape}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= num_images):
        raise ValueError(
            f"CORe50: {where}: LUP.pkl index out of range [0, {num_images}): min {idx.min()}, max {idx.max()}"
        )
    return idx


def _label_array(values, where):
    lab = np.asarray(values)
    if lab.ndim != 1 or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
        raise ValueError(f"CORe50: {where}: labels.pkl entry must be a flat list of ints, got {lab.dtype} {lab.shape}")
    lab = lab.astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= CORE50_NUM_CLASSES):
        raise ValueError(f"CORe50: {where}: labels.pkl label out of range [0, {CORE50_NUM_CLASSES})")
    return lab


# ------------------------------------------------------------------------------------- NIC-style stream


def nic_stream(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    num_batches=60,
    initial_classes=3,
    samples_per_batch=200,
    initial_samples=None,
    test_every=1,
    seed=0,
    transform=None,
    name="nic",
):
    """A NIC-style (new instances and classes) stream over labelled arrays.

    Protocol (everything random is drawn from ``numpy.random.default_rng(seed)``, so the stream is a
    pure function of its arguments):

    1. The K classes present in ``y_train`` are put in a random order. The first ``initial_classes`` of them
       are the initial classes; the other M = K - initial_classes arrive later, in that order.
    2. The training samples of every class are shuffled once into a per-class queue. A batch takes its
       samples from the front of its class's queue, so a class that recurs brings unseen samples (new
       instances); when a queue runs out it is reshuffled and reused.
    3. Batch 0 (the initial batch) holds ``initial_samples`` samples (default
       ``samples_per_batch * initial_classes``) split as evenly as possible over the initial classes (the
       first ``initial_samples % initial_classes`` classes in the order take one more), shuffled.
    4. Batches 1..num_batches each hold ``samples_per_batch`` samples of ONE class. New class j
       (j = 0..M-1) first appears in batch ``1 + (j * num_batches) // M``, so new classes keep arriving
       over the whole stream. Every other batch holds a class drawn uniformly from the classes seen so
       far (initial classes included), so old classes recur. ``num_batches`` must be >= M.
    5. The test set is the whole test split (all classes), subsampled to every ``test_every``-th sample.

    ``len(stream) == num_batches + 1``. Labels keep their original values. ``transform`` maps uint8
    images to model inputs (None keeps the raw images).
    """
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if y_train.ndim != 1 or len(y_train) != len(x_train):
        raise ValueError(f"y_train must be 1-D with one label per x_train row: {y_train.shape} vs {x_train.shape}")
    if y_test.ndim != 1 or len(y_test) != len(x_test):
        raise ValueError(f"y_test must be 1-D with one label per x_test row: {y_test.shape} vs {x_test.shape}")
    for arr, arr_name in ((y_train, "y_train"), (y_test, "y_test")):
        if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0):
            raise ValueError(f"{arr_name} must hold non-negative integer labels, got {arr.dtype}")
    num_batches = check_int(num_batches, "num_batches", 0)
    samples_per_batch = check_int(samples_per_batch, "samples_per_batch", 1)
    test_every = check_int(test_every, "test_every", 1)
    classes = np.unique(y_train)
    initial_classes = check_int(initial_classes, "initial_classes", 1)
    if initial_classes > len(classes):
        raise ValueError(f"initial_classes={initial_classes} but y_train has only {len(classes)} classes")
    num_new = len(classes) - initial_classes
    if num_batches < num_new:
        raise ValueError(
            f"num_batches={num_batches} is too small for {num_new} new classes to arrive "
            f"(needs num_batches >= {num_new})"
        )
    if initial_samples is None:
        initial_samples = samples_per_batch * initial_classes
    initial_samples = check_int(initial_samples, "initial_samples", initial_classes)

    rng = np.random.default_rng(seed)
    order = rng.permutation(classes)
    queues = {int(c): _ClassQueue(np.flatnonzero(y_train == c), rng) for c in order}

    batch_indices, batch_labels = [], []
    initial = order[:initial_classes]
    per_class = [
        initial_samples // initial_classes + (k < initial_samples % initial_classes) for k in range(initial_classes)
    ]
    first = np.concatenate([queues[int(c)].take(n) for c, n in zip(initial, per_class)])
    first = first[rng.permutation(len(first))]
    batch_indices.append(first)
    batch_labels.append(y_train[first].astype(np.int64))

    arrival = (
        {1 + (j * num_batches) // num_new: int(c) for j, c in enumerate(order[initial_classes:])} if num_new else {}
    )
    seen = [int(c) for c in initial]
    for b in range(1, num_batches + 1):
        if b in arrival:
            cls = arrival[b]
            seen.append(cls)
        else:
            cls = seen[int(rng.integers(len(seen)))]
        idx = queues[cls].take(samples_per_batch)
        batch_indices.append(idx)
        batch_labels.append(y_train[idx].astype(np.int64))

    test_idx = np.arange(0, len(x_test), test_every)
    num_classes = int(max(classes.max(), y_test.max() if y_test.size else 0)) + 1
    return Stream(
        name=name,
        num_classes=num_classes,
        train_images=x_train,
        batch_indices=batch_indices,
        batch_labels=batch_labels,
        test_images=x_test,
        test_indices=test_idx,
        test_labels=y_test[test_idx].astype(np.int64),
        transform=transform,
        info={
            "dataset": name,
            "protocol": "nic",
            "num_batches": num_batches,
            "initial_classes": initial_classes,
            "initial_samples": initial_samples,
            "samples_per_batch": samples_per_batch,
            "test_every": test_every,
            "test_set_size": len(x_test),
            "seed": seed,
            "class_order": [int(c) for c in order],
        },
    )


class _ClassQueue:
    """The shuffled samples of one class, handed out front to back and reshuffled when exhausted."""

    def __init__(self, indices, rng):
        self.indices, self.rng = indices, rng
        self.queue, self.pos = rng.permutation(indices), 0

    def take(self, n):
        out = []
        while n > 0:
            if self.pos == len(self.queue):
                self.queue, self.pos = self.rng.permutation(self.indices), 0
            k = min(n, len(self.queue) - self.pos)
            out.append(self.queue[self.pos : self.pos + k])
            self.pos += k
            n -= k
        return np.concatenate(out).astype(np.int64)


FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530


def fashion_mnist_preprocess(images):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), x/255 normalised with the training-set mean and std."""
    x = images.astype(np.float32) / np.float32(255.0)
    return ((x - np.float32(FASHION_MNIST_MEAN)) / np.float32(FASHION_MNIST_STD))[:, None, :, :]


def fashion_mnist_stream(root=None, **kwargs):
    """:func:`nic_stream` over Fashion-MNIST (``pulptrain.data.fashion_mnist(root)``), with
    :func:`fashion_mnist_preprocess` as the default transform. Keyword arguments go to :func:`nic_stream`."""
    from pulptrain.data import fashion_mnist

    x_train, y_train, x_test, y_test = fashion_mnist(root)
    kwargs.setdefault("transform", fashion_mnist_preprocess)
    kwargs.setdefault("name", "fashion-mnist")
    return nic_stream(x_train, y_train, x_test, y_test, **kwargs)
