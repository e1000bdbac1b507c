"""What ``$LEXPROBE_CACHE`` holds, and removing parts of it safely.

The cache (:func:`lexprobe.runs.cache_dir`, default ``~/.cache/lexprobe``) holds:

``embeddings/<key>/``
    Finished pooled hidden states (``embeddings.npy``, ``items.json``, ``manifest.json``), one per cache key
    of :mod:`lexprobe.embed`; ``<key>.partial/`` holds the shards of an extraction that has not finished
    (resumable), ``.<key>.assembling/`` one being assembled; ``<key>.lock`` is the key's file lock.
``models/<stem>-<sha>-v<N>/``
    A GGUF model converted once into a plain Hugging Face folder (complete when its ``lexprobe-complete.json``
    lists every file at its size); ``models/gguf/`` holds GGUF files assembled from chunk packages.
``ontology/<key>.json.gz``
    Parsed ontology files (gzip JSON).
``rates.json``
    Measured extraction speeds (:mod:`lexprobe.costs`).
``CACHEDIR.TAG``
    Marks the folder as lexprobe's cache (:data:`lexprobe.runs.CACHE_TAG`).

Each entry is recognised by the exact names lexprobe gives it; anything else is listed as ``other`` and never
removed. :func:`list_entries` describes each entry from its own metadata; :func:`clear_entries` removes the ones
that match, only inside a cache root that lexprobe made (:func:`check_cache_root`), holding the entry's file lock
so that a running extraction or conversion is never cut (an entry in use is skipped and reported).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fnmatch
import gzip
import io
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from lexprobe.exceptions import CacheError, OutputError
from lexprobe.runs import CACHE_TAG, cache_dir, has_cache_tag, is_cache_name

__all__ = [
    "CacheEntry",
    "ClearResult",
    "KINDS",
    "cache_root",
    "check_cache_root",
    "list_entries",
    "clear_entries",
    "parse_age",
]

Kind = Literal["embeddings", "model", "gguf", "ontology", "rates", "other"]
#: Kinds of cache entry, in the order they are listed.
KINDS: tuple[str, ...] = ("embeddings", "model", "gguf", "ontology", "rates", "other")

_KEY = re.compile(r"[0-9a-f]{20}")
_SHARD = re.compile(r"shard-(\d{8})-(\d{5})-\d+\.npz")
#: A converted model's folder (``lexprobe.models._converted_gguf``: ``<stem>-<sha256[:16]>-v<N>``), its temporary
#: folder (``.<folder>.<random>``) and its lock (``.<folder>.lock``)
_CONVERTED = re.compile(r".+-[0-9a-f]{16}-v\d+")
_CONVERTING = re.compile(r"\.(.+-[0-9a-f]{16}-v\d+)\.(?!lock$)[^.]+")
#: A GGUF file assembled from chunk packages and its temporary file (``lexprobe.named_models._assembled_by_package``)
_GGUF = re.compile(r"[^.].*\.gguf")
_GGUF_TEMP = re.compile(r"\..+\.gguf\.\d+\.tmp")
#: A parsed ontology (``<key>.json.gz``) and its temporary file (``lexprobe.runs.atomic_path``)
_ONTOLOGY = re.compile(r"[0-9a-f]{20}\.json\.gz")
_ONTOLOGY_TEMP = re.compile(r"\.[0-9a-f]{20}\.json\.gz\..+\.tmp")
_RATES_TEMP = re.compile(r"\.rates\.json\..+\.tmp")
#: CURIE prefixes of the built-in ontologies, to name an embedding entry's ontology from its keys
_PREFIX_NAMES = {"HGNC": "hgnc", "HP": "hpo", "GO": "go"}


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """One thing in the cache.

    Attributes
    ----------
    kind : {"embeddings", "model", "gguf", "ontology", "rates", "other"}
    path : Path
        The entry's folder or file.
    size : int
        Bytes of every file in it.
    last_used : datetime
        The newest access or modification time the file system recorded for its files (UTC; access times are
        coarse on most mounts, and a cache hit that only reads may not move them).
    complete : bool
        False for work in progress or left by an interrupted run (shards, a conversion without its marker,
        temporary files).
    model : str
        The model it belongs to ("" when none): the name the run gave (``smollm2-135m``, an HF id, a path).
    description : str
        What it is, in a few words.
    details : dict
        What its metadata says (items, layers, dtype, ontology, field...), JSON-able.
    lock : Path or None
        The file lock lexprobe takes to work on it.
    """

    kind: str
    path: Path
    size: int
    last_used: _dt.datetime
    complete: bool
    model: str = ""
    description: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    lock: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (paths as strings, time in ISO 8601)."""
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        out["lock"] = str(self.lock) if self.lock else None
        out["last_used"] = self.last_used.isoformat(timespec="seconds")
        return out


