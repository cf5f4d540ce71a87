"""Package-level contracts of heal_batch.method: stdlib-only imports, runnable docstring
examples."""

from __future__ import annotations

import ast
import doctest
import importlib
import sys
from pathlib import Path

import pytest

METHOD_DIR = Path(__file__).resolve().parents[2] / "heal_batch" / "method"
# math-verify is how answers are checked; heal_batch.records holds the stdlib-only float codec.
ALLOWED = {"math_verify", "heal_batch.records"}
MODULES = sorted(p.stem for p in METHOD_DIR.glob("*.py") if p.stem != "__init__")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module)
    return roots


@pytest.mark.parametrize("name", MODULES)
def test_imports_only_stdlib_and_the_method_package(name):
    for module in _imported_roots(METHOD_DIR / f"{name}.py"):
        root = module.split(".")[0]
        ok = root in sys.stdlib_module_names or root == "__future__" or module in ALLOWED
        assert ok or module.startswith("heal_batch.method"), f"{name}.py imports {module}"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"heal_batch.method.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
