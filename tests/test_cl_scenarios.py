"""CORe50 loader on tiny files in the exact official format, and the NIC-style stream."""

import collections
import io
import os
import pickle

import numpy as np
import pytest

from pulptrain.cl import scenarios as S

NUM_IMAGES = 40


def _image_path(session, obj, frame):
    return f"s{session}/o{obj}/C_{session:02d}_{obj:02d}_{frame:03d}.png"


def write_core50(root, *, compressed=False, scenarios=("nicv2_391", "ni"), runs=2, num_batches=3):
    """Write a miniature CORe50 (NUM_IMAGES 128x128 RGB frames of a few objects) in the official format.

    Image i is filled with the value i (so tests can tell which frame came back); object of image i is
    ``1 + 7 * (i % 5)``, i.e. labels 0, 7, 14, 21, 28.
    """
    os.makedirs(root, exist_ok=True)
    images = np.empty((NUM_IMAGES, 128, 128, 3), np.uint8)
    paths = []
    for i in range(NUM_IMAGES):
        images[i] = i
        paths.append(_image_path(1 + i % 11, 1 + 7 * (i % 5), i))
    labels_of = np.array([7 * (i % 5) for i in range(NUM_IMAGES)])
    lup, labels = {}, {}
    rng = np.random.default_rng(123)
    for sc in scenarios:
        lup[sc], labels[sc] = [], []
        for _ in range(runs):
            perm = rng.permutation(NUM_IMAGES)
            parts = np.array_split(perm[:30], num_batches) + [np.sort(perm[30:])]
            lup[sc].append([p.tolist() for p in parts])
            labels[sc].append([labels_of[p].tolist() for p in parts])
    (np.savez_compressed if compressed else np.savez)(os.path.join(root, "core50_imgs.npz"), x=images)
    for name, obj in (("paths.pkl", paths), ("LUP.pkl", lup), ("labels.pkl", labels)):
        with open(os.path.join(root, name), "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return images, lup, labels


@pytest.mark.parametrize("compressed", [False, True])
def test_core50_batches_and_test_set(tmp_path, compressed):
    images, lup, labels = write_core50(tmp_path, compressed=compressed)
    stream = S.core50(str(tmp_path), "nicv2_391", run=1)
    assert isinstance(stream.train_images, np.memmap) != compressed  # memory-mapped when stored
    assert len(stream) == 3 and stream.num_classes == 50
    for b, (x, y) in enumerate(stream):
        idx = np.array(lup["nicv2_391"][1][b])
        assert x.dtype == np.float32 and x.shape == (len(idx), 3, 128, 128)
        np.testing.assert_array_equal(y, labels["nicv2_391"][1][b])
        ref = (images[idx].astype(np.float64) / 255 - S.IMAGENET_MEAN) / S.IMAGENET_STD
        np.testing.assert_allclose(x, ref.transpose(0, 3, 1, 2), atol=1e-5)
    xt, yt = stream.test()
    np.testing.assert_allclose(xt[:, 0, 0, 0], (np.array(lup["nicv2_391"][1][-1]) / 255 - 0.485) / 0.229, atol=1e-5)
    np.testing.assert_array_equal(yt, labels["nicv2_391"][1][-1])


def test_core50_test_subsampling_and_raw_transform(tmp_path):
    _, lup, _ = write_core50(tmp_path)
    stream = S.core50(str(tmp_path), "ni", run=0, test_every=3, transform=None)
    xt, yt = stream.test()
    expected = np.array(lup["ni"][0][-1])[::3]
    assert xt.dtype == np.uint8 and xt.shape == (len(expected), 128, 128, 3)
    np.testing.assert_array_equal(xt[:, 5, 5, 1], expected)
    assert stream.info == {
        "dataset": "core50",
        "scenario": "ni",
        "run": 0,
        "test_every": 3,
        "num_batches": 3,
        "test_set_size": len(lup["ni"][0][-1]),
    }


def test_core50_missing_files(tmp_path):
    write_core50(tmp_path)
    with pytest.raises(FileNotFoundError, match="data root"):
        S.core50(str(tmp_path / "nowhere"))
    for name in ("paths.pkl", "LUP.pkl", "labels.pkl", "core50_imgs.npz"):
        os.rename(tmp_path / name, tmp_path / "moved")
        with pytest.raises(FileNotFoundError, match=name.replace(".", r"\.")):
            S.core50(str(tmp_path))
        os.rename(tmp_path / "moved", tmp_path / name)
    S.core50(str(tmp_path))  # all back: loads


def _rewrite_pickle(path, obj, protocol=None):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


class _RunsCode:
    """Unpickles by calling os.getcwd (harmless, but a call all the same: what a malicious pickle does)."""

    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize(
    "name, payload, refused",
    [
        ("LUP.pkl", _RunsCode(), "names posix.getcwd" if os.name == "posix" else "getcwd"),
        ("labels.pkl", {"nicv2_391": collections.OrderedDict()}, "names collections.OrderedDict"),
        ("paths.pkl", [np.int64(3)], "names numpy"),
    ],
)
def test_core50_pickles_with_other_globals_are_refused(tmp_path, name, payload, refused):
    """Only plain data (lists, dicts, tuples, ints, strings) unpickles; any other global is refused before it
    is called, with the file's name and a word on trusting the data folder."""
    write_core50(tmp_path)
    with open(tmp_path / name, "wb") as f:
        pickle.dump(payload, f, protocol=2)
    with pytest.raises(ValueError, match=f"CORe50: .*{name} is refused: it names") as e:
        S.core50(str(tmp_path))
    assert refused in str(e.value) and "trust" in str(e.value)


def test_core50_pickles_of_plain_data_load_with_every_protocol(tmp_path):
    """The restricted unpickler reads the official format at every pickle protocol, Python 2's included
    (protocol 2 with the __builtin__ module names a Python 2 set or long would use)."""
    images, lup, labels = write_core50(tmp_path)
    expected = S.core50(str(tmp_path), "nicv2_391", run=1, transform=None)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        for name, obj in (("LUP.pkl", lup), ("labels.pkl", labels)):
            _rewrite_pickle(tmp_path / name, obj, protocol)
        stream = S.core50(str(tmp_path), "nicv2_391", run=1, transform=None)
        assert all(np.array_equal(a, b) for a, b in zip(stream.batch_indices, expected.batch_indices))
    assert S._DataPickleUnpickler(
        io.BytesIO(b"\x80\x02c__builtin__\nset\n]K\x07a\x85R."), encoding="latin1"
    ).load() == {7}


def test_core50_corrupt_files(tmp_path):
    _, lup, labels = write_core50(tmp_path)
    with open(tmp_path / "LUP.pkl", "wb") as f:
        f.write(b"\x80\x02not a pickle")
    with pytest.raises(ValueError, match="LUP.pkl is not a readable pickle"):
        S.core50(str(tmp_path))
    _rewrite_pickle(tmp_path / "LUP.pkl", lup)

    np.savez(tmp_path / "core50_imgs.npz", y=np.zeros((NUM_IMAGES, 128, 128, 3), np.uint8))
    with pytest.raises(ValueError, match="no array 'x'"):
        S.core50(str(tmp_path))
    np.savez(tmp_path / "core50_imgs.npz", x=np.zeros((NUM_IMAGES, 128, 128, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        S.core50(str(tmp_path))
    with open(tmp_path / "core50_imgs.npz", "wb") as f:
        f.write(b"PK garbage")
    with pytest.raises(ValueError, match="not a readable .npz"):
        S.core50(str(tmp_path))


def test_core50_inconsistent_files(tmp_path):
    images, lup, labels = write_core50(tmp_path)
    bad = {k: [[list(b) for b in r] for r in v] for k, v in labels.items()}
    bad["nicv2_391"][0][1][0] = (bad["nicv2_391"][0][1][0] + 1) % 50
    _rewrite_pickle(tmp_path / "labels.pkl", bad)
    with pytest.raises(ValueError, match="batch 1: labels.pkl says"):
        S.core50(str(tmp_path))
    S.core50(str(tmp_path), check_labels=False)

    bad["nicv2_391"][0][1].pop()
    _rewrite_pickle(tmp_path / "labels.pkl", bad)
    with pytest.raises(ValueError, match="indices in LUP.pkl but"):
        S.core50(str(tmp_path), check_labels=False)
    _rewrite_pickle(tmp_path / "labels.pkl", labels)

    bad_lup = {k: [[list(b) for b in r] for r in v] for k, v in lup.items()}
    bad_lup["nicv2_391"][0][0][0] = NUM_IMAGES
    _rewrite_pickle(tmp_path / "LUP.pkl", bad_lup)
    with pytest.raises(ValueError, match="out of range"):
        S.core50(str(tmp_path))
    _rewrite_pickle(tmp_path / "LUP.pkl", lup)

    with pytest.raises(ValueError, match="no scenario 'nicv2_79'"):
        S.core50(str(tmp_path), "nicv2_79")
    with pytest.raises(ValueError, match="scenario must be one of"):
        S.core50(str(tmp_path), "nicv3")
    with pytest.raises(ValueError, match="run 2 not available"):
        S.core50(str(tmp_path), run=2)
    with pytest.raises(ValueError, match="test_every"):
        S.core50(str(tmp_path), test_every=0)

    _rewrite_pickle(tmp_path / "paths.pkl", [_image_path(1, 1, 0)] * (NUM_IMAGES - 1))
    with pytest.raises(ValueError, match="one path per image"):
        S.core50(str(tmp_path))


# ------------------------------------------------------------------------------------------------- NIC


def synthetic(num_classes=6, per_class=50, test_per_class=5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), per_class)
    y = y[rng.permutation(len(y))]
    x = (np.arange(len(y)) % 256).astype(np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    yt = np.repeat(np.arange(num_classes), test_per_class)
    xt = np.zeros((len(yt), 4, 4), np.uint8)
    return x, y, xt, yt


def test_nic_protocol():
    x, y, xt, yt = synthetic()
    stream = S.nic_stream(x, y, xt, yt, num_batches=12, initial_classes=2, samples_per_batch=10, seed=3)
    assert len(stream) == 13 and stream.num_classes == 6
    order = stream.info["class_order"]
    assert sorted(order) == list(range(6))

    x0, y0 = stream.batch(0)
    assert set(y0) == set(order[:2]) and len(y0) == 20
    assert np.bincount(y0, minlength=6)[order[:2]].tolist() == [10, 10]
    seen = set(order[:2])
    first_seen = {}
    for b in range(1, 13):
        xb, yb = stream.batch(b)
        assert len(yb) == 10 and len(set(yb)) == 1, "each incremental batch holds one class"
        np.testing.assert_array_equal(y[stream.batch_indices[b]], yb)
        cls = int(yb[0])
        if cls not in seen:
            first_seen[cls] = b
            seen.add(cls)
    # new classes arrive in their order at 1 + j * num_batches // M (M = 4 new classes)
    assert first_seen == {order[2 + j]: 1 + j * 12 // 4 for j in range(4)}
    assert 12 - len(first_seen) == 8  # the other batches are recurrences of classes already seen

    # new instances: no sample repeats while its class still has unseen ones (50 per class, <= 50 used)
    used = np.concatenate(stream.batch_indices)
    for c in range(6):
        per_class = used[y[used] == c]
        assert len(per_class) <= 50 or len(np.unique(per_class[:50])) == 50
        if len(per_class) <= 50:
            assert len(np.unique(per_class)) == len(per_class)
    xt_s, yt_s = stream.test()
    np.testing.assert_array_equal(yt_s, yt)


def test_nic_deterministic_and_seeded():
    x, y, xt, yt = synthetic()
    a = S.nic_stream(x, y, xt, yt, num_batches=8, initial_classes=3, samples_per_batch=7, seed=1)
    b = S.nic_stream(x, y, xt, yt, num_batches=8, initial_classes=3, samples_per_batch=7, seed=1)
    c = S.nic_stream(x, y, xt, yt, num_batches=8, initial_classes=3, samples_per_batch=7, seed=2)
    for i in range(len(a)):
        np.testing.assert_array_equal(a.batch_indices[i], b.batch_indices[i])
    assert any(not np.array_equal(a.batch_indices[i], c.batch_indices[i]) for i in range(len(a)))


def test_nic_recycles_exhausted_classes_and_uneven_initial_split():
    x, y, xt, yt = synthetic(num_classes=3, per_class=12)
    stream = S.nic_stream(
        x, y, xt, yt, num_batches=10, initial_classes=2, samples_per_batch=9, initial_samples=7, test_every=4, seed=0
    )
    assert np.bincount(stream.batch_labels[0], minlength=3)[stream.info["class_order"][:2]].tolist() == [4, 3]
    for b in range(1, 11):
        assert len(stream.batch_labels[b]) == 9
    assert len(stream.test()[1]) == len(range(0, len(yt), 4))


def test_nic_transform_and_errors():
    x, y, xt, yt = synthetic()
    stream = S.nic_stream(x, y, xt, yt, num_batches=4, initial_classes=6, seed=0, transform=S.fashion_mnist_preprocess)
    xb, _ = stream.batch(1)
    assert xb.dtype == np.float32 and xb.shape[1:] == (1, 4, 4)
    with pytest.raises(IndexError):
        stream.batch(5)
    with pytest.raises(ValueError, match="num_batches=3 is too small"):
        S.nic_stream(x, y, xt, yt, num_batches=3, initial_classes=2)
    with pytest.raises(ValueError, match="initial_classes=7"):
        S.nic_stream(x, y, xt, yt, initial_classes=7)
    with pytest.raises(ValueError, match="samples_per_batch"):
        S.nic_stream(x, y, xt, yt, samples_per_batch=0)
    with pytest.raises(ValueError, match="y_train"):
        S.nic_stream(x, y[:-1], xt, yt)


def test_fashion_mnist_stream_wiring(monkeypatch):
    import pulptrain.data

    x, y, xt, yt = synthetic(num_classes=10, per_class=20)
    x = np.zeros((len(y), 28, 28), np.uint8) + (y[:, None, None] * 20).astype(np.uint8)
    xt = np.zeros((len(yt), 28, 28), np.uint8)
    calls = []
    monkeypatch.setattr(pulptrain.data, "fashion_mnist", lambda root=None: calls.append(root) or (x, y, xt, yt))
    stream = S.fashion_mnist_stream("somewhere", num_batches=9, initial_classes=2, samples_per_batch=5, seed=4)
    assert calls == ["somewhere"] and stream.name == "fashion-mnist" and len(stream) == 10
    xb, yb = stream.batch(3)
    assert xb.shape == (5, 1, 28, 28) and xb.dtype == np.float32
    np.testing.assert_allclose(xb[:, 0, 0, 0], (yb * 20 / 255 - S.FASHION_MNIST_MEAN) / S.FASHION_MNIST_STD, rtol=1e-5)
