"""The shape of the code, held by a test: envctl's import graph (read with ``ast``, imports
inside functions included) has no cycle, and no module imports from a layer above its own
(``LAYERS``, lowest first; README's "Architecture" shows the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "envctl"

# Lowest first. A module may import from its own layer and the layers below, never above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("envctl", "envctl.errors", "envctl.children", "envctl.fsio", "envctl.data", "envctl.yamldoc", "envctl.net",
                    "envctl.console")),
    ("specs", ("envctl.matrix", "envctl.spec", "envctl.spec_strings", "envctl.spec_sources", "envctl.derived")),
    ("indexes", ("envctl.pypi",)),
    # the catalog answers whether a refused name's neighbours are locked (envctl.nearest): a lock's concern
    ("locks", ("envctl.cache", "envctl.lock", "envctl.catalog", "envctl.nearest")),
    ("where it runs", ("envctl.engine", "envctl.registry", "envctl.executors", "envctl.build", "envctl.base",
                       "envctl.imagesize")),
    ("workflows", ("envctl.records", "envctl.records_schema", "envctl.probe", "envctl.archive", "envctl.artifacts", "envctl.compat", "envctl.bench",
                   "envctl.verify", "envctl.smoke", "envctl.setup", "envctl.prefixstate", "envctl.activate",
                   "envctl.doctor", "envctl.export", "envctl.overview", "envctl.push", "envctl.fleet", "envctl.fleetview",
                   "envctl.sweep", "envctl.imagebuild")),
    ("cli", ("envctl.cli", "envctl.__main__")),
]
# Run inside images or builds with the standard library (and torch) alone: no envctl imports at all.
STANDALONE = ("envctl.probes", "envctl.builder")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only: never imported at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", None)) == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the envctl modules it imports (a package import counts as its ``__init__``)."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges: set[str] = set()
        is_pkg = path.name == "__init__.py"
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in paths}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in paths}
                edges |= subs
                if target in paths and len(subs) < len(node.names):
                    edges.add(target)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(name: str) -> int | None:
    best = None
    for i, (_label, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or (prefix != "envctl" and name.startswith(prefix + ".")):
                best = i
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for name, edges in graph.items():
        for dep in edges:
            if layer_of(dep) > layer_of(name):
                out.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
    return sorted(out)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {n: e for n, e in import_graph(PACKAGE).items() if not n.startswith(STANDALONE)}


def test_every_module_has_a_layer(graph):
    assert [n for n in graph if layer_of(n) is None] == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_no_module_imports_from_a_layer_above_its_own(graph):
    assert upward_imports(graph) == []


def test_in_image_code_imports_nothing_of_envctl():
    graph = import_graph(PACKAGE)
    assert {n: sorted(e) for n, e in graph.items() if n.startswith(STANDALONE) and e} == {}


def test_the_checks_see_a_planted_cycle_and_an_upward_import(tmp_path):
    root = tmp_path / "envctl"
    (root / "lock").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "lock" / "__init__.py").write_text("from envctl.lock.lockfile import load_lock\n")
    (root / "lock" / "lockfile.py").write_text("def load_lock():\n    from envctl.fsio import atomic_write\n")
    (root / "fsio.py").write_text("from envctl.lock import load_lock\n")  # the old circle: a file helper needing the lock
    planted = import_graph(root)
    assert cycles(planted) == [["envctl.fsio", "envctl.lock", "envctl.lock.lockfile"]]
    assert upward_imports(planted) == ["envctl.fsio (foundation) imports envctl.lock (locks)"]
