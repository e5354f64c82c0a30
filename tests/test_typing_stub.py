"""The type stub pulptrain/_C.pyi agrees with the compiled module it describes.

The stub must declare the module's public names, and each function with the parameter names, order, kinds
(positional / keyword-only) and defaults of the runtime signature and of the signature Cython embeds as the
docstring's first line. It must also be exactly what tools/gen_stub.py writes, so that after a def changes
in _C.pyx or a .pxi file the fix is to rebuild and run ``python3 tools/gen_stub.py``.
"""

import ast
import importlib.util
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import pulptrain._C as C

REPO_ROOT = Path(__file__).resolve().parents[1]
STUB_PATH = REPO_ROOT / "pulptrain" / "_C.pyi"
REGENERATE = "rebuild, then regenerate the stub with: python3 tools/gen_stub.py"

RUNTIME_NAMES = sorted(n for n in dir(C) if not n.startswith("_") and not inspect.ismodule(getattr(C, n)))
RUNTIME_FUNCTIONS = [n for n in RUNTIME_NAMES if callable(getattr(C, n))]


def _stub_tree():
    return ast.parse(STUB_PATH.read_text(), filename=str(STUB_PATH))


def _stub_functions():
    return {node.name: node for node in _stub_tree().body if isinstance(node, ast.FunctionDef)}


def _stub_public_names():
    names = set()
    for node in _stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def _default(node):
    """A default as (type, value), so that 1 and True (or 0 and 0.0) differ."""
    value = ast.literal_eval(node)
    return type(value), value


def _params_of_def(func):
    """[(name, kind, default)] of a parsed def; default is inspect.Parameter.empty when there is none."""
    args, empty, kind = func.args, inspect.Parameter.empty, inspect.Parameter
    positional = args.posonlyargs + args.args
    defaults = [empty] * (len(positional) - len(args.defaults)) + [_default(d) for d in args.defaults]
    params: list[tuple[str, Any, Any]] = [
        (a.arg, kind.POSITIONAL_ONLY if i < len(args.posonlyargs) else kind.POSITIONAL_OR_KEYWORD, d)
        for i, (a, d) in enumerate(zip(positional, defaults))
    ]
    if args.vararg:
        params.append((args.vararg.arg, kind.VAR_POSITIONAL, empty))
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        params.append((a.arg, kind.KEYWORD_ONLY, empty if d is None else _default(d)))
    if args.kwarg:
        params.append((args.kwarg.arg, kind.VAR_KEYWORD, empty))
    return params


def _params_of_signature(signature):
    empty = inspect.Parameter.empty
    return [
        (p.name, p.kind, empty if p.default is empty else (type(p.default), p.default))
        for p in signature.parameters.values()
    ]


def _embedded_def(name):
    """The signature Cython embedded as the docstring's first line, parsed as a def; None when the docstring
    does not start with one (a function whose __doc__ is assigned after its def)."""
    first_line = (getattr(C, name).__doc__ or "").split("\n", 1)[0]
    if not first_line.startswith(name + "("):
        return None
    # C-typed arguments are embedded as "int64_t M": keep the argument name only.
    python_line = re.sub(r"\b[A-Za-z_]\w*\s+(?=[A-Za-z_]\w*\s*[,=)])", "", first_line.replace(" not None", ""))
    return ast.parse(f"def {python_line}: ...").body[0]


def test_stub_declares_the_public_names_of_the_module():
    stub_names = _stub_public_names()
    missing, extra = sorted(set(RUNTIME_NAMES) - stub_names), sorted(stub_names - set(RUNTIME_NAMES))
    assert not missing and not extra, f"pulptrain._C.pyi misses {missing}, declares unknown {extra}; {REGENERATE}"


@pytest.mark.parametrize("name", RUNTIME_FUNCTIONS)
def test_stub_signature_matches_runtime(name):
    stub_def = _stub_functions().get(name)
    assert stub_def is not None, f"pulptrain._C.pyi has no def {name}; {REGENERATE}"
    stub_params = _params_of_def(stub_def)
    runtime_params = _params_of_signature(inspect.signature(getattr(C, name)))
    assert stub_params == runtime_params, f"{name}: stub and runtime signatures differ; {REGENERATE}"
    embedded = _embedded_def(name)
    if embedded is not None:
        assert stub_params == _params_of_def(embedded), f"{name}: stub and embedded signature differ; {REGENERATE}"


def test_embedded_signatures_are_checked():
    """The comparison above reads most functions' embedded signatures (all but those whose __doc__ is
    replaced after the def), so a parser that silently matched nothing would fail here."""
    embedded = [n for n in RUNTIME_FUNCTIONS if _embedded_def(n) is not None]
    assert len(embedded) >= len(RUNTIME_FUNCTIONS) // 2, embedded


def test_stub_is_the_generator_output():
    spec = importlib.util.spec_from_file_location("gen_stub", REPO_ROOT / "tools" / "gen_stub.py")
    assert spec is not None and spec.loader is not None
    gen_stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_stub)
    assert STUB_PATH.read_text() == gen_stub.render(C), f"pulptrain/_C.pyi is out of date; {REGENERATE}"
