"""Opening data files: gzip or plain, UTF-8, with errors that name the file."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pandas as pd

from lexprobe.exceptions import DataFormatError, OntologyError

__all__ = ["open_bytes", "read_table", "first_line", "split_multi"]


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
    return raw


def first_line(raw: bytes) -> str:
    """The first non-blank, non-comment-free line of a file's text (for sniffing its format)."""
    for line in raw.splitlines():
        text = line.decode("utf-8", errors="replace").strip()
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
