import numpy as np
import pytest

import pulptrain


@pytest.fixture(autouse=True)
def _restore_threads():
    """Every test starts and ends with the default team of one core."""
    pulptrain.set_num_threads(1)
    yield
    pulptrain.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)
