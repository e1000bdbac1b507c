"""Writing files: atomic writes, a full disk as one error line, and the cache root.

The lowest layer of lexprobe's file handling, below :mod:`lexprobe.runs` (run directories and manifests, which
re-exports all of this) and :mod:`lexprobe.named_models` (which assembles a model's file in the cache), so
both can use it without importing each other.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lexprobe.exceptions import OutputError

__all__ = [
    "is_disk_full",
    "no_space_error",
    "disk_full_as_error",
    "atomic_path",
    "atomic_write_text",
    "CACHE_TAG",
    "CACHE_TAG_TEXT",
    "CACHE_NAMES",
    "is_cache_name",
    "has_cache_tag",
    "cache_dir",
]


# --- a full disk is one line naming the file, never a traceback or numpy's byte counts ----------------------

#: numpy's message for a short write (``ndarray.tofile`` on a full disk), which carries no errno.
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
#: How libraries that do not raise ``OSError`` say so (safetensors' Rust ``io::Error``, torch's writer).
_NO_SPACE_TEXTS = ("no space left on device", "storagefull", "os error 28", "disk quota exceeded")


def is_disk_full(exc: BaseException | None, path: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``exc``, or an error it came from, says that the disk (or quota) is full.

    ``ENOSPC``/``EDQUOT``, numpy's short write, and a library's own wording of ``ENOSPC`` all count; so does a
    write that failed without a reason (torch's "file write failed") while ``path``'s file system has less than
    1 MiB free.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc).lower()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if (isinstance(exc, OSError) and _SHORT_WRITE.search(text)) or any(t in text for t in _NO_SPACE_TEXTS):
            return True
        if path is not None and "write failed" in text and _free_bytes(Path(path)) < 1 << 20:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _free_bytes(path: Path) -> int:
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 1 << 62


def no_space_error(path: str | os.PathLike[str]) -> OutputError:
    """The one-line error for a full disk while writing ``path`` (its ``errno`` is ``ENOSPC``)."""
    error = OutputError(
        f"cannot write {path}: no space left on device; free some space or write elsewhere, then run again "
        "(finished work is kept)"
    )
    error.errno = errno.ENOSPC
    return error


@contextlib.contextmanager
def disk_full_as_error(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk inside the block (see :func:`is_disk_full`) into :func:`no_space_error` for ``path``."""
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:
        if is_disk_full(exc, path):
            raise no_space_error(path) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic on POSIX.
    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and ``path`` is
    left as it was; a full disk is an :class:`OutputError` naming ``path`` (:func:`no_space_error`).
    """
    path = Path(path)
    with disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should get the usual permissions
    try:
        with disk_full_as_error(path):
            yield tmp
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# --- the cache root ------------------------------------------------------------------------------------------


#: The file that marks a folder as lexprobe's cache, in the form of the Cache Directory Tagging Specification
#: (https://bford.info/cachedir/; backup tools that follow it skip the folder). ``lexprobe cache clear`` works
#: only in a folder that holds it, or that holds nothing but what lexprobe writes there.
CACHE_TAG = "CACHEDIR.TAG"
CACHE_TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by lexprobe.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
#: The names lexprobe writes at the top of its cache (``lexprobe.cache`` describes each).
CACHE_NAMES = frozenset({"embeddings", "models", "ontology", "rates.json", "rates.json.lock", CACHE_TAG})
_CACHE_TEMP = re.compile(r"\.(rates\.json|CACHEDIR\.TAG)\..+\.tmp")


def is_cache_name(name: str) -> bool:
    """Whether ``name``, at the top of the cache, is something lexprobe writes there (or its temporary file)."""
    return name in CACHE_NAMES or bool(_CACHE_TEMP.fullmatch(name))


def has_cache_tag(root: Path) -> bool:
    """Whether ``root`` holds the cache tag lexprobe writes (another tool's ``CACHEDIR.TAG`` does not count)."""
    try:
        with open(root / CACHE_TAG, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(CACHE_TAG_TEXT.encode()[:43]) and b"created by lexprobe" in head


def cache_dir(*sub: str) -> Path:
    """The user cache directory (``$LEXPROBE_CACHE``, default ``~/.cache/lexprobe``), created on demand.

    A folder that is new, empty or holds only what lexprobe writes there gets lexprobe's cache tag
    (:data:`CACHE_TAG`); a folder that holds anything else is used but never tagged, so ``lexprobe cache clear``
    refuses it.
    """
    root = os.environ.get("LEXPROBE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "lexprobe"
    if not (base / CACHE_TAG).is_file():
        _tag_cache_root(base)
    path = base.joinpath(*sub)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tag_cache_root(base: Path) -> None:
    """Write the cache tag into ``base`` when it holds nothing lexprobe did not write; a folder that cannot be
    written stays untagged (the caller's own ``mkdir`` says why, where it matters)."""
    with contextlib.suppress(OSError):
        base.mkdir(parents=True, exist_ok=True)
        if all(is_cache_name(child.name) for child in base.iterdir()):
            atomic_write_text(base / CACHE_TAG, CACHE_TAG_TEXT)
