"""Shared pieces of the CLI: the error boundary and the consoles.

The library raises; only here do errors become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from lexprobe.exceptions import LexprobeError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` as one line on stderr and return the ``typer.Exit`` to raise."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn lexprobe errors, missing files, memory exhaustion and Ctrl-C into one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LexprobeError as exc:
            raise fail(_one_line(exc)) from None
        except FileNotFoundError as exc:
            raise fail(f"file not found: {exc.filename or exc}") from None
        except MemoryError:
            raise fail("out of memory; lower --batch-size or --limit, or use a machine with more memory") from None
        except KeyboardInterrupt:
            raise fail("interrupted; finished work is kept and a re-run resumes from it", code=130) from None

    return wrapper  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def split_csv(text: str | None) -> tuple[str, ...] | None:
    """``"a, b,c"`` -> ``("a", "b", "c")``; ``None`` stays ``None`` (the option was not given)."""
    if text is None:
        return None
    return tuple(p.strip() for p in text.split(",") if p.strip())


def is_terminal() -> bool:
    """Whether stderr is an interactive terminal (progress bars only then)."""
    return sys.stderr.isatty()
