"""One whole continual-learning experiment, as run by ``pulptrain cl`` and ``pulptrain sweep``.

Steps (all randomness derives from ``config.seed``):

1. The scenario: Fashion-MNIST NIC stream (:func:`pulptrain.cl.scenarios.fashion_mnist_stream`) or a
   CORe50 scenario run (:func:`pulptrain.cl.scenarios.core50`).
2. Pretraining: a MobileNetV1 (``width``, ``input_size``, ``first_stride``) is trained from scratch on the
   initial batch (batch 0) only, for ``pretrain_epochs`` epochs of SGD (Nesterov momentum 0.9, cosine
   learning rate from ``pretrain_lr``, mini-batches of ``pretrain_batch``). No test data and no later
   batch is seen, so no future class leaks into the frozen stage.
3. The model is split at ``lr_layer``. With ``bits`` <= 8 the frozen stage is quantized to INT8 with the
   latent at ``bits`` bits (:func:`pulptrain.frozen_int8.quantize_frozen`, calibrated on batch 0); with
   ``bits`` = 32 it stays FP32 and the buffer stores FP32 latents.
4. :class:`pulptrain.cl.LatentReplayLearner` learns the stream batch by batch (batch 0 included, as in the
   reference code); test accuracy is measured after every batch on the fixed test set, whose latents are
   computed once.

Checkpoints (``checkpoint_dir``): ``pretrained.npz`` (the pretrained float weights) once, and
``learner.npz`` after every batch, written atomically (temporary file + ``os.replace``). ``learner.npz``
holds the learner state plus the experiment's settings and the accuracy curve so far, so a resumed run ends
with exactly the result of an uninterrupted one; a checkpoint of another experiment or a damaged file raises
:class:`pulptrain.cl.CheckpointError`.
"""
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

import numpy as np

from pulptrain.cl.learner import CheckpointError, atomic_savez
from pulptrain.quant_core import FP32_BITS, check_bits

__all__ = ["ExperimentConfig", "Pretrained", "pretrain", "build_frozen", "run_stream", "run_experiment",
           "write_results", "plot_accuracy", "load_stream"]

PRETRAINED_FILE = "pretrained.npz"
LEARNER_FILE = "learner.npz"
EXPERIMENT_FORMAT = "pulptrain.cl.experiment/1"
# Settings that do not change the result (where output goes, threads, progress bars): not compared on resume.
RUNTIME_FIELDS = ("data_root", "out", "checkpoint", "threads", "quiet")


