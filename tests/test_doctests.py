"""The docstring examples: every one in ``lexprobe`` (the CLI included) runs as a doctest, and every public entry
point of the packages below (what their ``__all__`` exports) has one.

Examples run on tiny synthetic inputs or the bundled snapshots, never a model, each well under a second.
"""

from __future__ import annotations

import dataclasses
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
WITH_EXAMPLES = (
    "lexprobe",
    "lexprobe.exceptions",
    "lexprobe.align",
    "lexprobe.ontology",
    "lexprobe.report",
    "lexprobe.predict",
    "lexprobe.figures",
    "lexprobe.train",
)

#: The entry points still without an example, a ratchet: it only shrinks (an entry point listed here that has
#: gained an example fails the test until it is struck off).
NOT_YET: dict[str, set[str]] = {
    # it fits the predictor on the whole shipped calibration, 0.8 to 0.9 s of CPU on an idle machine (too near
    # the second to pass reliably), and takes no argument that a smaller example could use
    "lexprobe.predict": {"shipped_predictor"},
}

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


#: Libraries the package imports inside its functions (heavy, optional at import time). Their one-time import
#: is paid by whichever example calls first, so they are imported before any example is timed. transformers
#: imports its parts on first use: ``transformers.trainer_callback`` is the part a callback needs (it brings
#: in the Trainer's modules, over a second of CPU), and torch is what a model or a generation needs.
LAZY_IMPORTS = (
    "sklearn.metrics",
    "sklearn.linear_model",
    "scipy.stats",
    "matplotlib.pyplot",
    "torch",
    "transformers.trainer_callback",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    for library in LAZY_IMPORTS:
        importlib.import_module(library)
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


def _own_doc(obj: object) -> str:
    """The docstring of a function, method, property or class itself; a plain value (a dataclass field's
    default, say) has none of its own, so the example in ``int``'s docstring does not count."""
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj):
        return inspect.getdoc(obj) or ""
    return ""


def _has_example(obj: object) -> bool:
    if ">>> " in _own_doc(obj):
        return True
    if inspect.isclass(obj):
        return any(">>> " in _own_doc(member) for member in vars(obj).values() if not inspect.isclass(member))
    return False


def test_a_default_value_is_no_example() -> None:
    @dataclasses.dataclass
    class Settings:
        """No example here."""

        n: int = 3

    assert ">>> " in (inspect.getdoc(Settings.n) or "")  # int's own docstring has one
    assert not _has_example(Settings)


@pytest.mark.parametrize("package", WITH_EXAMPLES)
def test_every_public_entry_point_has_an_example(package: str) -> None:
    module = importlib.import_module(package)
    entry_points = {n: getattr(module, n) for n in module.__all__ if callable(getattr(module, n))}
    assert entry_points, package
    exempt = NOT_YET.get(package, set())
    missing = sorted(n for n, obj in entry_points.items() if not _has_example(obj) and n not in exempt)
    assert not missing, f"{package}: add a docstring example to {', '.join(missing)}"
    done = sorted(n for n in exempt if n in entry_points and _has_example(entry_points[n]))
    assert not done, f"{package}: strike {', '.join(done)} off NOT_YET, they have examples now"
    gone = sorted(exempt - set(entry_points))
    assert not gone, f"{package}: strike {', '.join(gone)} off NOT_YET, they are no longer exported"
