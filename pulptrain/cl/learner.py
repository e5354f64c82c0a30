"""Latent-replay continual learning: a frozen stage, an adaptive stage trained in FP32, a replay buffer.

:class:`LatentReplayLearner` follows the latent-replay reference code (the paper's continual-learning
algorithm). For training batch i with N new samples (images x, labels y):

1. The new samples go through the frozen stage once, in eval mode, giving their latents (captured once and
   reused by every epoch and by the buffer update). With ``quantize_new`` they are also brought to the
   buffer's precision (:meth:`LatentReplayBuffer.encode`), so new and replayed latents have the same
   precision.
2. Batch 0 (the initial batch) trains the adaptive stage on its own latents only, ``first_epochs`` epochs
   of mini-batches of ``minibatch`` (the last one may be smaller), SGD with ``first_lr``.
3. Batch i >= 1 uses mini-batches of ``cur_sz`` new latents + ``minibatch - cur_sz`` replays, with
   ``cur_sz = N // ((N + R) // minibatch)`` (R = latents in the buffer; 21 new + 107 replays for N = 300,
   R = 1500), ``N // cur_sz`` mini-batches per epoch (the remainder of the shuffled new samples waits for
   the next epoch), ``epochs`` epochs, SGD with ``lr``; a fresh optimizer is made at batch 1, as in the
   reference. New samples are reshuffled every epoch; replays are drawn without replacement within an
   epoch (:meth:`LatentReplayBuffer.replay_batches`). Replays follow the new latents along the batch axis,
   both written into one mini-batch array that the learner allocates once and reuses for every step; all
   go through the adaptive stage, and the backward pass stops at the LR layer (the adaptive stage's
   ``needs_input_grad`` is False, so not even its first input gradient is computed).
4. After the batch: optional CWR* consolidation of the classifier, then ``buffer.update(latents, y)``.

CWR* (``cwr=True``), as in the reference code: the classes "present" in batch i are those of y (batch 0)
or of y and of the buffer (i >= 1), with counts ``cur[c]`` over the same samples. Before training the
classifier rows are zeroed and the consolidated rows ``cw[c]`` of the present classes loaded; after
training ``cw[c] = (cw[c] * wpast + (w[c] - avg)) / (wpast + 1)`` with ``wpast = sqrt(past[c] / cur[c])``
(just ``w[c] - avg`` the first time), where ``avg`` is the mean of all the entries of the present rows;
then ``past[c] += cur[c]`` and every consolidated row is loaded for evaluation. The classifier bias, when
there is one, is consolidated the same way as a one-column weight.

Steps 2-4 run in C (csrc/cl/learner.c, ``pt_cl_learner``): the learner hands the new latents (or codes) to
``begin_batch``, runs ``train_step`` once per mini-batch and ``end_batch`` for CWR* and the buffer update, so
a bare-metal application runs the very same step. The C step calls the same kernels with the same arguments
and in the same order as the :mod:`pulptrain.nn` layers and :class:`pulptrain.optim.SGD` (momentum,
``weight_decay``, no dampening or Nesterov) would, on the modules' own parameter, gradient and statistics
arrays (no copies: the modules see every update). Every random decision comes from PCG32 generators
(:class:`pulptrain.cl.Pcg32`): the learner's (``seed``, stream 0) shuffles the new samples with
``rng.permutation(N)`` at every epoch; the buffer's draws the replays and the replacements. CWR*'s ``avg`` is
a float64 sum in row order. The adaptive stage must be a :class:`pulptrain.nn.Sequential` (nested ones
allowed) of Conv2d, DepthwiseConv2d, PointwiseConv2d, BatchNorm2d / BatchRenorm2d, ReLU / ReLU6, AvgPool2d,
GlobalAvgPool2d, Flatten and Linear layers over a (C, H, W) or (features,) latent; anything else is refused at
construction. All the step's scratch lives in one arena (:func:`pulptrain.cl.memory.learner_arena_bytes`).

The frozen stage is anything with ``forward(x) -> float32 latents`` (a :mod:`pulptrain.nn` module) or
``forward(x) -> LatentCodes`` (the INT8 stage of :func:`pulptrain.frozen_int8.quantize_frozen`, whose
latents are ``scale * codes``); it is never trained. A buffer with the INT8 stage's ``lr_bits`` and no scale
of its own takes the stage's scale, so the buffer stores the stage's codes as they are (no dequantize /
quantize round trip). The adaptive stage is a :mod:`pulptrain.nn` module ending in the classifier.
Checkpoints (:meth:`save_checkpoint`, :meth:`load_checkpoint`) hold everything that changes (adaptive
weights and statistics, optimizer state, buffer, CWR* state, batch counter, random generators), so a
resumed run ends exactly where an uninterrupted one does.
"""

