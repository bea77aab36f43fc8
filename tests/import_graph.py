"""The import graph of `orchestration/`, and the layering it must keep (docs/architecture.md).

    python tests/import_graph.py          # every module, its floor, and what it imports
    python tests/import_graph.py --check  # only the problems; exit 1 if there are any

Every import counts, also one inside a function. Floors, top down: a module imports only from
floors below its own, or from its own package on the same floor; and there is no circle."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "orchestration"

# (floor, module prefixes): a module's floor is the first entry whose prefix it starts with.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("orchestration.cli",)),
    # the web app (`meterline serve`): reads the readers' snapshot; imports nothing of the runs
    ("web", ("orchestration.web",)),
    ("definitions", ("orchestration.definitions",)),
    ("domains", ("orchestration.ingestion", "orchestration.billing")),
    ("instance", ("orchestration.instance", "orchestration.resources",
                  "orchestration.progress")),
    ("catalog", ("orchestration.catalog",)),
    ("lib", ("orchestration.lib", "orchestration")),
)
RANK = {name: i for i, (name, _) in enumerate(FLOORS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def floor_of(module: str) -> str:
    for name, prefixes in FLOORS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    raise ValueError(f"{module}: on no floor")


def room_of(module: str) -> str:
    """The package a module belongs to on its floor (orchestration.billing, orchestration.cli)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports (`from a import b` counts a.b when it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name.startswith("orchestration"):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    edges = {}
    for name, path in sorted(paths.items()):
        own_packages = {name.rpartition(".")[0]} | ({name} if path.name == "__init__.py" else set())
        edges[name] = {m for m in imports_of(path, modules) if m != name and m not in own_packages
                       and not (path.name == "__init__.py" and m == name)}
    return edges


def problems(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            a, b = floor_of(module), floor_of(target)
            if RANK[b] < RANK[a] or (RANK[b] == RANK[a] and room_of(module) != room_of(target)
                                     and a != "lib"):
                found.append(f"upward or sideways: {module} ({a}) imports {target} ({b})")
    # circles: depth-first search over the whole graph
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append("circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print only the problems")
    args = parser.parse_args()
    edges = graph()
    if not args.check:
        for module, targets in edges.items():
            base = ROOT / module.replace(".", "/")
            path = base.with_suffix(".py") if base.with_suffix(".py").exists() else \
                base / "__init__.py"
            lines = len(path.read_text().splitlines())
            print(f"[{floor_of(module)}] {module} ({lines} lines)")
            for target in sorted(targets):
                print(f"    -> {target}")
    found = problems(edges)
    for problem in found:
        print(problem)
    if not args.check:
        print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports, "
              f"{len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
