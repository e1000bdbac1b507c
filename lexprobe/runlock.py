"""One writer per run folder: a lock held while a command writes it (:func:`run_lock`, re-exported by ``runs``).

The lock is an OS-level ``flock`` on ``.lexprobe.lock`` inside the folder, so the kernel releases it when its
process ends in any way (``kill -9`` included): a lock file left behind never blocks. The holder writes its pid,
command and start time into the file, so a second command can say who holds the folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from lexprobe.exceptions import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: filelock's native lock instead, without the holder's name
    fcntl = None  # type: ignore[assignment]

__all__ = ["RUN_LOCK", "run_lock", "lock_holder"]

logger = logging.getLogger(__name__)

#: The lock file a command holds in a run folder while it writes there.
RUN_LOCK = ".lexprobe.lock"

#: Folders this thread holds (resolved path -> depth): a command that locks a folder it already holds (a
#: library call inside the CLI's lock) does not wait on itself; another thread is another writer.
_LOCAL = threading.local()


def lock_holder(directory: str | os.PathLike[str]) -> str:
    """Who holds (or last held) ``directory``'s lock, as the holder recorded it: ``process 123 (lexprobe ...)``."""
    try:
        record = json.loads((Path(directory) / RUN_LOCK).read_text(encoding="utf-8"))
        pid, command = int(record["pid"]), str(record.get("command") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
    return f"process {pid}" + (f" ({command[:200]})" if command else "")


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("lexprobe", "__main__.py"):
        argv[0] = "lexprobe"
    return " ".join(argv)


@contextlib.contextmanager
def run_lock(
    directory: str | os.PathLike[str], *, wait: bool = False, option: str = "--out", command: str | None = None
) -> Iterator[Path]:
    """Hold the run folder ``directory`` (made if missing) while the block writes it.

    Parameters
    ----------
    directory : path
    wait : bool
        When another process holds the folder: wait until it lets go (``--wait``) instead of refusing.
    option : str
        How the command line names the folder, for the message.
    command : str, optional
        What to record as the holder's command (default: this process's command line).

    Raises
    ------
    OutputError
        Another process holds the folder and ``wait`` is false: one line naming it and ``--wait``.
    """
    directory = Path(directory).expanduser()
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(directory)
    held: dict[str, int] = _LOCAL.__dict__.setdefault("held", {})
    if key in held:
        held[key] += 1
        try:
            yield directory
        finally:
            held[key] -= 1
        return
    with _acquire(directory / RUN_LOCK, directory, wait=wait, option=option) as fd:
        if fd is not None:
            record = {
                "pid": os.getpid(),
                "command": command if command is not None else _command_line(),
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        held[key] = 1
        try:
            yield directory
        except BaseException:
            # a command refused before it wrote anything leaves no folder behind that it made only to lock
            if created and [p.name for p in directory.iterdir()] == [RUN_LOCK]:
                (directory / RUN_LOCK).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise
        finally:
            del held[key]


@contextlib.contextmanager
def _acquire(path: Path, directory: Path, *, wait: bool, option: str) -> Iterator[int | None]:
    """The locked descriptor of ``path`` (None where the lock is filelock's), released on exit."""
    if fcntl is None:  # pragma: no cover
        from filelock import FileLock, Timeout

        lock = FileLock(str(path), timeout=-1 if wait else 0)
        try:
            lock.acquire()
        except Timeout:
            raise _busy(directory, option) from None
        try:
            yield None
        finally:
            lock.release()
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise _busy(directory, option) from None
            logger.info("%s %s is being written by %s; waiting for it", option, directory, lock_holder(directory))
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _busy(directory: Path, option: str) -> OutputError:
    return OutputError(
        f"{option} {directory} is being written by {lock_holder(directory)}; wait for it to finish (or pass "
        f"--wait to start when it does), or give another {option}"
    )
