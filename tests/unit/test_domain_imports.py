"""The layers' imports, read from their source: the domain imports no framework, no circle and
nothing hidden in a function; the API and the entry points reach adapters only through the
composition root (``bootstrap.py``), which alone reads nothing but what it is handed. (That every
task kind has a handler in a process that imports the composition root is checked in a fresh
interpreter: ``tests/integration/test_imports.py``.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "domain"
API = ROOT / "graphql_api"
ENTRYPOINTS = ROOT / "entrypoints"
# The domain holds the rules and talks to the world through its ports only, so it knows nothing
# of frameworks, drivers or the outer layers: adapters in infrastructure/ implement the ports and
# translate these libraries' exceptions and types into the domain's.
FORBIDDEN = {
    "strawberry", "graphql", "starlette", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "redis", "arq", "httpx",
    "infrastructure", "graphql_api", "jobs", "entrypoints", "bootstrap",
}  # fmt: skip


# The API calls use cases and reads through the ports; which adapters stand behind them is the
# composition root's choice (its ``Container`` is what the API is handed, from ``bootstrap``),
# never the API's: it imports nothing from infrastructure/.
API_MAY_IMPORT_FROM_INFRASTRUCTURE: set[str] = set()
# The entry points read the settings, configure logging and the allocator before anything is
# built; every adapter, engine, store and loop they get from ``bootstrap``.
ENTRYPOINTS_MAY_IMPORT_FROM_INFRASTRUCTURE = {
    "infrastructure.settings", "infrastructure.logging", "infrastructure.memory",
}  # fmt: skip
# Where the settings are read from the environment: the CLI, once per command, and the Alembic
# environment when someone runs `alembic` by hand (``vkcp migrate`` hands it the URL).
READS_SETTINGS = {"entrypoints.cli", "infrastructure.db.migrations.env"}


def _modules(folder: Path = DOMAIN) -> dict[str, ast.Module]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): ast.parse(path.read_text(), str(path))
        for path in sorted(folder.rglob("*.py"))
    }


def _imported(tree: ast.Module, modules: set[str]) -> set[str]:
    """Every module ``tree`` imports, wherever the import stands (``from domain import x``
    counts as importing ``domain.x``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for dependency in sorted(graph[module]):
            if state.get(dependency) == "open":
                return [*path[path.index(dependency) :], dependency]
            if dependency not in state and (found := visit(dependency)):
                return found
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_domain_imports_no_framework_or_outer_layer() -> None:
    offenders = {
        name: sorted(m for m in _imported(tree, set()) if m.split(".")[0] in FORBIDDEN)
        for name, tree in _modules().items()
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_api_imports_no_adapter_but_the_composition_root() -> None:
    offenders = {
        name: sorted(
            m
            for m in _imported(tree, set())
            if m.split(".")[0] in ("infrastructure", "entrypoints") and m not in API_MAY_IMPORT_FROM_INFRASTRUCTURE
        )
        for name, tree in _modules(API).items()
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_entry_points_build_nothing_but_through_the_composition_root() -> None:
    offenders = {
        name: sorted(
            m
            for m in _imported(tree, set())
            if m.split(".")[0] == "infrastructure" and m not in ENTRYPOINTS_MAY_IMPORT_FROM_INFRASTRUCTURE
        )
        for name, tree in _modules(ENTRYPOINTS).items()
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_settings_are_read_in_the_entry_points_only() -> None:
    """Everything else is handed its ``Settings``: read once per process, never at import."""
    readers = set()
    for folder in (DOMAIN, API, ENTRYPOINTS, ROOT / "infrastructure", ROOT / "jobs"):
        for name, tree in _modules(folder).items():
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
            if any(getattr(c.func, "id", getattr(c.func, "attr", None)) == "Settings" for c in calls):
                readers.add(name)
    root = ast.parse((ROOT / "bootstrap.py").read_text())
    if any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Settings" for n in ast.walk(root)):
        readers.add("bootstrap")
    assert readers == READS_SETTINGS


def test_the_domain_imports_at_the_top_of_each_module_only() -> None:
    """An import inside a function is how an import circle hides; there should be none to hide."""
    nested = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                nested += [
                    f"{name}.{node.name}" for inner in ast.walk(node) if isinstance(inner, ast.Import | ast.ImportFrom)
                ]
    assert nested == []


def test_the_domain_modules_import_one_another_without_a_circle() -> None:
    modules = _modules()
    graph = {
        name: {m for m in _imported(tree, set(modules)) if m in modules and m != name} for name, tree in modules.items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
