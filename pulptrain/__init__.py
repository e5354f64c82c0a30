"""pulptrain: fast FP32 training kernels for tiny devices, callable from numpy.

The arithmetic lives in portable C (csrc/), parallelised over a team of cores (OpenMP on the host, a
serial team on bare metal); results are bitwise identical for every team size.
"""
from pulptrain._C import get_num_threads, parallel_backend, set_num_threads
from pulptrain import kernels

__version__ = "0.1.0"
__all__ = ["kernels", "set_num_threads", "get_num_threads", "parallel_backend", "__version__"]
