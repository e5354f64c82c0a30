# cython: language_level=3, boundscheck=False, wraparound=False, embedsignature=True
"""Thin binding over csrc/: validates once, releases the GIL, calls one C kernel.

Every array argument must be a numpy.ndarray of dtype float32 (anything else is a TypeError naming the
argument). Non-contiguous *inputs*, and inputs of the right type in the other byte order, are accepted and
copied to native C order first (that copy is the only one made); an ``out=`` array or one updated in place
must already be native-endian (TypeError otherwise), C-contiguous, writeable, of exactly the result's
shape, and must not overlap any input (ValueError otherwise). Integer arguments are range-checked before
anything is allocated: every size, stride and padding is at most 2**31 - 1 and no tensor may hold more
than 2**60 elements. Scratch space comes from a per-thread buffer that is reused between calls (and
released when a kernel fails).

The runtime settings (set_num_threads, set_isa, set_matmul_variant, set_int8_microkernel) are process-wide
defaults:
each call reads them once, sizes its workspace from that copy and hands the same copy to the C kernel, so
changing them from another thread while a kernel runs only affects later calls.
"""
import numbers
import threading

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t

from pulptrain._csrc cimport *

cnp.import_array()

_local = threading.local()
_F32 = np.dtype(np.float32)


include "_validate.pxi"


# ---- runtime settings -----------------------------------------------------------------------------------

def set_num_threads(n):
    """Set the team size (cores) used by every following kernel call; 1 <= n <= 256. Results do not depend
    on it."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n > PT_MAX_THREADS:
        raise ValueError(f"n must be <= {PT_MAX_THREADS} (the largest team), got {n}")
    _check(pt_set_num_threads(int(n)), "set_num_threads")


def get_num_threads():
    """The team size used by kernel calls."""
    return pt_get_num_threads()


def parallel_backend():
    """'openmp' when the extension was built with OpenMP, else 'serial' (the team runs one core at a time)."""
    return pt_parallel_backend().decode()


# ---- instruction set ------------------------------------------------------------------------------------

def isa_levels():
    """The ISA levels this CPU can run, lowest first: 'generic' everywhere, then 'avx2' (AVX2 + FMA) and
    'avx512' (AVX-512F/BW/VL) on x86 CPUs that have them."""
    return [pt_isa_name(level).decode() for level in range(PT_ISA_AUTO + 1, pt_isa_detected() + 1)]


def set_isa(name):
    """Set the ISA level whose microkernels the automatic choices use ('auto' = the highest this CPU has).
    Results are bitwise identical for any thread count within a level; they may differ between levels."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    cdef int level = pt_isa_find(name.encode())
    if level < 0:
        raise ValueError(f"name must be 'auto' or one of {isa_levels()}, got {name!r}")
    if pt_isa_set_default(level) != PT_OK:
        raise ValueError(f"name {name!r}: this CPU supports only {isa_levels()}")
    global _isa_chosen_by
    _isa_chosen_by = "set_isa" if level != PT_ISA_AUTO else "cpuid"


def get_isa():
    """The ISA level the automatic choices use now (never 'auto')."""
    return pt_isa_name(pt_isa_resolve(pt_isa_get_default())).decode()


_CPU_FEATURES = (("avx2", PT_CPU_AVX2), ("fma", PT_CPU_FMA), ("avx512f", PT_CPU_AVX512F),
                 ("avx512bw", PT_CPU_AVX512BW), ("avx512vl", PT_CPU_AVX512VL),
                 ("avx512vnni", PT_CPU_AVX512VNNI), ("avxvnni", PT_CPU_AVXVNNI))
_isa_chosen_by = "cpuid"


def cpu_info():
    """What the run-time dispatch saw and chose: {'features': the CPU features it looks at, 'detected': the
    highest ISA level the CPU has, 'available': isa_levels(), 'isa': the level in use, 'chosen_by': 'cpuid',
    'PULPTRAIN_ISA' or 'set_isa', 'fp32': the matmul variant of a large product at that level, 'int8': the
    INT8 microkernel}."""
    cdef unsigned f = pt_isa_features()
    cdef pt_team team = pt_team_default()
    return {
        "features": [name for name, bit in _CPU_FEATURES if f & bit],
        "detected": pt_isa_name(pt_isa_detected()).decode(),
        "available": isa_levels(),
        "isa": get_isa(),
        "chosen_by": _isa_chosen_by,
        "fp32": pt_matmul_variant_info(pt_matmul_pick(&team, 512, 512, 512)).name.decode(),
        "int8": pt_int8_get_microkernel().decode(),
    }


