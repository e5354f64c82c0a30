"""One whole continual-learning experiment, as run by ``pulptrain cl`` and ``pulptrain sweep``.

Steps (all randomness derives from ``config.seed``, and the pretraining's from ``pretrain_seed`` when set;
:data:`PRESETS` names sets of defaults, "quick" and "paper-like"):

1. The scenario: Fashion-MNIST NIC stream (:func:`pulptrain.cl.scenarios.fashion_mnist_stream`) or a
   CORe50 scenario run (:func:`pulptrain.cl.scenarios.core50`).
2. Pretraining: a MobileNetV1 (``width``, ``input_size``, ``first_stride``) is trained from scratch for
   ``pretrain_epochs`` epochs of SGD (Nesterov momentum 0.9, cosine learning rate from ``pretrain_lr``,
   mini-batches of ``pretrain_batch``, optionally with random shifts and flips), on
   ``pretrain_source="initial-batch"``: the initial batch (batch 0) only, so no test data and no later batch
   is seen and no future class leaks into the frozen stage; ``"held-out"``: a source set of
   ``held_out_per_class`` training images per class that the stream never draws from
   (:func:`held_out_split`), as the paper's frozen stage is pretrained on ImageNet before CORe50 is seen.
   With ``pretrain_cache`` the result is cached on disk by a hash of its settings (:func:`pretrain`).
3. The model is split at ``lr_layer`` (with ``batch_renorm``, the BatchNorms above it become Batch
   Renormalizations). With ``bits`` <= 8 the frozen stage is quantized to INT8 with the latent at ``bits``
   bits (:func:`pulptrain.frozen_int8.quantize_frozen`, calibrated on batch 0, or on the first 2,000 source
   images when held out); with ``bits`` = 32 it stays FP32 and the buffer stores FP32 latents.
4. :class:`pulptrain.cl.LatentReplayLearner` learns the stream batch by batch (batch 0 included, as in the
   reference code); test accuracy is measured after every batch on the fixed test set, whose latents are
   computed once.

With ``compare="fp32"`` (the default) and ``bits`` <= 8, steps 3-4 run twice from the same pretrained
weights and seed: once with ``bits`` and once with FP32 latent replays, so the two curves differ only by the
precision of the frozen stage and of the buffer.

Every setting is checked before any work (:meth:`ExperimentConfig.resolved`, then the limits that come from
the data in :func:`load_stream`, then the output folders); errors are ValueError (CheckpointError for a
checkpoint) whose message names the ``pulptrain cl`` flag.

Checkpoints (``checkpoint``): ``pretrained.npz`` (the pretrained float weights) once, and
``learner-<run>.npz`` per run (``learner-8-bit.npz``, ``learner-fp32.npz``) after every batch, written
atomically (:func:`pulptrain.cl.learner.atomic_savez`). A learner file holds the learner state plus the
experiment's settings and the accuracy curve so far, so a resumed run ends with exactly the result of an
uninterrupted one. Resuming continues every run from its learner file, starts a run that has none from the
pretrained weights, and pretrains afresh when the folder exists but the pretrained weights never reached it;
a checkpoint of another experiment, a damaged file or one whose values do not fit the settings raises
:class:`pulptrain.cl.CheckpointError`.
"""

import datetime
import hashlib
import importlib.util
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

import numpy as np

from pulptrain.cl.learner import CheckpointError, atomic_savez, remove_stale_temporaries
from pulptrain.quant_core import FP32_BITS, check_bits

__all__ = [
    "ExperimentConfig",
    "Pretrained",
    "pretrain",
    "build_frozen",
    "run_stream",
    "run_experiment",
    "write_results",
    "plot_accuracy",
    "load_stream",
    "learner_file",
    "run_label",
    "machine_info",
    "check_output_folders",
]

PRETRAINED_FILE = "pretrained.npz"
EXPERIMENT_FORMAT = "pulptrain.cl.experiment/1"
RESULTS_FORMAT = "pulptrain.cl.results/2"
COMPARE_CHOICES = ("fp32", "none")
# Settings that do not change a run's result (where output goes, threads, progress bars, which other runs
# share the pretrained stage): not compared on resume.
RUNTIME_FIELDS = ("data_root", "out", "checkpoint", "pretrain_cache", "threads", "quiet", "compare")
MAX_LR_LAYER = 27  # the average pool: the adaptive stage is then the classifier alone
MAX_WIDTH = 4.0  # MobileNetV1 width multipliers in use go up to 2
MAX_NUM_BATCHES = 100_000
CORE50_IMAGE_SIZE = 128
PRETRAIN_SOURCES = ("initial-batch", "held-out")
PRETRAINED_CACHE_FORMAT = "pulptrain.cl.pretrained/1"
# Seed of the fixed split of the training images into the held-out source set and the stream's pool: the
# same for every seed and pretraining, so that no stream ever draws an image its frozen stage was trained on.
HELD_OUT_SPLIT_SEED = 20_221_031