@dataclasses.dataclass
class ClearResult:
    """What :func:`clear_entries` removed (or, with ``dry_run``, would remove) and what it left."""

    removed: list[CacheEntry]
    skipped: list[tuple[CacheEntry, str]]
    dry_run: bool

    @property
    def bytes_freed(self) -> int:
        """Bytes of the removed entries (would be freed, with ``dry_run``)."""
        return sum(e.size for e in self.removed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record."""
        return {
            "dry_run": self.dry_run,
            "bytes_freed": self.bytes_freed,
            "removed": [e.to_dict() for e in self.removed],
            "skipped": [{"entry": e.to_dict(), "reason": why} for e, why in self.skipped],
        }


def cache_root() -> Path:
    """The cache directory: ``$LEXPROBE_CACHE``, default ``~/.cache/lexprobe``."""
    return cache_dir()


# --- listing -------------------------------------------------------------------------------------------------


def _walk(path: Path) -> Iterator[os.stat_result]:
    """stat of every file at or under ``path``, never following links (a link counts as itself)."""
    try:
        st = path.lstat()
    except OSError:
        return
    if not path.is_dir() or path.is_symlink():
        yield st
        return
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for item in it:
                    with contextlib.suppress(OSError):
                        if item.is_dir(follow_symlinks=False):
                            stack.append(Path(item.path))
                        else:
                            yield item.stat(follow_symlinks=False)
        except OSError:
            continue


def _usage(path: Path) -> tuple[int, _dt.datetime]:
    size, newest = 0, 0.0
    for st in _walk(path):
        size += st.st_size
        newest = max(newest, st.st_mtime, st.st_atime)
    if newest == 0.0:
        with contextlib.suppress(OSError):
            newest = path.lstat().st_mtime
    return size, _dt.datetime.fromtimestamp(newest, tz=_dt.timezone.utc)


def _read(path: Path, limit: int = -1) -> bytes:
    """A file's bytes (its first ``limit``), read without moving its access time where the system allows
    (``O_NOATIME``: the owner's files on Linux), so that listing the cache does not make entries look used."""
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:  # O_NOATIME on a file of another user
        fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit)


def _json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(_read(path))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _entry(kind: str, path: Path, *, complete: bool = True, **fields: Any) -> CacheEntry:
    size, used = _usage(path)
    return CacheEntry(kind=kind, path=path, size=size, last_used=used, complete=complete, **fields)


def _guess_field(keys: list[str], texts: list[str]) -> str:
    """Which field an embedding entry holds, from its items (entries do not record it): ids are their own keys;
    symbols never hold a space, so items with spaces are names; otherwise HGNC items are symbols ("" when
    unsure)."""
    if not texts:
        return ""
    if texts == keys:
        return "id"
    if any(len(t.split()) > 1 for t in texts):
        return "name"
    return "symbol" if keys and keys[0].upper().startswith("HGNC:") else ""


def _embedding_entry(path: Path, root: Path) -> CacheEntry:
    manifest = _json(path / "manifest.json")
    items = _json(path / "items.json")
    inputs = manifest.get("inputs") or {}
    config = manifest.get("config") or {}
    model = inputs.get("model") or {}
    keys = [str(k) for k in items.get("keys") or []]
    texts = [str(t) for t in items.get("texts") or []]
    prefix = keys[0].split(":", 1)[0] if keys and ":" in keys[0] else ""
    layers = config.get("layers_resolved") or items.get("layers") or []
    shape = (manifest.get("outputs") or {}).get("array_shape") or []
    details = {
        "ontology": _PREFIX_NAMES.get(prefix.upper(), prefix.lower()),
        "field": _guess_field(keys, texts),
        "n_items": inputs.get("n_items", len(keys) or None),
        "n_layers": len(layers),
        "hidden_size": shape[-1] if shape else model.get("hidden_size"),
        "n_tokens": inputs.get("n_tokens"),
        "dtype": model.get("dtype", "float32"),
        "storage_dtype": config.get("storage_dtype"),
        "pool": config.get("pool"),
        "prefix": config.get("prefix"),
        "device": model.get("device"),
        "model_checksum": model.get("checksum"),
        "created": manifest.get("created"),
    }
    complete = bool(manifest) and (path / "embeddings.npy").is_file()
    what = " ".join(str(v) for v in (details["ontology"], details["field"]) if v) or "items"
    description = (
        f"{what}: {details['n_items']} items x {details['n_layers']} layers, {details['dtype']}"
        if complete
        else "unreadable or incomplete entry (recomputed on next use)"
    )
    return _entry(
        "embeddings",
        path,
        complete=complete,
        model=str(model.get("name") or ""),
        description=description,
        details=details,
        lock=root / f"{path.name}.lock",
    )


def _partial_entry(path: Path, root: Path, key: str, what: str) -> CacheEntry:
    shards = [m for m in (_SHARD.fullmatch(p.name) for p in path.glob("shard-*.npz")) if m]
    n_items = sum(int(m.group(2)) for m in shards)
    description = f"{what}: {len(shards)} shards, {n_items} items done (resumed by the same run)"
    return _entry(
        "embeddings",
        path,
        complete=False,
        description=description,
        details={"key": key, "n_shards": len(shards), "n_items_done": n_items},
        lock=root / f"{key}.lock",
    )


def _embedding_entries(root: Path) -> list[CacheEntry]:
    out = []
    for path in sorted(root.iterdir()):
        name = path.name
        if name.endswith(".lock") and _KEY.fullmatch(name[: -len(".lock")]) and path.is_file():
            continue  # a key's lock: it stays (a waiting process may hold it open)
        if path.is_dir() and not path.is_symlink() and _KEY.fullmatch(name):
            out.append(_embedding_entry(path, root))
        elif path.is_dir() and not path.is_symlink() and name.endswith(".partial") and _KEY.fullmatch(name[:-8]):
            out.append(_partial_entry(path, root, name[:-8], "extraction in progress or interrupted"))
        elif name.startswith(".") and name.endswith(".assembling") and _KEY.fullmatch(name[1:-11]):
            out.append(_partial_entry(path, root, name[1:-11], "assembly in progress or interrupted"))
        else:
            out.append(_entry("other", path, complete=True, description="not written by lexprobe's embedding cache"))
    return out


def _model_entries(root: Path) -> list[CacheEntry]:
    out = []
    for path in sorted(root.iterdir()):
        name = path.name
        if path.is_dir() and name == "gguf" and not path.is_symlink():
            out += _gguf_entries(path)
            continue
        if name.startswith(".") and name.endswith(".lock") and _CONVERTED.fullmatch(name[1:-5]) and path.is_file():
            continue  # a conversion's lock
        if path.is_dir() and not path.is_symlink() and _CONVERTED.fullmatch(name):
            marker = _json(path / "lexprobe-complete.json")
            files = (marker or {}).get("files")
            complete = isinstance(files, dict) and all(
                (path / f).is_file() and (path / f).stat().st_size == n for f, n in files.items()
            )
            config = _json(path / "config.json")
            details = {
                "gguf_sha256": (marker or {}).get("gguf_sha256"),
                "architecture": (config.get("architectures") or [""])[0],
                "n_layers": config.get("num_hidden_layers"),
                "hidden_size": config.get("hidden_size"),
            }
            what = "GGUF converted to a plain model" if complete else "incomplete conversion (rebuilt on next use)"
            out.append(
                _entry(
                    "model",
                    path,
                    complete=complete,
                    model=name,
                    description=what,
                    details=details,
                    lock=root / f".{name}.lock",
                )
            )
        elif path.is_dir() and not path.is_symlink() and _CONVERTING.fullmatch(name):
            # a conversion's temporary folder, ``.<target>.<random>``, made under the target's lock
            lock = root / f"{name.rsplit('.', 1)[0]}.lock"
            out.append(
                _entry("model", path, complete=False, description="conversion in progress or interrupted", lock=lock)
            )
        else:
            out.append(_entry("other", path, description="not written by lexprobe's model cache"))
    return out


def _gguf_entries(folder: Path) -> list[CacheEntry]:
    out = []
    for file in sorted(folder.iterdir()):
        if file.is_symlink() or not file.is_file():
            out.append(_entry("other", file, description="not written by lexprobe's model cache"))
        elif _GGUF.fullmatch(file.name):
            what = "GGUF file assembled from its packages"
            out.append(_entry("gguf", file, model=file.stem, description=what))
        elif _GGUF_TEMP.fullmatch(file.name):
            out.append(_entry("gguf", file, complete=False, description="partial GGUF assembly"))
        else:
            out.append(_entry("other", file, description="not written by lexprobe's model cache"))
    return out


def _ontology_head(path: Path) -> dict[str, Any]:
    """The ``ontology`` record and row count at the start of a parsed-ontology file, without reading the rest."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(_read(path, 1 << 16))) as fh:
            head = fh.read(16384).decode("utf-8", errors="replace")
        at = head.index('"ontology":') + len('"ontology":')
        record, _ = json.JSONDecoder().raw_decode(head, at + len(head[at:]) - len(head[at:].lstrip()))
        rows = re.search(r'"n_rows":\s*(\d+)', head)
        return {**record, "n_rows": int(rows.group(1)) if rows else None} if isinstance(record, dict) else {}
    except (OSError, ValueError, EOFError):
        return {}


def _ontology_entries(root: Path) -> list[CacheEntry]:
    out = []
    for path in sorted(root.iterdir()):
        if _ONTOLOGY.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            head = _ontology_head(path)
            details = {"ontology": head.get("name")} | {k: head.get(k) for k in ("source", "kind", "n_rows")}
            description = (
                f"{head.get('name')}: {head.get('n_rows')} terms parsed from {head.get('source')}"
                if head
                else "unreadable (parsed again on next use)"
            )
            out.append(_entry("ontology", path, complete=bool(head), description=description, details=details))
        elif _ONTOLOGY_TEMP.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            out.append(_entry("ontology", path, complete=False, description="interrupted write"))
        else:
            out.append(_entry("other", path, description="not written by lexprobe's ontology cache"))
    return out


def _rates_entry(path: Path) -> CacheEntry:
    data = _json(path)
    records = data.get("records") if isinstance(data.get("records"), list) else []
    return _entry(
        "rates",
        path,
        description=f"{len(records)} measured speeds",
        details={"n_records": len(records)},
        lock=path.with_name(path.name + ".lock"),  # the lock lexprobe.rates.record_rate takes
    )


def list_entries(kind: str | Iterable[str] | None = None) -> list[CacheEntry]:
    """Every entry in the cache, described from its own metadata.

    Parameters
    ----------
    kind : str or iterable of str, optional
        Only these kinds (:data:`KINDS`).

    Returns
    -------
    list of CacheEntry
        By kind (in :data:`KINDS` order), then path. A converted model is named after the model its
        embeddings name (matched by the GGUF's SHA-256) where there are any.

    Raises
    ------
    CacheError
        An unknown kind.
    """
    kinds = _kinds(kind)
    root = cache_root()
    entries: list[CacheEntry] = []
    for child in sorted(root.iterdir()):
        name = child.name
        if name == "embeddings" and child.is_dir() and not child.is_symlink():
            entries += _embedding_entries(child)
        elif name == "models" and child.is_dir() and not child.is_symlink():
            entries += _model_entries(child)
        elif name == "ontology" and child.is_dir() and not child.is_symlink():
            entries += _ontology_entries(child)
        elif name == "rates.json" and child.is_file() and not child.is_symlink():
            entries.append(_rates_entry(child))
        elif name in ("rates.json.lock", CACHE_TAG) and child.is_file():
            continue  # the speeds' lock, and the tag that marks the folder as lexprobe's cache
        elif _RATES_TEMP.fullmatch(name) and child.is_file() and not child.is_symlink():
            entries.append(_entry("rates", child, complete=False, description="interrupted write"))
        else:
            entries.append(_entry("other", child, description="not written by lexprobe"))
    entries = _name_models(entries)
    entries = [e for e in entries if e.kind in kinds]
    return sorted(entries, key=lambda e: (KINDS.index(e.kind), str(e.path)))


def _name_models(entries: list[CacheEntry]) -> list[CacheEntry]:
    """Give converted models the name their embeddings record (same GGUF checksum)."""
    names = {
        e.details.get("model_checksum"): e.model
        for e in entries
        if e.kind == "embeddings" and e.model and e.details.get("model_checksum")
    }
    out = []
    for e in entries:
        named = names.get(e.details.get("gguf_sha256")) if e.kind == "model" else None
        out.append(dataclasses.replace(e, model=named, details=e.details | {"folder": e.path.name}) if named else e)
    return out


def _kinds(kind: str | Iterable[str] | None) -> tuple[str, ...]:
    if kind is None:
        return KINDS
    asked = (kind,) if isinstance(kind, str) else tuple(kind)
    unknown = [k for k in asked if k not in KINDS]
    if unknown:
        raise CacheError(f"unknown cache kind {unknown[0]!r}; use one of {', '.join(KINDS)}")
    return asked


# --- clearing ------------------------------------------------------------------------------------------------


_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: The longest age a timedelta holds (999999999 days; anything in the cache is younger)
_MAX_AGE = _dt.timedelta(days=_dt.timedelta.max.days)


def parse_age(text: str | _dt.timedelta) -> _dt.timedelta:
    """``"30d"``, ``"12h"``, ``"2w"``, ``"45m"``, ``"90s"`` (or a timedelta) as a timedelta.

    Raises
    ------
    CacheError
        Any other form, or a negative timedelta.
    """
    if isinstance(text, _dt.timedelta):
        if text < _dt.timedelta(0):
            raise CacheError(f"--older-than must not be negative, got {text}")
        return text
    match = _AGE.fullmatch(str(text))
    if not match:
        raise CacheError(f"--older-than must be a number and a unit (s, m, h, d, w) like 30d or 12h, got {text!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if not seconds <= _MAX_AGE.total_seconds():  # also inf, from a number too long for a float
        raise CacheError(f"--older-than must be at most {_MAX_AGE.days}d, got {text!r}; give a shorter age")
    return _dt.timedelta(seconds=seconds)


def check_cache_root(root: Path) -> None:
    """Refuse to remove anything from ``root`` unless it is lexprobe's cache: it holds lexprobe's cache tag
    (:data:`lexprobe.runs.CACHE_TAG`, written when lexprobe makes the folder), or nothing but the names lexprobe
    writes there (a cache made before the tag).

    Raises
    ------
    CacheError
        ``root`` holds other things and no tag: ``$LEXPROBE_CACHE`` most likely names a folder of the user's.
    """
    if has_cache_tag(root):
        return
    try:
        foreign = sorted(child.name for child in root.iterdir() if not is_cache_name(child.name))
    except OSError as exc:
        raise CacheError(f"cannot read the cache folder {root}: {exc.strerror or exc}") from None
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise CacheError(
            f"{root} does not look like lexprobe's cache (no {CACHE_TAG} from lexprobe, and it holds {shown}, "
            "which lexprobe did not write), so nothing is removed; set LEXPROBE_CACHE to lexprobe's own cache "
            "folder, or, if this is it, move those out of it"
        )


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (not followed if it is a link) lies strictly inside ``root``."""
    parent = path.parent.resolve()
    real_root = root.resolve()
    return (parent == real_root or real_root in parent.parents) and path.name not in ("", ".", "..")


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def clear_entries(
    *,
    kind: str | Iterable[str] | None = None,
    model: str | None = None,
    older_than: str | _dt.timedelta | None = None,
    incomplete_only: bool = False,
    dry_run: bool = False,
) -> ClearResult:
    """Remove the cache entries that match every filter given.

    Parameters
    ----------
    kind : str or iterable of str, optional
        Only these kinds (:data:`KINDS`).
    model : str, optional
        Only entries of this model: its name as runs record it (``smollm2-135m``, an HF id), compared without
        case; shell wildcards allowed (``"gemma*"``).
    older_than : str or timedelta, optional
        Only entries not used for this long (``"30d"``, ``"12h"``; see :func:`parse_age`).
    incomplete_only : bool
        Only work in progress or left by an interrupted run.
    dry_run : bool
        Remove nothing; say what would be removed.

    Returns
    -------
    ClearResult
        The entries removed and the bytes freed; entries skipped because lexprobe did not write them (kind
        ``other``: never removed), because another process holds their lock (a running extraction or
        conversion), or because they lie outside the cache root, with the reason.

    Raises
    ------
    CacheError
        An unknown kind, a bad age, or a cache folder that does not look like lexprobe's
        (:func:`check_cache_root`).
    """
    from filelock import FileLock, Timeout

    age = parse_age(older_than) if older_than is not None else None
    now = _dt.datetime.now(_dt.timezone.utc)
    root = cache_root()
    check_cache_root(root)
    chosen = [
        e
        for e in list_entries(kind)
        if (model is None or fnmatch.fnmatchcase(e.model.casefold(), model.casefold()))
        and (age is None or now - e.last_used >= age)
        and (not incomplete_only or not e.complete)
    ]
    removed, skipped = [], []
    for entry in chosen:
        if entry.kind == "other":
            skipped.append((entry, "not written by lexprobe, so left in place"))
            continue
        if not _inside(entry.path, root):
            skipped.append((entry, "outside the cache root"))
            continue
        # a dry run creates no lock file; a real one takes the lock the writer takes, so work is never cut
        lock = None
        if entry.lock is not None and entry.lock.parent.is_dir() and not (dry_run and not entry.lock.exists()):
            lock = FileLock(str(entry.lock))
        try:
            if lock is not None:
                lock.acquire(timeout=0)
        except Timeout:
            skipped.append((entry, "in use by another process (its lock is held)"))
            continue
        try:
            if not dry_run:
                _remove(entry.path)
            removed.append(entry)
        except OSError as exc:
            raise OutputError(f"cannot remove {entry.path}: {exc.strerror or exc}") from None
        finally:
            if lock is not None:
                lock.release()
    return ClearResult(removed=removed, skipped=skipped, dry_run=dry_run)
