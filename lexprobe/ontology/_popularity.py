"""Popularity from annotation files: HPO's ``phenotype.hpoa`` and GAF files (GO and other OBO ontologies).

Counts are of *direct* annotations only: a term's count is not propagated to its ancestors. Ids in the
annotation file that are alt ids of a term (or obsolete ids with a replacement) count for the primary term.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

import pandas as pd

from lexprobe.exceptions import DataFormatError
from lexprobe.ontology._io import head_text, open_bytes, open_text

__all__ = ["annotation_format", "hpoa_popularity", "gaf_popularity", "add_annotation_popularity"]

AnnotationFormat = Literal["hpoa", "gaf"]


def annotation_format(path: str | os.PathLike[str]) -> AnnotationFormat:
    """Tell a ``phenotype.hpoa`` from a GAF file by content.

    Raises
    ------
    DataFormatError
        If the file is neither.
    """
    for line in head_text(path).splitlines():
        if not line.strip():
            continue
        if line.startswith("!"):  # GAF header lines: "!gaf-version: 2.2"
            return "gaf"
        if line.startswith("#"):  # phenotype.hpoa metadata lines before its header
            continue
        columns = line.rstrip("\r\n").split("\t")
        if {"database_id", "hpo_id"} <= set(columns):
            return "hpoa"
        if len(columns) >= 15:
            return "gaf"
        break
    raise DataFormatError(
        f"{path}: not an annotation file lexprobe reads; give HPO's phenotype.hpoa (header with database_id, "
        "hpo_id) or a GAF 2.x file (15-17 tab-separated columns)"
    )


def _primary_ids(frame: pd.DataFrame) -> dict[str, str]:
    """Map every id, alt id and replaced obsolete id of a term table to the id annotations should count for."""
    mapping: dict[str, str] = {}
    for term_id, alt_ids in zip(frame["id"].tolist(), frame["alt_ids"].tolist()):
        for alt in alt_ids:
            mapping.setdefault(alt, term_id)
    mapping.update({t: t for t in frame["id"].tolist()})
    obsolete = frame["obsolete"].to_numpy(dtype=bool)
    for term_id, replaced in zip(frame["id"][obsolete].tolist(), frame["replaced_by"][obsolete].tolist()):
        if replaced:
            mapping[term_id] = replaced
    return mapping


def _no_match(path: str | os.PathLike[str], ids: list[str]) -> DataFormatError:
    return DataFormatError(
        f"{path}: none of the {len(ids):,} annotated ids (e.g. {ids[0]}) are terms of this ontology; "
        "is it the annotation file of another ontology?"
    )


def hpoa_popularity(frame: pd.DataFrame, hpoa: str | os.PathLike[str]) -> pd.Series:
    """Distinct diseases annotated directly with each HPO term in ``phenotype.hpoa``.

    Lines with the ``NOT`` qualifier are excluded; counts are not propagated to ancestors.

    Raises
    ------
    DataFormatError
        If the file lacks the ``database_id``, ``hpo_id`` or ``qualifier`` column, or annotates no term.
    """
    raw = open_bytes(hpoa).decode("utf-8", errors="replace")
    # the release file starts with '#' metadata lines before its header
    body = "\n".join(line for line in raw.splitlines() if line and not line.startswith("#"))
    try:
        table = pd.read_csv(io.StringIO(body), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{hpoa}: cannot parse as phenotype.hpoa: {' '.join(str(exc).split())}") from None
    needed = {"database_id", "hpo_id", "qualifier"}
    if not needed <= set(table.columns):
        missing = sorted(needed - set(table.columns))
        raise DataFormatError(f"{hpoa}: phenotype.hpoa needs columns {sorted(needed)}; missing {missing}")
    table = table[table["qualifier"].str.strip().str.upper() != "NOT"]
    # (term, disease) pairs after mapping alt ids, so a disease annotated with a term and its alt id counts once
    primary = _primary_ids(frame)
    terms = table["hpo_id"].str.strip().map(primary)
    if len(table) and terms.isna().all():
        raise _no_match(hpoa, sorted(set(table["hpo_id"])))
    pairs = pd.DataFrame({"term": terms, "disease": table["database_id"].str.strip()}).dropna()
    counts = pairs.drop_duplicates().groupby("term").size()
    return frame["id"].map(counts).fillna(0).astype(float)


def gaf_popularity(frame: pd.DataFrame, gaf: str | os.PathLike[str]) -> pd.Series:
    """Annotation lines per term in a GAF 2.x file (column 5), lines with a ``NOT`` qualifier excluded.

    The file is streamed, so a full ``goa_human.gaf.gz`` (hundreds of thousands of lines) needs little memory.

    Raises
    ------
    DataFormatError
        If a line has too few columns, the file has no annotation lines, or none annotates a term.
    """
    counts: dict[str, int] = {}
    n_lines = 0
    with open_text(gaf) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("!"):
                continue
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) < 15:
                raise DataFormatError(
                    f"{gaf}: line {lineno} has {len(cols)} tab-separated columns; a GAF line has 15-17"
                )
            n_lines += 1
            if "NOT" in cols[3].upper().split("|"):
                continue
            counts[cols[4].strip()] = counts.get(cols[4].strip(), 0) + 1
    if n_lines == 0:
        raise DataFormatError(f"{gaf}: no GAF annotation lines found")
    primary = _primary_ids(frame)
    per_term: dict[str, int] = {}
    for annotated, n in counts.items():
        term = primary.get(annotated)
        if term is not None:
            per_term[term] = per_term.get(term, 0) + n
    if counts and not per_term:
        raise _no_match(gaf, sorted(counts))
    return frame["id"].map(per_term).fillna(0).astype(float)


def add_annotation_popularity(
    frame: pd.DataFrame, annotations: str | os.PathLike[str], *, ontology: str, source: str
) -> tuple[pd.DataFrame, str]:
    """Add the popularity column an annotation file gives, named for its source.

    Parameters
    ----------
    frame : pandas.DataFrame
        A term table.
    annotations : path
        ``phenotype.hpoa`` (HPO only) or a GAF file.
    ontology : str
        The ontology's name (``"hpo"``, ``"go"``, or another).
    source : str
        Where the term table came from, for messages.

    Returns
    -------
    frame : pandas.DataFrame
        A copy with the new column.
    column : str
        ``pop_hpoa_diseases``, ``pop_go_annotations`` (GAF on GO) or ``pop_gaf_annotations`` (GAF on others).

    Raises
    ------
    DataFormatError
        If the file is of neither format, or phenotype.hpoa is given for an ontology other than HPO.
    """
    annotations = Path(annotations)
    kind = annotation_format(annotations)
    frame = frame.copy()
    if kind == "hpoa":
        if ontology != "hpo":
            raise DataFormatError(
                f"{annotations} is HPO's phenotype.hpoa, which gives popularity to HPO terms only, but {source} "
                f"is ontology {ontology!r}; for GO pass a GAF file (lexprobe data fetch go-annotations)"
            )
        column = "pop_hpoa_diseases"
        frame[column] = hpoa_popularity(frame, annotations)
    else:
        column = "pop_go_annotations" if ontology == "go" else "pop_gaf_annotations"
        frame[column] = gaf_popularity(frame, annotations)
    return frame, column
