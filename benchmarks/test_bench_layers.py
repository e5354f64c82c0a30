"""One benchmark group per (layer, step, N, threads): pulptrain, torch and numpy side by side.

Run (see benchmarks/README.md):  python -m pytest benchmarks --benchmark-json=bench.json
"""

import pytest

from benchmarks import cases


def _batch_param(n):
    return pytest.param(n, id=f"N{n}", marks=[pytest.mark.large] if n == 128 else [])


def _impl_param(impl):
    return pytest.param(impl, id=impl, marks=[pytest.mark.numpy] if impl == "numpy" else [])


@pytest.mark.parametrize("impl", [_impl_param(i) for i in cases.IMPLS])
@pytest.mark.parametrize("n", [_batch_param(n) for n in cases.BATCHES])
@pytest.mark.parametrize("step", cases.STEPS)
@pytest.mark.parametrize("layer", cases.LAYERS, ids=[layer.name for layer in cases.LAYERS])
def test_layer_step(benchmark, layer, step, n, impl, threads):
    if impl == "torch" and cases.torch is None:
        pytest.skip("torch is not installed: no torch baseline for this row")
    cases.set_threads(threads)
    fn = cases.make_call(impl, layer, step, n)
    benchmark.group = f"{layer.name} | {step} | N={n} | threads={threads}"
    benchmark.extra_info.update(layer=layer.name, step=step, n=n, threads=threads, impl=impl, flops=2 * layer.macs(n))
    benchmark(fn)


@pytest.mark.parametrize("impl", ["pulptrain", "torch"])
@pytest.mark.parametrize("n", [_batch_param(n) for n in cases.BATCHES])
def test_adaptive_stage(benchmark, n, impl, threads):
    """Whole training step of the adaptive stage (cases.STAGE_LAYERS + classifier): fwd + both grads."""
    if impl == "torch" and cases.torch is None:
        pytest.skip("torch is not installed: no torch baseline for this row")
    cases.set_threads(threads)
    fn = cases.make_stage_call(impl, n)
    benchmark.group = f"adaptive stage | train step | N={n} | threads={threads}"
    benchmark.extra_info.update(
        layer="adaptive stage conv5_1..fc",
        step="train step",
        n=n,
        threads=threads,
        impl=impl,
        flops=2 * cases.stage_macs(n),
    )
    benchmark(fn)


@pytest.mark.parametrize("impl", ["pulptrain", "torch", _impl_param("numpy")])
def test_matmul_512(benchmark, impl, threads):
    """Square 512^3 matmul (goal: pulptrain >= 90 % of one core's peak)."""
    if impl == "torch" and cases.torch is None:
        pytest.skip("torch is not installed: no torch baseline for this row")
    cases.set_threads(threads)
    fn = cases.make_matmul_call(impl)
    benchmark.group = f"matmul 512^3 | forward | N=1 | threads={threads}"
    benchmark.extra_info.update(
        layer="matmul 512x512x512", step="forward", n=1, threads=threads, impl=impl, flops=2 * 512**3
    )
    benchmark(fn)
