"""pulptrain: fast FP32 training kernels for tiny devices, callable from numpy.

The arithmetic lives in portable C (csrc/), parallelised over a team of cores (OpenMP on the host, a
serial team on bare metal); results are bitwise identical for every team size.

Submodules load on first use, as in torch: ``import pulptrain`` then ``pulptrain.nn.Conv2d(...)`` or
``pulptrain.cl.LatentReplayLearner(...)`` works without importing them by name.
"""

import importlib
from typing import TYPE_CHECKING

from pulptrain._C import cpu_info, get_num_threads, parallel_backend, set_num_threads

__version__ = "0.1.0"

# The public submodules, imported by the first attribute access (module __getattr__, PEP 562).
_SUBMODULES = ("cl", "data", "kernels", "models", "nn", "optim", "quant", "reference", "selfcheck")

if TYPE_CHECKING:  # static type checkers see the submodules as attributes
    from pulptrain import cl, data, kernels, models, nn, optim, quant, reference, selfcheck  # noqa: F401

__all__ = ["set_num_threads", "get_num_threads", "parallel_backend", "cpu_info", "__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"pulptrain.{name}")
    raise AttributeError(f"module 'pulptrain' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
