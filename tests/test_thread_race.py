"""Runtime settings changed on one Python thread never disturb kernel calls running on others.

Each call reads the settings (team size, matmul variant, INT8 microkernel) once, sizes its workspace from
that copy and runs with it. Here three loops call the kernels, each round from a fresh Python thread, while
another thread keeps flipping the settings: every result must equal the serial one computed with one of the
settings that were flipped through (a forced matmul variant may change float rounding; the team size and the
INT8 microkernel never change a bit). PULPTRAIN_RACE_SECONDS sets how long the race runs (default 3 s).
"""

import os
import threading
import time

import numpy as np
from conftest import randn

import pulptrain
from pulptrain import kernels as K
from pulptrain import quant as Q

RACE_SECONDS = float(os.environ.get("PULPTRAIN_RACE_SECONDS", "3"))
CALLER_LOOPS = 3
FLIPPED_TEAMS = (8, 1)
FLIPPED_VARIANTS = (None, "8x8", "4x2", "naive")


def _requant(rng, c):
    bias = rng.integers(-(2**10), 2**10, c).astype(np.int32)
    multiplier, shift = Q.quantize_multiplier(rng.uniform(0.001, 0.01, c))
    return bias, multiplier, shift


def _float_calls(rng):
    """Float kernels on shapes whose workspace grows with the team (N = 1, many pixels or channels)."""
    x, w, b = randn(rng, 1, 24, 20, 18), randn(rng, 16, 24, 3, 3), randn(rng, 16)
    dy = randn(rng, 1, 16, 10, 18)
    xp, wp = randn(rng, 2, 40, 9, 11), randn(rng, 48, 40, 1, 1)
    dyp = randn(rng, 2, 48, 9, 11)
    xl, wl, bl, dyl = randn(rng, 6, 300), randn(rng, 70, 300), randn(rng, 70), randn(rng, 6, 70)
    a, bm = randn(rng, 50, 130), randn(rng, 130, 60)
    return {
        "conv2d_forward": lambda: K.conv2d_forward(x, w, b, stride=(2, 1), padding=1),
        "conv2d_grad_input": lambda: K.conv2d_grad_input(dy, w, x.shape, stride=(2, 1), padding=1),
        "conv2d_grad_weight": lambda: K.conv2d_grad_weight(dy, x, w.shape, stride=(2, 1), padding=1),
        "pointwise_forward": lambda: K.pointwise_conv2d_forward(xp, wp, None),
        "pointwise_grad_input": lambda: K.pointwise_conv2d_grad_input(dyp, wp),
        "pointwise_grad_weight": lambda: K.pointwise_conv2d_grad_weight(dyp, xp),
        "linear_forward": lambda: K.linear_forward(xl, wl, bl),
        "linear_grad_weight": lambda: K.linear_grad_weight(dyl, xl),
        "matmul": lambda: K.matmul(a, bm),
    }


def _int8_calls(rng):
    """INT8 kernels (exact integers: one expected result whatever the settings)."""
    xd = rng.integers(0, 256, (1, 32, 30, 30)).astype(np.uint8)
    wd = rng.integers(-128, 128, (32, 1, 3, 3)).astype(np.int8)
    rqd = _requant(rng, 32)
    xc = rng.integers(0, 256, (1, 12, 16, 16)).astype(np.uint8)
    wc = rng.integers(-128, 128, (20, 12, 3, 3)).astype(np.int8)
    rqc = _requant(rng, 20)
    wpw = rng.integers(-128, 128, (24, 12, 1, 1)).astype(np.int8)
    rqp = _requant(rng, 24)
    return {
        "int8_depthwise_forward": lambda: Q.int8_depthwise_conv2d_forward(xd, wd, *rqd, stride=1, padding=1),
        "int8_conv2d_forward": lambda: Q.int8_conv2d_forward(xc, wc, *rqc, stride=1, padding=1),
        "int8_pointwise_forward": lambda: Q.int8_pointwise_conv2d_forward(xc, wpw, *rqp),
    }


def _restore_defaults():
    pulptrain.set_num_threads(1)
    K.set_matmul_variant(None)
    Q.set_int8_microkernel("auto")


def test_kernels_are_unaffected_by_settings_changed_on_other_threads():
    rng = np.random.default_rng(11)
    float_calls, int8_calls = _float_calls(rng), _int8_calls(rng)
    microkernels = Q.int8_microkernels()
    try:
        expected = {}  # name -> serial results, one per flipped variant
        for variant in FLIPPED_VARIANTS:
            K.set_matmul_variant(variant)
            for name, call in float_calls.items():
                expected.setdefault(name, []).append(call())
        K.set_matmul_variant(None)
        for name, call in int8_calls.items():
            expected[name] = [call()]
        calls = {**float_calls, **int8_calls}

        stop = threading.Event()
        errors, counts = [], [0] * CALLER_LOOPS

        def one_round(loop):
            try:
                for name, call in calls.items():
                    result = call()
                    counts[loop] += 1
                    if not any(np.array_equal(result, e) for e in expected[name]):
                        errors.append(f"{name}: result differs from every serial result")
            except Exception as e:  # pragma: no cover - reported by the assertion below
                errors.append(f"{type(e).__name__}: {e}")

        def caller(loop):
            while not stop.is_set() and not errors:
                th = threading.Thread(target=one_round, args=(loop,))  # a fresh thread (and scratch) per round
                th.start()
                th.join()

        def flipper():
            i = 0
            while not stop.is_set():
                pulptrain.set_num_threads(FLIPPED_TEAMS[i % len(FLIPPED_TEAMS)])
                K.set_matmul_variant(FLIPPED_VARIANTS[i % len(FLIPPED_VARIANTS)])
                Q.set_int8_microkernel(microkernels[i % len(microkernels)])
                i += 1
                time.sleep(0.0005)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLER_LOOPS)]
        threads.append(threading.Thread(target=flipper))
        start = time.monotonic()
        for th in threads:
            th.start()
        stop.wait(RACE_SECONDS)
        stop.set()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - start
    finally:
        _restore_defaults()
    print(f"thread race: {sum(counts)} kernel calls in {elapsed:.1f} s, {len(errors)} errors")
    assert not errors, errors[:5]
    assert all(c > 0 for c in counts), counts
