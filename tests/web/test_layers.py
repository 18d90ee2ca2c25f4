"""The web layer's imports run one way: no cycle, and no handler imports another handler.

Until import-linter holds these as contracts (issue 13), this builds the import graph of
``web/`` with ``ast`` (imports under ``TYPE_CHECKING`` and inside functions count too: a cycle
for the type checker is a cycle for the reader) and checks it.
"""

from __future__ import annotations

import ast
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"
HANDLERS = {"accounts", "alerts", "legacy", "ops", "prices"}
# Lowest first: a module may import only modules of a lower layer (a handler never imports
# another handler); the first layer imports nothing of web/.
LAYERS: list[set[str]] = [
    {"auth", "batcher", "validation", "problems"},
    {"context", "spec", "users"},
    {"http", "markets", "openapi"},
    {"alert_core"},
    HANDLERS,
    {"fastlane"},
    {"app"},
    {"server"},
]


def _imports(path: Path) -> set[str]:
    """The ``web`` modules that ``path`` imports, by name within the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "web":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("web."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("web."))
    return found - {path.stem}


def _graph() -> dict[str, set[str]]:
    return {path.stem: _imports(path) for path in WEB.glob("*.py") if path.stem != "__init__"}


def test_the_web_import_graph_has_no_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError(" -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_every_module_imports_only_below_it() -> None:
    graph = _graph()
    level = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    assert set(graph) == set(level), "place each web module in LAYERS"
    for name, targets in graph.items():
        for target in targets:
            assert level[target] < level[name], f"web/{name}.py imports web/{target}.py"
