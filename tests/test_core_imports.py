"""The core's imports, read from its source: no backend package or engine, and no cycle.

Every import counts, at module level or inside a function, as both run sooner or later; only
`if TYPE_CHECKING:` blocks are left out, as they never run.
"""

from __future__ import annotations

import ast
import pathlib

import polynn

PACKAGE = pathlib.Path(polynn.__file__).parent
FORBIDDEN = ("polynn_numpy", "polynn_tensorflow", "polynn_torch", "tensorflow", "torch", "jax", "keras", "tf_keras")


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    """Dotted name -> (file, is a package) for every module of polynn."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: pathlib.Path, is_package: bool) -> list[tuple[str, tuple[str, ...], int]]:
    """(absolute module, names taken from it, line) of every import in a module."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                module = ".".join(parts[: len(parts) - node.level + 1] + ([module] if module else []))
            found.append((module, tuple(alias.name for alias in node.names), node.lineno))
    return found


def _graph() -> dict[str, dict[str, int]]:
    """polynn's module -> {polynn module it imports: the first line doing so}."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        edges = graph[name] = {}
        for module, names, line in _imports(name, path, is_package):
            # `from .a import b` imports module polynn.a.b when there is one, else takes b from polynn.a
            targets = [f"{module}.{n}" if f"{module}.{n}" in modules else module for n in names] or [module]
            for target in targets:
                if target in modules and target != name:
                    edges.setdefault(target, line)
    return graph


def _cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle of `graph` as [a, b, ..., a], or None."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_no_core_module_imports_a_backend_package_or_an_engine():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
                 for name, (path, is_package) in _modules().items()
                 for module, _, line in _imports(name, path, is_package)
                 if module.split(".")[0] in FORBIDDEN]
    assert not offenders, "\n".join(offenders)


def test_no_two_core_modules_import_each_other():
    graph = _graph()
    assert len(graph) > 40 and "polynn.plugins" in graph["polynn.models"]  # the graph is really read
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(
        f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"
