"""pytest-benchmark options for the pulptrain benchmark suites.

Defaults keep a run short on a 2-core box: one thread, N in {1, 16}, pulptrain and torch only.
  --bench-threads=1,2     team sizes to run (pulptrain and torch both use it)
  --bench-large           also run N = 128 (slow: minutes)
  --bench-numpy           also run the plain-numpy implementations (slow: numpy convs are 2-10x slower)
"""

import os

# numpy's BLAS must not start its own thread pool behind the team size under test.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from benchmarks import cases  # noqa: E402,F401  (tunes malloc before any benchmark allocates)


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
