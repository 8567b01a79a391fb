"""The package's shape: no import cycles between modules, and no module too long to read.

`lint-imports` (pyproject.toml's contracts) keeps the layers one-way, but a layers contract
says nothing about two modules of the same package importing each other; these tests do,
on grimp's graph (the one import-linter builds), counting imports inside functions too.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[1] / "robustrl"
MAX_LINES = 450

Graph = dict[str, set[str]]


def import_graph() -> tuple[grimp.ImportGraph, Graph]:
    """robustrl's direct imports, module -> the robustrl modules it imports (self-imports out)."""
    graph = grimp.build_graph("robustrl", cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) - {m} for m in graph.modules}
    return graph, edges


def strongly_connected(edges: Graph) -> list[set[str]]:
    """Tarjan's components with more than one module: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(root: str) -> None:
        # Iterative depth-first search: a recursive one could exceed Python's recursion limit.
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def shortest_cycle(start: str, edges: Graph, within: set[str]) -> list[str]:
    """The shortest import path from `start` back to itself inside one component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node] & within):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in parent:
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is on no cycle")  # a component always has one


def describe(cycle: list[str], graph: grimp.ImportGraph) -> str:
    """`a (l.12) -> b (l.40) -> a`: each hop with the line of its first import statement."""
    hops = []
    for importer, imported in zip(cycle, cycle[1:]):
        details = graph.get_import_details(importer=importer, imported=imported)
        line = f" (l.{details[0]['line_number']})" if details else ""
        hops.append(f"{importer}{line}")
    return " -> ".join([*hops, cycle[-1]])


def test_no_import_cycles() -> None:
    graph, edges = import_graph()
    cycles = [describe(shortest_cycle(min(c), edges, c), graph)
              for c in strongly_connected(edges)]
    assert not cycles, "modules that import each other (break each cycle):\n" + "\n".join(
        sorted(cycles))


def test_no_module_longer_than_the_limit() -> None:
    lengths = {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text().splitlines())
               for path in sorted(PACKAGE.rglob("*.py"))}
    too_long = [f"{name}: {n} lines" for name, n in lengths.items() if n > MAX_LINES]
    assert not too_long, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(too_long)
