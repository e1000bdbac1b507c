"""No module imports another package's private names (issue 15): a ``_name``, or anything from a ``_module``.

Inside one package (``lexprobe/predict/*`` importing ``lexprobe.predict._common``) private names are fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _owner(module: str) -> str:
    """The package or top-level module that owns ``module``: ``lexprobe.train._x`` -> ``lexprobe.train``."""
    return ".".join(module.split(".")[:2])


def _own_package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "cli":  # installed as lexprobe.cli (pyproject's package-dir)
        return "lexprobe.cli"
    return _owner(".".join(rel.with_suffix("").parts))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(source: str, own: str, label: str = "<source>") -> list[str]:
    """``label:line: statement`` for every import in ``source`` of a private name of a package other than
    ``own``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=label)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        else:
            continue
        for module in modules:
            if not module.startswith("lexprobe.") or _owner(module) == own:
                continue
            parts = module.split(".")[1:] + names
            if any(_private(p) for p in parts):
                found.append(f"{label}:{node.lineno}: {ast.unparse(node)}")
    return found


def _sources() -> list[Path]:
    return sorted(p for d in ("lexprobe", "cli") for p in (ROOT / d).rglob("*.py"))


def test_the_walk_finds_the_sources() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _sources()}
    assert {"lexprobe/stats.py", "lexprobe/train/_evaluate.py", "cli/main.py"} <= names


def test_no_module_imports_another_packages_private_names() -> None:
    offending = [
        line
        for path in _sources()
        for line in private_imports(
            path.read_text(encoding="utf-8"), _own_package(path), path.relative_to(ROOT).as_posix()
        )
    ]
    assert not offending, "private names imported across packages:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("from lexprobe.runs import _json_default", True),
        ("from lexprobe.align._metrics import preprocess", True),
        ("import lexprobe.align._metrics", True),
        ("from lexprobe.train._data import _encode_prompt", False),  # same package
        ("from lexprobe.align import knn_indices", False),
        ("from lexprobe.runs import __all__", False),
    ],
)
def test_the_check_tells_private_from_public(source: str, bad: bool) -> None:
    own = _own_package(ROOT / "lexprobe" / "train" / "_evaluate.py")
    assert own == "lexprobe.train"
    assert bool(private_imports(source, own)) is bad