# Named sets of defaults (``pulptrain cl --preset NAME``; a flag given on the command line still wins).
# "quick": the main job, everything from scratch on the stream's initial batch (under a minute).
# "paper-like": the regime of the paper. The frozen stage comes from an offline pretraining on a source set
# that no stream image and no test image belongs to (2,000 held-out training images per class, with
# shifts and flips, one pretraining shared by every seed: the paper's ImageNet stage); the adaptive stage
# uses Batch Renormalization as the reference code does; the stream has fewer, larger batches (20 of 300
# images, like the paper's ~300), the adaptive stage learns with a 10x smaller rate than from scratch (the
# features are good: 0.003 gave 81.6 +- 1.2 % final FP32 accuracy over 3 seeds, 0.01 80.9 +- 1.6 %, 0.03
# 78.8 +- 3.7 %), and accuracy is measured on every 2nd test image.
PRESETS = {
    "quick": {},
    "paper-like": {
        "pretrain_source": "held-out",
        "held_out_per_class": 2000,
        "pretrain_augment": True,
        "pretrain_seed": 0,
        "pretrain_epochs": 10,
        "pretrain_lr": 0.05,
        "pretrain_batch": 128,
        "batch_renorm": True,
        "num_batches": 20,
        "initial_samples": 1200,
        "samples_per_batch": 300,
        "test_every": 2,
        "lr": 0.003,
    },
}
# The grid a preset's sweep runs by default (``pulptrain sweep --preset NAME``).
PRESET_GRIDS = {
    "quick": {"bits": [32, 8, 7, 6, 4], "lr_layer": [19, 23], "replays": [200, 500], "seeds": [0, 1, 2]},
    "paper-like": {"bits": [32, 8, 7, 6, 4, 2], "lr_layer": [19], "replays": [500], "seeds": list(range(20))},
}


def preset_config(preset="quick", **values):
    """An :class:`ExperimentConfig` with the defaults of ``preset`` (a key of ``PRESETS``), then ``values``."""
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return ExperimentConfig(preset=preset, **{**PRESETS[preset], **values})


@dataclass
class ExperimentConfig:
    """Every setting of one experiment. ``None`` in ``input_size`` / ``num_batches`` means the dataset's
    default (Fashion-MNIST: 28 and ``num_batches``; CORe50: 128 and the scenario's own batches)."""

    preset: str = "quick"
    dataset: str = "fashion-mnist"
    data_root: Optional[str] = None
    scenario: str = "nicv2_391"
    run: int = 0
    # stream (Fashion-MNIST NIC protocol)
    num_batches: int = 40
    initial_classes: int = 4
    initial_samples: int = 2000
    samples_per_batch: int = 150
    test_every: int = 1
    # model
    width: float = 0.25
    input_size: Optional[int] = None
    first_stride: int = 2
    lr_layer: int = 19
    # pretraining of the frozen stage: on the initial batch, or on a held-out source set
    pretrain_source: str = "initial-batch"
    held_out_per_class: int = 2000
    pretrain_augment: bool = False
    pretrain_seed: Optional[int] = None
    pretrain_epochs: int = 8
    pretrain_lr: float = 0.05
    pretrain_batch: int = 64
    # continual learning
    bits: int = 8
    replays: int = 500
    epochs: int = 4
    first_epochs: int = 4
    lr: float = 0.03
    first_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    minibatch: int = 128
    cwr: bool = True
    freeze_bn: bool = False
    batch_renorm: bool = False
    policy: str = "reference"
    calibration: str = "max"
    seed: int = 0
    # runtime only
    out: Optional[str] = None
    checkpoint: Optional[str] = None
    pretrain_cache: Optional[str] = None
    threads: int = 1
    quiet: bool = False
    compare: str = "fp32"

    def resolved(self):
        """A copy with the dataset defaults filled in and every value checked against its range; a ValueError
        names the ``pulptrain cl`` flag (``--lr-layer``) otherwise. Checks nothing that needs the data."""
        from pulptrain.cl.scenarios import CORE50_RUNS, CORE50_SCENARIOS

        if self.dataset not in ("fashion-mnist", "core50"):
            raise ValueError(f"--dataset must be 'fashion-mnist' or 'core50', got {self.dataset!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.pretrain_source not in PRETRAIN_SOURCES:
            raise ValueError(
                f"--pretrain-source must be one of {', '.join(PRETRAIN_SOURCES)}, got {self.pretrain_source!r}"
            )
        if self.pretrain_source == "held-out" and self.dataset != "fashion-mnist":
            raise ValueError("--pretrain-source held-out needs --dataset fashion-mnist (CORe50 has no source set here)")
        cfg = replace(self)
        if cfg.input_size is None:
            cfg.input_size = 28 if cfg.dataset == "fashion-mnist" else CORE50_IMAGE_SIZE
        for name in (
            "replays",
            "epochs",
            "first_epochs",
            "minibatch",
            "pretrain_batch",
            "threads",
            "test_every",
            "samples_per_batch",
            "initial_classes",
            "initial_samples",
            "input_size",
            "held_out_per_class",
        ):
            _check_int(cfg, name, 1)
        if cfg.pretrain_seed is not None:
            _check_int(cfg, "pretrain_seed", 0)
        for name in ("pretrain_epochs", "num_batches", "seed", "run"):
            _check_int(cfg, name, 0)
        if cfg.dataset == "core50" and not cfg.data_root:
            raise ValueError(
                "--dataset core50 needs --data-root (the folder with core50_imgs.npz, paths.pkl, LUP.pkl, labels.pkl)"
            )
        if cfg.data_root is not None and not os.path.isdir(cfg.data_root):
            raise ValueError(f"--data-root {cfg.data_root}: data root is not a directory")
        if cfg.dataset == "fashion-mnist" and cfg.input_size != 28:
            raise ValueError(f"--input-size must be 28 (Fashion-MNIST images are 28x28), got {cfg.input_size}")
        if cfg.dataset == "core50" and cfg.input_size != CORE50_IMAGE_SIZE:
            raise ValueError(
                f"--input-size must be {CORE50_IMAGE_SIZE} (CORe50 frames are {CORE50_IMAGE_SIZE}x"
                f"{CORE50_IMAGE_SIZE}), got {cfg.input_size}"
            )
        if cfg.dataset == "core50" and cfg.scenario not in CORE50_SCENARIOS:
            raise ValueError(f"--scenario must be one of {', '.join(sorted(CORE50_SCENARIOS))}, got {cfg.scenario!r}")
        if cfg.dataset == "core50" and cfg.run >= CORE50_RUNS:
            raise ValueError(f"--run must be in 0..{CORE50_RUNS - 1} (CORe50 has {CORE50_RUNS} runs), got {cfg.run}")
        check_bits(cfg.bits, "--bits", allow_fp32=True)
        check_lr_layer(cfg.lr_layer)
        if cfg.num_batches > MAX_NUM_BATCHES:
            raise ValueError(f"--num-batches must be <= {MAX_NUM_BATCHES:,}, got {cfg.num_batches}")
        if cfg.initial_samples < cfg.initial_classes:
            raise ValueError(
                f"--initial-samples must be >= --initial-classes ({cfg.initial_classes}: at least "
                f"one image per initial class), got {cfg.initial_samples}"
            )
        cpus = available_cpus()
        if cfg.threads > cpus:
            raise ValueError(f"--threads must be <= {cpus} (the CPUs available to this process), got {cfg.threads}")
        for name in ("lr", "first_lr", "pretrain_lr"):
            value = getattr(cfg, name)
            if not (_is_real(value) and math.isfinite(value) and value > 0):
                raise ValueError(f"{_flag(name)} must be a finite number > 0, got {value!r}")
        if not (_is_real(cfg.width) and 0 < cfg.width <= MAX_WIDTH):
            raise ValueError(f"--width must be a finite number in (0, {MAX_WIDTH:g}], got {cfg.width!r}")
        for name in ("momentum", "weight_decay"):
            value = getattr(cfg, name)
            if not (_is_real(value) and 0 <= value < 1):
                raise ValueError(f"{_flag(name)} must be in [0, 1), got {value!r}")
        if cfg.compare not in COMPARE_CHOICES:
            raise ValueError(f"--compare must be one of {', '.join(COMPARE_CHOICES)}, got {cfg.compare!r}")
        for name, value in (("out", cfg.out), ("checkpoint", cfg.checkpoint), ("pretrain_cache", cfg.pretrain_cache)):
            if value is not None and not str(value).strip():
                raise ValueError(f"{_flag(name)} must name a folder, got an empty string")
        _check_buffer_fits_in_memory(cfg)
        return cfg

    def settings(self):
        """The settings that determine the result (everything but the runtime fields), as a dict."""
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_FIELDS}


