"""Latent-replay continual learning: scenarios (streams of batches), the quantized replay buffer, the
learner, and the memory model of the paper; :mod:`pulptrain.cl.experiment` (one whole experiment, as
``pulptrain cl`` runs it) and :mod:`pulptrain.cl.sweep` (a grid of them, ``pulptrain sweep``).

``pulptrain.cl.memory`` computes from the MobileNetV1 layer table of :mod:`pulptrain.models`;
``pulptrain.cl.scenarios`` works on its own. The buffer and the learner step run in C (csrc/cl, the same code
a bare-metal application runs); :class:`Pcg32` is the generator of every random decision they make.
"""

from pulptrain.cl import memory, scenarios
from pulptrain.cl.buffer import LatentReplayBuffer, Pcg32
from pulptrain.cl.learner import CheckpointError, LatentReplayLearner
from pulptrain.cl.memory import memory_breakdown
from pulptrain.cl.scenarios import Stream, core50, fashion_mnist_stream, nic_stream

__all__ = [
    "LatentReplayBuffer",
    "Pcg32",
    "LatentReplayLearner",
    "CheckpointError",
    "memory_breakdown",
    "Stream",
    "core50",
    "nic_stream",
    "fashion_mnist_stream",
    "memory",
    "scenarios",
]
