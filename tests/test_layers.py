"""The layers point one way: hardware below, the application above, and no import cycles.

The flow is sensor -> pipeline -> coach -> publisher -> display. These tests build the graph of
the modules' imports from their source (the abstract syntax tree, so an import hidden inside a
function counts as much as one at the top of a file; imports under ``if TYPE_CHECKING:`` are
left out, as they never run) and check the rules a newcomer relies on:

* ``firmware_bridge`` imports nothing from ``roller``: it can be used and tested alone;
* no module imports itself through others (no cycles);
* the display knows neither the coach nor the service (it only hears them over MQTT);
* the pipeline knows nothing of the coach, the service, the publisher or the display.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("firmware_bridge", "roller")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES
            for p in sorted((ROOT / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, *, type_checking: bool = False,
             ) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth; those under ``if TYPE_CHECKING``
    only with ``type_checking``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom,
             modules: dict[str, Path]) -> set[str]:
    """The project modules one import statement loads (``from a import b`` is module ``a.b``
    when that is a module, else ``a``)."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                      for alias in node.names]
    for candidate in candidates:
        while candidate and candidate not in modules:  # `import a.b.c` of a non-module name
            candidate = candidate.rpartition(".")[0]
        if candidate:
            found.add(candidate)
    return found


def import_graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in the file; the imports made only
    for type annotations with ``type_checking``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in _imports(tree, type_checking=type_checking):
            targets |= _targets(name, path, node, modules)
        graph[name] = targets - {name}
    return graph


GRAPH = import_graph()


def _edges(source: str, target: str) -> list[str]:
    """Imports from modules in package ``source`` of modules in package ``target``."""
    def inside(module: str, package: str) -> bool:
        return module == package or module.startswith(package + ".")

    return sorted(f"{a} -> {b}" for a, targets in GRAPH.items() if inside(a, source)
                  for b in targets if inside(b, target))


def test_the_graph_sees_imports_at_every_depth() -> None:
    # A guard on the graph itself: function-level and relative imports are found.
    assert "firmware_bridge.imu" in GRAPH["firmware_bridge.sensor"]
    assert "roller.pipeline" in GRAPH["roller.commands.analyze"]  # imported inside run()
    assert len(GRAPH) > 40


def test_the_hardware_layer_imports_nothing_from_the_application() -> None:
    assert _edges("firmware_bridge", "roller") == []


@pytest.mark.parametrize("forbidden", ["roller.coach", "roller.service"])
def test_the_display_knows_neither_the_coach_nor_the_service(forbidden: str) -> None:
    assert _edges("roller.display", forbidden) == []


@pytest.mark.parametrize("forbidden", ["roller.coach", "roller.service", "roller.publisher",
                                       "roller.display"])
def test_the_pipeline_knows_nothing_downstream(forbidden: str) -> None:
    assert _edges("roller.pipeline", forbidden) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_hardware_module_imports_with_the_application_absent() -> None:
    # The same rule at run time (it also catches an importlib call the graph cannot see):
    # with `roller` made unimportable, every firmware_bridge module still imports.
    names = sorted(m for m in GRAPH if m.split(".")[0] == "firmware_bridge")
    code = ("import importlib, sys\nsys.modules['roller'] = None\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "assert not [m for m in sys.modules if m.startswith('roller.')]\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


KNOWN_TYPE_ONLY_CYCLES: list[list[str]] = []
"""None: the service takes its config sections, not the whole config, so roller.config (which
lists every section) is imported by the composition root alone."""


def test_no_cycles_through_type_annotations_beyond_the_known_one() -> None:
    # A cycle made only of TYPE_CHECKING imports runs fine but still ties two modules together.
    assert _cycles(import_graph(type_checking=True)) == KNOWN_TYPE_ONLY_CYCLES
