"""HGNC gene tables: the official ``hgnc_complete_set.txt`` and the custom-download dialect."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from lexprobe.exceptions import DataFormatError
from lexprobe.ontology._curie import normalize_curie
from lexprobe.ontology._io import clip, read_table, split_multi
from lexprobe.ontology._table import finish_term_table, new_term_table

__all__ = ["read_hgnc", "hgnc_popularity", "is_hgnc_header"]

# lexprobe column -> (official snake_case column, custom-download column)
_COLUMNS = {
    "id": ("hgnc_id", "HGNC ID"),
    "symbol": ("symbol", "Approved symbol"),
    "label": ("name", "Approved name"),
    "status": ("status", "Status"),
    "alias_symbols": ("alias_symbol", "Alias symbols"),
    "previous_symbols": ("prev_symbol", "Previous symbols"),
    "category": ("locus_type", "Locus type"),
    "ncbi_gene_id": ("entrez_id", "NCBI Gene ID(supplied by NCBI)"),
    "uniprot_ids": ("uniprot_ids", "UniProt ID(supplied by UniProt)"),
    "ensembl_gene_id": ("ensembl_gene_id", "Ensembl gene ID"),
    "mgi_ids": ("mgd_id", "Mouse genome database ID(supplied by MGI)"),
    "rgd_ids": ("rgd_id", "Rat genome database ID(supplied by RGD)"),
    "enzyme_ids": ("enzyme_id", "Enzyme IDs"),
}
#: Multi-valued columns (``|`` in the official dialect, ``, `` in the custom download).
_MULTI = ("alias_symbols", "previous_symbols", "uniprot_ids", "mgi_ids", "rgd_ids", "enzyme_ids")
_REQUIRED = ("id", "symbol", "label")
_HGNC_REF = re.compile(r"HGNC:\d+")


def is_hgnc_header(columns: list[str]) -> bool:
    """Whether a table's columns are one of the two HGNC dialects."""
    cols = set(columns)
    return "hgnc_id" in cols or "HGNC ID" in cols


def _pick(columns: list[str], key: str, path: Path) -> str | None:
    official, custom = _COLUMNS[key]
    for candidate in (official, custom, custom.split("(")[0].strip()):
        if candidate in columns:
            return candidate
    if key in _REQUIRED:
        raise DataFormatError(
            f"{path}: HGNC table has no {official!r} / {custom!r} column; "
            f"columns found: {clip(', '.join(map(str, columns[:12])), 200)}"
        )
    return None


def _hgnc_id(value: str, path: Path, number: int) -> str:
    """``HGNC:5`` (or ``5``) normalized; a clear error naming the data row for anything else."""
    try:
        curie = normalize_curie(value, prefix="HGNC")
    except ValueError:
        curie = None
    if curie is None or not re.fullmatch(r"HGNC:[0-9]+", curie):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise DataFormatError(f"{path}: data row {number}: {shown!r} is not an HGNC id (HGNC:<number>)")
    return curie


def read_hgnc(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an HGNC gene table (either dialect) into a term table with its cross-references.

    Withdrawn entries are kept as ``obsolete`` with ``replaced_by`` taken from their "see HGNC:..." note.
    The official dialect separates multi-values with ``|``; the custom download with ``, ``.
    Cross-references keep the upstream form: ``ncbi_gene_id`` the bare NCBI Gene number (``"1"``),
    ``uniprot_ids`` UniProt accessions (``P04217``), ``ensembl_gene_id`` (``ENSG00000121410``), ``mgi_ids``
    the mouse orthologs' MGI ids (``MGI:2152878``), ``rgd_ids`` the rat orthologs' RGD ids (``RGD:69417``),
    ``enzyme_ids`` EC numbers (``1.1.1.1``); a column the file lacks is left empty.
    """
    path = Path(path)
    raw = read_table(path)
    columns = list(raw.columns)
    picked = {key: _pick(columns, key, path) for key in _COLUMNS}
    official = picked["id"] == "hgnc_id"
    separators = ("|",) if official else (", ", ",")
    if raw.empty:
        raise DataFormatError(f"{path}: HGNC table has a header but no genes")

    def cell(record: dict, key: str) -> str:
        return str(record.get(picked[key], "") or "").strip() if picked[key] else ""

    rows = []
    for number, record in enumerate(raw.to_dict("records"), start=1):
        status = record[picked["status"]] if picked["status"] else "Approved"
        name = record[picked["label"]].strip()
        withdrawn = status.strip().lower() != "approved"
        refs = _HGNC_REF.findall(name) if withdrawn else []
        row = {
            "id": _hgnc_id(record[picked["id"]], path, number),
            "label": name,
            "symbol": record[picked["symbol"]].strip() or None,
            "obsolete": withdrawn,
            "replaced_by": refs[0] if refs else None,
            "category": cell(record, "category") or None,
            "ncbi_gene_id": cell(record, "ncbi_gene_id"),
            "ensembl_gene_id": cell(record, "ensembl_gene_id") or None,
        }
        for key in _MULTI:
            row[key] = split_multi(cell(record, key), separators)
        rows.append(row)
    frame = new_term_table(rows)
    frame["pop_hgnc_synonyms"] = [len(a) + len(p) for a, p in zip(frame["alias_symbols"], frame["previous_symbols"])]
    return frame


def hgnc_popularity(frame: pd.DataFrame, genes_to_phenotype: str | os.PathLike[str]) -> pd.Series:
    """Number of distinct HPO terms linked to each gene in HPO's ``genes_to_phenotype.txt``.

    Joined by NCBI gene id, falling back to the approved symbol for genes without one.
    """
    links = read_table(genes_to_phenotype)
    needed = {"ncbi_gene_id", "gene_symbol", "hpo_id"}
    if not needed <= set(links.columns):
        raise DataFormatError(
            f"{genes_to_phenotype}: genes_to_phenotype needs columns {sorted(needed)}, found {list(links.columns)[:8]}"
        )
    by_gene_id = links.groupby("ncbi_gene_id")["hpo_id"].nunique()
    by_symbol = links.groupby("gene_symbol")["hpo_id"].nunique()
    counts = frame["ncbi_gene_id"].map(by_gene_id)
    counts = counts.fillna(frame["symbol"].map(by_symbol))
    return counts.fillna(0).astype(float)


def load_hgnc_table(path: str | os.PathLike[str], genes_to_phenotype: str | os.PathLike[str] | None) -> pd.DataFrame:
    """HGNC term table with its popularity columns, ready for :class:`~lexprobe.ontology.Ontology`."""
    frame = read_hgnc(path)
    if genes_to_phenotype is not None:
        frame["pop_hpo_annotations"] = hgnc_popularity(frame, genes_to_phenotype)
    return finish_term_table(frame, source=str(path))