def _flag(name):
    return "--" + name.replace("_", "-")


def _is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_int(cfg, name, minimum):
    value = getattr(cfg, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{_flag(name)} must be an integer >= {minimum}, got {value!r}")


def check_lr_layer(lr_layer):
    """The one check of an LR layer (``cl``, ``sweep`` and ``memory`` accept the same range)."""
    if not 0 <= lr_layer <= MAX_LR_LAYER:
        raise ValueError(
            f"--lr-layer must be in 0..{MAX_LR_LAYER} (a layer of MobileNetV1 below the classifier), got {lr_layer}"
        )


def available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _physical_memory():
    """Bytes of RAM of this machine, or None when the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_buffer_fits_in_memory(cfg):
    """The replay buffers are allocated whole at the start: refuse a --replays whose largest buffer (the
    FP32 one when it runs) could not fit in this machine's memory, instead of being killed for it later."""
    from pulptrain.cl.memory import memory_breakdown

    ram = _physical_memory()
    if ram is None:
        return
    bits = FP32_BITS if cfg.compare == "fp32" else cfg.bits
    in_channels, num_classes = (1, 10) if cfg.dataset == "fashion-mnist" else (3, 50)
    memory = memory_breakdown(
        width_mult=cfg.width,
        input_size=cfg.input_size,
        lr_layer=cfg.lr_layer,
        replays=cfg.replays,
        bits=bits,
        batch=cfg.minibatch,
        num_classes=num_classes,
        in_channels=in_channels,
        first_stride=cfg.first_stride,
    )
    if memory.replay_buffer > ram // 2:
        raise ValueError(
            f"--replays {cfg.replays}: the {run_label(bits)} replay buffer would take "
            f"{memory.replay_buffer / 2**30:.1f} GiB, more than half of this machine's "
            f"{ram / 2**30:.1f} GiB of memory"
        )


def check_output_folders(cfg):
    """``out``, ``checkpoint`` and ``pretrain_cache`` must be folders that exist or can be created: not a
    file, nothing but folders above them, and a writable folder where they would be created (ValueError
    naming the flag)."""
    for name in ("out", "checkpoint", "pretrain_cache"):
        path = getattr(cfg, name)
        if path is None:
            continue
        path = os.path.abspath(path)
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{_flag(name)} {getattr(cfg, name)}: exists and is not a folder")
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise ValueError(f"{_flag(name)} {getattr(cfg, name)}: {existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{_flag(name)} {getattr(cfg, name)}: {existing} is not writable")
    if cfg.out is not None and importlib.util.find_spec("matplotlib") is None:
        # a declared dependency: missing only from a broken install, and then said before any work, not after
        raise ValueError(f"--out {cfg.out}: the plot needs matplotlib, which is not installed (pip install matplotlib)")


def _make_output_folders(cfg):
    for name in ("out", "checkpoint"):
        path = getattr(cfg, name)
        if path is not None:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                raise ValueError(f"{_flag(name)} {path}: cannot create the folder ({e.strerror})") from e
    if cfg.checkpoint is not None:
        remove_stale_temporaries(cfg.checkpoint)


def run_label(bits):
    """The name of a run in results.json and in checkpoint file names: ``"8-bit"`` or ``"fp32"``."""
    return "fp32" if bits == FP32_BITS else f"{bits}-bit"


def learner_file(cfg):
    """The checkpoint file of the run of ``cfg`` (one per bit width)."""
    return f"learner-{run_label(cfg.bits)}.npz"


def _runs(cfg):
    """The configs of the runs of one experiment: ``cfg`` itself, then the FP32 comparison when asked for."""
    runs = [cfg]
    if cfg.compare == "fp32" and cfg.bits != FP32_BITS:
        runs.append(replace(cfg, bits=FP32_BITS))
    return runs


# ------------------------------------------------------------------------------------------ scenario


def load_stream(cfg):
    """The :class:`pulptrain.cl.scenarios.Stream` of a resolved config. Settings whose limit comes from the
    data (images per class, classes, test set size) are checked against it before the stream is built; a
    ValueError names the flag. With ``pretrain_source="held-out"`` the stream draws only from the training
    images outside the source set (:func:`held_out_split`)."""
    from pulptrain.cl import scenarios

    try:
        if cfg.dataset == "fashion-mnist":
            x_train, y_train, x_test, y_test = _fashion_mnist(cfg)
        else:
            stream = scenarios.core50(cfg.data_root, cfg.scenario, cfg.run, test_every=cfg.test_every)
    except FileNotFoundError as e:  # a missing folder or file (data.DatasetError is one)
        raise type(e)(f"--data-root: {e}") from e
    if cfg.dataset == "fashion-mnist":
        source = None
        if cfg.pretrain_source == "held-out":
            _check_held_out(cfg, y_train)
            source, pool = held_out_split(y_train, cfg.held_out_per_class)
            x_train, y_train = x_train[pool], y_train[pool]
        _check_stream_limits(cfg, y_train)
        stream = scenarios.nic_stream(
            x_train,
            y_train,
            x_test,
            y_test,
            num_batches=cfg.num_batches,
            initial_classes=cfg.initial_classes,
            initial_samples=cfg.initial_samples,
            samples_per_batch=cfg.samples_per_batch,
            test_every=cfg.test_every,
            seed=cfg.seed,
            transform=scenarios.fashion_mnist_preprocess,
            name="fashion-mnist",
        )
        if source is not None:
            stream.info["held_out_source"] = {
                "images": int(len(source)),
                "per_class": cfg.held_out_per_class,
                "stream_pool": int(len(y_train)),
                "split_seed": HELD_OUT_SPLIT_SEED,
            }
    if cfg.test_every > stream.info["test_set_size"]:
        raise ValueError(
            f"--test-every must be <= {stream.info['test_set_size']} (the test set's size), got {cfg.test_every}"
        )
    return stream


def _fashion_mnist(cfg):
    from pulptrain import data

    return data.fashion_mnist(cfg.data_root)


def held_out_split(y_train, per_class):
    """``(source, pool)`` index arrays of the training split: ``per_class`` images of every class, drawn by
    a generator of fixed seed (``HELD_OUT_SPLIT_SEED``), form the source set of the offline pretraining; the
    stream draws only from the others (``pool``, in their original order). ``source`` is shuffled."""
    rng = np.random.default_rng(HELD_OUT_SPLIT_SEED)
    picked = [rng.permutation(np.flatnonzero(y_train == c))[:per_class] for c in np.unique(y_train)]
    source = rng.permutation(np.concatenate(picked))
    pool = np.setdiff1d(np.arange(len(y_train)), source)
    return source, pool


def _check_held_out(cfg, y_train):
    smallest = int(np.bincount(y_train)[np.unique(y_train)].min())
    if cfg.held_out_per_class >= smallest:
        raise ValueError(
            f"--held-out-per-class must be < {smallest} (the training images of the smallest class, some of "
            f"which the stream needs), got {cfg.held_out_per_class}"
        )


def _check_stream_limits(cfg, y_train):
    """The NIC stream's settings against the training labels: no batch may need more images of a class than
    the class has (the initial classes are drawn at random, so the smallest class is the bound)."""
    counts = np.bincount(y_train)
    counts = counts[counts > 0]
    if cfg.initial_classes > len(counts):
        raise ValueError(
            f"--initial-classes must be <= {len(counts)} (the classes of the training set), got {cfg.initial_classes}"
        )
    new_classes = len(counts) - cfg.initial_classes
    if cfg.num_batches < new_classes:
        raise ValueError(
            f"--num-batches must be >= {new_classes} (one batch per class that arrives after the "
            f"{cfg.initial_classes} initial ones), got {cfg.num_batches}"
        )
    smallest = int(counts.min())
    if cfg.samples_per_batch > smallest:
        raise ValueError(
            f"--samples-per-batch must be <= {smallest} (the training images of the smallest "
            f"class), got {cfg.samples_per_batch}"
        )
    if cfg.initial_samples > cfg.initial_classes * smallest:
        raise ValueError(
            f"--initial-samples must be <= {cfg.initial_classes * smallest} ({cfg.initial_classes} "
            f"initial classes x {smallest} training images of the smallest class), "
            f"got {cfg.initial_samples}"
        )


def _model(cfg, num_classes, in_channels, rng=None):
    from pulptrain.models import mobilenet_v1

    return mobilenet_v1(
        cfg.width,
        num_classes=num_classes,
        input_size=cfg.input_size,
        in_channels=in_channels,
        first_stride=cfg.first_stride,
        rng=rng,
    )


@dataclass
class Pretrained:
    """The result of pretraining: float weights (a state_dict), the images the INT8 frozen stage is
    calibrated on, the number of classes and input channels, the training accuracy of the last epoch and the
    wall time (s)."""

    state: dict
    calibration_x: np.ndarray
    num_classes: int
    in_channels: int
    train_accuracy: float
    seconds: float

    def model(self, cfg):
        """A fresh MobileNetV1 holding the pretrained weights; with ``cfg.batch_renorm`` the BatchNorms above
        the LR layer are Batch Renormalizations (:func:`pulptrain.models.use_batch_renorm`)."""
        from pulptrain.models import use_batch_renorm

        model = _model(cfg, self.num_classes, self.in_channels)
        model.load_state_dict(self.state)
        if cfg.batch_renorm:
            use_batch_renorm(model, cfg.lr_layer)
        return model


CALIBRATION_IMAGES = 2000  # source images the INT8 stage is calibrated on (held-out pretraining)


def pretraining_settings(cfg):
    """The settings a pretraining depends on (the key of its cache file): the model, the pretraining
    itself, and its images (the data folder and the source set; or, for the initial batch, the stream that
    makes it)."""
    keys = [
        "dataset",
        "data_root",
        "width",
        "input_size",
        "first_stride",
        "pretrain_source",
        "pretrain_epochs",
        "pretrain_lr",
    ]
    keys += ["pretrain_batch", "pretrain_augment"]
    if cfg.pretrain_source == "held-out":
        keys += ["held_out_per_class"]
    else:
        keys += ["scenario", "run", "num_batches", "initial_classes", "initial_samples", "samples_per_batch"]
    settings = {k: getattr(cfg, k) for k in keys}
    settings["pretrain_seed"] = pretrain_seed(cfg)
    settings["format"] = PRETRAINED_CACHE_FORMAT
    return settings


def pretrain_seed(cfg):
    """The seed of the pretraining: ``cfg.pretrain_seed``, or the experiment's seed when it is None."""
    return cfg.seed if cfg.pretrain_seed is None else cfg.pretrain_seed


def pretrained_cache_file(cfg):
    """``pretrained-<hash>.npz``: the cache file of the pretraining of ``cfg`` (hash of its settings)."""
    text = json.dumps(pretraining_settings(cfg), sort_keys=True)
    return f"pretrained-{hashlib.sha256(text.encode()).hexdigest()[:16]}.npz"


def pretraining_set(cfg, stream):
    """``(x, y, calibration_x)``: the images the frozen stage is pretrained on and those its INT8 version is
    calibrated on. Initial batch: ``stream.batch(0)`` for both. Held-out: the source set of
    :func:`held_out_split` (never part of a stream or of the test set), calibrated on its first
    ``CALIBRATION_IMAGES`` images."""
    if cfg.pretrain_source == "initial-batch":
        x, y = stream.batch(0)
        return x, y, x
    x_train, y_train, _, _ = _fashion_mnist(cfg)
    source, _ = held_out_split(y_train, cfg.held_out_per_class)
    x = stream.transform(x_train[source])
    return x, y_train[source].astype(np.int64), x[:CALIBRATION_IMAGES]


def augment(x, rng, shift=2):
    """Random shifts of up to ``shift`` pixels each way (the border filled with the image's corner value,
    the background) and horizontal flips of half the images: a new array, ``x`` (N, C, H, W) unchanged."""
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)), mode="edge")
    dy, dx = rng.integers(0, 2 * shift + 1, (2, n))
    flip = rng.random(n) < 0.5
    out = np.empty_like(x)
    for k in range(n):
        crop = padded[k, :, dy[k] : dy[k] + h, dx[k] : dx[k] + w]
        out[k] = crop[:, :, ::-1] if flip[k] else crop
    return out


