"""Writes pulptrain/_C.pyi, the type stub of the compiled kernel module, from the module itself.

Parameter names, order, kinds and defaults come from the runtime signatures of the built extension
(``inspect.signature`` of each Cython function); the annotations come from the tables below, keyed by
argument name (and by function name for return types). Run from the repository root after a build,
whenever a public def of pulptrain/_C.pyx or its .pxi files changes:

    python3 tools/gen_stub.py            # rewrites pulptrain/_C.pyi
    python3 tools/gen_stub.py --check    # exit status 1 when the committed stub is out of date

A parameter or function the tables do not cover gets ``Any`` and a warning on stderr naming it, so the
stub always regenerates; extend the tables to give it a precise type.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
STUB_PATH = REPO_ROOT / "pulptrain" / "_C.pyi"

F32 = "NDArray[np.float32]"
U8 = "NDArray[np.uint8]"
I32 = "NDArray[np.int32]"
PAIR = "int | tuple[int, int]"  # an int, or an (h, w) pair
SHAPE = "tuple[int, ...]"

# Argument name -> annotation. A default of None adds ``| None``; a bool default makes the argument a bool
# whatever its name (``grad=True`` of the losses is a flag, ``grad`` of the optimizer steps an array); ``out``
# takes the function's return type when that is one array.
ARG_TYPES = {
    **dict.fromkeys(
        "x w a b y dy bias pred target logits gamma beta running_mean running_var saved param grad exp_avg "
        "exp_avg_sq momentum_buffer out".split(),
        F32,
    ),
    **dict.fromkeys("stride padding kernel_size".split(), PAIR),
    **dict.fromkeys("lr momentum dampening weight_decay eps scale upper r_max d_max".split(), "float"),
    **dict.fromkeys("step n bits count M N K clip_min clip_max".split(), "int"),
    **dict.fromkeys("name variant".split(), "str"),
    "betas": "tuple[float, float]",
    "labels": "NDArray[np.integer[Any]]",
    "codes": U8,
    "packed": U8,
    # cl_learner_arena_bytes / cl_buffer_memory_bytes: layer specs (dicts of pulptrain.cl.stage.layer_table), the
    # learner's settings dict, sizes
    "specs": "list[dict[str, Any]]",
    "settings": "dict[str, Any]",
    **dict.fromkeys("capacity max_new min_new num_threads elements bits num_classes".split(), "int"),
}
ARG_SUFFIX_TYPES = {"_shape": SHAPE, "_out": F32}  # input_shape, weight_shape; dgamma_out, dbeta_out

# INT8 kernels (functions named int8_*): uint8 activations, int8 weights, int32 bias and requantization.
INT8_ARG_TYPES = {
    "x": U8,
    "w": "NDArray[np.int8]",
    "bias": "NDArray[np.int32] | None",
    "multiplier": "int | NDArray[np.int32]",
    "shift": "int | NDArray[np.int32]",
}

# (function, argument) -> annotation, where the name alone says too little.
ARG_OVERRIDES = {
    ("set_matmul_variant", "name"): "str | None",  # None restores the automatic per-shape choice
    ("set_depthwise_tier", "name"): "str | None",  # None restores the fastest tier per shape
    **{
        (fn, arg): annotation
        for fn in ("int8_stage_forward", "int8_stage_workspace_bytes")
        for arg, annotation in (
            ("table", I32),
            ("weights", "Sequence[NDArray[np.int8] | None]"),
            ("requant", f"Sequence[tuple[{I32}, {I32}, {I32}] | None]"),
            ("lr_step", "tuple[float, float, int] | None"),
        )
    },
    ("int8_stage_workspace_bytes", "num_threads"): "int",
}

RETURN_TYPES = {
    "adam_step": "None",
    "sgd_step": "None",
    "set_num_threads": "None",
    "set_isa": "None",
    "get_isa": "str",
    "isa_levels": "list[str]",
    "cpu_info": "dict[str, Any]",
    "set_matmul_variant": "None",
    "set_int8_microkernel": "None",
    "set_depthwise_tier": "None",
    "get_depthwise_tier": "str | None",
    "depthwise_tiers": "list[str]",
    "get_num_threads": "int",
    "parallel_backend": "str",
    "get_matmul_variant": "str | None",
    "get_int8_microkernel": "str",
    "matmul_variants": "list[str]",
    "int8_microkernels": "list[str]",
    "matmul_variant_for": "str",
    "matmul_variant_tile": "tuple[int, int]",
    "packed_size": "int",
    "matmul": F32,
    "bias_grad": F32,
    "quantize": U8,
    "dequantize": F32,
    "pack_bits": U8,
    "unpack_bits": U8,
    "int8_avg_pool2d": U8,
    "int8_global_avg_pool2d": U8,
    "int8_stage_forward": U8,
    "int8_stage_workspace_bytes": "int",
    "cross_entropy": f"tuple[float, {F32} | None]",
    "mse_loss": f"tuple[float, {F32} | None]",
    "batchnorm2d_forward_train": f"tuple[{F32}, {F32}]",  # (y, saved)
    "batchnorm2d_forward_eval": f"tuple[{F32}, {F32}]",
    "batchnorm2d_backward": f"tuple[{F32} | None, {F32}, {F32}]",  # (dx, dgamma, dbeta)
    "cl_learner_arena_bytes": "int",
    "cl_buffer_memory_bytes": "int",
}
# Name suffix -> return annotation for the layer kernels (int8_* return uint8 codes).
RETURN_SUFFIX_TYPES = ("_forward", "_grad_input", "_grad_weight")

HEADER = '''\
"""Type stub of the compiled kernel module pulptrain._C (sources: _C.pyx and the .pxi files it includes).

