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


def test_infinities_and_integers_are_written_exactly():
    text = gen_golden.c_floats("v", np.array([np.inf, -np.inf, 2.0], dtype=np.float32))
    assert re.findall(r"-?INFINITY|-?0x[0-9a-f.]+p[-+]\d+f", text) == ["INFINITY", "-INFINITY", "0x1p+1f"]
    for dtype, ctype in ((np.uint8, "uint8_t"), (np.int8, "int8_t"), (np.int32, "int32_t")):
        info = np.iinfo(dtype)
        values = np.array([info.min, -1 if info.min < 0 else 1, 0, info.max], dtype=dtype)
        text = gen_golden.c_array("v", values)
        assert text.startswith(f"static const {ctype} v[4]")
        np.testing.assert_array_equal(
            np.array(re.findall(r"-?\d+(?=[,\n])", text.split("=", 1)[1]), dtype=np.int64), values.astype(np.int64)
        )


def test_header_holds_every_case(tmp_path):
    path = tmp_path / "golden_data.h"
    gen_golden.main(str(path))
    text = path.read_text()
    cases, typed = gen_golden.cases(), gen_golden.typed_cases()
    args = [(name, size) for name, sizes in gen_golden.args_cases().items() for size in sizes]
    case_lines = re.findall(r'^    \{"([a-z0-9_.]+)", \{', text, flags=re.M)
    assert len(case_lines) == len(cases) + len(typed) + len(args)
    assert set(case_lines) == set(gen_golden.OPS.BY_NAME)  # every op of pulptrain/ops.py has a case
    steps = {(c["op"], c["step"]) for c in cases}
    for op in ("conv2d", "depthwise_conv2d", "pointwise_conv2d", "linear"):
        assert {(op, s) for s in ("forward", "grad_input", "grad_weight")} <= steps
    assert any(c.get("stride_h") == 2 and c.get("pad_h") == 1 for c in cases)
    assert any(c.get("accumulate") for c in cases)
    typed_table = text[text.index("golden_typed_cases[] = {") :]
    typed_table = typed_table[: typed_table.index("golden_args_cases[] = {")]
    assert len(re.findall(r'^    \{"([a-z0-9_.]+)", \{', typed_table, flags=re.M)) == len(typed)
    ops = {c["op"] for c in typed}
    assert {
        "int8_conv2d",
        "int8_depthwise_conv2d",
        "int8_pointwise_conv2d",
        "int8_linear",
        "int8_avg_pool2d",
        "int8_global_avg_pool2d",
    } <= ops
    for op in ("pack_bits", "unpack_bits"):
        assert {c["bits"] for c in typed if c["op"] == op} == set(range(1, 9))
        assert any(c["count"] % 8 and c["count"] > 16384 for c in typed if c["op"] == op)  # parallel, ragged end


def test_int8_reference_agrees_with_the_formula_on_hand_values():
    # acc = 10 * 3 + 2 = 32; p = 32 * 3 = 96; 96 / 2**6 = 1.5 rounds half up to 2; -96 clips to clip_min.
    acc = np.array([[32], [-32]]).reshape(2, 1)
    y = gen_golden.requant_reference(acc.T, None, [3, 3], [6, 6], (1, 255))
    np.testing.assert_array_equal(y, [[2, 1]])
    c = gen_golden.int8("int8_conv2d", 1, 1, 3, 3, 1, 3, 1, 1)
    x = np.arange(9, dtype=np.uint8).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 3, 3), dtype=np.int8)
    np.testing.assert_array_equal(
        gen_golden.int8_accumulators(c, x, w)[0, 0], [[8, 15, 12], [21, 36, 27], [20, 33, 24]]
    )


def test_operand_shapes_follow_pytorch_conv_arithmetic():
    c = gen_golden.conv("conv2d", "forward", 2, 3, 17, 17, 8, 3, 2, 1, has_bias=True)
    assert gen_golden.operand_shapes(c) == ((2, 3, 17, 17), (8, 3, 3, 3), (8,), (2, 8, 9, 9))
    dw = gen_golden.conv("depthwise_conv2d", "grad_weight", 1, 5, 7, 6, 5, 3, 2, 0)
    assert gen_golden.operand_shapes(dw) == ((1, 5, 3, 2), (1, 5, 7, 6), None, (5, 1, 3, 3))
