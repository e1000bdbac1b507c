"""The docstring examples: every one in ``lexprobe`` (the CLI included) runs as a doctest, and every public entry
point of the packages below (what their ``__all__`` exports) has one.

Examples run on tiny synthetic inputs or the bundled snapshots, never a model, each well under a second.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import time
from pathlib import Path

import lexprobe.cli
import pytest

import lexprobe

#: Packages whose every exported function and class carries an example (a ``>>>`` in its docstring, or for a
#: class in its own methods'); the constants they export document themselves where they are defined.
WITH_EXAMPLES = ("lexprobe", "lexprobe.exceptions", "lexprobe.align", "lexprobe.ontology", "lexprobe.report")

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples() -> list[str]:
    """Every module of lexprobe and lexprobe.cli whose source holds an example (the others are not imported)."""
    found = []
    for package in (lexprobe, lexprobe.cli):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            spec = importlib.util.find_spec(info.name)
            if spec and spec.origin and spec.origin.endswith(".py") and ">>> " in Path(spec.origin).read_text():
                found.append(info.name)
    return sorted(set(found))  # installed, lexprobe.cli is also under lexprobe


MODULES = _modules_with_examples()


def test_the_modules_with_examples_are_found() -> None:
    assert {"lexprobe.align._metrics", "lexprobe.exceptions"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = finder.find(module, name)
    assert tests, f"{name} has '>>> ' in its source but no doctest was found"
    slow = []
    for test in tests:
        start = time.process_time()  # CPU time: another process on the machine does not count
        runner.run(test)
        if time.process_time() - start > 1.0:
            slow.append(test.name)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (output above)"
    assert not slow, f"examples taking over a second of CPU: {slow}"


def _has_example(obj: object) -> bool:
    if ">>> " in (inspect.getdoc(obj) or ""):
        return True
    if inspect.isclass(obj):
        return any(">>> " in (inspect.getdoc(member) or "") for member in vars(obj).values())
    return False


@pytest.mark.parametrize("package", WITH_EXAMPLES)
def test_every_public_entry_point_has_an_example(package: str) -> None:
    module = importlib.import_module(package)
    entry_points = {n: getattr(module, n) for n in module.__all__ if callable(getattr(module, n))}
    assert entry_points, package
    missing = sorted(n for n, obj in entry_points.items() if not _has_example(obj))
    assert not missing, f"{package}: add a docstring example to {', '.join(missing)}"
