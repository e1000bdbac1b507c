"""Generic term tables: a TSV or CSV with ``id, name[, symbol, synonyms, pop_*]``."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from lexprobe.exceptions import DataFormatError
from lexprobe.ontology._curie import normalize_curie
from lexprobe.ontology._io import clip, split_multi
from lexprobe.ontology._table import LIST_COLUMNS, TERM_COLUMNS, check_ids, finish_term_table, new_term_table

__all__ = ["table_from_generic", "read_snapshot", "write_snapshot"]

_NAME_COLUMNS = ("name", "label")


def table_from_generic(raw: pd.DataFrame, path: str | os.PathLike[str]) -> pd.DataFrame:
    """Turn a user's ``id, name[, symbol, synonyms, ...]`` table into a term table.

    Multi-valued cells (synonyms, alt_ids) are split on ``|`` or ``;``. Columns named ``pop_*`` are kept
    as popularity. Ids are normalized as CURIEs when they look like one and kept as given otherwise.
    """
    columns = {c.strip().lower(): c for c in raw.columns}
    name_col = next((columns[c] for c in _NAME_COLUMNS if c in columns), None)
    missing = [want for want, have in (("id", columns.get("id")), ("name", name_col)) if have is None]
    if missing:
        raise DataFormatError(
            f"{path}: a term table needs columns id and name; missing {', '.join(missing)} "
            f"(found: {clip(', '.join(map(str, raw.columns[:10])), 200)})"
        )
    if raw.empty:
        raise DataFormatError(f"{path}: the table has a header but no terms")
    rows = []
    for record in raw.to_dict("records"):
        ident = str(record[columns["id"]]).strip()
        try:
            ident = normalize_curie(ident)
        except ValueError:
            pass
        row = {"id": ident, "label": str(record[name_col]).strip()}
        if "symbol" in columns:
            row["symbol"] = str(record[columns["symbol"]]).strip() or None
        for column in ("synonyms", "alt_ids"):
            if column in columns:
                row[column] = split_multi(record[columns[column]], ("|", ";"))
        for key, original in columns.items():
            if key.startswith("pop_"):
                row[key] = pd.to_numeric(record[original], errors="coerce")
        if "category" in columns:
            row["category"] = str(record[columns["category"]]).strip() or None
        rows.append(row)
    frame = new_term_table(rows)
    for key, original in columns.items():
        if not key.startswith("pop_"):
            continue
        values = pd.to_numeric(frame[key], errors="coerce").astype(float).to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(bad.nonzero()[0][0])
            what = "non-numeric" if np.isnan(values[first]) else "infinite"
            raise DataFormatError(
                f"{path}: popularity column {clip(original)!r} has {what} values "
                f"(first: data row {first + 1}, {clip(raw[original].iloc[first])!r}); popularity must be a number"
            )
    return finish_term_table(frame, source=str(path))


def write_snapshot(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a term table as the project's compact snapshot format (TSV.gz, ``|``-joined lists).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from lexprobe.ontology import load_ontology
    >>> terms = load_ontology("hpo").terms.head(3)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_snapshot(terms, Path(tmp) / "hpo3.terms.tsv.gz")
    ...     print(read_snapshot(Path(tmp) / "hpo3.terms.tsv.gz").equals(terms))
    True
    """
    out = frame.copy()
    for column in LIST_COLUMNS:
        out[column] = ["|".join(v) for v in out[column]]
    out["obsolete"] = out["obsolete"].astype(int)
    for column in [c for c in out.columns if c.startswith("pop_")]:
        if (out[column] == out[column].round()).all():
            out[column] = out[column].astype(int)
    # mtime=0 in the gzip header: the same table always gives the same bytes (and checksum)
    import gzip

    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(out.to_csv(sep="\t", index=False, lineterminator="\n").encode("utf-8"))


def read_snapshot(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a snapshot written by :func:`write_snapshot` back into a term table.

    Builds the columns directly (rather than through the general clean-up of user tables) so a built-in
    ontology loads in about a tenth of a second.

    Raises
    ------
    DataFormatError
        If the file is not a readable snapshot or lacks a term-table column.

    Examples
    --------
    >>> from lexprobe.ontology import data_dir
    >>> terms = read_snapshot(data_dir() / "hpo.terms.tsv.gz")
    >>> len(terms), list(terms.columns[:3])
    (19484, ['id', 'label', 'symbol'])
    """
    try:
        raw = pd.read_csv(path, sep="\t", dtype=object, na_filter=False, compression="gzip", encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(
            f"{path}: not a readable term-table snapshot ({exc}); rebuild it with data/build.py"
        ) from None
    missing = [c for c in TERM_COLUMNS if c not in raw.columns]
    if missing:
        raise DataFormatError(f"{path}: snapshot lacks columns {missing}; rebuild it with data/build.py")
    columns: dict[str, pd.Series] = {}
    for column in TERM_COLUMNS:
        values = raw[column].to_numpy(dtype=object)
        if column in LIST_COLUMNS:
            parts = [tuple(v.split("|")) if v else () for v in values.tolist()]
            columns[column] = pd.Series(parts, dtype=object)
        elif column == "obsolete":
            columns[column] = pd.Series(values == "1", dtype=bool)
        else:
            values = values.copy()
            values[values == ""] = None
            columns[column] = pd.Series(values, dtype=object)
    for column in sorted(c for c in raw.columns if c.startswith("pop_")):
        columns[column] = pd.to_numeric(raw[column], errors="raise").astype(float)
    frame = pd.DataFrame(columns)
    check_ids(frame, source=str(path))
    return frame
