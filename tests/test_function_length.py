"""No function in the package or the CLI runs past about 80 lines (docs/style.md: "functions around 50").

A long orchestration function hides its steps; splitting it into named private helpers (validate, plan,
run, write) lets a reader follow it. The length counts from the ``def`` line (decorators excluded) to the
last line of the body, docstring included, less the docstring's ``Examples`` section: an example is run as a
test (tests/test_doctests.py) and adds nothing a reader must follow in the body.
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 80
ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("lexprobe", "cli")


def _example_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of the docstring's numpydoc ``Examples`` section: the blank line before its heading, the heading, and
    what follows up to the next section or the end."""
    doc = ast.get_docstring(node, clean=False)
    if doc is None:
        return 0
    lines = doc.split("\n")
    heads = [
        i
        for i in range(len(lines) - 1)
        if lines[i].strip() and len(lines[i + 1].strip()) >= 3 and set(lines[i + 1].strip()) == {"-"}
    ]
    for n, i in enumerate(heads):
        if lines[i].strip() == "Examples":
            end = heads[n + 1] if n + 1 < len(heads) else len(lines) - (not lines[-1].strip())
            return end - i + (i > 0 and not lines[i - 1].strip())  # with the blank line before it
    return 0


def _function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, def line, length in lines) of every function and method in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                length = child.end_lineno - child.lineno + 1 - _example_lines(child)
                found.append((name, child.lineno, length))
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


def test_a_docstring_example_does_not_count(tmp_path):
    source = tmp_path / "m.py"
    example = "\n".join(f"    >>> x{i} = {i}" for i in range(40))
    doc = f'    """Doc.\n\n    Returns\n    -------\n    int\n\n    Examples\n    --------\n{example}\n    """'
    source.write_text(f'def f():\n{doc}\n    return 1\n\n\ndef g():\n    """No example."""\n    return 2\n')
    assert _function_lengths(source) == [("f", 1, 8), ("g", 54, 3)]


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
