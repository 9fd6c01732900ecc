"""The package's modules import each other without a circle: every import inside recbole_sam/
(those inside functions too) points down, towards modules that do not import back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "recbole_sam"


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """``{module: {modules of recbole_sam it imports}}``; ``from package import submodule``
    points at the submodule, any other name at the module that holds it."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in modules else node.module)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def circles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_import_circle_inside_the_package():
    graph = import_graph()
    assert "recbole_sam.trainer" in graph and "recbole_sam.optim" in graph["recbole_sam.trainer"]
    assert circles(graph) == []


def test_nothing_below_the_analysis_package_imports_it():
    graph = import_graph()
    importers = {name for name, targets in graph.items() if any(t.startswith("recbole_sam.analysis") for t in targets)}
    assert {name for name in importers if not name.startswith("recbole_sam.analysis")} == set()
