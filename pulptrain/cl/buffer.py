"""The latent-replay memory: latents of past samples, bit-packed at ``bits`` per value, with their labels.

Latents are post-ReLU (non-negative) activations of the LR layer, given as float32 arrays or as the
latent batches of :mod:`pulptrain.quant` (:class:`~pulptrain.quant.LatentCodes` from the INT8 frozen stage,
:class:`~pulptrain.quant.FloatLatents`). With ``bits`` in 1..8 each one is stored as unsigned codes with
zero point 0, ``q = clip(round(x / scale), 0, 2**bits - 1)`` (:func:`pulptrain.quant.quantize`; codes of
the buffer's own bits and scale are stored as they come, without a dequantize / quantize round trip), and
its codes are bit-packed into its own row of ``ceil(elements * bits / 8)`` bytes
(:func:`pulptrain.quant.pack_bits`), so a 7-bit buffer really takes 7/8 of an 8-bit one. Reading
dequantizes (``x = scale * q``). ``bits=32`` stores FP32 latents unchanged.
``nbytes`` is the storage actually allocated (codes + int16 labels) and equals the ``replay_buffer`` entry of
:func:`pulptrain.cl.memory.memory_breakdown` for the same shape.

Replacement policies (one :meth:`LatentReplayBuffer.update` call per training batch, i = 0, 1, ...):

* ``"reference"`` (the latent-replay reference code): after batch i, ``h = min(capacity // (i + 1), n_new)``
  latents drawn at random (without replacement) from the batch go in; the first of them fill the empty
  slots (batch 0 fills the buffer with as many as fit), the rest overwrite ``h`` random distinct occupied
  slots. Every batch seen ends up about equally represented.
* ``"reservoir"``: classic reservoir sampling over every sample ever offered: each sample is in the buffer
  with probability ``capacity / samples_seen``.
* ``"class_balanced"``: fill while there is room; when full, a sample of a class smaller than the largest
  one evicts a random sample of the largest class (ties broken at random); a sample of a largest class
  replaces a random sample of its own class with probability ``count[c] / seen[c]`` (reservoir within the
  class), so the classes stay balanced and each class's content stays a uniform sample of its history.

The scale of quantized buffers is either given or set at the first :meth:`update` from that batch's
maximum, ``scale = max / (2**bits - 1)``, and then fixed (later, larger values clip at the top code).

Sampling (:meth:`replay_batches`) is without replacement within an epoch: an epoch walks one random
permutation of the occupied slots, and only starts a fresh permutation when it runs out.
With ``out=`` the mini-batches are written into arrays the caller preallocated, so a replay step allocates no
new arrays.

Every policy, the sampler, the bit packing and the decoding run in C (csrc/cl/buffer.c, ``pt_cl_buffer``), on
the numpy arrays this object owns (the C struct points into them): the same code runs on the device. The
random decisions are exact draws of the buffer's own PCG32 generator (:class:`pulptrain.cl.Pcg32`, ``rng``):
``reference`` takes its ``h`` latents with ``rng.sample(n, h)`` and the slots it overwrites with
``rng.sample(size, h - fill)``; ``reservoir`` draws ``rng.below(samples_seen)``; ``class_balanced`` draws
the victim class among the largest (ascending class order), the victim among that class's slots (slot order)
and the within-class reservoir test with ``rng.below``; each epoch's permutation is ``rng.permutation(size)``.
The generator's state (two 64-bit integers) is part of the state saved by :meth:`state_dict`. Labels are
below ``num_classes`` (default: every int16 label, 0..32767), which sizes the per-class counters.
"""

import json

import numpy as np

from pulptrain._C import _Pcg32 as Pcg32
from pulptrain._C import _ReplayBufferCore
from pulptrain.cl._validate import check_int
from pulptrain.cl.memory import LABEL_DTYPE, packed_row_bytes
from pulptrain.quant_core import FP32_BITS, LatentCodes, as_latents, check_bits

__all__ = ["LatentReplayBuffer", "POLICIES", "Pcg32", "seed_pair"]

