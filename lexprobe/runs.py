"""Run directories, manifests, checksums, atomic writes and caching keys.

Every result file lexprobe writes is accompanied by a manifest saying how it was made (library versions,
model, data checksum, seed, config), and every write goes to a temporary file that is renamed into place,
so an interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lexprobe.exceptions import OutputError

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_json",
    "sha256_file",
    "sha256_text",
    "cache_dir",
    "safe_name",
    "library_versions",
    "make_manifest",
    "write_manifest",
    "write_result_dir",
    "config_key",
    "ensure_writable_dir",
    "ensure_writable_file",
]

_VERSIONED_PACKAGES = (
    "lexprobe",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "torch",
    "transformers",
    "gguf",
    "peft",
    "faiss-cpu",
    "faiss-gpu",
    "pronto",
    "umap-learn",
    "matplotlib",
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic on POSIX.
    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should get the usual permissions
    try:
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


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _unwritable(path: Path) -> str | None:
    """Why results cannot be written in the directory ``path`` (``None`` when they can); creates nothing."""
    try:
        if path.exists() and not path.is_dir():
            return f"{path} is a file, not a directory"
        probe = path
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return f"{path} lies under {probe}, which is a file, not a directory"
        with tempfile.TemporaryFile(dir=probe, prefix=".lexprobe-write-test-"):
            pass
    except OSError as exc:
        return f"{path} cannot be written ({(exc.strerror or type(exc).__name__).lower()})"
    return None


def ensure_writable_dir(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check, before any slow work, that results can be written in the directory ``path``; create nothing.

    ``path`` must be a directory or not exist yet, and the nearest existing folder at or above it must take a
    new file (a temporary file is made there and removed at once), so a file in the way, a read-only file
    system or a missing permission is told now rather than after the computation.

    Raises
    ------
    OutputError
        With a one-line message naming ``option`` and the path.
    """
    path = Path(path).expanduser()
    problem = _unwritable(path)
    if problem:
        raise OutputError(f"{option}: {problem}; give a writable directory")
    return path


def ensure_writable_file(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check, before any slow work, that the file ``path`` can be written (made or replaced); create nothing.

    Raises
    ------
    OutputError
        ``path`` is a directory, or its folder cannot be written (see :func:`ensure_writable_dir`).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{option}: {path} is a directory; give a file name")
    problem = _unwritable(path.parent)
    if problem:
        raise OutputError(f"{option}: cannot write {path}: {problem}")
    return path


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """Return the hex SHA-256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_key(*parts: Any) -> str:
    """A short, stable caching key for JSON-serialisable parts (configs, checksums, names)."""
    blob = json.dumps(parts, sort_keys=True, default=_json_default)
    return sha256_text(blob)[:20]


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(text: str) -> str:
    """``text`` as one safe folder or file name: every character outside ``[A-Za-z0-9._-]`` becomes ``_``.

    For names that come from data or the command line (an OBO header's ``ontology:``, a task, a model) and
    become a path: ``"../../tmp/x"`` -> ``".._.._tmp_x"``, ``"a/b"`` -> ``"a_b"``, so the name cannot leave
    the folder it is joined to (a symbolic link can; check the resolved path where that matters).

    Raises
    ------
    OutputError
        The name is empty, ``.`` or ``..`` once cleaned.
    """
    name = _UNSAFE_NAME.sub("_", str(text))
    if name in ("", ".", ".."):
        from lexprobe.exceptions import OutputError

        raise OutputError(f"{str(text)!r} cannot name a folder (empty, '.' or '..'); give it another name")
    return name


def cache_dir(*sub: str) -> Path:
    """The user cache directory (``$LEXPROBE_CACHE``, default ``~/.cache/lexprobe``), created on demand."""
    root = os.environ.get("LEXPROBE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "lexprobe"
    path = base.joinpath(*sub)
    path.mkdir(parents=True, exist_ok=True)
    return path


def library_versions() -> dict[str, str]:
    """Versions of Python and of the installed packages that shape lexprobe's numbers."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def make_manifest(
    *,
    stage: str,
    config: Any = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the provenance record written beside a result.

    Parameters
    ----------
    stage : str
        Which stage made the result (``"split"``, ``"embed"``, ``"align"``...).
    config : dataclass or mapping, optional
        The exact configuration of the stage.
    inputs, outputs : mapping, optional
        What went in (ontology name, data checksum, model, ...) and what came out (file names, counts).
    **extra
        Anything else worth recording (seed, timings).
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    return {
        "stage": stage,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "platform": platform.platform(),
        "config": config,
        "inputs": dict(inputs or {}),
        "outputs": dict(outputs or {}),
        **extra,
    }


def write_manifest(
    directory: str | os.PathLike[str], manifest: Mapping[str, Any], *, name: str = "manifest.json"
) -> Path:
    """Write ``manifest`` as ``directory/name`` atomically."""
    return atomic_write_json(Path(directory) / name, dict(manifest))


def write_result_dir(
    out: str | os.PathLike[str],
    tables: Mapping[str, Any],
    *,
    stage: str,
    record: Mapping[str, Any],
    figures: Any = None,
    texts: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write a stage's result directory: each table as CSV, texts, the figures, then the manifest, each
    atomically.

    Parameters
    ----------
    out : path
        The directory (created if missing).
    tables : mapping of file name -> pandas.DataFrame
    stage : str
    record : mapping
        The stage's own record of how the result was made: ``config``, ``inputs`` and ``seed``.
    figures : callable, optional
        ``figures(directory) -> list of paths``, drawn into ``out/figures``.
    texts : mapping of file name -> str, optional
        Text files (e.g. a Markdown summary of the tables), UTF-8.

    Returns
    -------
    list of Path
        Every file written, the manifest last (its ``outputs`` lists the others with their sizes).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        written.append(out / name)
    for name, text in (texts or {}).items():
        with atomic_path(out / name) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        written.append(out / name)
    if figures is not None:
        written += list(figures(out / "figures"))
    manifest = make_manifest(
        stage=stage,
        config=record["config"],
        inputs=record["inputs"],
        outputs={p.name: p.stat().st_size for p in written},
        seed=record["seed"],
    )
    written.append(write_manifest(out, manifest))
    return written
