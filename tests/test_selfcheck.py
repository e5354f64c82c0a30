import json

from pulptrain import selfcheck


def test_selfcheck_reports_every_kernel_and_step_within_tolerance(tmp_path):
    out = tmp_path / "selfcheck.json"
    assert selfcheck.main(["--batch", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    kernels = {(r["kernel"], r["step"]) for r in data["rows"]}
    for kind in ["conv2d", "depthwise_conv2d", "pointwise_conv2d", "linear"]:
        for step in ["forward", "grad_input", "grad_weight", "bias_grad"]:
            assert (kind, step) in kernels
    assert data["worst_relative_error"] <= selfcheck.TOLERANCE
