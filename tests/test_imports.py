"""The package's import graph (module-level and function-level imports, read with `ast`) has no
cycle, evaluation does not import the training loop, and every random draw names its algorithm."""

import ast
import os

from conftest import PROJECT_ROOT

PACKAGE = os.path.join(PROJECT_ROOT, "avrnn_tf")


def _modules():
    """{dotted name: path} of every module of avrnn_tf."""
    found = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), PROJECT_ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                found[".".join(rel)] = os.path.join(root, name)
    return found


def import_graph():
    """{module: set of package modules it imports anywhere in its file}."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from pkg import x` imports pkg.x when that is a module, else pkg.
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else node.module for a in node.names]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "avrnn_tf.loop" in graph and graph["avrnn_tf.loop"]  # the parser sees imports
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_evaluation_and_export_do_not_import_the_training_loop():
    graph = import_graph()
    for program in ("avrnn_tf.evaluate", "avrnn_tf.export", "avrnn_tf.restore"):
        assert "avrnn_tf.loop" not in reachable(graph, program), program
        assert "avrnn_tf.training" not in reachable(graph, program), program


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_random_draw_names_its_algorithm():
    """Philox everywhere (rng.py): a stateless draw without `alg` would take "auto_select",
    which is not Philox on every device."""
    unnamed = []
    for path in _modules().values():
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr.startswith("stateless_") and \
                    not any(k.arg == "alg" for k in node.keywords):
                unnamed.append(f"{os.path.relpath(path, PROJECT_ROOT)}:{node.lineno} "
                               f"{node.func.attr}")
    assert not unnamed, unnamed
