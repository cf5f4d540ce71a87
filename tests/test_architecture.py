"""The package's shape: every module imports on its own, no import cycles, rooms stay apart.

The import graph and the Slurm check read the source with ``ast``; only the first test imports
heal_batch, in a subprocess. An edge A -> B means module A imports module B (``from B import x``,
or ``from A's package import B`` when B is a module); imports under ``if TYPE_CHECKING:`` and
inside functions are not taken at import time, so they are no edges of the cycle check.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLURM_ROOM = "heal_batch.executors.slurm"
# What runs inside a task must not know how it was launched (STYLE.md: one small interface).
LAUNCH_SIDE = ("heal_batch.pipeline.worker", "heal_batch.pipeline.launch", "heal_batch.executors")
# A string that names a Slurm variable, as os.environ / getenv / startswith take it.
SLURM_VARIABLE = re.compile(r"SLURM_\w*")
IMPORT_EACH = """
import importlib, json, sys, traceback

failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] == "heal_batch"]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-4)
print(json.dumps(failed))
"""


def package_modules() -> dict[str, Path]:
    """Dotted name -> source file of every module in heal_batch."""
    found = {}
    for path in sorted((REPO / "heal_batch").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = package_modules()


def test_every_module_imports_as_the_first_heal_batch_import():
    """Each module imported with no other heal_batch module loaded: a cycle or a missing
    dependency shows up whichever module a caller (worker, CLI, test) happens to import first."""
    failed = _import_each(list(MODULES))
    # A failure after many imports in one process is confirmed in a fresh process of its own.
    confirmed = {name: error for name in failed for error in _import_each([name]).values()}
    assert not confirmed, "\n\n".join(
        f"{name} fails to import:\n{error}" for name, error in confirmed.items()
    )


def test_no_import_cycles():
    graph = {name: imported_modules(name, module_level=True) for name in MODULES}
    cycles = [_cycle_through(component, graph) for component in _strong_components(graph)]
    assert not cycles, "import cycles (module-level imports):\n" + "\n".join(
        "  " + "  ->  ".join(_file(name) for name in cycle) for cycle in cycles
    )


def test_only_the_slurm_room_names_slurm_variables():
    """Stages and training get ranks, world size and threads as plain values from the worker."""
    outside = {name: path for name, path in MODULES.items() if not _inside(name, SLURM_ROOM)}
    found = [hit for path in outside.values() for hit in slurm_variables(path)]
    assert not found, f"SLURM_ variables outside {SLURM_ROOM}:\n" + "\n".join(found)


def test_stages_do_not_import_the_launcher_or_executors():
    stages = [name for name in MODULES if _inside(name, "heal_batch.stages")]
    found = [
        f"{_file(name)} imports {target}"
        for name in stages
        for target in sorted(imported_modules(name, module_level=False))
        if any(_inside(target, forbidden) for forbidden in LAUNCH_SIDE)
    ]
    assert not found, "stages must not know how they are launched:\n" + "\n".join(found)


def test_the_checks_see_what_they_look_for():
    """The helpers above on known source, so a passing check is not a blind one."""
    assert "heal_batch.store.manifests" in imported_modules("heal_batch.pipeline.launch", True)
    relative = ast.parse("from ..store import layout").body[0]
    assert _absolute(relative, "heal_batch.pipeline") == "heal_batch.store"
    source = "if TYPE_CHECKING:\n    import a\nelse:\n    import b\ndef f():\n    import c\n"
    tree = ast.parse(source)
    assert [alias.name for node in _module_level(tree.body) for alias in node.names] == ["b"]
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set()}
    assert _strong_components(graph) == [{"a", "b"}]
    assert _cycle_through({"a", "b"}, graph) == ["a", "b", "a"]
    assert SLURM_VARIABLE.fullmatch("SLURM_PROCID")
    assert not SLURM_VARIABLE.fullmatch("e.g. $SLURM_ARRAY_TASK_ID")  # help text, not a lookup


# ------------------------------------------------------------------ reading the source


def imported_modules(name: str, module_level: bool) -> set[str]:
    """The heal_batch modules that module ``name`` imports: those run at import time when
    ``module_level`` (not under ``if TYPE_CHECKING:``, not inside functions), else every one."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    nodes = _module_level(tree.body) if module_level else ast.walk(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.add(child if child in MODULES else base)
    return {target for target in targets if target in MODULES and target != name}


def slurm_variables(path: Path) -> list[str]:
    """``file:line: 'SLURM_X'`` for each string (docstrings aside) that is a Slurm variable name."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree) if _has_docstring(node)}
    return [
        f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SLURM_VARIABLE.fullmatch(node.value)
    ]


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _module_level(block)
        elif isinstance(node, ast.With | ast.ClassDef | ast.For | ast.While):
            yield from _module_level(node.body)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module a ``from ... import`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def _has_docstring(node: ast.AST) -> bool:
    scopes = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    if not isinstance(node, scopes) or not node.body or not isinstance(node.body[0], ast.Expr):
        return False
    first = node.body[0].value
    return isinstance(first, ast.Constant) and isinstance(first.value, str)


# ------------------------------------------------------------------ graph helpers


def _strong_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one module (each holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = {stack.pop()}
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _cycle_through(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """One shortest cycle inside a strongly connected component, as [a, b, ..., a]."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for target in sorted(graph[node] & component):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                frontier.append(target)
    raise AssertionError(f"{component} is not strongly connected")


def _import_each(names: list[str]) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _file(name: str) -> str:
    return str(MODULES[name].relative_to(REPO))
