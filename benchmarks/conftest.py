"""pytest-benchmark options for the pulptrain benchmark suites.

Defaults keep a run short on a 2-core box: one thread, N in {1, 16}, pulptrain and torch only.
  --bench-threads=1,2     team sizes to run (pulptrain and torch both use it)
  --bench-large           also run N = 128 (slow: minutes)
  --bench-numpy           also run the plain-numpy implementations (slow: numpy convs are 2-10x slower)
"""
import ctypes
import ctypes.util
import os

# numpy's BLAS must not start its own thread pool behind the team size under test.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def _keep_freed_memory():
    """glibc: serve big blocks from the heap and never trim it, so torch's per-call result allocations
    reuse warm pages instead of paying page faults (PERF.md: the anchors are measured this way)."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        libc = ctypes.CDLL(libc_name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 2 ** 31 - 1)
    except (OSError, AttributeError):
        pass


_keep_freed_memory()


def pytest_addoption(parser):
    group = parser.getgroup("pulptrain benchmarks")
    group.addoption("--bench-threads", default="1", help="comma-separated team sizes (default: 1)")
    group.addoption("--bench-large", action="store_true", help="also run N = 128 (slow)")
    group.addoption("--bench-numpy", action="store_true", help="also run the plain-numpy implementations")


def pytest_configure(config):
    config.addinivalue_line("markers", "large: N = 128 rows, run with --bench-large")
    config.addinivalue_line("markers", "numpy: plain-numpy rows, run with --bench-numpy")


def pytest_generate_tests(metafunc):
    if "threads" in metafunc.fixturenames:
        threads = [int(t) for t in metafunc.config.getoption("--bench-threads").split(",")]
        metafunc.parametrize("threads", threads, ids=[f"T{t}" for t in threads])


def pytest_collection_modifyitems(config, items):
    skip_large = pytest.mark.skip(reason="N = 128 rows are slow: run with --bench-large")
    skip_numpy = pytest.mark.skip(reason="numpy rows are slow: run with --bench-numpy")
    for item in items:
        if "large" in item.keywords and not config.getoption("--bench-large"):
            item.add_marker(skip_large)
        if "numpy" in item.keywords and not config.getoption("--bench-numpy"):
            item.add_marker(skip_numpy)