def _isa_from_environment():
    """PULPTRAIN_ISA=generic|avx2|avx512|auto forces the level at import: a level this CPU lacks warns and
    keeps the highest it has; an unknown name is an error."""
    import os
    import warnings
    name = os.environ.get("PULPTRAIN_ISA", "")
    if name == "":
        return
    if pt_isa_find(name.encode()) < 0:
        raise ValueError(f"PULPTRAIN_ISA must be one of {['auto'] + isa_levels()} (or unset), got {name!r}")
    global _isa_chosen_by
    if pt_isa_set_default(pt_isa_find(name.encode())) != PT_OK:
        warnings.warn(f"PULPTRAIN_ISA={name}: this CPU supports only {isa_levels()}; using {get_isa()}",
                      RuntimeWarning, stacklevel=2)
        return
    _isa_chosen_by = "PULPTRAIN_ISA"


_isa_from_environment()


# ---- matmul ---------------------------------------------------------------------------------------------

def matmul_variants():
    """Names of the matmul variants in the registry, in registry order ('naive' is the reference)."""
    return [pt_matmul_variant_info(i).name.decode() for i in range(pt_matmul_num_variants())]


def matmul_variant_tile(name):
    """(MR, NR) register tile of a variant."""
    cdef int v = _variant_id(name)
    return pt_matmul_variant_info(v).mr, pt_matmul_variant_info(v).nr


cdef int _variant_id(object name) except? -2:
    if name is None:
        return PT_MATMUL_AUTO
    if not isinstance(name, str):
        raise TypeError(f"variant must be a str or None, got {name!r}")
    cdef int v = pt_matmul_variant_find(name.encode())
    if v < 0:
        raise ValueError(f"variant must be one of {matmul_variants()}, got {name!r}")
    return v


def set_matmul_variant(name):
    """Force one matmul variant for every kernel (None restores the automatic per-shape choice)."""
    _check(pt_matmul_set_preferred(_variant_id(name)), "set_matmul_variant")


def get_matmul_variant():
    """The forced variant name, or None when the per-shape choice is active."""
    cdef int v = pt_matmul_get_preferred()
    return None if v == PT_MATMUL_AUTO else pt_matmul_variant_info(v).name.decode()


def matmul_variant_for(M, N, K):
    """Name of the variant the kernels use for an M x N x K product (each size in [1, 2**62])."""
    cdef int64_t m = _int_arg(M, "M", 1, 2 ** 62), n = _int_arg(N, "N", 1, 2 ** 62), k = _int_arg(K, "K", 1, 2 ** 62)
    cdef pt_team team = pt_team_default()
    return pt_matmul_variant_info(pt_matmul_pick(&team, m, n, k)).name.decode()


def matmul(a, b, *, variant=None, out=None):
    """C = A @ B for float32 matrices a (M, K) and b (K, N); returns C (M, N).

    variant: a name from matmul_variants(), or None for the automatic choice.
    """
    A = _input(a, "a", 2, "(M, K)")
    B = _input(b, "b", 2, "(K, N)")
    cdef int64_t M = A.shape[0], K = A.shape[1], N = B.shape[1]
    if B.shape[0] != K:
        raise ValueError(f"b must have shape ({K}, N) to match a {A.shape}, got {B.shape}")
    cdef int v = _variant_id(variant)
    cdef pt_team team = pt_team_default()
    if v == PT_MATMUL_AUTO:
        v = pt_matmul_pick(&team, M, N, K)
    C = _output(out, (M, N), (A, B))
    cdef int64_t wsf = pt_matmul_view_workspace_floats(&team, v, M, N, K)
    cdef float *ws = _workspace(wsf)
    cdef float *pA = _ptr(A)
    cdef float *pB = _ptr(B)
    cdef float *pC = _ptr(C)
    cdef pt_status st
    with nogil:
        st = pt_matmul(&team, v, M, N, K, pA, pB, pC, 0, ws, wsf)
    _check(st, "matmul")
    return C


include "_conv.pxi"
include "_dense.pxi"
include "_nn.pxi"
include "_quant.pxi"
include "_stage.pxi"
include "_cl.pxi"
