"""The layers point one way: hardware below, the stages of the flow above, no import cycles.

The flow is sensor -> pipeline -> coach -> publisher -> display, and ``roller/`` is cut into
packages by stage (``base``, ``contract``, ``pipeline``, ``recordings``, ``coaching``, ``mqtt``,
``service``, ``display``, ``commands``). These tests build the graph of the modules' imports
from their source (the abstract syntax tree, so an import hidden inside a function counts as
much as one at the top of a file; imports under ``if TYPE_CHECKING:`` are left out, as they
never run) and hold it against :data:`ALLOWED`, a package-to-package table of what may import
what; ``firmware_bridge`` imports nothing from ``roller``, so it can be used and tested alone.
``tests/test_process_imports.py`` checks the same at run time, process by process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def _package(module: str) -> str:
    """The stage a module belongs to: ``roller.coaching.coach`` -> ``coaching``; the hardware
    layer is one package, ``firmware_bridge``; ``roller`` itself (the version) and
    ``roller.cli`` (the command) stand apart."""
    parts = module.split(".")
    if parts[0] == "firmware_bridge":
        return "firmware_bridge"
    if len(parts) == 1:
        return "version"  # roller/__init__.py: the version, nothing else
    return parts[1].removesuffix(".py")


ALLOWED: dict[str, set[str]] = {
    # package: the other packages it may import (at any depth, lazy imports included)
    "firmware_bridge": set(),
    "base": {"firmware_bridge"},  # the settings machinery and the exception root live there
    "contract": {"base"},
    "pipeline": {"base", "firmware_bridge"},  # firmware_bridge.physics (g), the simulator
    "recordings": {"base", "pipeline", "firmware_bridge"},
    "coaching": {"base", "contract", "pipeline", "firmware_bridge"},  # firmware_bridge.clock
    "mqtt": {"base", "contract", "pipeline", "version",  # roller.__version__
             "firmware_bridge"},  # firmware_bridge.clock: the outbox takes the clock seam
    "service": {"base", "contract", "pipeline", "coaching", "mqtt", "firmware_bridge"},
    "display": {"base", "contract", "mqtt"},  # mqtt: the client recipe, not the publisher
    "commands": {"base", "contract", "pipeline", "recordings", "coaching", "mqtt", "service",
                 "display", "firmware_bridge", "version"},
    "cli": {"base", "commands", "version"},
    "version": set(),
}
"""What may import what: the flow sensor -> pipeline -> coach -> publisher -> display, read as
a table. A package not listed here fails the test below, so a new stage must be placed."""


def test_the_graph_sees_imports_at_every_depth() -> None:
    # A guard on the graph itself: function-level and relative imports are found.
    assert "firmware_bridge.imu" in GRAPH["firmware_bridge.sensor"]
    assert "roller.pipeline" in GRAPH["roller.commands.analyze"]  # imported inside run()
    assert len(GRAPH) > 40


def test_every_package_is_placed_in_the_table() -> None:
    assert {_package(m) for m in GRAPH} <= set(ALLOWED)


PENDING = {"roller.service.config -> roller.display.server"}
"""Known breaches being removed (issue 15: each process reads its own config sections)."""


def test_each_package_imports_only_what_the_table_allows() -> None:
    wrong = sorted(f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
                   if _package(a) != _package(b) and _package(b) not in ALLOWED[_package(a)])
    assert set(wrong) == PENDING


def test_the_table_points_one_way() -> None:
    # The table itself has no cycle: no two stages may import each other, however indirectly.
    assert _cycles({k: v - {k} for k, v in ALLOWED.items()}) == []


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
"""None: the service takes its config sections, not the whole config, so roller.service.config
(which
lists every section) is imported by the composition root alone."""


def test_no_cycles_through_type_annotations_beyond_the_known_one() -> None:
    # A cycle made only of TYPE_CHECKING imports runs fine but still ties two modules together.
    assert _cycles(import_graph(type_checking=True)) == KNOWN_TYPE_ONLY_CYCLES