Generated by tools/gen_stub.py from the built module's signatures; do not edit by hand. Regenerate after a
public def changes: python3 tools/gen_stub.py
"""
'''

LINE_LENGTH = 120


def public_names(module: types.ModuleType) -> list[str]:
    """The names the stub declares: public attributes that are not modules the extension imported."""
    return sorted(n for n in dir(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n)))


def arg_annotation(func_name: str, param: inspect.Parameter, returns: str, warn: Callable[[str], None]) -> str:
    name, default = param.name, param.default
    if (func_name, name) in ARG_OVERRIDES:
        return ARG_OVERRIDES[(func_name, name)]
    if isinstance(default, bool):
        annotation = "bool"
    elif name == "out" and returns.startswith("NDArray["):
        annotation = returns
    elif func_name.startswith("int8_") and name in INT8_ARG_TYPES:
        annotation = INT8_ARG_TYPES[name]
    elif name in ARG_TYPES:
        annotation = ARG_TYPES[name]
    else:
        by_suffix = [t for suffix, t in ARG_SUFFIX_TYPES.items() if name.endswith(suffix)]
        if by_suffix:
            annotation = by_suffix[0]
        elif type(default) in (int, float, str):
            annotation = type(default).__name__
            warn(f"{func_name}: no type for argument {name!r} (add it to ARG_TYPES); using its default's, {annotation}")
        else:
            warn(f"{func_name}: no type for argument {name!r} (add it to ARG_TYPES); using Any")
            return "Any"
    optional = default is None and not annotation.endswith("| None")
    return f"{annotation} | None" if optional else annotation


def return_annotation(func_name: str, warn: Callable[[str], None]) -> str:
    if func_name in RETURN_TYPES:
        return RETURN_TYPES[func_name]
    if func_name.endswith(RETURN_SUFFIX_TYPES):
        return U8 if func_name.startswith("int8_") else F32
    warn(f"{func_name}: no return type (add it to RETURN_TYPES); using Any")
    return "Any"


def render_def(name: str, func: Callable[..., Any], warn: Callable[[str], None]) -> str:
    returns = return_annotation(name, warn)
    params = []
    previous_kind: Any = None
    for p in inspect.signature(func).parameters.values():
        if previous_kind is p.POSITIONAL_ONLY and p.kind is not p.POSITIONAL_ONLY:
            params.append("/")
        if p.kind is p.KEYWORD_ONLY and previous_kind not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL):
            params.append("*")
        text = ("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name
        text += ": " + arg_annotation(name, p, returns, warn)
        if p.default is not p.empty:
            text += " = " + repr(p.default)
        params.append(text)
        previous_kind = p.kind
    if previous_kind is inspect.Parameter.POSITIONAL_ONLY:
        params.append("/")
    one_line = f"def {name}({', '.join(params)}) -> {returns}: ..."
    if len(one_line) <= LINE_LENGTH:
        return one_line
    body = "".join(f"    {p},\n" for p in params)
    return f"def {name}(\n{body}) -> {returns}: ..."


def render(module: types.ModuleType, warn: Callable[[str], None] = lambda message: None) -> str:
    """The stub text for `module`; `warn` receives one message per argument or return type not in the tables."""
    defs, constants = [], []
    for name in public_names(module):
        obj = getattr(module, name)
        if callable(obj):
            defs.append(render_def(name, obj, warn))
        elif isinstance(obj, tuple) and all(isinstance(v, str) for v in obj):
            constants.append(f"{name}: tuple[str, ...]")
        else:
            warn(f"{name}: not a function; declared as {type(obj).__name__}")
            constants.append(f"{name}: {type(obj).__name__}")
    body = "".join(c + "\n" for c in constants) + ("\n" if constants else "") + "\n".join(defs) + "\n"
    imports = "from collections.abc import Sequence\n" if re.search(r"\bSequence\b", body) else ""
    imports += ("from typing import Any\n" if re.search(r"\bAny\b", body) else "") + "\nimport numpy as np\n"
    if "NDArray" in body:
        imports += "from numpy.typing import NDArray\n"
    return f"{HEADER}\n{imports}\n{body}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the stub is out of date")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # the package of this checkout, not an installed one
    import pulptrain._C

    text = render(pulptrain._C, warn=lambda message: print(f"gen_stub: {message}", file=sys.stderr))
    current = STUB_PATH.read_text() if STUB_PATH.exists() else None
    if args.check:
        if current != text:
            print(f"{STUB_PATH.relative_to(REPO_ROOT)} is out of date: run python3 tools/gen_stub.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        STUB_PATH.write_text(text)
        print(f"wrote {STUB_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
