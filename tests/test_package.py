"""The package as a user meets it: lazy submodules, type marker, declared dependencies."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

import pulptrain

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_submodules_load_on_first_attribute_access():
    code = (
        "import sys, pulptrain\n"
        "assert 'pulptrain.nn' not in sys.modules, 'submodules must load lazily'\n"
        "assert pulptrain.optim.SGD.__name__ == 'SGD'\n"
        "for name in ('nn', 'models', 'quant', 'cl', 'kernels'):\n"
        "    assert getattr(pulptrain, name).__name__ == 'pulptrain.' + name\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pulptrain.nope  # noqa: B018


def test_py_typed_marker_ships_with_the_package():
    assert (pathlib.Path(pulptrain.__file__).parent / "py.typed").is_file()


def test_every_third_party_import_is_declared():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("-", "_") for spec in meta["dependencies"]
    }
    optional = {
        re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("-", "_")
        for specs in meta.get("optional-dependencies", {}).values()
        for spec in specs
    }
    stdlib = set(sys.stdlib_module_names)
    undeclared = {}
    for path in (ROOT / "pulptrain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "pulptrain" and top not in declared:
                    # an optional extra is fine only where the import is guarded (inside a function)
                    undeclared.setdefault(top, []).append(str(path.relative_to(ROOT)))
    assert set(undeclared) <= optional, f"imported but not declared in pyproject.toml: {undeclared}"
