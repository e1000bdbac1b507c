"""No function in the package or the CLI runs past about 80 lines (docs/style.md: "functions around 50").

A long orchestration function hides its steps; splitting it into named private helpers (validate, plan,
run, write) lets a reader follow it. The length counts from the ``def`` line (decorators excluded) to the
last line of the body, docstring included.
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 80
ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("lexprobe", "cli")


def _function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, def line, length in lines) of every function and method in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((name, child.lineno, child.end_lineno - child.lineno + 1))
                walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return found


def _python_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_the_walk_finds_the_package_and_the_cli():
    files = {p.relative_to(ROOT).parts[0] for p in _python_files()}
    assert files == set(FOLDERS)


def test_the_length_counts_def_to_last_line(tmp_path):
    source = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    source.write_text(
        f"@decorator\ndef long():\n    '''doc'''\n{body}\n\n\nclass C:\n    def short(self):\n        return 1\n"
    )
    assert _function_lengths(source) == [("long", 2, 92), ("C.short", 97, 2)]


def _lengths() -> dict[str, tuple[int, int]]:
    return {
        f"{path.relative_to(ROOT).as_posix()}:{name}": (line, length)
        for path in _python_files()
        for name, line, length in _function_lengths(path)
    }


def test_no_function_is_over_80_lines():
    offenders = [
        f"{key} (line {line}) is {length} lines" for key, (line, length) in _lengths().items() if length > MAX_LINES
    ]
    assert not offenders, (
        f"{len(offenders)} functions over {MAX_LINES} lines; split them into named steps:\n" + "\n".join(offenders)
    )