POLICIES = ("reference", "reservoir", "class_balanced")  # in the order of pt_cl_policy
_MAX_LABEL = np.iinfo(LABEL_DTYPE).max
#: PCG32 stream of a buffer seeded with an int (a learner's generator uses stream 0).
BUFFER_STREAM = 1


def seed_pair(seed, stream):
    """``(seed, stream)`` of a PCG32 generator: an int seed >= 0 with the given stream, or two 64-bit words of
    a ``numpy.random.SeedSequence`` (None: a fresh one from the operating system's entropy)."""
    if seed is None or isinstance(seed, np.random.SeedSequence):
        words = (seed if seed is not None else np.random.SeedSequence()).generate_state(2, np.uint64)
        return int(words[0]), int(words[1])
    return check_int(seed, "seed", 0), stream


def _quant():
    """pulptrain.quant, looked up when a quantized buffer needs it (so FP32 buffers work without it)."""
    try:
        from pulptrain import quant
    except ImportError as e:
        raise ImportError("quantized latent replays (bits < 32) need pulptrain.quant") from e
    return quant


class LatentReplayBuffer:
    """A fixed-capacity replay memory of latents of shape ``latent_shape``, stored at ``bits`` per value.

    Parameters
    ----------
    capacity : number of latents held (the paper's ``rm_sz``).
    latent_shape : shape of one latent, e.g. (512, 8, 8) for MobileNetV1 at l = 19.
    bits : 1..8 (quantized, bit-packed) or 32 (FP32, no quantization).
    scale : quantization step (units of the latent per code); None calibrates it at the first update.
    policy : "reference", "reservoir" or "class_balanced" (module docstring).
    seed : an int >= 0 (PCG32 seed, stream 1), a ``numpy.random.SeedSequence`` or None (fresh entropy).
    num_classes : labels are in [0, num_classes) (default 32768: every int16 label).
    """

    def __init__(self, capacity, latent_shape, bits=8, *, scale=None, policy="reference", seed=None, num_classes=None):
        capacity = check_int(capacity, "capacity", 1)
        latent_shape = tuple(int(d) for d in np.atleast_1d(latent_shape))
        if not latent_shape or min(latent_shape) < 1:
            raise ValueError(f"latent_shape must be a non-empty shape of positive sizes, got {latent_shape}")
        bits = check_bits(bits, allow_fp32=True)
        if bits != FP32_BITS:
            _quant()  # fail now, not at the first update
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite real > 0 or None, got {scale!r}")
        num_classes = _MAX_LABEL + 1 if num_classes is None else check_int(num_classes, "num_classes", 1)
        if num_classes > _MAX_LABEL + 1:
            raise ValueError(f"num_classes must be at most {_MAX_LABEL + 1} (int16 labels), got {num_classes}")
        self.capacity, self.latent_shape, self.bits, self.policy = int(capacity), latent_shape, int(bits), policy
        self.num_classes = int(num_classes)
        self.elements = int(np.prod(latent_shape))
        self.row_bytes = packed_row_bytes(self.elements, self.bits)
        if self.bits == FP32_BITS:
            self._storage = np.zeros((self.capacity, self.elements), np.float32)
        else:
            self._storage = np.zeros((self.capacity, self.row_bytes), np.uint8)
        self._labels = np.zeros(self.capacity, LABEL_DTYPE)
        self._scale = None
        self._core = _ReplayBufferCore(
            self.capacity,
            self.elements,
            self.bits,
            POLICIES.index(policy),
            self.num_classes,
            self._storage,
            self._labels,
            None,
            *seed_pair(seed, BUFFER_STREAM),
        )
        self.scale = None if bits == FP32_BITS or scale is None else float(scale)

    # ------------------------------------------------------------------------------------------ state

    @property
    def scale(self):
        """The quantization step (a float; the C buffer uses it rounded to float32), None until set."""
        return self._scale

    @scale.setter
    def scale(self, value):
        self._scale = None if value is None else float(value)
        self._core.set_scale(self._scale)

    @property
    def size(self):
        """Occupied slots (0..size-1)."""
        return self._core.size

    @property
    def batches_seen(self):
        return self._core.batches_seen

    @property
    def samples_seen(self):
        return self._core.samples_seen

    @property
    def rng(self):
        """The buffer's PCG32 generator (a view of the one in the C buffer)."""
        return self._core.rng

    @property
    def nbytes(self):
        """Bytes of storage actually allocated: the (packed) latents plus the labels."""
        return self._storage.nbytes + self._labels.nbytes

    @property
    def labels(self):
        """Labels of the occupied slots 0..size-1 (int64 copy)."""
        return self._labels[: self.size].astype(np.int64)

    def class_counts(self, num_classes=None):
        """Number of stored latents per class (length ``num_classes``, or max label + 1)."""
        return np.bincount(self._labels[: self.size], minlength=num_classes or 0)

    # ------------------------------------------------------------------------------------------ reading

    def _check_slots(self, slots):
        slots = np.asarray(slots, np.int64).reshape(-1)
        if slots.size and (slots.min() < 0 or slots.max() >= self.size):
            raise IndexError(f"slots must be in [0, {self.size}), got min {slots.min()} max {slots.max()}")
        return slots.astype(np.int32)

    def get(self, slots):
        """Latents (float32, shape (n,) + latent_shape, dequantized) and int64 labels of the given slots."""
        slots = self._check_slots(slots)
        latents = np.empty((len(slots),) + self.latent_shape, np.float32)
        labels = np.empty(len(slots), np.int64)
        self._core.read(slots, latents, labels)
        return latents, labels

    def codes(self, slots):
        """The stored uint8 codes of the given slots, shape (n,) + latent_shape (quantized buffers only)."""
        if self.bits == FP32_BITS:
            raise ValueError("an FP32 buffer (bits=32) stores no codes")
        slots = self._check_slots(slots)
        out = np.empty((len(slots),) + self.latent_shape, np.uint8)
        self._core.read_codes(slots, out)
        return out

    # ------------------------------------------------------------------------------------------- update

    def _check_batch(self, latents, labels):
        latents = as_latents(latents)
        labels = np.asarray(labels)
        if latents.shape[1:] != self.latent_shape:
            raise ValueError(f"latents must have shape (n,) + {self.latent_shape}, got {latents.shape}")
        if labels.shape != (len(latents),):
            raise ValueError(f"labels must have shape ({len(latents)},), got {labels.shape}")
        if labels.size and (
            not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > _MAX_LABEL
        ):
            raise ValueError(f"labels must be integers in [0, {_MAX_LABEL}]")
        if labels.size and labels.max() >= self.num_classes:
            raise ValueError(f"labels must be below num_classes ({self.num_classes}), got {labels.max()}")
        return latents, labels.astype(LABEL_DTYPE)

    def calibrate(self, latents):
        """Set the quantization scale from these latents (an array or a latent batch),
        ``max / (2**bits - 1)``, unless it is already set (or the buffer is FP32). Returns the scale."""
        latents = as_latents(latents)
        if self.bits != FP32_BITS and self.scale is None and len(latents) and latents.values().size:
            peak = float(np.max(latents.values()))
            self.scale = peak / ((1 << self.bits) - 1) if peak > 0 else 1.0
        return self.scale

    def encode(self, latents):
        """These latents (an array or a latent batch) at the buffer's precision: LatentCodes of the buffer's
        bits and scale (the same object when they already are), or the latents unchanged for an FP32
        buffer. Needs the scale (see :meth:`calibrate`)."""
        latents = as_latents(latents)
        if self.bits == FP32_BITS:
            return latents
        if self.scale is None:
            raise ValueError("the buffer has no quantization scale yet: call calibrate() or update() first")
        return latents.at_precision(self.bits, self.scale)

    def fake_quantize(self, latents):
        """What the buffer would give back for these latents: ``scale * quantize(latents)`` as float32
        (the latents unchanged for an FP32 buffer). Needs the scale (see :meth:`calibrate`)."""
        return self.encode(latents).values()

    def c_rows(self, latents):
        """``(latents, codes)`` for the C runtime, one of them None: the codes (n, elements) when the latents
        are LatentCodes of the buffer's bits and scale (stored as they are), else float32 values (n, elements)
        that the C buffer quantizes (or stores, at FP32)."""
        n = len(latents)
        if (
            isinstance(latents, LatentCodes)
            and self.bits != FP32_BITS
            and latents.bits == self.bits
            and float(latents.scale) == self.scale
        ):
            return None, np.ascontiguousarray(latents.codes, np.uint8).reshape(n, self.elements)
        return np.ascontiguousarray(latents.values(), np.float32).reshape(n, self.elements), None

    def update(self, latents, labels):
        """Offer the latents ((n,) + latent_shape: a float32 array or a latent batch of
        :mod:`pulptrain.quant`) and labels of one training batch to the buffer according to the policy;
        counts the batch. Returns the slots written (each once, in the order first written)."""
        latents, labels = self._check_batch(latents, labels)
        self.calibrate(latents)
        values, codes = self.c_rows(latents)
        slots = self._core.update(values, codes, labels)
        first = np.sort(np.unique(slots, return_index=True)[1])
        return slots[first].astype(np.int64)

    # ----------------------------------------------------------------------------------------- sampling

    def replay_batches(self, per_step, steps, *, out=None):
        """Yield ``steps`` replay mini-batches ``(latents, labels)`` of ``min(per_step, size)`` samples each,
        without replacement within the epoch (a fresh random permutation only when one runs out). The
        sampler's position lives in the C buffer: one generator at a time per buffer.

        out: ``(latents_out, labels_out)``, C-contiguous float32 ((m,) + latent_shape) and int64 (m,) arrays
        with m >= min(per_step, size): every mini-batch is written into their first rows (and the views
        yielded), so no step allocates; each mini-batch overwrites the previous one. Default: fresh arrays."""
        per_step = min(int(per_step), self.size)
        if out is not None:
            latents_out, labels_out = out
            if (
                not isinstance(latents_out, np.ndarray)
                or latents_out.dtype != np.float32
                or not latents_out.flags.c_contiguous
                or latents_out.shape[1:] != self.latent_shape
                or len(latents_out) < per_step
            ):
                raise ValueError(
                    f"out latents must be a C-contiguous float32 array of at least {per_step} rows "
                    f"of shape {self.latent_shape}"
                )
            if (
                not isinstance(labels_out, np.ndarray)
                or labels_out.dtype != np.int64
                or labels_out.ndim != 1
                or len(labels_out) < per_step
            ):
                raise ValueError(f"out labels must be an int64 array of at least {per_step} entries")

        self._core.epoch_begin()
        for _ in range(int(steps)):
            if out is None:
                latents, labels = np.empty((per_step,) + self.latent_shape, np.float32), np.empty(per_step, np.int64)
            else:
                latents, labels = latents_out[:per_step], labels_out[:per_step]
            self._core.replay(per_step, latents, labels)
            yield latents, labels

    # ------------------------------------------------------------------------------------- checkpoints

    def state_dict(self):
        """Everything needed to resume: a dict of numpy arrays (savable with ``numpy.savez``)."""
        class_seen = self._core.class_seen
        meta = {
            "capacity": self.capacity,
            "latent_shape": list(self.latent_shape),
            "bits": self.bits,
            "policy": self.policy,
            "scale": self.scale,
            "size": self.size,
            "batches_seen": self.batches_seen,
            "samples_seen": self.samples_seen,
            "class_seen": {str(c): int(class_seen[c]) for c in np.flatnonzero(class_seen)},
            "rng": list(self.rng.state),
        }
        return {"meta": np.array(json.dumps(meta)), "storage": self._storage.copy(), "labels": self._labels.copy()}

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict`. A buffer of another capacity, latent shape, bits or policy, or
        malformed arrays, raise ValueError and leave this buffer unchanged."""
        try:
            meta = json.loads(str(np.asarray(state["meta"])))
            storage, labels = np.asarray(state["storage"]), np.asarray(state["labels"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a replay-buffer state ({type(e).__name__}: {e})") from e
        if not isinstance(meta, dict):
            raise ValueError(f"replay-buffer metadata must be a dict, got {type(meta).__name__}")
        mine = {
            "capacity": self.capacity,
            "latent_shape": list(self.latent_shape),
            "bits": self.bits,
            "policy": self.policy,
        }
        theirs = {key: meta.get(key) for key in mine}
        if theirs != mine:
            raise ValueError(f"replay-buffer state does not match this buffer: saved {theirs}, expected {mine}")
        if storage.shape != self._storage.shape or storage.dtype != self._storage.dtype:
            raise ValueError(
                f"replay-buffer storage must be {self._storage.dtype} {self._storage.shape}, "
                f"got {storage.dtype} {storage.shape}"
            )
        if labels.shape != self._labels.shape or labels.dtype != self._labels.dtype:
            raise ValueError(f"replay-buffer labels must be {self._labels.dtype} {self._labels.shape}")
        size, batches_seen, samples_seen, class_seen = self._checked_counters(meta)
        if size and (labels[:size].min() < 0 or labels[:size].max() > _MAX_LABEL):
            raise ValueError(f"replay-buffer labels must be in [0, {_MAX_LABEL}]")
        scale = meta.get("scale")
        if self.bits == FP32_BITS:
            if scale is not None or not np.all(np.isfinite(storage[:size])):
                raise ValueError("an FP32 replay buffer has no scale and only finite latents")
        elif (scale is None and size > 0) or not (
            scale is None or (isinstance(scale, float) and np.isfinite(scale) and scale > 0)
        ):
            raise ValueError(f"replay-buffer scale must be a finite real > 0 once latents are stored, got {scale!r}")
        rng_state = meta.get("rng")
        try:
            Pcg32().state = rng_state  # validates the pair
        except (TypeError, ValueError) as e:
            raise ValueError(f"replay-buffer generator state is unusable: {e}") from e
        if any(c >= self.num_classes for c in class_seen):
            raise ValueError(f"replay-buffer class_seen holds a label not below num_classes ({self.num_classes})")
        if size and labels[:size].max() >= self.num_classes:
            raise ValueError(f"replay-buffer labels must be below num_classes ({self.num_classes})")
        self._storage[...] = storage
        self._labels[...] = labels
        self.scale = scale
        self._core.set_counters(size, batches_seen, samples_seen)
        self._core.class_seen[...] = 0
        for c, n in class_seen.items():
            self._core.class_seen[c] = n
        self.rng.state = rng_state

    def _checked_counters(self, meta):
        """``size, batches_seen, samples_seen, class_seen`` of a saved state, checked against each other."""

        def count(key):
            value = meta.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"replay-buffer {key} must be an int >= 0, got {value!r}")
            return value

        size, batches_seen, samples_seen = count("size"), count("batches_seen"), count("samples_seen")
        if size > min(self.capacity, samples_seen) or (batches_seen == 0) != (samples_seen == 0):
            raise ValueError(
                f"replay-buffer counters do not fit together: size {size} (capacity "
                f"{self.capacity}), {samples_seen} samples seen in {batches_seen} batches"
            )
        saved = meta.get("class_seen")
        try:
            class_seen = {int(c): n for c, n in saved.items()}
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"replay-buffer class_seen must map labels to counts, got {saved!r}") from e
        if (
            any(
                c < 0 or c > _MAX_LABEL or isinstance(n, bool) or not isinstance(n, int) or n < 1
                for c, n in class_seen.items()
            )
            or sum(class_seen.values()) != samples_seen
        ):
            raise ValueError(
                f"replay-buffer class_seen must hold counts >= 1 of labels in [0, {_MAX_LABEL}] "
                f"adding up to samples_seen ({samples_seen})"
            )
        return size, batches_seen, samples_seen, class_seen

    def __repr__(self):
        return (
            f"LatentReplayBuffer(capacity={self.capacity}, latent_shape={self.latent_shape}, bits={self.bits}, "
            f"policy={self.policy!r}, size={self.size}, nbytes={self.nbytes})"
        )