def pretrain(cfg, stream, progress=True, saved=None):
    """The pretrained float model of ``cfg`` (module docstring, step 2): trained from scratch on
    :func:`pretraining_set` by SGD (Nesterov momentum 0.9, weight decay 5e-4, cosine learning rate from
    ``pretrain_lr``), with :func:`augment` when ``pretrain_augment``; seeds from :func:`pretrain_seed`.

    ``saved``: a ``.npz`` of pretrained weights to load instead of training (a resumed run). With
    ``cfg.pretrain_cache`` set, a pretraining of the same settings (:func:`pretraining_settings`) is read
    from that folder when it is there, and written there (atomically) when it is not."""
    from tqdm import tqdm

    from pulptrain import nn, optim

    x, y, calibration_x = pretraining_set(cfg, stream)
    in_channels = x.shape[1]
    seed = pretrain_seed(cfg)
    start = time.perf_counter()
    model = _model(cfg, stream.num_classes, in_channels, rng=np.random.default_rng(seed))
    if saved is not None:
        _load_weights(model, saved)
        return Pretrained(model.state_dict(), calibration_x, stream.num_classes, in_channels, float("nan"), 0.0)
    cached = os.path.join(cfg.pretrain_cache, pretrained_cache_file(cfg)) if cfg.pretrain_cache else None
    if cached and os.path.isfile(cached):
        return _load_cached(cached, model, cfg, calibration_x, stream.num_classes, in_channels)
    rng = np.random.default_rng([seed, 1])
    opt = optim.SGD(model.parameters(), lr=cfg.pretrain_lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = -(-len(x) // cfg.pretrain_batch)
    total = steps_per_epoch * cfg.pretrain_epochs
    model.train()
    accuracy = float("nan")
    with tqdm(
        total=total,
        desc=f"pretraining on {'batch 0' if cfg.pretrain_source == 'initial-batch' else 'the held-out source set'}",
        unit="step",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    ) as bar:
        for epoch in range(cfg.pretrain_epochs):
            order = rng.permutation(len(x))
            correct = 0
            for s in range(steps_per_epoch):
                picked = order[s * cfg.pretrain_batch : (s + 1) * cfg.pretrain_batch]
                xb = augment(x[picked], rng) if cfg.pretrain_augment else x[picked]
                opt.lr = 0.5 * cfg.pretrain_lr * (1 + np.cos(np.pi * (epoch * steps_per_epoch + s) / total))
                opt.zero_grad()
                logits = model.forward(xb)
                loss = loss_fn.forward(logits, y[picked])
                correct += int(np.sum(np.argmax(logits, axis=1) == y[picked]))
                model.backward(loss_fn.backward())
                opt.step()
                bar.update(1)
            accuracy = correct / len(x)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.3f}")
    model.eval()
    pretrained = Pretrained(
        model.state_dict(), calibration_x, stream.num_classes, in_channels, accuracy, time.perf_counter() - start
    )
    if cached:
        state = {f"model/{k}": v for k, v in pretrained.state.items()}
        meta = {"settings": pretraining_settings(cfg), "train_accuracy": accuracy, "seconds": pretrained.seconds}
        state["meta"] = np.array(json.dumps(meta))
        atomic_savez(cached, state)  # concurrent writers of the same key write the same bytes
    return pretrained


def _load_weights(model, path, state=None):
    try:
        if state is None:
            model.load(path)
        else:
            model.load_state_dict(state)
    except Exception as e:
        raise CheckpointError(
            f"{path}: pretrained weights unreadable or of another model ({type(e).__name__}: {e})"
        ) from e
    bad = [name for name, value in model.state_dict().items() if not np.all(np.isfinite(value))]
    if bad:
        raise CheckpointError(f"{path}: pretrained weights hold non-finite values ({', '.join(bad[:3])})")


def _load_cached(path, model, cfg, calibration_x, num_classes, in_channels):
    """A pretraining from the cache folder, checked: its recorded settings must be those of ``cfg``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = {k[len("model/") :]: archive[k] for k in archive.files if k.startswith("model/")}
            meta = json.loads(str(archive["meta"]))
    except Exception as e:
        raise CheckpointError(f"{path}: cached pretraining unreadable ({type(e).__name__}: {e})") from e
    if meta.get("settings") != json.loads(json.dumps(pretraining_settings(cfg))):
        raise CheckpointError(f"{path}: cached pretraining of other settings (remove the file)")
    _load_weights(model, path, state)
    return Pretrained(
        model.state_dict(), calibration_x, num_classes, in_channels, meta["train_accuracy"], meta["seconds"]
    )


def build_frozen(cfg, pretrained):
    """``(frozen, adaptive)`` of a fresh copy of the pretrained model split at ``cfg.lr_layer``; with
    ``cfg.bits`` <= 8 the frozen stage is the INT8 stage of ``quantize_frozen`` (latent at ``bits`` bits)."""
    from pulptrain.models import split

    frozen, adaptive = split(pretrained.model(cfg), cfg.lr_layer)
    frozen.eval()
    if cfg.bits != FP32_BITS:
        from pulptrain.frozen_int8 import quantize_frozen

        frozen = quantize_frozen(frozen, pretrained.calibration_x, lr_bits=cfg.bits, calibration=cfg.calibration)
    return frozen, adaptive


# ----------------------------------------------------------------------------------------- the stream


def _learner(cfg, frozen, adaptive, num_classes, latent_shape):
    from pulptrain.cl.buffer import LatentReplayBuffer
    from pulptrain.cl.learner import LatentReplayLearner

    buffer = LatentReplayBuffer(
        cfg.replays, latent_shape, bits=cfg.bits, policy=cfg.policy, seed=np.random.SeedSequence([cfg.seed, 2])
    )
    return LatentReplayLearner(
        frozen,
        adaptive,
        buffer,
        num_classes=num_classes,
        lr=cfg.lr,
        first_lr=cfg.first_lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        epochs=cfg.epochs,
        first_epochs=cfg.first_epochs,
        minibatch=cfg.minibatch,
        cwr=cfg.cwr,
        freeze_bn=cfg.freeze_bn,
        seed=cfg.seed,
    )


def _frozen_latent_shape(frozen, x):
    return tuple(frozen.forward(np.ascontiguousarray(x[:1])).shape[1:])  # float latents or LatentCodes


def _save_progress(path, learner, cfg, history):
    state = learner.state_dict()
    state["experiment"] = np.array(
        json.dumps({"format": EXPERIMENT_FORMAT, "settings": cfg.settings(), "history": history})
    )
    atomic_savez(path, state)


def _load_progress(path, learner, cfg, num_batches):
    """Restore ``learner`` from ``path`` and return the saved history; CheckpointError on any mismatch or on
    a value that does not fit the settings (``num_batches``: the stream's length)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = {k: archive[k] for k in archive.files}
        experiment = json.loads(str(state.pop("experiment")))
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not an experiment checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(experiment, dict) or experiment.get("format") != EXPERIMENT_FORMAT:
        found = experiment.get("format") if isinstance(experiment, dict) else type(experiment).__name__
        raise CheckpointError(f"{path}: format {found!r}, expected {EXPERIMENT_FORMAT!r}")
    saved, now = experiment.get("settings", {}), cfg.settings()
    if saved != now:
        diff = {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)}
        raise CheckpointError(f"{path}: written by another experiment; differing settings (saved, now): {diff}")
    learner.load_state_dict(state, where=path)
    if not 1 <= learner.batches_seen <= num_batches:
        raise CheckpointError(
            f"{path}: batches_seen {learner.batches_seen} outside 1..{num_batches} (the stream's batches)"
        )
    return _checked_history(experiment.get("history"), learner.batches_seen, path)


def _checked_history(history, batches, path):
    """The saved accuracy curve, checked: one finite value per batch learnt, accuracies in [0, 1],
    non-negative times."""
    keys = ("accuracy", "train_loss", "batch_seconds")
    if not isinstance(history, dict) or not all(isinstance(history.get(k), list) for k in keys):
        raise CheckpointError(f"{path}: the history must hold the lists {', '.join(keys)}")
    for key in keys:
        values = history[key]
        if len(values) != batches:
            raise CheckpointError(f"{path}: {len(values)} {key} values for {batches} batches")
        if not all(_is_real(v) and math.isfinite(v) for v in values):
            raise CheckpointError(f"{path}: {key} holds a value that is not a finite number")
    if not all(0 <= v <= 1 for v in history["accuracy"]):
        raise CheckpointError(f"{path}: accuracy outside [0, 1]")
    elapsed = history.get("elapsed")
    if min(history["batch_seconds"]) < 0 or not (_is_real(elapsed) and math.isfinite(elapsed) and elapsed >= 0):
        raise CheckpointError(f"{path}: negative or missing times")
    return history


def run_stream(cfg, stream, pretrained, shared=None, resume=False, progress=True):
    """Learn ``stream`` with a learner on a fresh copy of ``pretrained`` and return the result dict.

    ``shared``: a dict kept by the caller between runs with the same seed, LR layer and bits (a sweep); the
    frozen stage (``"frozen"``) and the test set's latents (``"test_latents"``) are built once and stored in it.
    ``resume``: continue from ``cfg.checkpoint``'s learner file of this run, or start from batch 0 when there
    is none yet.
    """
    from tqdm import tqdm

    from pulptrain.cl.memory import memory_breakdown
    from pulptrain.models import split

    start = time.perf_counter()
    shared = {} if shared is None else shared
    if "frozen" not in shared:
        shared["frozen"], adaptive = build_frozen(cfg, pretrained)
    else:
        adaptive = split(pretrained.model(cfg), cfg.lr_layer)[1]
    frozen = shared["frozen"]
    latent_shape = _frozen_latent_shape(frozen, pretrained.calibration_x)
    learner = _learner(cfg, frozen, adaptive, stream.num_classes, latent_shape)
    x_test, y_test = stream.test()
    if "test_latents" not in shared:
        shared["test_latents"] = learner.latents(x_test)
    test_latents = shared["test_latents"]

    history = {"accuracy": [], "batch_seconds": [], "train_loss": [], "elapsed": 0.0}
    ckpt = os.path.join(cfg.checkpoint, learner_file(cfg)) if cfg.checkpoint else None
    if ckpt and os.path.exists(ckpt):
        if not resume:
            raise CheckpointError(f"{ckpt} exists: pass --resume to continue it, or remove it to start afresh")
        history = _load_progress(ckpt, learner, cfg, len(stream))
    elapsed_before = history["elapsed"]
    with tqdm(
        total=len(stream),
        initial=learner.batches_seen,
        desc=f"CL {run_label(cfg.bits)} l={cfg.lr_layer} {cfg.replays} LRs",
        unit="batch",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    ) as bar:
        for i in range(learner.batches_seen, len(stream)):
            t = time.perf_counter()
            x, y = stream.batch(i)
            stats = learner.fit_batch(x, y)
            accuracy = learner.evaluate_latents(test_latents, y_test)
            history["accuracy"].append(accuracy)
            history["train_loss"].append(stats["loss"])
            history["batch_seconds"].append(time.perf_counter() - t)
            history["elapsed"] = elapsed_before + time.perf_counter() - start
            if ckpt:
                _save_progress(ckpt, learner, cfg, history)
            bar.update(1)
            bar.set_postfix(acc=f"{accuracy:.3f}")

    memory = memory_breakdown(
        width_mult=cfg.width,
        input_size=cfg.input_size,
        lr_layer=cfg.lr_layer,
        replays=cfg.replays,
        bits=cfg.bits,
        batch=cfg.minibatch,
        num_classes=stream.num_classes,
        in_channels=pretrained.in_channels,
        momentum=cfg.momentum > 0,
        first_stride=cfg.first_stride,
    )
    return {
        "settings": cfg.settings(),
        "stream": stream.info,
        "num_batches": len(stream),
        "test_samples": int(len(y_test)),
        "latent_shape": list(latent_shape),
        "accuracy": history["accuracy"],
        "final_accuracy": history["accuracy"][-1],
        "train_loss": history["train_loss"],
        "batch_seconds": history["batch_seconds"],
        "stream_seconds": history["elapsed"],
        "pretrain_seconds": pretrained.seconds,
        "pretrain_train_accuracy": pretrained.train_accuracy,
        "buffer_nbytes": int(learner.buffer.nbytes),
        "buffer_mib": learner.buffer.nbytes / 2**20,
        "memory": memory.as_dict(),
    }


def run_experiment(cfg, resume=False):
    """The whole experiment of ``cfg`` (module docstring): every check first, then pretraining once, then one
    run per bit width (``cfg.bits``, and FP32 with ``compare="fp32"``) from the same pretrained weights;
    writes ``results.json`` and ``accuracy.png`` into ``cfg.out`` when it is set, and returns the result
    dict (``{"config", "machine", "date", "stream", "initial_classes", "new_classes", "pretraining",
    "runs": {label: run}}``)."""
    import pulptrain

    start = time.perf_counter()
    cfg = cfg.resolved()
    if resume and not cfg.checkpoint:
        raise ValueError("--resume needs --checkpoint DIR")
    check_output_folders(cfg)
    runs = _runs(cfg)
    saved = os.path.join(cfg.checkpoint, PRETRAINED_FILE) if cfg.checkpoint else None
    learner_files = [os.path.join(cfg.checkpoint, learner_file(run)) for run in runs] if cfg.checkpoint else []
    if resume and (
        not os.path.isdir(cfg.checkpoint) or (not os.path.isfile(saved) and any(map(os.path.exists, learner_files)))
    ):
        raise CheckpointError(f"--resume: no pretrained weights at {saved} (nothing to continue: run without --resume)")
    for path in learner_files:
        if not resume and os.path.exists(path):
            raise CheckpointError(f"{path} exists: pass --resume to continue it, or remove it to start afresh")
    pulptrain.set_num_threads(cfg.threads)
    progress = not cfg.quiet
    stream = load_stream(cfg)
    _make_output_folders(cfg)

    # A run killed during pretraining left no weights: resuming it pretrains again.
    load_pretrained = resume and os.path.isfile(saved)
    pretrained = pretrain(cfg, stream, progress, saved=saved if load_pretrained else None)
    if saved and not load_pretrained:
        atomic_savez(saved, pretrained.state)
    per_run = {}
    for run in runs:
        result = run_stream(run, stream, pretrained, resume=resume, progress=progress)
        per_run[run_label(run.bits)] = {k: v for k, v in result.items() if k not in _SHARED_RESULT_KEYS}
    return_value = {
        "format": RESULTS_FORMAT,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {**cfg.settings(), "compare": cfg.compare},
        "machine": machine_info(),
        "stream": stream.info,
        "num_batches": len(stream),
        "test_samples": result["test_samples"],
        "initial_classes": sorted(int(c) for c in stream.batch_classes(0)),
        "new_classes": new_classes(stream),
        "pretraining": {
            "loaded": load_pretrained,
            "seconds": None if load_pretrained else pretrained.seconds,
            "train_accuracy": None if load_pretrained else pretrained.train_accuracy,
        },
        "runs": per_run,
        "wall_seconds": time.perf_counter() - start,
        "resumed": bool(resume),
    }
    if cfg.out:
        write_results(cfg.out, return_value)
    return return_value


# Entries of run_stream's result that are the same for every run: kept once at the top of results.json.
_SHARED_RESULT_KEYS = ("stream", "num_batches", "test_samples", "pretrain_seconds", "pretrain_train_accuracy")


def new_classes(stream):
    """``[{"batch": i, "classes": [...]}, ...]``: the training batches (after the initial one) where a class
    is seen for the first time."""
    seen, arrivals = set(), []
    for i in range(len(stream)):
        classes = sorted(set(int(c) for c in stream.batch_classes(i)) - seen)
        seen.update(classes)
        if i > 0 and classes:
            arrivals.append({"batch": i, "classes": classes})
    return arrivals


def machine_info():
    """Where the experiment ran: CPU model and count, platform, Python, numpy and pulptrain versions, kernel
    threads, the parallel backend of the build and its ISA dispatch (``pulptrain.cpu_info()``: the level and
    microkernels the numbers come from)."""
    import pulptrain

    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or None,
        "cpus": os.cpu_count(),
        "cpus_available": available_cpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pulptrain": pulptrain.__version__,
        "threads": pulptrain.get_num_threads(),
        "parallel_backend": pulptrain.parallel_backend(),
        "isa": pulptrain.cpu_info(),
    }


