"""Shared pieces of the CLI: the error boundary and the consoles.

The library raises; only here do errors become one line on stderr and a non-zero exit. Text from data files
(term names, ontology headers) reaches the terminal only through these consoles and the log formatter of
``cli/_progress.py``, which show control characters escaped (:func:`escape_control`), so a hostile ontology
cannot clear the screen or set the window title.
"""

from __future__ import annotations

import errno
import functools
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from lexprobe.exceptions import LexprobeError

F = TypeVar("F", bound=Callable[..., Any])

#: The most permutations or bootstrap resamples an option takes: beyond it a run would go on for days.
MAX_RESAMPLES = 100_000

#: C0 controls but newline and tab, DEL, C1 controls, and the Unicode bidirectional embeddings, overrides and
#: isolates (which reorder what a terminal shows)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape_control(text: str) -> str:
    """``text`` with every control character shown as its escape (``"\\x1b[2J"`` for ESC [2J), as ``--json``
    shows them; newlines and tabs stay.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        ``text`` unchanged when it holds no control character.
    """
    return _CONTROL.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class SafeConsole(Console):
    """A rich console that shows control characters escaped in every string it renders: printed text, table
    cells and titles (rich turns each through ``render_str``). Rich's own styling is not text, so it stays.

    Markup is off unless a call asks for it (``print(..., markup=True)``, with data in it passed through
    :func:`markup`): a term named ``[/x]`` is shown as it is, not read as a tag (an unmatched one was a crash)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"markup": False, "highlight": False, **kwargs})

    def render_str(self, text: str, **kwargs: Any) -> Any:  # noqa: D102
        return super().render_str(escape_control(text), **kwargs)


def markup(value: object) -> str:
    """``value`` as text to put inside rich markup: its brackets escaped, so it shows as it is."""
    from rich.markup import escape

    return escape(str(value))


def styled(value: object, style: str) -> Any:
    """``value`` as one rich ``Text`` in ``style`` (a table cell), control characters escaped."""
    from rich.text import Text

    return Text(escape_control(str(value)), style=style)


console = SafeConsole()
err_console = SafeConsole(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` as one line on stderr and return the ``typer.Exit`` to raise."""
    err_console.print(f"[bold red]error:[/] {markup(message)}", markup=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn lexprobe errors, missing files, other OS errors (permissions, a file in the way, a read-only or full
    file system), memory exhaustion and Ctrl-C into one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LexprobeError as exc:
            raise fail(_one_line(exc)) from None
        except FileNotFoundError as exc:
            raise fail(f"file not found: {exc.filename or exc}") from None
        except OSError as exc:
            raise fail(_os_error(exc)) from None
        except EOFError:  # a compressed file cut short; click would print only "Aborted!"
            raise fail("a file ended before its end (truncated); copy or make it again") from None
        except MemoryError:
            raise fail("out of memory; lower --batch-size or --limit, or use a machine with more memory") from None
        except KeyboardInterrupt:
            raise fail("interrupted; finished work is kept and a re-run resumes from it", code=130) from None

    return wrapper  # type: ignore[return-value]


_OS_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EROFS: "write elsewhere",
    errno.EACCES: "check the permissions or write elsewhere",
    errno.EPERM: "check the permissions or write elsewhere",
}


def _os_error(exc: OSError) -> str:
    """One line for an OS error: what went wrong, on which path(s), and what to do when that is clear."""
    what = (exc.strerror or _one_line(exc)).rstrip(".")
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    hint = _OS_HINTS.get(exc.errno or 0)
    return f"{what[:1].lower()}{what[1:]}" + (f": {where}" if where else "") + (f"; {hint}" if hint else "")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def split_csv(text: str | None) -> tuple[str, ...] | None:
    """``"a, b,c"`` -> ``("a", "b", "c")``; ``None`` stays ``None`` (the option was not given)."""
    if text is None:
        return None
    return tuple(p.strip() for p in text.split(",") if p.strip())


def categories_option(text: str | None) -> list[str] | None:
    """``--category``: None (the ontology's default), ``[]`` for ``all``, else the comma-separated names."""
    if text is None:
        return None
    names = list(split_csv(text) or ())
    return [] if any(n.lower() == "all" for n in names) else names


def parse_limit(text: str, minimum: int = 5) -> int | None:
    """``--limit``: a whole number of at least ``minimum``, or ``all`` (None: every eligible term)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"expected a number of terms or all, got {text!r}", param_hint="--limit") from None
    if value < minimum:
        raise typer.BadParameter(f"must be at least {minimum} (or all), got {value}", param_hint="--limit")
    return value


def print_table(table: Any) -> None:
    """Print a rich table on stdout: fitted to the terminal, or, piped or redirected, as wide as it needs (a
    piped console is 80 columns wide, which folds names and numbers into pieces)."""
    if console.is_terminal:
        console.print(table)
    else:
        SafeConsole(width=100_000).print(table, crop=False)


def print_json(obj: Any) -> None:
    """Print ``obj`` on stdout as one strict JSON object (NaN as null), the only thing a ``--json`` run prints there."""
    from lexprobe.runs import dumps_json

    sys.stdout.write(dumps_json(obj) + "\n")
    sys.stdout.flush()


def is_terminal() -> bool:
    """Whether stderr is an interactive terminal (progress bars only then)."""
    return sys.stderr.isatty()
