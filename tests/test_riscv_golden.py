"""The RISC-V golden-data generator (tools/riscv/gen_golden.py) on the host: it must run against the built
package (and agree with torch, which it asserts itself) and encode floats exactly. The target side runs with
`make -C tools/riscv test`."""
import importlib.util
import os
import re

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gen_golden", os.path.join(HERE, "..", "tools", "riscv", "gen_golden.py"))
gen_golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_golden)


def test_hex_literals_round_trip_exactly():
    values = np.array([0.0, -0.0, 1.0, -1.5, 0.1, 3.4028235e38, 1.1754944e-38, 1e-45], dtype=np.float32)
    text = gen_golden.c_floats("v", values)
    literals = re.findall(r"-?0x[0-9a-f.]+p[-+]\d+f", text)
    assert len(literals) == values.size
    decoded = np.array([float.fromhex(s[:-1]) for s in literals], dtype=np.float32)
    np.testing.assert_array_equal(decoded.view(np.uint32), values.view(np.uint32))


def test_header_holds_every_case(tmp_path):
    path = tmp_path / "golden_data.h"
    gen_golden.main(str(path))
    text = path.read_text()
    cases = gen_golden.cases()
    assert text.count("{{.op = OP_") == len(cases)
    steps = {(c["op"], c["step"]) for c in cases}
    for op in ("conv2d", "depthwise", "pointwise", "linear"):
        assert {(op, s) for s in ("forward", "grad_input", "grad_weight")} <= steps
    assert any(c.get("stride_h") == 2 and c.get("pad_h") == 1 for c in cases)
    assert any(c.get("accumulate") for c in cases)


def test_operand_shapes_follow_pytorch_conv_arithmetic():
    c = gen_golden.conv("conv2d", "forward", 2, 3, 17, 17, 8, 3, 2, 1, has_bias=True)
    assert gen_golden.operand_shapes(c) == ((2, 3, 17, 17), (8, 3, 3, 3), (8,), (2, 8, 9, 9))
    dw = gen_golden.conv("depthwise", "grad_weight", 1, 5, 7, 6, 5, 3, 2, 0)
    assert gen_golden.operand_shapes(dw) == ((1, 5, 3, 2), (1, 5, 7, 6), None, (5, 1, 3, 3))