import hashlib
import json
import os
import tempfile

import numpy as np

from pulptrain._C import _LearnerCore as LearnerCore
from pulptrain._C import _Pcg32 as Pcg32
from pulptrain.cl._validate import check_int
from pulptrain.cl.buffer import seed_pair
from pulptrain.cl.stage import classifier_of, layer_table, leaves
from pulptrain.quant_core import FP32_BITS, as_latents

__all__ = ["LatentReplayLearner", "CheckpointError"]

# /2: PCG32 generator states, the learner's own momentum buffers (optim/momentum/<j>)
CHECKPOINT_FORMAT = "pulptrain.cl.LatentReplayLearner/2"
#: PCG32 stream of a learner seeded with an int (a buffer's generator uses stream 1).
LEARNER_STREAM = 0


TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".tmp-", ".npz"


def atomic_savez(path, arrays):
    """np.savez(path, **arrays) atomically: a temporary file in the same directory, flushed to disk, then
    os.replace and a flush of the directory, so a crash never leaves a half-written file under ``path`` (a
    kill may leave the temporary file: :func:`remove_stale_temporaries`)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=TEMPORARY_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)  # the rename itself reaches the disk


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory):
    """Delete the temporary files that :func:`atomic_savez` left in ``directory`` when a process was killed
    while writing (only one process may write checkpoints into a folder). Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return removed


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to another experiment."""


def _nn():
    try:
        from pulptrain import nn
    except ImportError as e:
        raise ImportError("LatentReplayLearner needs pulptrain.nn (the training stack)") from e
    return nn


class LatentReplayLearner:
    """Continual learning with latent replays (module docstring for the exact procedure).

    Parameters
    ----------
    frozen : the frozen stage, ``forward(x) -> latents``; put in eval mode when it has ``eval()``.
    adaptive : the adaptive stage, a pulptrain.nn Sequential of the layers the C step runs (module docstring),
        latents -> logits (N, num_classes).
    buffer : a :class:`pulptrain.cl.LatentReplayBuffer` for latents of the frozen stage's output shape.
    num_classes : classifier outputs.
    lr, first_lr : SGD learning rates of batches >= 1 and of batch 0 (paper: 5e-5 and 1e-3).
    momentum, weight_decay : SGD settings of both phases (paper: 0.9 and 5e-4).
    epochs, first_epochs : epochs per batch >= 1 and for batch 0 (paper: 4 and 4).
    minibatch : samples per mini-batch, new + replays (paper: 128).
    cwr : CWR* consolidation of the classifier.
    classifier : the classifier module (default and only choice: the last Linear of ``adaptive`` with
        ``num_classes`` outputs, the layer the C step consolidates).
    freeze_bn : keep the adaptive stage's BatchNorm statistics frozen (eval mode) while training.
    quantize_new : give new latents the buffer's precision before training on them.
    frozen_batch : images per frozen-stage forward call (memory bound only).
    seed : the learner's PCG32 generator (shuffling of the new samples): an int >= 0 (stream 0), a
        ``numpy.random.SeedSequence`` or None.
    optimizer_factory : None. The C step trains with SGD (momentum, weight decay, as ``pulptrain.optim.SGD``);
        any other optimizer raises TypeError.
    """

    def __init__(
        self,
        frozen,
        adaptive,
        buffer,
        *,
        num_classes,
        lr=5e-5,
        first_lr=1e-3,
        momentum=0.9,
        weight_decay=5e-4,
        epochs=4,
        first_epochs=4,
        minibatch=128,
        cwr=False,
        classifier=None,
        freeze_bn=False,
        quantize_new=False,
        frozen_batch=256,
        seed=0,
        optimizer_factory=None,
    ):
        nn = _nn()
        for name, value in (
            ("num_classes", num_classes),
            ("epochs", epochs),
            ("first_epochs", first_epochs),
            ("minibatch", minibatch),
            ("frozen_batch", frozen_batch),
        ):
            check_int(value, name, 1)
        for name, value in (("lr", lr), ("first_lr", first_lr)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite real > 0, got {value!r}")
        for name, value in (("momentum", momentum), ("weight_decay", weight_decay)):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite real >= 0, got {value!r}")
        if optimizer_factory is not None:
            raise TypeError(
                "optimizer_factory must be None: the C learner step (csrc/cl) trains with SGD (momentum, "
                f"weight_decay) only, got {optimizer_factory!r}"
            )
        if not hasattr(frozen, "forward"):
            raise TypeError(f"frozen must have a forward(x) method, got {type(frozen).__name__}")
        if not isinstance(adaptive, nn.Module):
            raise TypeError(f"adaptive must be a pulptrain.nn.Module, got {type(adaptive).__name__}")
        if num_classes > buffer.num_classes:
            raise ValueError(f"num_classes ({num_classes}) is above the buffer's num_classes ({buffer.num_classes})")
        self.frozen, self.adaptive, self.buffer = frozen, adaptive, buffer
        self.settings = {
            "num_classes": int(num_classes),
            "lr": float(lr),
            "first_lr": float(first_lr),
            "momentum": float(momentum),
            "weight_decay": float(weight_decay),
            "epochs": int(epochs),
            "first_epochs": int(first_epochs),
            "minibatch": int(minibatch),
            "cwr": bool(cwr),
            "freeze_bn": bool(freeze_bn),
            "quantize_new": bool(quantize_new),
        }
        self.num_classes, self.minibatch, self.frozen_batch = int(num_classes), int(minibatch), int(frozen_batch)
        self.classifier = classifier_of(adaptive, self.num_classes)
        if classifier is not None and classifier is not self.classifier:
            raise ValueError(
                f"classifier must be the last Linear layer of adaptive with {num_classes} outputs (the layer the C "
                "step consolidates)"
            )
        if cwr and self.classifier is None:
            raise ValueError(f"cwr needs a classifier with a ({num_classes}, features) weight; pass classifier=")
        self.adaptive.needs_input_grad = False  # the backward pass stops at the LR layer
        if hasattr(self.frozen, "eval"):
            self.frozen.eval()
        if buffer.bits == getattr(frozen, "lr_bits", None) and buffer.scale is None:
            buffer.scale = float(frozen.scale)  # INT8 stage: its latent codes are stored as they are
        features = self.classifier.weight.data.shape[1] if self.classifier is not None else 0
        self.cw = np.zeros((self.num_classes, features), np.float32)  # consolidated classifier rows
        self.cb = np.zeros(self.num_classes, np.float32)  # consolidated biases
        self.cw_set = np.zeros(self.num_classes, bool)
        self.past = np.zeros(self.num_classes, np.int64)
        _, params = layer_table(adaptive, buffer.latent_shape)
        # the SGD momentum buffers, one per trainable parameter (set by the first step of each optimizer phase)
        self.momentum_buffers = [np.zeros_like(p.data) for p in params] if momentum else []
        self._core, self._bound, self._last_rows = None, None, 0
        self._bind(seed_pair(seed, LEARNER_STREAM))

    # ------------------------------------------------------------------------------------------ helpers

    def _binding_key(self):
        """What the C layer table points at: every array and trainable flag of the adaptive stage."""
        key = []
        for _, m in leaves(self.adaptive, "adaptive"):
            key += [(id(p.data), id(p.grad), p.requires_grad) for p in m._params.values()]
            key += [id(b) for b in m._buffers.values()]
        return tuple(key)

    def _bind(self, seed=None):
        """(Re)builds the C learner over the current arrays of the adaptive stage (after a module's array was
        replaced, or at construction with ``seed``), keeping the state of the previous one."""
        specs, params = layer_table(self.adaptive, self.buffer.latent_shape, self.momentum_buffers or None)
        if self.momentum_buffers and [b.shape for b in self.momentum_buffers] != [p.data.shape for p in params]:
            raise ValueError("the adaptive stage's trainable parameters changed since the learner was made")
        cwr = (self.cw, self.cb, self.cw_set, self.past) if self.settings["cwr"] else None
        old = self._core
        self._core = LearnerCore(specs, self.settings, self.buffer._core, cwr, *(seed or (0, LEARNER_STREAM)))
        if old is not None:
            self._core.set_state(old.batches_seen, old.optimizer_phase, old.optimizer_started)
            self._core.rng.state = old.rng.state
        self._bound = self._binding_key()

    def _core_for_step(self):
        if self._binding_key() != self._bound:
            self._bind()
        return self._core

    @property
    def rng(self):
        """The learner's PCG32 generator (a view of the one in the C learner)."""
        return self._core.rng

    @property
    def batches_seen(self):
        return self._core.batches_seen

    @property
    def arena_bytes(self):
        """Bytes of the C learner's arena (:func:`pulptrain.cl.memory.learner_arena_bytes`)."""
        return self._core.arena_bytes

    def latent_batch(self, x):
        """The frozen stage's output for images x (N >= 1), computed ``frozen_batch`` images at a time, as
        one latent batch: LatentCodes from an INT8 stage, FloatLatents (a copy: nn layers reuse their output
        arrays) from a float one."""
        chunks = [
            as_latents(self.frozen.forward(np.ascontiguousarray(x[s : s + self.frozen_batch])), copy=True)
            for s in range(0, len(x), self.frozen_batch)
        ]
        out = chunks[0] if len(chunks) == 1 else chunks[0].concatenate(chunks)
        if out.shape[1:] != self.buffer.latent_shape:
            raise ValueError(
                f"the frozen stage gives latents of shape {out.shape[1:]}, the buffer holds {self.buffer.latent_shape}"
            )
        return out

    def latents(self, x):
        """The frozen stage's float32 output for images x, computed ``frozen_batch`` images at a time
        (an INT8 stage's codes dequantized: ``scale * codes``)."""
        if len(x) == 0:
            return np.empty((0,) + self.buffer.latent_shape, np.float32)
        return self.latent_batch(x).values()

    def minibatch_plan(self, num_new):
        """``(new_per_step, replays_per_step, steps_per_epoch)`` for a batch of ``num_new`` new samples at the
        next batch (``pt_cl_learner_plan``)."""
        return self._core.plan(check_int(num_new, "num_new", 1))[:3]

    def _check_batch(self, x, y):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"x must be a non-empty batch (N, ...), got shape {x.shape}")
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must hold {len(x)} integer labels, got {y.dtype} {y.shape}")
        if y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {y.min()}..{y.max()}")
        return x, y.astype(np.int64)

    # ----------------------------------------------------------------------------------------- training

    def steps_for(self, num_new):
        """Optimizer steps (mini-batches, all epochs) that :meth:`fit_batch` will run for the next batch of
        ``num_new`` samples, e.g. the total of a progress bar."""
        _, _, steps, epochs = self._core.plan(check_int(num_new, "num_new", 1))
        return steps * epochs

    def fit_batch(self, x, y, progress=None):
        """Learn one training batch (images x, labels y) and update the buffer. ``progress``: an object
        with ``update(n)`` (a tqdm bar) told of every optimizer step. Returns statistics: batch index, mean
        training loss and accuracy of the last epoch, and the mini-batch plan."""
        x, y = self._check_batch(x, y)
        i = self.batches_seen
        batch = self.latent_batch(x)
        if self.buffer.bits != FP32_BITS:
            self.buffer.calibrate(batch)  # the scale the C buffer update quantizes with
        if self.settings["quantize_new"]:
            batch = self.buffer.encode(batch)
        values, codes = self.buffer.c_rows(batch)
        core = self._core_for_step()
        core.begin_batch(values, codes, y.astype(np.int16))
        new, replays, steps, epochs = core.batch_plan
        self.adaptive.train(not self.settings["freeze_bn"])
        try:
            for _ in range(epochs):
                losses, correct, seen = [], 0, 0
                for _ in range(steps):
                    loss, right, rows = core.train_step()
                    self._last_rows = rows
                    losses.append(loss)
                    correct += right
                    seen += rows
                    if progress is not None:
                        progress.update(1)
            core.end_batch()
        except BaseException:
            core.abort_batch()
            raise
        finally:
            self.adaptive.eval()
        return {
            "batch": i,
            "samples": len(y),
            "new_per_step": new,
            "replays_per_step": replays,
            "steps_per_epoch": steps,
            "epochs": epochs,
            "loss": float(np.mean(losses)),
            "train_accuracy": correct / max(seen, 1),
        }

    def last_minibatch(self):
        """Views of the C learner's mini-batch array as the last training step left it (latents (rows,) +
        latent shape, int64 labels; new rows first, then replays); the next step overwrites them."""
        latents, labels = self._core.minibatch(self._last_rows)
        return latents.reshape((self._last_rows,) + self.buffer.latent_shape), labels

    # -------------------------------------------------------------------------------------------- CWR*
    # The C step runs these (pt_cl_cwr_*); the methods expose them on this learner's classifier and arrays.
    # counts: samples per class of a batch (a class is present when its count is > 0).

    def _cwr_reset(self, counts):
        """Zero the classifier and load the consolidated rows of the present classes."""
        self._core.cwr_reset(counts)

    def _cwr_consolidate(self, counts):
        self._core.cwr_consolidate(counts)

    def _cwr_load_all(self):
        self._core.cwr_load_all()

    # -------------------------------------------------------------------------------------- evaluation

    def predict(self, x, batch=256):
        """Predicted classes (int64, (N,)) of images x, evaluating ``batch`` images at a time."""
        return self.predict_latents(self.latents(x), batch)

    def predict_latents(self, latents, batch=256):
        """Predicted classes of latents already computed by :meth:`latents` (the frozen stage never
        changes, so a fixed test set's latents can be computed once and reused after every batch)."""
        latents = np.asarray(latents, np.float32)
        if latents.shape[1:] != self.buffer.latent_shape:
            raise ValueError(f"latents must have shape (N,) + {self.buffer.latent_shape}, got {latents.shape}")
        self.adaptive.eval()
        out = [
            np.argmax(self.adaptive.forward(np.ascontiguousarray(latents[s : s + batch])), axis=1)
            for s in range(0, len(latents), batch)
        ]
        return np.concatenate(out).astype(np.int64) if out else np.empty(0, np.int64)

    def evaluate(self, x, y, batch=256):
        """Accuracy (a float in [0, 1]) on images x with labels y."""
        return self.evaluate_latents(self.latents(x), y, batch)

    def evaluate_latents(self, latents, y, batch=256):
        """Accuracy on latents computed by :meth:`latents` (see :meth:`predict_latents`)."""
        y = np.asarray(y)
        if len(y) != len(latents) or len(y) == 0:
            raise ValueError(
                f"inputs and labels must be non-empty and of the same length, got {len(latents)} and {len(y)}"
            )
        return float(np.mean(self.predict_latents(latents, batch) == y))

    # ------------------------------------------------------------------------------------- checkpoints

    def _frozen_fingerprint(self):
        """SHA-256 of the frozen stage's state: its state_dict, or for an INT8 stage the state_dict of the
        float stage it was made from plus its latent scale and bits (empty when there is neither)."""
        source = self.frozen if hasattr(self.frozen, "state_dict") else getattr(self.frozen, "float_stage", None)
        if not hasattr(source, "state_dict"):
            return ""
        digest = hashlib.sha256()
        digest.update(f"{getattr(self.frozen, 'scale', None)!r}:{getattr(self.frozen, 'lr_bits', None)!r};".encode())
        for name, value in source.state_dict().items():
            value = np.ascontiguousarray(value)
            digest.update(f"{name}:{value.dtype}:{value.shape};".encode())
            digest.update(value.tobytes())
        return digest.hexdigest()

    def state_dict(self):
        """Everything a resume needs, as a flat dict of numpy arrays (``numpy.savez`` compatible)."""
        state = {f"adaptive/{k}": v for k, v in self.adaptive.state_dict().items()}
        state.update({f"buffer/{k}": v for k, v in self.buffer.state_dict().items()})
        state.update({f"optim/momentum/{j}": b.copy() for j, b in enumerate(self.momentum_buffers)})
        state.update(
            {
                "cwr/cw": self.cw.copy(),
                "cwr/cb": self.cb.copy(),
                "cwr/cw_set": self.cw_set.copy(),
                "cwr/past": self.past.copy(),
            }
        )
        meta = {
            "format": CHECKPOINT_FORMAT,
            "settings": self.settings,
            "batches_seen": self.batches_seen,
            "optimizer_phase": self._core.optimizer_phase,
            "optimizer_started": self._core.optimizer_started,
            "rng": list(self.rng.state),
            "frozen": self._frozen_fingerprint(),
            "latent_shape": list(self.buffer.latent_shape),
        }
        state["meta"] = np.array(json.dumps(meta))
        return state

    def save_checkpoint(self, path):
        """Write :meth:`state_dict` to ``path`` (.npz) atomically: a temporary file in the same directory,
        then ``os.replace``, so a crash never leaves a half-written checkpoint under ``path``."""
        atomic_savez(path, self.state_dict())

    def load_checkpoint(self, path):
        """Resume from a checkpoint written by :meth:`save_checkpoint`. A missing file raises
        FileNotFoundError; an unreadable file or one from another experiment (other settings, frozen
        stage, model or buffer) raises :class:`CheckpointError` and leaves the learner unchanged."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                state = {k: archive[k] for k in archive.files}
            meta = json.loads(str(state["meta"]))
        except Exception as e:
            raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}: {e})") from e
        self.load_state_dict(state, meta, where=path)

    def load_state_dict(self, state, meta=None, where="state"):
        """Restore a :meth:`state_dict` (see :meth:`load_checkpoint` for the checks)."""
        try:
            meta = meta if meta is not None else json.loads(str(state["meta"]))
        except Exception as e:
            raise CheckpointError(f"{where}: no readable metadata ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise CheckpointError(f"{where}: format {found!r}, expected {CHECKPOINT_FORMAT!r}")
        if meta.get("settings") != self.settings:
            diff = {
                k: (meta.get("settings", {}).get(k), v)
                for k, v in self.settings.items()
                if meta.get("settings", {}).get(k) != v
            }
            raise CheckpointError(f"{where}: written with other settings (saved, current): {diff}")
        if meta.get("frozen") != self._frozen_fingerprint():
            raise CheckpointError(f"{where}: written with another frozen stage (its weights differ)")
        if meta.get("latent_shape") != list(self.buffer.latent_shape):
            raise CheckpointError(
                f"{where}: latent shape {meta.get('latent_shape')}, expected {list(self.buffer.latent_shape)}"
            )

        def group(prefix):
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        # Validate everything on copies first, so a bad checkpoint leaves this learner untouched.
        adaptive_now = self.adaptive.state_dict()
        buffer_now = self.buffer.state_dict()
        try:
            self.adaptive.load_state_dict(group("adaptive/"))
            self.buffer.load_state_dict(group("buffer/"))
            momentum = group("optim/momentum/")
            if sorted(momentum) != sorted(str(j) for j in range(len(self.momentum_buffers))) or any(
                momentum[str(j)].shape != b.shape or momentum[str(j)].dtype != b.dtype
                for j, b in enumerate(self.momentum_buffers)
            ):
                raise ValueError(
                    f"optim/momentum must hold {len(self.momentum_buffers)} float32 arrays of the trainable "
                    "parameters' shapes"
                )
            started = meta.get("optimizer_started")
            if not isinstance(started, bool):
                raise ValueError(f"optimizer_started must be true or false, got {started!r}")
            cwr = group("cwr/")
            shapes = {"cw": self.cw.shape, "cb": self.cb.shape, "cw_set": self.cw_set.shape, "past": self.past.shape}
            for key, shape in shapes.items():
                if key not in cwr or cwr[key].shape != shape:
                    raise ValueError(f"cwr/{key} missing or not of shape {shape}")
            self._check_loaded_values(meta, cwr, {f"momentum/{k}": v for k, v in momentum.items()})
            Pcg32().state = meta.get("rng")  # checks the pair
        except Exception as e:
            self.adaptive.load_state_dict(adaptive_now)
            self.buffer.load_state_dict(buffer_now)
            raise CheckpointError(f"{where}: does not fit this learner ({type(e).__name__}: {e})") from e
        for j, b in enumerate(self.momentum_buffers):
            b[...] = momentum[str(j)]
        self.cw[...], self.cb[...] = cwr["cw"], cwr["cb"]
        self.cw_set[...], self.past[...] = cwr["cw_set"], cwr["past"]
        self._core.set_state(meta["batches_seen"], meta["optimizer_phase"], started)
        self.rng.state = meta["rng"]

    def _check_loaded_values(self, meta, cwr, optimizer_arrays):
        """What shapes do not tell (ValueError): counters that agree with each other and with the buffer,
        buffer labels below num_classes, dtypes, finite weights and optimizer state, coherent CWR* state."""
        batches = meta.get("batches_seen")
        if isinstance(batches, bool) or not isinstance(batches, int) or batches != self.buffer.batches_seen:
            raise ValueError(f"batches_seen {batches!r} differs from the buffer's {self.buffer.batches_seen}")
        phase = None if batches == 0 else 0 if batches == 1 else 1
        if meta.get("optimizer_phase") != phase:
            raise ValueError(
                f"optimizer_phase {meta.get('optimizer_phase')!r} after {batches} batches, expected {phase!r}"
            )
        labels = self.buffer.labels
        if labels.size and labels.max() >= self.num_classes:
            raise ValueError(f"buffer labels must be in [0, {self.num_classes}), got up to {labels.max()}")
        for key, dtype in (("cw", np.float32), ("cb", np.float32), ("cw_set", np.bool_), ("past", np.int64)):
            if cwr[key].dtype != dtype:
                raise ValueError(f"cwr/{key} must be {np.dtype(dtype)}, got {cwr[key].dtype}")
        if (
            cwr["past"].min() < 0
            or not np.array_equal(cwr["cw_set"], cwr["past"] > 0)
            or (not self.settings["cwr"] and cwr["past"].any())
        ):
            raise ValueError(
                "cwr/past must count >= 0 samples, and cwr/cw_set mark the classes counted (none without CWR*)"
            )
        arrays = [(f"cwr/{k}", cwr[k]) for k in ("cw", "cb")]
        arrays += [(f"adaptive/{k}", v) for k, v in self.adaptive.state_dict().items()]
        arrays += [(f"optim/{k}", v) for k, v in optimizer_arrays.items()]
        for name, value in arrays:
            value = np.asarray(value)
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise ValueError(f"{name} holds non-finite values")
