"""Logging and progress for every command: the same ``-v``/``-q`` everywhere, and signs of life on stderr.

On a terminal, progress is a rich display with one bar per stage (count, elapsed time, time left) and log
records go through rich's handler above it. Anywhere else (piped through ``tee``, redirected, under a
scheduler) each stage writes timestamped log lines: when it starts, at most one line every ``interval``
seconds (sooner when another tenth of it is done, but not more than once a second), and when it ends. Stdout
is left to the tables and ``--json``.

Every command does::

    setup_logging(verbose, quiet)
    with progress_display(quiet, json=as_json) as progress:
        result = run_x(config, progress=progress)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lexprobe.cli._common import err_console, escape_control, is_terminal

#: ``progress(stage, done, total)``: the library's progress protocol.
ProgressCallback = Callable[[str, int, int], None]

#: Log line format off a terminal (a timestamp first, so a piped run shows when each line was written).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Loggers whose records progress lines go to (a child of ``lexprobe``, so ``-q`` silences it).
logger = logging.getLogger("lexprobe.progress")

_HANDLER_NAME = "lexprobe-cli"
_now = time.monotonic  # replaced in tests


class _StderrHandler(logging.StreamHandler):
    """Log lines to whatever ``sys.stderr`` is when a record comes, not what it was when the handler was made
    (a test runner, or an embedding application, swaps stderr between commands)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _EscapingFormatter(logging.Formatter):
    """Log lines with control characters escaped (term names in messages come from data files)."""

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        return escape_control(super().format(record))


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Send log records to stderr: rich's handler on a terminal, timestamped lines otherwise.

    Parameters
    ----------
    verbose : int
        0: INFO from lexprobe, WARNING from other libraries (FAISS, transformers, urllib3...); 1 (``-v``): DEBUG
        from lexprobe and INFO from the others; 2 or more (``-vv``): DEBUG from everything.
    quiet : bool
        ``-q``: WARNING and above only, from everything (takes precedence over ``verbose``).

    Notes
    -----
    Calling it again replaces the handler it installed (each CLI invocation calls it once). transformers logs
    through its own handler; its level is set through ``TRANSFORMERS_VERBOSITY`` before it is imported (it is
    imported lazily, when a model loads), and directly when it already is.
    """
    if quiet:
        ours, others = logging.WARNING, logging.WARNING
    else:
        ours = logging.INFO if verbose <= 0 else logging.DEBUG
        others = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler: logging.Handler
    if is_terminal():
        from rich.logging import RichHandler

        handler = RichHandler(console=err_console, show_path=False, markup=False, rich_tracebacks=False)
        handler.setFormatter(_EscapingFormatter("%(name)s: %(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(_EscapingFormatter(LOG_FORMAT))
    handler.set_name(_HANDLER_NAME)
    root.addHandler(handler)
    logging.captureWarnings(True)  # warnings (their messages can name terms) become log lines, escaped too
    root.setLevel(others)
    logging.getLogger("lexprobe").setLevel(ours)
    _set_transformers_level(others)


def _set_transformers_level(level: int) -> None:
    name = logging.getLevelName(level).lower()
    os.environ["TRANSFORMERS_VERBOSITY"] = name
    if "transformers.utils.logging" in sys.modules:  # already configured: its env variable is read no more
        sys.modules["transformers.utils.logging"].set_verbosity(level)


@contextlib.contextmanager
def progress_display(quiet: bool, *, json: bool = False, interval: float = 10.0) -> Iterator[ProgressCallback]:
    """A ``progress(stage, done, total)`` callback for the library, shown on stderr while the block runs.

    Parameters
    ----------
    quiet, json : bool
        Either: a callback that shows nothing.
    interval : float
        Off a terminal, the seconds between two log lines of a stage (apart from its start and end, and a line
        when another tenth of it is done, at most one a second).

    Yields
    ------
    callable
        ``progress(stage, done, total)``: ``done`` of ``total`` units of ``stage`` are finished. A stage's
        first call starts it (its ``done`` may be resumed work), ``done == total`` ends it, and a ``done`` lower
        than the last one starts it again.
    """
    if quiet or json:
        yield _ignore
    elif is_terminal():
        with _terminal_display() as progress:
            yield progress
    else:
        yield _LogDisplay(interval).update


def _ignore(stage: str, done: int, total: int) -> None:
    """Progress shown nowhere (``--quiet``, ``--json``)."""


@contextlib.contextmanager
def _terminal_display() -> Iterator[ProgressCallback]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    from rich.markup import escape

    tasks: dict[str, TaskID] = {}
    last: dict[str, int] = {}
    finished: list[str] = []
    with Progress(*columns, console=err_console, transient=False, redirect_stdout=False) as bar:

        def update(stage: str, done: int, total: int) -> None:
            task = tasks.get(stage)
            if task is None or done < last[stage]:
                if task is not None:
                    bar.remove_task(task)
                description = escape(escape_control(stage))  # the column reads markup
                tasks[stage] = task = bar.add_task(description, total=max(total, 1), completed=done)
                if stage in finished:
                    finished.remove(stage)
            last[stage] = done
            bar.update(task, completed=done, total=max(total, 1))
            if done >= total and stage not in finished:
                finished.append(stage)
                while len(finished) > 8:  # a study runs dozens of stages: keep the last few finished ones
                    gone = finished.pop(0)
                    bar.remove_task(tasks.pop(gone))
                    del last[gone]

        yield update


@dataclass
class _StageClock:
    started: float
    first_done: int
    last_line: float
    last_done: int


class _LogDisplay:
    """Progress as timestamped log lines: start, rate-limited updates with an ETA, end."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stages: dict[str, _StageClock] = {}

    def update(self, stage: str, done: int, total: int) -> None:
        now = _now()
        clock = self.stages.get(stage)
        if clock is None or done < clock.last_done:
            clock = self.stages[stage] = _StageClock(now, done, now, done)
            if done >= total:
                logger.info("%s: %d/%d already done", stage, done, total)
                return
            logger.info("%s: started, %d/%d", stage, done, total)
            return
        if done == clock.last_done and done < total:
            return
        if done >= total:
            if clock.last_done < total:
                logger.info("%s: done, %d/%d in %s", stage, done, total, _duration(now - clock.started))
            clock.last_done = done
            return
        since = now - clock.last_line
        tenth = 10 * (done - clock.last_done) >= total  # another tenth since the last line
        if since >= self.interval or (tenth and since >= min(1.0, self.interval)):
            share = 100 * done / max(total, 1)
            logger.info("%s: %d/%d (%.0f%%), %s", stage, done, total, share, _eta(clock, now, done, total))
            clock.last_line, clock.last_done = now, done


def _eta(clock: _StageClock, now: float, done: int, total: int) -> str:
    elapsed = now - clock.started
    rate = (done - clock.first_done) / elapsed if elapsed > 0 else 0.0
    left = f"about {_duration((total - done) / rate)} left" if rate > 0 else "time left unknown"
    return f"{_duration(elapsed)} so far, {left}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
