"""The memory model of latent-replay training on MobileNetV1, computed analytically from the architecture.

Layer shapes come from the MobileNetV1 table of :mod:`pulptrain.models` (:func:`mobilenet_v1_layers`),
indexed as in the literature: 0 = conv1, 1..26 = the 13 depthwise/pointwise pairs, 27 = the global average
pool, 28 = the classifier (fc). Splitting at the latent-replay (LR) layer ``l`` gives a frozen stage 0..l
and an adaptive stage l+1..28.

What each entry of :func:`memory_breakdown` counts (bytes):

* ``frozen_weights``: with ``bits`` <= 8 the frozen stage as INT8 inference: one byte per weight plus, per
  output channel of every conv layer, an int32 multiplier and an int32 bias of the folded BatchNorm
  requantization (``y = clip((k * acc + lambda) >> d, 0, 255)``); with ``bits == 32`` the FP32 frozen
  stage that ``pulptrain cl --bits 32`` runs: four bytes per weight plus the BatchNorm scale, shift,
  running mean and running variance (FP32) of every conv layer.
* ``adaptive_weights``: the adaptive stage in FP32: conv/fc weights, BatchNorm scale and shift, fc bias, and
  the BatchNorm running mean and variance.
* ``adaptive_gradients``: one FP32 gradient per trainable parameter.
* ``optimizer_state``: the SGD momentum buffer, one FP32 value per trainable parameter (0 without momentum).
* ``activations``: one training mini-batch of ``batch`` samples through the adaptive stage in FP32: the
  tensors kept for the backward pass (the stage input, i.e. the latents, then for every conv layer its
  output before BatchNorm and after BatchNorm + ReLU, the pool output and the logits) plus two gradient
  buffers the size of the largest of them (the backward pass ping-pongs dy / dx).
* ``replay_buffer``: ``replays`` latents bit-packed at ``bits`` per value (each latent packed on its own,
  ``ceil(elements * bits / 8)`` bytes; FP32 when ``bits == 32``), plus one int16 label per latent: exactly
  what :class:`pulptrain.cl.LatentReplayBuffer` allocates.
* ``total``: the sum of the above.

:func:`learner_arena_bytes` is the size of the one arena the C learner step (csrc/cl, ``pt_cl_learner``)
carves all its scratch from, exactly as ``pt_cl_learner_arena_bytes`` computes it for these settings: the
mini-batch (``rows_max`` latents and labels, where ``rows_max`` >= ``batch`` is the largest mini-batch a plan
can make), the tensors kept for the backward pass (as ``activations`` above: each conv output, each BatchNorm
output, the pool output and the logits; ReLU runs in place), the BatchNorm statistics, two gradient buffers
of the largest tensor, the loss and kernel workspaces (the kernels' workspace depends on the team size and
on the matmul variants of the build that runs it), the new-sample permutation and the CWR* counts.

Reference point (the paper's setting): width 1.0, 128x128 input, l = 19, 1500 replays -> a 512x8x8 latent and a
46.9 MiB buffer at 8 bits (187.5 MiB at FP32, 41.0 MiB at 7 bits).
"""

from dataclasses import asdict, dataclass

import numpy as np

from pulptrain.cl._validate import check_int
from pulptrain.models import POOL_INDEX, LayerShape, mobilenet_v1_layers, scaled_channels
from pulptrain.quant_core import FP32_BITS, check_bits

__all__ = [
    "learner_arena_bytes",
    "LayerShape",
    "mobilenet_v1_layers",
    "memory_breakdown",
    "MemoryBreakdown",
    "packed_row_bytes",
    "scaled_channels",
    "LABEL_DTYPE",
    "MIB",
]

MIB = 1024 * 1024
#: dtype of the labels stored next to the latents in the replay buffer.
LABEL_DTYPE = np.dtype(np.int16)


