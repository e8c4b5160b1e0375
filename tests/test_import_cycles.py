"""No import cycles: none at module level anywhere in the package, and none at
all (imports inside functions included) among the ``lifecycle`` modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import otel_slowstack

pytestmark = pytest.mark.unit

ROOT = Path(otel_slowstack.__file__).resolve().parent


def modules() -> dict:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def graph(nested: bool) -> dict:
    """Module -> the package's modules it imports (at module level, or anywhere)."""
    known = modules()
    edges = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        nodes = ast.walk(tree) if nested else tree.body
        targets = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in known else node.module)
        edges[name] = {t for t in targets if t in known and t != name}
    return edges


def cycle(edges: dict) -> list:
    """One cycle, as a list of modules, or [] if there is none."""
    state: dict = {}
    path: list = []

    def visit(node: str) -> list:
        state[node] = "open"
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_no_module_level_import_cycle_in_the_package():
    assert cycle(graph(nested=False)) == []


def test_no_import_cycle_at_all_inside_lifecycle():
    prefix = "otel_slowstack.lifecycle"
    edges = {m: {t for t in ts if t.startswith(prefix)} for m, ts in graph(nested=True).items() if m.startswith(prefix)}
    assert cycle(edges) == []
