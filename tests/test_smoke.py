import numpy as np

import pulptrain
from pulptrain import kernels as K


def test_matmul_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 5)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(K.matmul(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    assert pulptrain.get_num_threads() >= 1
