"""Paired statistics of a sweep: every quantized run against the FP32 run of the same seed, stream and
pretrained stage (numpy and the standard library only).

:func:`paired_differences` pairs the runs; :func:`paired_interval` gives the mean paired difference with
its 95 % confidence interval by the paired t test (Student's t quantile from :func:`t_quantile`) and by a
percentile bootstrap over the pairs (:func:`bootstrap_interval`, fixed seed, so the table is reproducible).
"""

import math

import numpy as np

__all__ = ["t_cdf", "t_quantile", "paired_interval", "bootstrap_interval", "paired_differences"]

FP32_BITS = 32
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def _betacf(a, b, x):
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b), x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    tail = 0.5 * _betainc(0.5 * df, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p, df):
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def bootstrap_interval(values, level=0.95, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED):
    """Percentile bootstrap interval of the mean of ``values`` (resampling the values with replacement)."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_interval(differences, level=0.95):
    """Summary of paired differences: ``n``, ``mean``, ``sd`` (sample), ``sem``, the paired-t interval
    ``ci`` = mean +- t(level, n - 1) * sem as ``(low, high)`` and ``half_width``, and the bootstrap interval
    ``bootstrap_ci``. With one pair the intervals are None."""
    d = np.asarray(differences, np.float64)
    n = len(d)
    if n == 0:
        raise ValueError("paired_interval needs at least one difference")
    mean = float(d.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "sem": None, "ci": None, "half_width": None, "bootstrap_ci": None}
    sd = float(d.std(ddof=1))
    sem = sd / math.sqrt(n)
    half = t_quantile(0.5 + level / 2.0, n - 1) * sem
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "sem": sem,
        "ci": (mean - half, mean + half),
        "half_width": half,
        "bootstrap_ci": bootstrap_interval(d, level),
    }


def paired_differences(rows, metric):
    """``{(bits, lr_layer, replays): [(seed, run[metric] - fp32[metric]), ...]}`` for every quantized run
    whose FP32 twin (same seed, LR layer and buffer size) is among ``rows``; sorted by seed."""
    fp32 = {(r["seed"], r["lr_layer"], r["replays"]): r for r in rows if r["bits"] == FP32_BITS}
    pairs = {}
    for r in rows:
        twin = fp32.get((r["seed"], r["lr_layer"], r["replays"]))
        if r["bits"] != FP32_BITS and twin is not None:
            pairs.setdefault((r["bits"], r["lr_layer"], r["replays"]), []).append((r["seed"], r[metric] - twin[metric]))
    return {k: sorted(v) for k, v in pairs.items()}
