"""The term table every loader produces, and the :class:`Ontology` that carries it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable

import pandas as pd

from lexprobe.exceptions import DataFormatError
from lexprobe.ontology._curie import normalize_curie
from lexprobe.ontology._io import clip

__all__ = [
    "Ontology",
    "TERM_COLUMNS",
    "LIST_COLUMNS",
    "STRING_COLUMNS",
    "new_term_table",
    "finish_term_table",
    "check_ids",
]

#: Columns every term table has, in order; ``pop_*`` popularity columns follow.
TERM_COLUMNS: tuple[str, ...] = (
    "id",
    "label",
    "symbol",
    "synonyms",
    "alt_ids",
    "obsolete",
    "replaced_by",
    "previous_symbols",
    "alias_symbols",
    "namespace",
    "category",
    "exact_synonyms",
    "ncbi_gene_id",
    "uniprot_ids",
    "ensembl_gene_id",
    "mgi_ids",
    "definition",
    "parents",
    "umls_ids",
    "snomed_ids",
    "enzyme_ids",
    "rgd_ids",
)
#: Single-valued text columns: Python ``str`` or ``None`` (never ``""`` or NaN).
STRING_COLUMNS: tuple[str, ...] = (
    "id",
    "label",
    "symbol",
    "replaced_by",
    "namespace",
    "category",
    "ncbi_gene_id",
    "ensembl_gene_id",
    "definition",
)
#: Multi-valued columns: tuples in memory (in the source's order), ``|``-joined on disk.
LIST_COLUMNS: tuple[str, ...] = (
    "synonyms",
    "alt_ids",
    "previous_symbols",
    "alias_symbols",
    "exact_synonyms",
    "uniprot_ids",
    "mgi_ids",
    "parents",
    "umls_ids",
    "snomed_ids",
    "enzyme_ids",
    "rgd_ids",
)


def new_term_table(rows: Iterable[dict]) -> pd.DataFrame:
    """Build a term table from row dicts, filling absent convention columns."""
    frame = pd.DataFrame(list(rows))
    for column in TERM_COLUMNS:
        if column not in frame.columns:
            if column in LIST_COLUMNS:
                frame[column] = [()] * len(frame)
            elif column == "obsolete":
                frame[column] = False
            else:
                frame[column] = None
    return frame


def check_ids(frame: pd.DataFrame, *, source: str) -> None:
    """Check a table has rows, and that every row has an id and no id occurs twice.

    Raises
    ------
    DataFormatError
        If the table is empty, an id is missing, or an id occurs twice.
    """
    if frame.empty:
        raise DataFormatError(f"{source}: no terms found")
    ids = frame["id"]
    blank = ids.isna() | (ids.astype(str).str.strip() == "")
    if blank.any():
        first = int(blank.to_numpy().nonzero()[0][0])
        raise DataFormatError(
            f"{source}: {int(blank.sum())} rows have no id (first: data row {first + 1}); every term needs an id"
        )
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        raise DataFormatError(
            f"{source}: duplicate id {clip(duplicated.iloc[0])} ({len(duplicated)} duplicates); ids must be unique"
        )


def finish_term_table(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Order columns, fix dtypes and check ids are present and unique.

    Raises
    ------
    DataFormatError
        If the table is empty, an id is missing, or an id occurs twice.
    """
    check_ids(frame, source=source)
    pop = sorted(c for c in frame.columns if c.startswith("pop_"))
    frame = frame[list(TERM_COLUMNS) + pop].copy()
    # .tolist() first: iterating a pandas column element by element is ~10x slower
    for column in LIST_COLUMNS:
        frame[column] = pd.Series(
            [tuple(v) if isinstance(v, (list, tuple)) else () for v in frame[column].tolist()],
            index=frame.index,
            dtype=object,
        )
    frame["obsolete"] = frame["obsolete"].astype(bool)
    for column in pop:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    # one representation whatever the reader: Python str objects, None where missing
    for column in STRING_COLUMNS:
        values = frame[column].to_numpy(dtype=object, na_value=None, copy=True)
        values[values == ""] = None
        frame[column] = pd.Series(values, index=frame.index, dtype=object)
    return frame.reset_index(drop=True)


