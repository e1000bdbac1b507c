"""Opening data files: gzip or plain, UTF-8, with errors that name the file."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from lexprobe.exceptions import DataFormatError, OntologyError

__all__ = ["open_bytes", "open_text", "head_text", "read_table", "first_line", "split_multi"]


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise OntologyError(f"file not found: {path}")
    if path.is_dir():
        raise OntologyError(f"{path} is a directory; give a file")


def open_bytes(path: str | os.PathLike[str]) -> bytes:
    """The decompressed bytes of a (possibly gzip-compressed) file."""
    path = Path(path)
    _check_exists(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFormatError(f"{path}: corrupt gzip data ({exc})") from None
    if not raw.strip():
        raise DataFormatError(f"{path}: file is empty")
    # a UTF-8 byte-order mark (Excel, Windows editors) is not part of the first column name or OBO tag
    return raw.removeprefix(codecs.BOM_UTF8)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


@contextlib.contextmanager
def open_text(path: str | os.PathLike[str]) -> Iterator[io.TextIOBase]:
    """Open a (possibly gzip-compressed) UTF-8 text file for streaming, line by line.

    Undecodable bytes become U+FFFD rather than errors: callers of this read tab-separated annotation
    files whose ids and counts are ASCII, and a stray byte in a free-text column must not stop them.
    """
    path = Path(path)
    _check_exists(path)
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            yield fh
    except (OSError, EOFError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise DataFormatError(f"{path}: corrupt gzip data ({exc})") from None


def head_text(path: str | os.PathLike[str], n_bytes: int = 65536) -> str:
    """The first ``n_bytes`` (decompressed) of a file as text, for sniffing its format without reading it all."""
    path = Path(path)
    _check_exists(path)
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as fh:
                raw = fh.read(n_bytes)
        else:
            with open(path, "rb") as fh:
                raw = fh.read(n_bytes)
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: corrupt gzip data ({exc})") from None
    if not raw.strip():
        raise DataFormatError(f"{path}: file is empty")
    return raw.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="replace")


def first_line(raw: bytes | str) -> str:
    """The first non-blank line of a file's text (for sniffing its format)."""
    for line in raw.splitlines():
        text = (line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line).strip()
        if text:
            return text
    return ""


def read_table(path: str | os.PathLike[str], *, comment: str | None = None) -> pd.DataFrame:
    """Read a TSV or CSV (by content: tabs win) as strings, UTF-8, gzip allowed."""
    raw = open_bytes(path)
    header = first_line(raw)
    sep = "\t" if "\t" in header else ","
    try:
        return pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            comment=comment,
            quotechar='"',
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {exc}") from None


def split_multi(value: str, separators: tuple[str, ...]) -> tuple[str, ...]:
    """Split a multi-valued cell (``"A, B"`` or ``"A|B"``) into stripped, non-empty parts."""
    text = str(value or "").strip().strip('"')
    if not text:
        return ()
    parts = [text]
    for sep in separators:
        parts = [p for part in parts for p in part.split(sep)]
    return tuple(p.strip().strip('"') for p in parts if p.strip().strip('"'))