def packed_row_bytes(elements, bits):
    """Bytes one latent of ``elements`` values takes in the replay buffer at ``bits`` per value
    (bits == 32 means FP32, 4 bytes per value)."""
    return 4 * elements if bits == FP32_BITS else (elements * bits + 7) // 8


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per component (see the module docstring) and the settings they were computed for."""

    width_mult: float
    input_size: int
    lr_layer: int
    replays: int
    bits: int
    batch: int
    num_classes: int
    latent_shape: tuple
    frozen_params: int
    adaptive_params: int
    frozen_macs: int
    adaptive_macs: int
    frozen_weights: int
    adaptive_weights: int
    adaptive_gradients: int
    optimizer_state: int
    activations: int
    replay_buffer: int

    COMPONENTS = (
        "frozen_weights",
        "adaptive_weights",
        "adaptive_gradients",
        "optimizer_state",
        "activations",
        "replay_buffer",
    )

    @property
    def total(self):
        return sum(getattr(self, name) for name in self.COMPONENTS)

    def as_dict(self):
        """Everything as plain JSON-friendly values, bytes and MiB."""
        out = asdict(self)
        out["latent_shape"] = list(self.latent_shape)
        out["total"] = self.total
        out["mib"] = {name: getattr(self, name) / MIB for name in self.COMPONENTS + ("total",)}
        return out

    def table(self):
        """A human-readable table in MiB."""
        labels = {
            "frozen_weights": "frozen stage, FP32 weights (+ BatchNorm)"
            if self.bits == 32
            else "frozen stage, INT8 weights (+ requant params)",
            "adaptive_weights": "adaptive stage, FP32 weights",
            "adaptive_gradients": "adaptive stage, FP32 gradients",
            "optimizer_state": "adaptive stage, SGD momentum",
            "activations": f"activations, one mini-batch of {self.batch}",
            "replay_buffer": f"replay buffer, {self.replays} x {'x'.join(map(str, self.latent_shape))}"
            f" at {self.bits} bits",
        }
        shape = "x".join(map(str, self.latent_shape))
        lines = [
            f"MobileNetV1 {self.width_mult} at {self.input_size}x{self.input_size}, LR layer "
            f"{self.lr_layer} (latent {shape}), {self.frozen_params:,} frozen / "
            f"{self.adaptive_params:,} adaptive parameters",
            f"{'component':<58}{'MiB':>10}",
        ]
        lines += [f"{labels[name]:<58}{getattr(self, name) / MIB:>10.1f}" for name in self.COMPONENTS]
        lines.append(f"{'total':<58}{self.total / MIB:>10.1f}")
        return "\n".join(lines)


def _checked_lr_layer(lr_layer):
    """lr_layer as an int in 0..POOL_INDEX (the split points of the memory model), else ValueError."""
    lr_layer = check_int(lr_layer, "lr_layer", 0)
    if lr_layer > POOL_INDEX:
        raise ValueError(f"lr_layer must be in 0..{POOL_INDEX} (the classifier always trains), got {lr_layer}")
    return lr_layer


def memory_breakdown(
    width_mult=1.0,
    input_size=128,
    lr_layer=19,
    replays=1500,
    bits=8,
    batch=128,
    num_classes=50,
    in_channels=3,
    momentum=True,
    first_stride=2,
):
    """Memory of latent-replay training of MobileNetV1 split at ``lr_layer`` (0..27), in bytes per
    component; see the module docstring for what each component counts."""
    lr_layer = _checked_lr_layer(lr_layer)
    replays = check_int(replays, "replays", 0)
    batch = check_int(batch, "batch", 1)
    bits = check_bits(bits, allow_fp32=True)
    layers = mobilenet_v1_layers(width_mult, input_size, num_classes, in_channels, first_stride)
    frozen, adaptive = layers[: lr_layer + 1], layers[lr_layer + 1 :]
    latent = frozen[-1]
    latent_shape = (latent.out_channels, latent.out_size, latent.out_size)
    latent_elements = latent.out_elements

    if bits == 32:
        frozen_weights = sum(4 * layer.params + 16 * layer.bn_channels for layer in frozen)
    else:
        frozen_weights = sum(layer.params + 8 * layer.bn_channels for layer in frozen)
    trainable = sum(layer.params + 2 * layer.bn_channels for layer in adaptive)
    running_stats = sum(2 * layer.bn_channels for layer in adaptive)

    kept = [latent_elements]
    for layer in adaptive:
        kept += [layer.out_elements] * (2 if layer.bn_channels else 1)
    activations = 4 * batch * (sum(kept) + 2 * max(kept))

    replay_buffer = replays * (packed_row_bytes(latent_elements, bits) + LABEL_DTYPE.itemsize)
    return MemoryBreakdown(
        width_mult=float(width_mult),
        input_size=int(input_size),
        lr_layer=lr_layer,
        replays=replays,
        bits=bits,
        batch=batch,
        num_classes=int(num_classes),
        latent_shape=latent_shape,
        frozen_params=sum(layer.params for layer in frozen),
        adaptive_params=trainable,
        frozen_macs=sum(layer.macs for layer in frozen),
        adaptive_macs=sum(layer.macs for layer in adaptive),
        frozen_weights=frozen_weights,
        adaptive_weights=4 * (trainable + running_stats),
        adaptive_gradients=4 * trainable,
        optimizer_state=4 * trainable if momentum else 0,
        activations=activations,
        replay_buffer=replay_buffer,
    )


def learner_arena_bytes(
    width_mult=1.0,
    input_size=128,
    lr_layer=19,
    replays=1500,
    batch=128,
    num_classes=50,
    in_channels=3,
    first_stride=2,
    max_new=None,
    threads=None,
    min_new=None,
):
    """Bytes of the C learner's arena (``pt_cl_learner_arena_bytes``) for MobileNetV1 split at ``lr_layer``,
    a buffer of ``replays`` latents, mini-batches of ``batch``, batches of ``min_new`` (default 1) to
    ``max_new`` (default ``batch``) new samples and a team of ``threads`` cores (default: the current team).
    With the defaults' min_new = 1 it is the value a :class:`pulptrain.cl.LatentReplayLearner` with these
    settings allocates; a stream of batches of one size N (min_new = max_new = N) needs the least."""
    from pulptrain._C import cl_learner_arena_bytes
    from pulptrain.cl.stage import layer_table
    from pulptrain.models import mobilenet_v1, split

    lr_layer = _checked_lr_layer(lr_layer)
    batch = check_int(batch, "batch", 1)
    replays = check_int(replays, "replays", 1)
    max_new = batch if max_new is None else check_int(max_new, "max_new", 1)
    min_new = 1 if min_new is None else check_int(min_new, "min_new", 1)
    if min_new > max_new:
        raise ValueError(f"min_new must be at most max_new ({max_new}), got {min_new}")
    layers = mobilenet_v1_layers(width_mult, input_size, num_classes, in_channels, first_stride)
    latent = layers[lr_layer]
    model = mobilenet_v1(width_mult, num_classes, input_size, in_channels, first_stride)
    specs, _ = layer_table(split(model, lr_layer)[1], (latent.out_channels, latent.out_size, latent.out_size))
    settings = {
        "lr": 1.0,
        "first_lr": 1.0,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "epochs": 1,
        "first_epochs": 1,
        "minibatch": batch,
        "cwr": False,
        "freeze_bn": False,
        "num_classes": int(num_classes),
    }
    return cl_learner_arena_bytes(specs, settings, replays, max_new, threads, min_new)
