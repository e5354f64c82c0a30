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
With ``out=`` the mini-batches are written into arrays
the caller preallocated (the learner's mini-batch), through scratch rows the buffer keeps, so a replay step
allocates no new arrays. All randomness comes from the buffer's own ``numpy.random.Generator`` (``seed``),
which is part of the state saved by :meth:`state_dict`.
"""

import json

import numpy as np

from pulptrain.cl._validate import check_int
from pulptrain.cl.memory import LABEL_DTYPE, packed_row_bytes
from pulptrain.quant_core import FP32_BITS, as_latents, check_bits

__all__ = ["LatentReplayBuffer", "POLICIES"]

POLICIES = ("reference", "reservoir", "class_balanced")
_MAX_LABEL = np.iinfo(LABEL_DTYPE).max


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
    seed : seed (or ``numpy.random.SeedSequence``) of the buffer's random generator.
    """

    def __init__(self, capacity, latent_shape, bits=8, *, scale=None, policy="reference", seed=None):
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
        self.capacity, self.latent_shape, self.bits, self.policy = int(capacity), latent_shape, int(bits), policy
        self.scale = None if bits == FP32_BITS or scale is None else float(scale)
        self.elements = int(np.prod(latent_shape))
        self.row_bytes = packed_row_bytes(self.elements, self.bits)
        if self.bits == FP32_BITS:
            self._storage = np.zeros((self.capacity, self.elements), np.float32)
        else:
            self._storage = np.zeros((self.capacity, self.row_bytes), np.uint8)
        self._labels = np.zeros(self.capacity, LABEL_DTYPE)
        self.size = 0
        self.batches_seen = 0
        self.samples_seen = 0
        self._class_seen = {}
        self.rng = np.random.default_rng(seed)
        self._scratch_rows = 0  # rows of the read scratch arrays (grown on demand, see _read_into)
        self._packed_scratch = self._codes_scratch = None

    # ------------------------------------------------------------------------------------------ storage

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

    def _pack_rows(self, codes, rows):
        """Bit-pack codes (n, elements) into rows (n, row_bytes)."""
        quant = _quant()
        if self._rows_are_byte_aligned():  # all rows form one bit stream
            quant.pack_bits(codes, self.bits, out=rows.reshape(-1))
        else:
            for k in range(len(codes)):
                quant.pack_bits(codes[k], self.bits, out=rows[k])

    def _rows_are_byte_aligned(self):
        return (self.elements * self.bits) % 8 == 0

    def _write(self, slots, latents, labels):
        """Store latents (a latent batch, already the rows to keep) and labels in the given slots."""
        slots = np.asarray(slots, np.int64)
        if not slots.size:
            return
        if self.bits == FP32_BITS:
            self._storage[slots] = latents.values().reshape(len(slots), self.elements)
        else:
            codes = latents.at_precision(self.bits, self.scale).codes.reshape(len(slots), self.elements)
            rows = np.empty((len(slots), self.row_bytes), np.uint8)
            self._pack_rows(codes, rows)
            self._storage[slots] = rows
        self._labels[slots] = labels

    def _check_slots(self, slots):
        slots = np.asarray(slots, np.int64).reshape(-1)
        if slots.size and (slots.min() < 0 or slots.max() >= self.size):
            raise IndexError(f"slots must be in [0, {self.size}), got min {slots.min()} max {slots.max()}")
        return slots

    def get(self, slots):
        """Latents (float32, shape (n,) + latent_shape, dequantized) and int64 labels of the given slots."""
        slots = self._check_slots(slots)
        latents = np.empty((len(slots),) + self.latent_shape, np.float32)
        labels = np.empty(len(slots), np.int64)
        return self._read_into(slots, latents, labels)

    def _scratch(self, rows):
        """(packed rows, codes) scratch arrays of at least ``rows`` rows, reused across reads."""
        if rows > self._scratch_rows:
            self._packed_scratch = np.empty((rows, self.row_bytes), np.uint8)
            self._codes_scratch = np.empty((rows, self.elements), np.uint8)
            self._scratch_rows = rows
        return self._packed_scratch[:rows], self._codes_scratch[:rows]

    def _read_into(self, slots, latents, labels):
        """Dequantized latents and labels of valid slots written into ``latents`` ((n,) + latent_shape
        float32, C-contiguous) and ``labels`` ((n,) int64); returns both."""
        n = len(slots)
        labels[...] = self._labels[slots]
        if n == 0:
            return latents, labels
        flat = latents.reshape(n, self.elements)
        if self.bits == FP32_BITS:
            np.take(self._storage, slots, axis=0, out=flat, mode="clip")  # "clip": no buffered copy of out
            return latents, labels
        codes = self._gather_codes(slots)
        _quant().dequantize(codes, self.scale, out=flat)
        return latents, labels

    def _gather_codes(self, slots):
        """The codes of valid slots, (n, elements) uint8, in the reused scratch rows."""
        packed, codes = self._scratch(len(slots))
        if self.bits == 8:  # rows are the codes themselves
            np.take(self._storage, slots, axis=0, out=packed, mode="clip")
            return packed
        if self._rows_are_byte_aligned():
            np.take(self._storage, slots, axis=0, out=packed, mode="clip")
            _quant().unpack_bits(packed.reshape(-1), self.bits, len(slots) * self.elements, out=codes)
        else:
            for k, slot in enumerate(slots):
                _quant().unpack_bits(self._storage[slot], self.bits, self.elements, out=codes[k])
        return codes

    def codes(self, slots):
        """The stored uint8 codes of the given slots, shape (n,) + latent_shape (quantized buffers only)."""
        if self.bits == FP32_BITS:
            raise ValueError("an FP32 buffer (bits=32) stores no codes")
        slots = self._check_slots(slots)
        if not slots.size:
            return np.empty((0,) + self.latent_shape, np.uint8)
        return self._gather_codes(slots).copy().reshape((len(slots),) + self.latent_shape)

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
        return latents, labels.astype(np.int64)

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

    def update(self, latents, labels):
        """Offer the latents ((n,) + latent_shape: a float32 array or a latent batch of
        :mod:`pulptrain.quant`) and labels of one training batch to the buffer according to the policy;
        counts the batch. Returns the slots written."""
        latents, labels = self._check_batch(latents, labels)
        self.calibrate(latents)
        if self.policy == "reference":
            slots, picked = self._reference_slots(len(latents))
        elif self.policy == "reservoir":
            slots, picked = self._reservoir_slots(len(latents))
        else:
            slots, picked = self._class_balanced_slots(labels)
        self._write(slots, latents.take(picked), labels[picked])
        self.batches_seen += 1
        self.samples_seen += len(latents)
        for c, n in zip(*np.unique(labels, return_counts=True)):
            self._class_seen[int(c)] = self._class_seen.get(int(c), 0) + int(n)
        return slots

    def _reference_slots(self, n_new):
        h = min(self.capacity // (self.batches_seen + 1), n_new)
        picked = self.rng.choice(n_new, h, replace=False)
        fill = min(self.capacity - self.size, h)
        overwrite = self.rng.choice(self.size, h - fill, replace=False)
        slots = np.concatenate([np.arange(self.size, self.size + fill), overwrite]).astype(np.int64)
        self.size += fill
        return slots, picked

    def _reservoir_slots(self, n_new):
        target = {}  # slot -> index of the new sample that ends up there (a later sample wins)
        seen = self.samples_seen
        for k in range(n_new):
            seen += 1
            if self.size < self.capacity:
                target[self.size] = k
                self.size += 1
            else:
                j = int(self.rng.integers(seen))
                if j < self.capacity:
                    target[j] = k
        return np.fromiter(target.keys(), np.int64, len(target)), np.fromiter(target.values(), np.int64, len(target))

    def _class_balanced_slots(self, labels):
        target = {}
        stored = self._labels.astype(np.int64)  # working copy, includes the pending writes
        counts = dict(zip(*(u.tolist() for u in np.unique(stored[: self.size], return_counts=True))))
        seen = dict(self._class_seen)
        for k, c in enumerate(labels.tolist()):
            seen[c] = seen.get(c, 0) + 1
            slot = None
            if self.size < self.capacity:
                slot = self.size
                self.size += 1
            else:
                largest = max(counts.values())
                if counts.get(c, 0) < largest:
                    biggest = [cls for cls, n in counts.items() if n == largest]
                    victim = biggest[int(self.rng.integers(len(biggest)))]
                    slot = int(self.rng.choice(np.flatnonzero(stored[: self.size] == victim)))
                    counts[victim] -= 1
                elif int(self.rng.integers(seen[c])) < counts[c]:
                    slot = int(self.rng.choice(np.flatnonzero(stored[: self.size] == c)))
                    counts[c] -= 1
            if slot is not None:
                stored[slot] = c
                counts[c] = counts.get(c, 0) + 1
                target[slot] = k
        return np.fromiter(target.keys(), np.int64, len(target)), np.fromiter(target.values(), np.int64, len(target))

    # ----------------------------------------------------------------------------------------- sampling

    def replay_batches(self, per_step, steps, *, out=None):
        """Yield ``steps`` replay mini-batches ``(latents, labels)`` of ``min(per_step, size)`` samples each,
        without replacement within the epoch (a fresh random permutation only when one runs out).

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

        def read(slots):
            if out is None:
                return self.get(slots)
            return self._read_into(slots, latents_out[: len(slots)], labels_out[: len(slots)])

        order, pos = self.rng.permutation(self.size), 0
        for _ in range(int(steps)):
            if per_step == 0:
                yield read(np.empty(0, np.int64))
                continue
            if pos + per_step > len(order):
                order, pos = self.rng.permutation(self.size), 0
            yield read(order[pos : pos + per_step])
            pos += per_step

    # ------------------------------------------------------------------------------------- checkpoints

    def state_dict(self):
        """Everything needed to resume: a dict of numpy arrays (savable with ``numpy.savez``)."""
        meta = {
            "capacity": self.capacity,
            "latent_shape": list(self.latent_shape),
            "bits": self.bits,
            "policy": self.policy,
            "scale": self.scale,
            "size": self.size,
            "batches_seen": self.batches_seen,
            "samples_seen": self.samples_seen,
            "class_seen": {str(c): n for c, n in self._class_seen.items()},
            "rng": self.rng.bit_generator.state,
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
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = meta["rng"]
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"replay-buffer generator state is unusable: {e}") from e
        self._storage[...] = storage
        self._labels[...] = labels
        self.scale = scale
        self.size, self.batches_seen, self.samples_seen = size, batches_seen, samples_seen
        self._class_seen = class_seen
        self.rng = rng

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
