"""No import loop among lexprobe's modules, imports inside functions counted (issue 33).

An import inside a function still makes the two modules depend on each other: it only moves the failure from
import time to the first call, and hides the loop from anyone reading the top of the file. So the graph has an
edge for every ``import`` and ``from ... import`` anywhere in a module, at any depth, except under
``if TYPE_CHECKING:`` (never run). How an edge is resolved:

- ``from pkg import name`` goes to ``pkg.name`` when that is a module of the tree, else to ``pkg``;
  ``import a.b.c`` and ``from a.b.c import x`` go to ``a.b.c``.
- Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so the importer depends on those
  packages too, unless it lives inside them: a package's own modules run while its ``__init__`` is already
  being imported, so that edge is left out. A package ``__init__`` re-exports its submodules (an edge to each),
  so a submodule that imports its own package (``from lexprobe.predict import x`` inside
  ``lexprobe/predict/_holdout.py``) makes a loop: inside a package, modules import their siblings directly.

``cli/`` installs as ``lexprobe.cli`` (pyproject's package-dir) and is read as that.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
TREES = {"lexprobe": ROOT / "lexprobe", "lexprobe.cli": ROOT / "cli"}


def module_names(trees: dict[str, Path]) -> dict[str, Path]:
    """Every module of the trees by its dotted name (a package by its own name, the path of its ``__init__``)."""
    names = {}
    for top, folder in trees.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names[".".join((top, *parts))] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree``, at any depth, but for those under ``if TYPE_CHECKING:``."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = node.orelse
        todo.extend(children)
    return found


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(trees: dict[str, Path] = TREES) -> nx.DiGraph:
    """Module -> module it imports, for the modules of ``trees`` (``{"pkg": folder}``), lazy imports counted."""
    modules = module_names(trees)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        own = importer if is_package else importer.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            else:
                base = _absolute(node, importer, is_package)
                named = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for name in named:
                parts = name.split(".")
                above = [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages that run first
                above = [p for p in above if not (own == p or own.startswith(p + "."))]
                for target in (name, *above):
                    if target in modules and target != importer and not graph.has_edge(importer, target):
                        graph.add_edge(importer, target, line=node.lineno)
    return graph


def import_loops(graph: nx.DiGraph) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted, largest first."""
    loops = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    return sorted(loops, key=lambda c: (-len(c), c))


def describe(graph: nx.DiGraph, loop: list[str]) -> str:
    """One loop: its modules, one cycle through them, and every import inside it (with its line)."""
    cycle = nx.find_cycle(graph.subgraph(loop), source=loop[0])
    steps = " -> ".join(f"{a} (line {graph.edges[a, b]['line']})" for a, b in cycle)
    edges = [f"    {a} -> {b} (line {graph.edges[a, b]['line']})" for a, b in sorted(graph.subgraph(loop).edges)]
    return "\n".join([f"{len(loop)} modules: {', '.join(loop)}", f"  e.g. {steps} -> {cycle[0][0]}", *edges])


def test_the_graph_reads_the_whole_tree() -> None:
    graph = import_graph()
    assert {"lexprobe.stats", "lexprobe.predict._holdout", "lexprobe.cli.main", "lexprobe.cli"} <= set(graph)
    assert graph.has_edge("lexprobe.cli.main", "lexprobe.cli.align")


def test_no_import_loop_lazy_imports_counted() -> None:
    graph = import_graph()
    loops = import_loops(graph)
    assert not loops, "import loops (imports inside functions counted):\n" + "\n".join(
        describe(graph, loop) for loop in loops
    )


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return {"pkg": tmp_path / "pkg"}


def test_a_loop_closed_by_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    trees = _package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "def f():\n    from pkg.high import g\n    return g()\n",
            "high.py": "import pkg.low\n\ndef g():\n    return 1\n",
            "other.py": "from pkg import low\n",
        },
    )
    graph = import_graph(trees)
    assert import_loops(graph) == [["pkg.high", "pkg.low"]]
    text = describe(graph, ["pkg.high", "pkg.low"])
    assert "pkg.high (line 1) -> pkg.low (line 2) -> pkg.high" in text and "    pkg.low -> pkg.high (line 2)" in text
    assert graph.has_edge("pkg.other", "pkg.low")  # `from pkg import low` is the module


def test_a_submodule_importing_its_own_package_is_a_loop(tmp_path: Path) -> None:
    trees = _package(
        tmp_path,
        {
            "__init__.py": "",
            "sub/__init__.py": "from pkg.sub._a import a\nfrom pkg.sub._b import b\n",
            "sub/_a.py": "def a():\n    from pkg.sub import b\n    return b\n",
            "sub/_b.py": "from pkg.sub._c import c\nb = c\n",
            "sub/_c.py": "from . import _d\nc = 1\n",
            "sub/_d.py": "",
        },
    )
    graph = import_graph(trees)
    assert import_loops(graph) == [["pkg.sub", "pkg.sub._a"]]
    assert graph.has_edge("pkg.sub._c", "pkg.sub._d")  # relative import
    assert not graph.has_edge("pkg.sub._b", "pkg.sub")  # a sibling's import runs no __init__ again


def test_importing_a_submodule_from_outside_runs_its_package(tmp_path: Path) -> None:
    trees = _package(
        tmp_path,
        {
            "__init__.py": "",
            "base.py": "def f():\n    from pkg.sub._a import a\n",
            "sub/__init__.py": "from pkg.sub._a import a\nfrom pkg.sub._b import b\n",
            "sub/_a.py": "a = 1\n",
            "sub/_b.py": "from pkg.base import f\nb = 2\n",
        },
    )
    assert import_loops(import_graph(trees)) == [["pkg.base", "pkg.sub", "pkg.sub._b"]]


def test_imports_for_type_checking_only_are_no_edge(tmp_path: Path) -> None:
    trees = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.b import B\n",
            "b.py": "from pkg import a\n",
        },
    )
    graph = import_graph(trees)
    assert not import_loops(graph)
    assert list(graph.edges) == [("pkg.b", "pkg.a")]