@dataclass
class ExperimentConfig:
    """Every setting of one experiment. ``None`` in ``input_size`` / ``num_batches`` means the dataset's
    default (Fashion-MNIST: 28 and ``num_batches``; CORe50: 128 and the scenario's own batches)."""
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
    # pretraining on batch 0
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
    policy: str = "reference"
    calibration: str = "max"
    seed: int = 0
    # runtime only
    out: Optional[str] = None
    checkpoint: Optional[str] = None
    threads: int = 1
    quiet: bool = False

    def resolved(self):
        """A copy with the dataset defaults filled in and every value checked (ValueError otherwise)."""
        if self.dataset not in ("fashion-mnist", "core50"):
            raise ValueError(f"dataset must be 'fashion-mnist' or 'core50', got {self.dataset!r}")
        cfg = replace(self)
        if cfg.input_size is None:
            cfg.input_size = 28 if cfg.dataset == "fashion-mnist" else 128
        if cfg.dataset == "core50" and not cfg.data_root:
            raise ValueError("--dataset core50 needs --data-root (the folder with core50_imgs.npz, paths.pkl, "
                             "LUP.pkl, labels.pkl)")
        if cfg.dataset == "fashion-mnist" and cfg.input_size != 28:
            raise ValueError(f"Fashion-MNIST images are 28x28: input-size must be 28, got {cfg.input_size}")
        check_bits(cfg.bits, "bits", allow_fp32=True)
        if not 0 <= cfg.lr_layer <= 26:
            raise ValueError(f"lr-layer must be in 0..26 (a convolution of MobileNetV1), got {cfg.lr_layer}")
        for name in ("replays", "epochs", "first_epochs", "minibatch", "pretrain_batch", "threads", "test_every",
                     "samples_per_batch", "initial_classes", "initial_samples"):
            if getattr(cfg, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
        for name in ("pretrain_epochs", "num_batches", "seed", "run"):
            if getattr(cfg, name) < 0:
                raise ValueError(f"{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
        for name in ("lr", "first_lr", "pretrain_lr", "width"):
            if not getattr(cfg, name) > 0:
                raise ValueError(f"{name.replace('_', '-')} must be > 0, got {getattr(cfg, name)}")
        return cfg

    def settings(self):
        """The settings that determine the result (everything but the runtime fields), as a dict."""
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_FIELDS}


# ------------------------------------------------------------------------------------------ scenario

def load_stream(cfg):
    """The :class:`pulptrain.cl.scenarios.Stream` of a resolved config."""
    from pulptrain.cl import scenarios

    if cfg.dataset == "fashion-mnist":
        return scenarios.fashion_mnist_stream(cfg.data_root, num_batches=cfg.num_batches,
                                              initial_classes=cfg.initial_classes,
                                              initial_samples=cfg.initial_samples,
                                              samples_per_batch=cfg.samples_per_batch, test_every=cfg.test_every,
                                              seed=cfg.seed)
    return scenarios.core50(cfg.data_root, cfg.scenario, cfg.run, test_every=cfg.test_every)


def _model(cfg, num_classes, in_channels, rng=None):
    from pulptrain.models import mobilenet_v1

    return mobilenet_v1(cfg.width, num_classes=num_classes, input_size=cfg.input_size, in_channels=in_channels,
                        first_stride=cfg.first_stride, rng=rng)


@dataclass
class Pretrained:
    """The result of pretraining: float weights (a state_dict), the batch-0 images (for calibration), the
    number of classes and input channels, the training accuracy of the last epoch and the wall time (s)."""
    state: dict
    calibration_x: np.ndarray
    num_classes: int
    in_channels: int
    train_accuracy: float
    seconds: float

    def model(self, cfg):
        """A fresh MobileNetV1 holding the pretrained weights."""
        model = _model(cfg, self.num_classes, self.in_channels)
        model.load_state_dict(self.state)
        return model


def pretrain(cfg, stream, progress=True, saved=None):
    """Train a MobileNetV1 from scratch on ``stream.batch(0)`` only (module docstring, step 2).

    ``saved``: a ``.npz`` of pretrained weights to load instead of training (a resumed run)."""
    from pulptrain import nn, optim
    from tqdm import tqdm

    x, y = stream.batch(0)
    start = time.perf_counter()
    model = _model(cfg, stream.num_classes, x.shape[1], rng=np.random.default_rng(cfg.seed))
    if saved is not None:
        try:
            model.load(saved)
        except Exception as e:
            raise CheckpointError(f"{saved}: pretrained weights unreadable or of another model "
                                  f"({type(e).__name__}: {e})") from e
        return Pretrained(model.state_dict(), x, stream.num_classes, x.shape[1], float("nan"), 0.0)
    rng = np.random.default_rng([cfg.seed, 1])
    opt = optim.SGD(model.parameters(), lr=cfg.pretrain_lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = -(-len(x) // cfg.pretrain_batch)
    total = steps_per_epoch * cfg.pretrain_epochs
    model.train()
    accuracy = float("nan")
    with tqdm(total=total, desc="pretraining on batch 0", unit="step", disable=not progress, leave=False,
              dynamic_ncols=True) as bar:
        for epoch in range(cfg.pretrain_epochs):
            order = rng.permutation(len(x))
            correct = 0
            for s in range(steps_per_epoch):
                picked = order[s * cfg.pretrain_batch:(s + 1) * cfg.pretrain_batch]
                opt.lr = 0.5 * cfg.pretrain_lr * (1 + np.cos(np.pi * (epoch * steps_per_epoch + s) / total))
                opt.zero_grad()
                logits = model.forward(x[picked])
                loss = loss_fn.forward(logits, y[picked])
                correct += int(np.sum(np.argmax(logits, axis=1) == y[picked]))
                model.backward(loss_fn.backward())
                opt.step()
                bar.update(1)
            accuracy = correct / len(x)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.3f}")
    model.eval()
    return Pretrained(model.state_dict(), x, stream.num_classes, x.shape[1], accuracy,
                      time.perf_counter() - start)


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

    buffer = LatentReplayBuffer(cfg.replays, latent_shape, bits=cfg.bits, policy=cfg.policy,
                                seed=np.random.SeedSequence([cfg.seed, 2]))
    return LatentReplayLearner(frozen, adaptive, buffer, num_classes=num_classes, lr=cfg.lr, first_lr=cfg.first_lr,
                               momentum=cfg.momentum, weight_decay=cfg.weight_decay, epochs=cfg.epochs,
                               first_epochs=cfg.first_epochs, minibatch=cfg.minibatch, cwr=cfg.cwr,
                               freeze_bn=cfg.freeze_bn, seed=cfg.seed)


def _frozen_latent_shape(frozen, x):
    return tuple(frozen.forward(np.ascontiguousarray(x[:1])).shape[1:])  # float latents or LatentCodes


def _save_progress(path, learner, cfg, history):
    state = learner.state_dict()
    state["experiment"] = np.array(json.dumps({"format": EXPERIMENT_FORMAT, "settings": cfg.settings(),
                                               "history": history}))
    atomic_savez(path, state)


def _load_progress(path, learner, cfg):
    """Restore ``learner`` from ``path`` and return the saved history; CheckpointError on any mismatch."""
    if not os.path.isfile(path):
        raise CheckpointError(f"--resume: no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = {k: archive[k] for k in archive.files}
        experiment = json.loads(str(state.pop("experiment")))
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not an experiment checkpoint "
                              f"({type(e).__name__}: {e})") from e
    if experiment.get("format") != EXPERIMENT_FORMAT:
        raise CheckpointError(f"{path}: format {experiment.get('format')!r}, expected {EXPERIMENT_FORMAT!r}")
    saved, now = experiment.get("settings", {}), cfg.settings()
    if saved != now:
        diff = {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)}
        raise CheckpointError(f"{path}: written by another experiment; differing settings (saved, now): {diff}")
    learner.load_state_dict(state, where=path)
    history = experiment["history"]
    if len(history["accuracy"]) != learner.batches_seen:
        raise CheckpointError(f"{path}: {len(history['accuracy'])} accuracies for {learner.batches_seen} batches")
    return history


def run_stream(cfg, stream, pretrained, shared=None, resume=False, progress=True):
    """Learn ``stream`` with a learner on a fresh copy of ``pretrained`` and return the result dict.

    ``shared``: a dict kept by the caller between runs with the same seed, LR layer and bits (a sweep); the
    frozen stage (``"frozen"``) and the test set's latents (``"test_latents"``) are built once and stored in it.
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
    ckpt = os.path.join(cfg.checkpoint, LEARNER_FILE) if cfg.checkpoint else None
    if resume:
        history = _load_progress(ckpt, learner, cfg)
    elif ckpt and os.path.exists(ckpt):
        raise CheckpointError(f"{ckpt} exists: pass --resume to continue it, or remove it to start afresh")
    elapsed_before = history["elapsed"]
    with tqdm(total=len(stream), initial=learner.batches_seen, desc=f"CL {cfg.bits}-bit l={cfg.lr_layer} "
              f"{cfg.replays} LRs", unit="batch", disable=not progress, leave=False, dynamic_ncols=True) as bar:
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

    memory = memory_breakdown(width_mult=cfg.width, input_size=cfg.input_size, lr_layer=cfg.lr_layer,
                              replays=cfg.replays, bits=cfg.bits, batch=cfg.minibatch,
                              num_classes=stream.num_classes, in_channels=pretrained.in_channels,
                              momentum=cfg.momentum > 0, first_stride=cfg.first_stride)
    return {"settings": cfg.settings(), "stream": stream.info, "num_batches": len(stream),
            "test_samples": int(len(y_test)), "latent_shape": list(latent_shape),
            "accuracy": history["accuracy"], "final_accuracy": history["accuracy"][-1],
            "train_loss": history["train_loss"], "batch_seconds": history["batch_seconds"],
            "stream_seconds": history["elapsed"], "pretrain_seconds": pretrained.seconds,
            "pretrain_train_accuracy": pretrained.train_accuracy,
            "buffer_nbytes": int(learner.buffer.nbytes), "buffer_mib": learner.buffer.nbytes / 2 ** 20,
            "memory": memory.as_dict()}


def run_experiment(cfg, resume=False):
    """The whole experiment of ``cfg`` (steps 1-4 of the module docstring); writes ``results.json`` and
    ``accuracy.png`` into ``cfg.out`` when it is set, and returns the result dict."""
    import pulptrain

    cfg = cfg.resolved()
    if resume and not cfg.checkpoint:
        raise ValueError("--resume needs --checkpoint DIR")
    pulptrain.set_num_threads(cfg.threads)
    start = time.perf_counter()
    progress = not cfg.quiet
    stream = load_stream(cfg)
    saved = os.path.join(cfg.checkpoint, PRETRAINED_FILE) if cfg.checkpoint else None
    if resume and not os.path.isfile(saved):
        raise CheckpointError(f"--resume: no pretrained weights at {saved}")
    if not resume and saved and os.path.exists(os.path.join(cfg.checkpoint, LEARNER_FILE)):
        raise CheckpointError(f"{os.path.join(cfg.checkpoint, LEARNER_FILE)} exists: pass --resume to continue "
                              f"it, or remove it to start afresh")
    pretrained = pretrain(cfg, stream, progress, saved=saved if resume else None)
    if saved and not resume:
        atomic_savez(saved, pretrained.state)
    result = run_stream(cfg, stream, pretrained, resume=resume, progress=progress)
    result["wall_seconds"] = time.perf_counter() - start
    result["threads"] = cfg.threads
    result["resumed"] = bool(resume)
    if cfg.out:
        write_results(cfg.out, result)
    return result


# ------------------------------------------------------------------------------------------- outputs

def write_results(out, result):
    """``out/results.json`` and ``out/accuracy.png``."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    s = result["settings"]
    plot_accuracy(os.path.join(out, "accuracy.png"), {f"{s['bits']}-bit, l={s['lr_layer']}, {s['replays']} LRs":
                                                      result["accuracy"]},
                  title=f"{s['dataset']} continual learning (seed {s['seed']})")


def plot_accuracy(path, curves, title=""):
    """Test accuracy (%) after every training batch, one line per entry of ``curves`` {label: accuracies}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for label, accuracy in curves.items():
        ax.plot(np.arange(len(accuracy)), 100 * np.asarray(accuracy), label=label)
    ax.set_xlabel("training batch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def config_fields():
    """Names of the ExperimentConfig fields (for the CLI)."""
    return [f.name for f in fields(ExperimentConfig)]
