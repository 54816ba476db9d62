"""No two modules of ``rules`` import each other, directly or around a loop, not even inside a
function: a loop means two jobs in one place (``batch`` and ``swarm`` once were one)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes inside ``if TYPE_CHECKING:`` blocks: annotations only, never run."""
    return {
        inner
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for inner in ast.walk(node)
    }


def _imports(modules: set[str], path: Path) -> set[str]:
    """The modules of ``modules`` that ``path`` imports anywhere in its code (type-only
    imports aside: a type named in an annotation couples nothing at run time)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    skipped = _type_only(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in (ROOT / "rules").rglob("*.py")}
    modules = set(paths)
    # A package's face (its __init__) hands nothing on here, so an edge to it is no loop.
    return {name: _imports(modules, path) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every loop found by a depth-first walk, each once, as the modules around it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append(path[path.index(target) :])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_walk_finds_a_loop_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_rules_has_no_import_loop():
    graph = import_graph()
    assert "rules.deploy.batch.swarm" in graph  # the graph reads the tree it should
    assert cycles(graph) == []


# The floors of rules/, top first (docs/ARCHITECTURE.md); the ground floor holds the modules
# directly in rules/ (errors, console, fsutil, paths, platforms).
FLOORS = ("cli", "deploy", "graph", "stages", "files", "docker")


def _floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS.index(parts[1]) if len(parts) > 1 and parts[1] in FLOORS else len(FLOORS)


def test_rules_packages_import_only_the_floors_below():
    upward = sorted(
        (module, target)
        for module, targets in import_graph().items()
        for target in targets
        if _floor(target) < _floor(module)
    )
    assert _floor("rules.cli.main") < _floor("rules.docker.engine") < _floor("rules.errors")
    assert upward == []