# ------------------------------------------------------------------------------------------- outputs


def _bytes_text(nbytes):
    return f"{nbytes / 2**20:.2f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"


def write_results(out, result):
    """``out/results.json`` and ``out/accuracy.png`` (one curve per run, new classes marked)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    config = result["config"]
    curves = {}
    for label, run in result["runs"].items():
        precision = "FP32" if label == "fp32" else label
        curves[
            f"{precision} replays: buffer {_bytes_text(run['buffer_nbytes'])}, final "
            f"{100 * run['final_accuracy']:.1f} %"
        ] = run["accuracy"]
    names = None
    if config["dataset"] == "fashion-mnist":
        from pulptrain.data import FASHION_MNIST_CLASSES as names
    initial = ", ".join(names[c] if names else str(c) for c in result["initial_classes"])
    plot_accuracy(
        os.path.join(out, "accuracy.png"),
        curves,
        title=f"{config['dataset']}: {config['replays']} latent replays at layer {config['lr_layer']} "
        f"(seed {config['seed']})\ninitial batch: {initial}",
        arrivals=result["new_classes"],
        class_names=names,
    )


def plot_accuracy(path, curves, title="", arrivals=(), class_names=None):
    """Test accuracy (%) after every training batch, one line per entry of ``curves`` {label: accuracies};
    ``arrivals`` (see :func:`new_classes`) are drawn as dotted vertical lines labelled with the new classes
    (``class_names[c]`` when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for k, arrival in enumerate(arrivals):
        names = ", ".join(
            class_names[c] if class_names is not None and c < len(class_names) else str(c) for c in arrival["classes"]
        )
        ax.axvline(
            arrival["batch"],
            color="0.55",
            linestyle=":",
            linewidth=1,
            zorder=0,
            label="a new class arrives" if k == 0 else None,
        )
        ax.text(arrival["batch"] + 0.15, 1.5, names, rotation=90, fontsize=7, color="0.35", va="bottom")
    for label, accuracy in curves.items():
        ax.plot(
            np.arange(len(accuracy)), 100 * np.asarray(accuracy), marker="o", markersize=2.5, linewidth=1.3, label=label
        )
    ax.set_xlabel("training batch (0 = initial batch)")
    ax.set_ylabel("test accuracy after the batch (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def config_fields():
    """Names of the ExperimentConfig fields (for the CLI)."""
    return [f.name for f in fields(ExperimentConfig)]