@dataclasses.dataclass(frozen=True, eq=False)
class Ontology:
    """A term table with where it came from.

    Attributes
    ----------
    name : str
        ``"hgnc"``, ``"hpo"``, ``"go"``, or the file stem of a user file.
    terms : pandas.DataFrame
        One row per term with the columns of :data:`TERM_COLUMNS` then ``pop_*`` popularity columns.
    source : str
        The file(s) it was read from, or ``bundled:data/<file>``.
    release : str or None
        The release, from the file's header or the snapshot's provenance.
    checksum : str
        SHA-256 of the bytes it was read from (several files: of their checksums).
    kind : str
        ``"hgnc"``, ``"obo"`` or ``"table"``.
    popularity_columns : tuple of str
        The ``pop_*`` columns, each from one named source.
    default_popularity : str or None
        The popularity column tasks rank by unless told otherwise.

    Examples
    --------
    >>> from lexprobe.ontology import load_ontology
    >>> hgnc = load_ontology("hgnc")
    >>> hgnc.resolve_symbol("tp53"), hgnc.resolve_id("hgnc:11998")
    ('TP53', 'HGNC:11998')
    >>> hgnc.describe()["source"]
    'bundled:data/hgnc.terms.tsv.gz'
    """

    name: str
    terms: pd.DataFrame
    source: str
    release: str | None
    checksum: str
    kind: str
    popularity_columns: tuple[str, ...]
    default_popularity: str | None

    def __len__(self) -> int:
        return len(self.terms)

    def describe(self) -> dict[str, str | None]:
        """What identifies the data, for manifests: name, source, release and checksum."""
        return {"name": self.name, "source": self.source, "release": self.release, "checksum": self.checksum}

    def active(self) -> pd.DataFrame:
        """Terms that are not obsolete (for HGNC: status Approved)."""
        return self.terms[~self.terms["obsolete"]].reset_index(drop=True)

    @functools.cached_property
    def _id_map(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for term_id, alt_ids, obsolete, replaced in zip(
            self.terms["id"].tolist(),
            self.terms["alt_ids"].tolist(),
            self.terms["obsolete"].tolist(),
            self.terms["replaced_by"].tolist(),
        ):
            target = replaced if (obsolete and isinstance(replaced, str) and replaced) else term_id
            mapping[term_id] = target
            for alt in alt_ids:
                mapping.setdefault(alt, term_id)
        return mapping

    @functools.cached_property
    def _symbol_map(self) -> dict[str, str]:
        active = self.active()
        current = {s.upper(): s for s in active["symbol"].dropna() if s}
        mapping: dict[str, str] = {}
        # previous symbols win over aliases; a symbol claimed by two genes is ambiguous and left out
        for column in ("alias_symbols", "previous_symbols"):
            claims: dict[str, set[str]] = {}
            for symbol, others in zip(active["symbol"], active[column]):
                for other in others:
                    claims.setdefault(other.upper(), set()).add(symbol)
            mapping.update({k: next(iter(v)) for k, v in claims.items() if len(v) == 1})
        mapping.update(current)
        return mapping

    def resolve_id(self, curie: str) -> str | None:
        """The current primary id for an id, an alt id or an obsolete id with a replacement; else ``None``."""
        try:
            key = normalize_curie(curie)
        except ValueError:
            key = str(curie).strip()  # a table's own id (gene_1) is kept as given on load
        return self._id_map.get(key)

    def resolve_symbol(self, symbol: str) -> str | None:
        """The approved symbol for a current, previous or alias symbol (case-insensitive); else ``None``."""
        return self._symbol_map.get(str(symbol).strip().upper())
