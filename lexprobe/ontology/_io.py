"""Opening data files: gzip or plain, UTF-8, with errors that name the file."""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from lexprobe.exceptions import DataFormatError, OntologyError

__all__ = ["open_bytes", "open_text", "head_text", "read_table", "first_line", "split_multi", "clip"]


def clip(text: object, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for an error message (a 300 kB line must not become one)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


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


def _line_of(raw: bytes, offset: int) -> int:
    return raw[:offset].count(b"\n") + 1


def _first_long_row(text: str, sep: str) -> tuple[int, int, int] | None:
    """The first row with more fields than the header: (line, fields, header fields); ``None`` if none."""
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"')
    n_header = None
    try:
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            if n_header is None:
                n_header = len(row)
            elif len(row) > n_header:
                return rows.line_num, len(row), n_header
    except csv.Error:
        return None
    return None


def read_table(path: str | os.PathLike[str], *, comment: str | None = None) -> pd.DataFrame:
    """Read a TSV or CSV (by content: tabs win) as strings, UTF-8, gzip allowed.

    Raises
    ------
    DataFormatError
        If the file is not UTF-8, holds NUL bytes, or does not parse (the message names the line where it
        can), or a row has more fields than the header (pandas would silently take its first as an index).
    """
    raw = open_bytes(path)
    header = first_line(raw)
    sep = "\t" if "\t" in header else ","
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path}: not UTF-8 text at line {_line_of(raw, exc.start)} (byte 0x{raw[exc.start]:02x}); "
            "re-save the file as UTF-8"
        ) from None
    if "\x00" in text:
        line = _line_of(raw, raw.index(b"\x00"))
        raise DataFormatError(f"{path}: NUL byte at line {line}; is this a text file?")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                dtype=str,
                keep_default_na=False,
                comment=comment,
                quotechar='"',
                index_col=False,
            )
    except pd.errors.ParserWarning:
        # index_col=False: pandas would otherwise silently take the first cell of such a row as its index
        long_row = _first_long_row(text, sep)
        where = (
            f"line {long_row[0]} has {long_row[1]} fields but the header has {long_row[2]}"
            if long_row
            else "a row has more fields than the header"
        )
        raise DataFormatError(f"{path}: {where}; not a valid {kind}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise DataFormatError(f"{path}: cannot parse as {kind}: {clip(' '.join(str(exc).split()), 300)}") from None
    # a short row leaves its last cells empty, never NaN: every cell is a str
    return frame.fillna("")


def split_multi(value: str, separators: tuple[str, ...]) -> tuple[str, ...]:
    """Split a multi-valued cell (``"A, B"`` or ``"A|B"``) into stripped, non-empty parts."""
    text = str(value or "").strip().strip('"')
    if not text:
        return ()
    parts = [text]
    for sep in separators:
        parts = [p for part in parts for p in part.split(sep)]
    return tuple(p.strip().strip('"') for p in parts if p.strip().strip('"'))
