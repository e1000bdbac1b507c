"""Mapping tasks (field A -> field B of an ontology), popularity-balanced splits and prompt templates.

A task is the paper's unit of analysis: "map GO term names to GO ids", "map HGNC gene names to gene
symbols". This module turns a term table into (source, target) pairs, samples them in popularity-balanced
train / withheld splits, and holds the prompt paraphrases the trainer and evaluator share.

Any two fields of a term table make a task, ``SOURCE-to-TARGET`` (:data:`FIELD_COLUMNS`). Multi-valued fields
(:data:`MULTI_VALUED_FIELDS`: exact synonyms, alias and previous symbols, is_a parents, UniProt, MGI, RGD, UMLS
and SNOMED CT cross-references, EC numbers) are handled so:

- as the *source*, each value is its own item (every alias symbol of a gene -> its symbol); a value carried
  by more than one term is dropped as ambiguous, as is a value equal to its own term's target;
- as the *target*, the item's answer for training is the term's first value (the source's order; synonyms
  are alphabetical), and scoring counts any of the term's values as correct;
- a split draws *terms*, then one of a drawn term's items (seeded): train and withheld never share a term,
  so two aliases of one gene never straddle the split.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import TaskError, did_you_mean

if TYPE_CHECKING:
    from lexprobe.ontology import Ontology

__all__ = [
    "field_pair_label",
    "run_ontology_name",
    "FIELD_COLUMNS",
    "FIELD_KINDS",
    "MULTI_VALUED_FIELDS",
    "NAMED_TASKS",
    "ZOO_TASKS",
    "ZOO_V3_TASKS",
    "ZOO_KINDS",
    "DEFAULT_CATEGORIES",
    "MappingTask",
    "Split",
    "PromptTemplate",
    "field_column",
    "field_kind",
    "task_kind",
    "field_values",
    "ontology_fields",
    "ontology_tasks",
    "get_task",
    "select_terms",
    "task_pairs",
    "assign_popularity_bins",
    "sample_terms",
    "make_split",
    "prompt_templates",
    "render_prompts",
    "fill_template",
]

#: User-facing field names and the term-table column each reads (``label`` is another name for ``name``;
#: ``locus_type`` is HGNC's name for its ``category``).
FIELD_COLUMNS: dict[str, str] = {
    "name": "label",
    "label": "label",
    "symbol": "symbol",
    "id": "id",
    "synonym": "exact_synonyms",
    "alias_symbol": "alias_symbols",
    "previous_symbol": "previous_symbols",
    "ncbi_gene": "ncbi_gene_id",
    "uniprot": "uniprot_ids",
    "ensembl": "ensembl_gene_id",
    "mgi": "mgi_ids",
    "namespace": "namespace",
    "category": "category",
    "locus_type": "category",
    "definition": "definition",
    "parent": "parents",
    "umls": "umls_ids",
    "snomed": "snomed_ids",
    "enzyme_id": "enzyme_ids",
    "rgd": "rgd_ids",
}

#: What each field's values are, which decides how a reply is parsed and scored: ``text`` (names, synonyms:
#: case-insensitive after whitespace normalization), ``symbol`` (the same; an approved-symbol target also
#: accepts a previous or alias symbol as ``alt``), ``curie`` (the ontology's own ids, exact after CURIE
#: normalization), ``identifier`` (cross-references, exact after normalizing their form) and ``category``
#: (exact, case and ``_`` versus space aside).
FIELD_KINDS: dict[str, str] = {
    "name": "text",
    "label": "text",
    "synonym": "text",
    "symbol": "symbol",
    "alias_symbol": "symbol",
    "previous_symbol": "symbol",
    "id": "curie",
    "ncbi_gene": "identifier",
    "uniprot": "identifier",
    "ensembl": "identifier",
    "mgi": "identifier",
    "namespace": "category",
    "category": "category",
    "locus_type": "category",
    "definition": "text",
    "parent": "text",
    "umls": "identifier",
    "snomed": "identifier",
    "enzyme_id": "identifier",
    "rgd": "identifier",
}

#: Fields with several values per term (tuple columns of the term table).
MULTI_VALUED_FIELDS: frozenset[str] = frozenset(
    {"synonym", "alias_symbol", "previous_symbol", "uniprot", "mgi", "parent", "umls", "snomed", "enzyme_id", "rgd"}
)

#: Fields named for one ontology only.
_FIELD_ONTOLOGIES: dict[str, tuple[str, ...]] = {"locus_type": ("hgnc",)}
#: The name each ontology's ``category`` is listed under (``category`` stays accepted).
_CATEGORY_NAMES: dict[str, str] = {"hgnc": "locus_type", "go": "namespace"}

#: The paper's eight tasks plus HGNC symbol <-> id, by ontology.
NAMED_TASKS: dict[str, tuple[str, ...]] = {
    "hgnc": (
        "name-to-symbol",
        "symbol-to-name",
        "name-to-id",
        "id-to-name",
        "symbol-to-id",
        "id-to-symbol",
    ),
    "hpo": ("name-to-id", "id-to-name"),
    "go": ("name-to-id", "id-to-name"),
}

#: The kinds of task the zoo spans, after the paper's account (lexicalized targets generalize, arbitrary
#: identifiers are only memorized).
ZOO_KINDS: tuple[str, ...] = (
    "lexicalized -> lexicalized",
    "lexicalized -> identifier",
    "identifier -> lexicalized",
    "text -> category",
    "identifier -> category",
)

#: The task zoo (issue 19): field pairs beyond :data:`NAMED_TASKS`, by ontology, each with its kind (one of
#: :data:`ZOO_KINDS`). Why each was chosen and what the paper's account predicts for it: ``docs/zoo.md``.
ZOO_TASKS: dict[str, dict[str, str]] = {
    "hgnc": {
        "previous_symbol-to-symbol": "lexicalized -> lexicalized",
        "alias_symbol-to-symbol": "lexicalized -> lexicalized",
        "symbol-to-ncbi_gene": "lexicalized -> identifier",
        "symbol-to-uniprot": "lexicalized -> identifier",
        "symbol-to-ensembl": "lexicalized -> identifier",
        "name-to-mgi": "lexicalized -> identifier",
        "ncbi_gene-to-symbol": "identifier -> lexicalized",
        "uniprot-to-symbol": "identifier -> lexicalized",
        "ensembl-to-symbol": "identifier -> lexicalized",
        "mgi-to-name": "identifier -> lexicalized",
        "name-to-locus_type": "text -> category",
        "symbol-to-locus_type": "text -> category",
    },
    "hpo": {
        "synonym-to-name": "lexicalized -> lexicalized",
        "name-to-category": "text -> category",
        "synonym-to-id": "lexicalized -> identifier",
    },
    "go": {
        "synonym-to-name": "lexicalized -> lexicalized",
        "name-to-namespace": "text -> category",
        "synonym-to-id": "lexicalized -> identifier",
        "id-to-namespace": "identifier -> category",
    },
}

#: Calibration v3's field pairs (issue "Calibration v3", ``--tasks zoo-v3``): tasks whose outcome the kinds of
#: their fields do not settle, on the fields added for them (definitions, is_a parents, UMLS / SNOMED CT
#: cross-references, EC numbers, RGD ids), by ontology, each with its kind as :func:`task_kind` gives it. Kept
#: apart from :data:`ZOO_TASKS` so study v2's ``--tasks zoo`` does not change. Why each: ``docs/zoo.md``.
ZOO_V3_TASKS: dict[str, dict[str, str]] = {
    "hpo": {
        "definition-to-name": "lexicalized -> lexicalized",
        "name-to-parent": "lexicalized -> lexicalized",
        "name-to-umls": "lexicalized -> identifier",
        "name-to-snomed": "lexicalized -> identifier",
    },
    "go": {
        "name-to-parent": "lexicalized -> lexicalized",
    },
    "hgnc": {
        "name-to-enzyme_id": "lexicalized -> identifier",
        "symbol-to-rgd": "lexicalized -> identifier",
        "enzyme_id-to-name": "identifier -> lexicalized",
    },
}

#: Terms a built-in ontology's tasks use by default (``category`` column). HGNC: protein-coding genes, the
#: genes whose names and symbols a biomedical model meets most; pass ``categories=()`` for every locus type.
#: A task to or from the category itself (``name-to-locus_type``) uses every category: one would make it constant.
DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {"hgnc": ("gene with protein product",)}

_TASK_RE = re.compile(r"^([a-z_]+)-to-([a-z_]+)$")


def _allowed_fields() -> str:
    return ", ".join(sorted(set(FIELD_COLUMNS) - {"label"}))


def _task_names(ontology: str) -> list[str]:
    """The named and zoo tasks of ``ontology`` (of every ontology, for one with none), for a did-you-mean."""
    groups = (NAMED_TASKS, ZOO_TASKS, ZOO_V3_TASKS)
    own = [*dict.fromkeys(t for named in groups for t in named.get(ontology, ()))]
    return own or [*{t for named in groups for tasks in named.values() for t in tasks}]


def field_column(field: str) -> str:
    """Return the term-table column of a user-facing field name (``"name"`` -> ``"label"``).

    Raises
    ------
    TaskError
        If ``field`` is not a known field.
    """
    try:
        return FIELD_COLUMNS[field]
    except KeyError:
        known = set(FIELD_COLUMNS) - {"label"}
        raise TaskError(
            f"unknown field {field!r}{did_you_mean(field, sorted(known))}; allowed fields are {_allowed_fields()}"
        ) from None


def field_kind(field: str) -> str:
    """What a field's values are (:data:`FIELD_KINDS`): ``text``, ``symbol``, ``curie``, ``identifier`` or
    ``category``.

    Raises
    ------
    TaskError
        If ``field`` is not a known field.
    """
    field_column(field)
    return FIELD_KINDS[field]


def task_kind(task: str) -> str:
    """The kind of a ``SOURCE-to-TARGET`` task (:data:`ZOO_KINDS`), from its fields' kinds: text and symbols
    are ``lexicalized``, CURIEs and cross-reference identifiers ``identifier``, and a category target makes
    ``text -> category`` or ``identifier -> category``. A task from a category (no zoo kind) is
    ``category -> lexicalized`` or ``category -> identifier``.

    Raises
    ------
    TaskError
        If ``task`` is not ``SOURCE-to-TARGET`` of known fields.
    """
    match = _TASK_RE.match(str(task))
    if not match:
        raise TaskError(f"a task is SOURCE-to-TARGET, e.g. name-to-symbol; got {task!r}")

    def side(field: str) -> str:
        kind = field_kind(field)
        return {"curie": "identifier", "identifier": "identifier", "category": "category"}.get(kind, "lexicalized")

    source, target = (side(field) for field in match.groups())
    if target == "category":
        return "text -> category" if source == "lexicalized" else f"{source} -> category"
    return f"{source} -> {target}"


def field_pair_label(ontology: str, task: str) -> str:
    """The unordered pair of a task's fields in its ontology, as the popularity and exposure tables label it:
    ``hgnc``, ``name-to-symbol`` -> ``hgnc name-symbol`` (:func:`lexprobe.predict.task_identity` writes
    ``hgnc name/symbol``).

    A task and its reverse share one field pair; held-out evaluations hold out by it.
    """
    source, _, target = task.partition("-to-")
    return f"{ontology} {'-'.join(sorted((source, target)))}"


def run_ontology_name(config: dict[str, Any]) -> str:
    """A run's ontology as a short name: a built-in ontology's name, or a file's name without its suffixes
    (``hp.obo.gz`` -> ``hp``)."""
    return Path(str(config["ontology"])).name.split(".")[0].lower()


def _normal(value: object) -> str:
    return " ".join(str(value).split())


def _cell_values(value: object) -> tuple[str, ...]:
    """A cell's values, whitespace-normalised, empty ones dropped: a tuple cell's in order, else the one."""
    if isinstance(value, (tuple, list)):
        return tuple(v for v in (_normal(x) for x in value) if v)
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return ()
    text = _normal(value)
    return (text,) if text else ()


def _has_value(series: pd.Series) -> pd.Series:
    return pd.Series([bool(_cell_values(v)) for v in series.tolist()], index=series.index, dtype=bool)


def _field_tuples(terms: pd.DataFrame, field: str) -> list[tuple[str, ...]]:
    column = field_column(field)
    if column not in terms.columns:
        raise TaskError(f"field {field!r} (column {column!r}) is not in this term table")
    return [_cell_values(v) for v in terms[column].tolist()]


def field_values(terms: pd.DataFrame, field: str) -> list[str]:
    """The values of ``field`` for each row of ``terms``, as whitespace-normalised strings.

    A multi-valued field (:data:`MULTI_VALUED_FIELDS`) gives each row's first value.

    Raises
    ------
    TaskError
        If the field is unknown, its column is absent, or a row has no value for it.
    """
    values = _field_tuples(terms, field)
    missing = np.array([not v for v in values], dtype=bool)
    if missing.any():
        first = terms.loc[missing, "id"].iloc[0] if "id" in terms.columns else int(missing.argmax())
        raise TaskError(
            f"{int(missing.sum())} rows have no {field!r} (first: {first}); select terms with "
            f"`select_terms(..., fields=({field!r},))` first"
        )
    return [v[0] for v in values]


def ontology_fields(ontology: Ontology) -> tuple[str, ...]:
    """The fields an ontology's active terms have values for, in :data:`FIELD_COLUMNS` order.

    ``label`` is left out (it is ``name``), and ``category`` is listed under the ontology's own name for it
    where it has one (``locus_type`` for HGNC, ``namespace`` for GO); both names stay accepted.
    """
    terms = ontology.active()
    out = []
    for field, column in FIELD_COLUMNS.items():
        if field == "label" or column not in terms.columns:
            continue
        if field in _FIELD_ONTOLOGIES and ontology.name not in _FIELD_ONTOLOGIES[field]:
            continue
        if field == "category" and ontology.name in _CATEGORY_NAMES:
            continue
        if _has_value(terms[column]).any():
            out.append(field)
    return tuple(out)


def ontology_tasks(ontology: Ontology) -> list[dict[str, str | None]]:
    """The named tasks (:data:`NAMED_TASKS`) and zoo tasks (:data:`ZOO_TASKS`, :data:`ZOO_V3_TASKS`) an ontology
    can build.

    Any other ``SOURCE-to-TARGET`` of two of :func:`ontology_fields` works too; these are the ones with a
    name in the paper or a place in the zoo.

    Returns
    -------
    list of dict
        ``task``, ``source``, ``target``, ``group`` (``"paper"``, ``"zoo"`` or ``"zoo-v3"``) and ``kind`` (the
        zoo's kind, :data:`ZOO_KINDS`; ``None`` for the paper's tasks).
    """
    fields = set(ontology_fields(ontology))
    listed: dict[str, tuple[str, str | None]] = {}
    for task in NAMED_TASKS.get(ontology.name, ("name-to-id", "id-to-name")):
        listed[task] = ("paper", None)
    for task, kind in ZOO_TASKS.get(ontology.name, {}).items():
        listed.setdefault(task, ("zoo", kind))
    for task, kind in ZOO_V3_TASKS.get(ontology.name, {}).items():
        listed.setdefault(task, ("zoo-v3", kind))
    out: list[dict[str, str | None]] = []
    for task, (group, kind) in listed.items():
        source, target = _TASK_RE.match(task).groups()  # type: ignore[union-attr]
        if {source, target} <= fields:
            out.append({"task": task, "source": source, "target": target, "group": group, "kind": kind})
    return out


@dataclasses.dataclass(frozen=True)
class MappingTask:
    """Map field ``source`` of an ontology's terms to field ``target``.

    Parameters
    ----------
    name : str
        ``"<source>-to-<target>"``, e.g. ``"name-to-symbol"``.
    source, target : str
        User-facing field names (keys of :data:`FIELD_COLUMNS`).
    """

    name: str
    source: str
    target: str

    def __post_init__(self) -> None:
        field_column(self.source)
        field_column(self.target)
        if self.source == self.target:
            raise TaskError(f"task {self.name!r} maps a field to itself; pick two different fields")


def get_task(ontology: Ontology | str, task: str) -> MappingTask:
    """Parse a task name (``"name-to-id"``) and check the ontology has both fields.

    Any ``SOURCE-to-TARGET`` pair of two fields the term table has works (:func:`ontology_fields`);
    :data:`NAMED_TASKS` lists the paper's, :data:`ZOO_TASKS` the zoo's.

    Raises
    ------
    TaskError
        If the name is malformed, a field is unknown, or the ontology has no values for a field; the message
        lists the fields the ontology has.
    """
    m = _TASK_RE.match(task.strip().lower())
    name = ontology if isinstance(ontology, str) else ontology.name
    if m is None:
        hint = did_you_mean(task, _task_names(name))
        raise TaskError(f"task must look like SOURCE-to-TARGET, e.g. 'name-to-id', got {task!r}{hint}")
    source, target = m.group(1), m.group(2)
    fields = ontology_fields(ontology) if not isinstance(ontology, str) else None
    listed = ", ".join(fields) if fields is not None else _allowed_fields()
    where = f"fields of {name!r} are" if fields is not None else "fields are"
    for field in (source, target):
        if field not in FIELD_COLUMNS:
            known = fields if fields is not None else sorted(set(FIELD_COLUMNS) - {"label"})
            raise TaskError(
                f"task {task!r} names unknown field {field!r}{did_you_mean(field, known)}; {where} {listed}"
            )
        if field in _FIELD_ONTOLOGIES and name not in _FIELD_ONTOLOGIES[field]:
            raise TaskError(
                f"field {field!r} is {', '.join(_FIELD_ONTOLOGIES[field])}'s name for its category; "
                f"for {name!r} use 'category'; {where} {listed}"
            )
    mapping = MappingTask(name=f"{source}-to-{target}", source=source, target=target)
    if not isinstance(ontology, str):
        for field in (source, target):
            column = field_column(field)
            if column not in ontology.terms.columns or not _has_value(ontology.terms[column]).any():
                raise TaskError(
                    f"ontology {name!r} has no {field!r} values, so task {task!r} is impossible; {where} {listed}"
                )
    return mapping


def select_terms(
    ontology: Ontology,
    *,
    fields: Sequence[str] = ("name",),
    categories: Sequence[str] | None = None,
    include_obsolete: bool = False,
) -> pd.DataFrame:
    """The terms a task or measurement uses: active, in the default categories, with every field present.

    Parameters
    ----------
    ontology : Ontology
    fields : sequence of str
        Fields every selected term must have a value of (``"name"``, ``"symbol"``, ``"id"``, ...).
    categories : sequence of str, optional
        Keep only terms whose ``category`` is one of these. ``None`` uses :data:`DEFAULT_CATEGORIES` for the
        ontology (protein-coding genes for HGNC), unless a field is the category itself; an empty sequence
        keeps every category.
    include_obsolete : bool
        Keep obsolete / withdrawn terms (out of tasks by default, as the design says).

    Raises
    ------
    TaskError
        If the selection is empty.
    """
    terms = ontology.terms if include_obsolete else ontology.active()
    if categories is None:
        uses_category = any(field_column(f) == "category" for f in fields)
        categories = () if uses_category else DEFAULT_CATEGORIES.get(ontology.name, ())
    if categories:
        terms = terms[terms["category"].isin(list(categories))]
        if terms.empty:
            raise TaskError(
                f"no terms of {ontology.name!r} are in categories {list(categories)}; "
                "check `lexprobe data show` for the category names"
            )
    for field in fields:
        column = field_column(field)
        if column not in terms.columns:
            raise TaskError(f"ontology {ontology.name!r} has no {field!r} field (column {column!r})")
        kept = terms[_has_value(terms[column])]
        if kept.empty and not terms.empty:
            raise TaskError(
                f"ontology {ontology.name!r} has no terms with a {field!r} value; pick another field "
                f"({', '.join(ontology_fields(ontology))})"
            )
        terms = kept
    return terms.reset_index(drop=True)


def _popularity_column(ontology: Ontology, popularity: str | None) -> str | None:
    if popularity is None:
        return ontology.default_popularity
    if popularity not in ontology.terms.columns:
        allowed = ", ".join(ontology.popularity_columns) or "(none)"
        raise TaskError(f"popularity column {popularity!r} is not in {ontology.name!r}; columns are {allowed}")
    return popularity


def task_pairs(
    ontology: Ontology,
    task: MappingTask | str,
    *,
    popularity: str | None = None,
    categories: Sequence[str] | None = None,
    include_obsolete: bool = False,
) -> pd.DataFrame:
    """All (source, target) pairs of a task: one row per term, or per source value of a multi-valued source.

    Source texts are compared case-insensitively. A source text carried by more than one term is dropped: the
    mapping would be ambiguous and no model could be scored fairly on it. A multi-valued source gives one row
    per value of a term (its own repeats, and values equal to the term's target, left out). The target is the
    term's first value of a multi-valued field; scoring accepts any of them.

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``target``, ``id``, ``popularity`` (0 where the ontology has no popularity), in
        term-table order.
    """
    if isinstance(task, str):
        task = get_task(ontology, task)
    terms = select_terms(
        ontology, fields=(task.source, task.target), categories=categories, include_obsolete=include_obsolete
    )
    pop_col = _popularity_column(ontology, popularity)
    popularity_values = terms[pop_col].astype(float).to_numpy() if pop_col else np.zeros(len(terms), dtype=float)
    ids = terms["id"].astype(str).to_numpy()
    targets = field_values(terms, task.target)
    if task.source in MULTI_VALUED_FIELDS:
        rows: list[tuple[str, str, str, float]] = []
        for values, target, term_id, pop in zip(_field_tuples(terms, task.source), targets, ids, popularity_values):
            seen = {target.casefold()}
            for value in values:
                if value.casefold() not in seen:
                    seen.add(value.casefold())
                    rows.append((value, target, term_id, pop))
        pairs = pd.DataFrame(rows, columns=["source", "target", "id", "popularity"])
        pairs["popularity"] = pairs["popularity"].astype(float)
    else:
        pairs = pd.DataFrame(
            {
                "source": field_values(terms, task.source),
                "target": targets,
                "id": ids,
                "popularity": popularity_values,
            }
        )
    key = pairs["source"].str.casefold()
    n_terms = pairs.groupby(key)["id"].transform("nunique")
    pairs = pairs[n_terms == 1].drop_duplicates(subset=["id", "source"])
    if pairs.empty:
        raise TaskError(f"task {task.name!r} on {ontology.name!r} has no unambiguous pairs")
    return pairs.reset_index(drop=True)


def assign_popularity_bins(popularity: np.ndarray, *, bins: int, seed: int) -> np.ndarray:
    """Cut items into ``bins`` equal-count bins by popularity rank (bin 0 least popular).

    Ties (common: many terms have zero annotations) are broken by a seeded random order, so every bin has
    the same number of items (up to one) whatever the distribution.

    Returns
    -------
    ndarray of int, shape (n_items,)
    """
    n = len(popularity)
    if bins < 1:
        raise TaskError(f"`bins` must be >= 1, got {bins}")
    if n < bins:
        raise TaskError(f"cannot cut {n} items into {bins} popularity bins; lower --bins")
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n)
    order = np.lexsort((tiebreak, np.asarray(popularity, dtype=float)))
    out = np.empty(n, dtype=int)
    for b, chunk in enumerate(np.array_split(order, bins)):
        out[chunk] = b
    return out


def sample_terms(
    ontology: Ontology,
    n: int | None,
    *,
    seed: int = 0,
    fields: Sequence[str] = ("name",),
    popularity: str | None = None,
    bins: int = 20,
    categories: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A popularity-balanced sample of ``n`` terms that have every field in ``fields``.

    The terms are ranked by popularity and cut into ``bins`` equal-count bins; the same number of terms is
    drawn from each bin (the remainder of ``n / bins`` goes to the most popular bins), with a seed.
    ``n=None``, or ``n`` at least the number of eligible terms, returns them all.

    Returns
    -------
    pandas.DataFrame
        The selected term rows (all term-table columns) plus ``popularity`` and ``bin``, ordered by id.
    """
    if n is not None and n < 1:
        raise TaskError(f"`n` (--limit) must be >= 1, got {n}")
    terms = select_terms(ontology, fields=fields, categories=categories)
    pop_col = _popularity_column(ontology, popularity)
    pop = terms[pop_col].astype(float).to_numpy() if pop_col else np.zeros(len(terms))
    n_bins = max(1, min(bins, len(terms)))
    terms = terms.assign(popularity=pop, bin=assign_popularity_bins(pop, bins=n_bins, seed=seed))
    if n is None or n >= len(terms):
        return terms.sort_values("id", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    base, extra = divmod(n, n_bins)
    chosen: list[np.ndarray] = []
    for b in range(n_bins):
        want = base + (1 if b >= n_bins - extra else 0)
        members = np.flatnonzero(terms["bin"].to_numpy() == b)
        chosen.append(rng.choice(members, size=min(want, len(members)), replace=False))
    taken = np.concatenate(chosen)
    short = n - len(taken)
    if short > 0:  # a bin smaller than its share (only when n is close to the number of terms)
        rest = np.setdiff1d(np.arange(len(terms)), taken)
        taken = np.concatenate([taken, rng.choice(rest, size=short, replace=False)])
    picked = terms.iloc[np.sort(taken)]
    return picked.sort_values("id", kind="stable").reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class Split:
    """A popularity-balanced train / withheld split of a task's pairs.

    ``train`` and ``withheld`` have columns ``source, target, id, popularity, bin``; they share no term and no
    source text, and hold the same number of pairs in every popularity bin.
    """

    task: MappingTask
    ontology: str
    train: pd.DataFrame
    withheld: pd.DataFrame
    bins: int
    per_bin: int
    popularity: str | None
    seed: int


def make_split(
    ontology: Ontology,
    task: MappingTask | str,
    *,
    bins: int = 20,
    per_bin: int = 30,
    popularity: str | None = None,
    seed: int = 0,
    categories: Sequence[str] | None = None,
) -> Split:
    """Draw a popularity-balanced train / withheld split, as the paper's design.

    The task's terms are ranked by popularity and cut into ``bins`` equal-count bins; from each bin
    ``2 * per_bin`` terms are drawn without replacement, the first half for training and the second withheld.
    A term gives its one pair; a term with several (a multi-valued source: one per alias symbol) gives one of
    them, drawn with the seed, so train and withheld never share a term.

    Raises
    ------
    TaskError
        If any bin has fewer than ``2 * per_bin`` terms (a short split would silently unbalance the bins).
    """
    if isinstance(task, str):
        task = get_task(ontology, task)
    if per_bin < 1:
        raise TaskError(f"`per_bin` must be >= 1, got {per_bin}")
    pop_col = _popularity_column(ontology, popularity)
    pairs = task_pairs(ontology, task, popularity=pop_col, categories=categories)
    # one row per term (its first pair), in the pairs' order: for one pair per term, the pairs themselves
    first = ~pairs["id"].duplicated()
    terms = pairs[first].reset_index(drop=True)
    need = 2 * per_bin * bins
    if len(terms) < need:
        counted = "pairs" if len(terms) == len(pairs) else f"terms ({len(pairs)} pairs)"
        raise TaskError(
            f"task {task.name!r} on {ontology.name!r} has {len(terms)} {counted}, but --bins {bins} x --per-bin "
            f"{per_bin} needs {need} (train + withheld); lower --per-bin or --bins"
        )
    terms = terms.assign(bin=assign_popularity_bins(terms["popularity"].to_numpy(), bins=bins, seed=seed))
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    held_idx: list[np.ndarray] = []
    for b in range(bins):
        members = np.flatnonzero(terms["bin"].to_numpy() == b)
        drawn = rng.choice(members, size=2 * per_bin, replace=False)
        train_idx.append(drawn[:per_bin])
        held_idx.append(drawn[per_bin:])
    columns = ["source", "target", "id", "popularity", "bin"]
    chosen = {"train": np.sort(np.concatenate(train_idx)), "withheld": np.sort(np.concatenate(held_idx))}
    sides = {name: terms.iloc[rows] for name, rows in chosen.items()}
    if len(terms) < len(pairs):  # several pairs for some terms: draw one per drawn term (its own stream)
        value_rng = np.random.default_rng([seed, 1])
        by_term = pairs.groupby("id", sort=False).indices
        for name, side in sides.items():
            picks = [by_term[term_id][value_rng.integers(len(by_term[term_id]))] for term_id in side["id"]]
            sides[name] = pairs.iloc[picks].assign(bin=side["bin"].to_numpy())
    train, withheld = (sides[name][columns].reset_index(drop=True) for name in ("train", "withheld"))
    return Split(
        task=task,
        ontology=ontology.name,
        train=train,
        withheld=withheld,
        bins=bins,
        per_bin=per_bin,
        popularity=pop_col,
        seed=seed,
    )


# --- prompts ---------------------------------------------------------------------------------------------

_FIELD_NOUNS: dict[str, dict[str, str]] = {
    "hgnc": {
        "name": "gene name",
        "symbol": "HGNC gene symbol",
        "id": "HGNC identifier",
        "alias_symbol": "alias gene symbol",
        "previous_symbol": "previous HGNC gene symbol",
        "ncbi_gene": "NCBI Gene ID",
        "uniprot": "UniProt accession",
        "ensembl": "Ensembl gene ID",
        "mgi": "MGI mouse gene ID",
        "rgd": "RGD rat gene ID",
        "enzyme_id": "EC number",
        "locus_type": "HGNC locus type",
        "category": "HGNC locus type",
    },
    "hpo": {
        "name": "HPO term",
        "id": "HPO identifier",
        "symbol": "HPO symbol",
        "synonym": "HPO synonym",
        "category": "HPO top-level category",
        "definition": "HPO term definition",
        "parent": "HPO parent term",
        "umls": "UMLS concept ID",
        "snomed": "SNOMED CT concept ID",
    },
    "go": {
        "name": "GO term",
        "id": "GO identifier",
        "symbol": "GO symbol",
        "synonym": "GO synonym",
        "namespace": "GO namespace",
        "category": "GO namespace",
        "definition": "GO term definition",
        "parent": "GO parent term",
    },
}
_GENERIC_NOUNS = {
    "name": "term name",
    "label": "term name",
    "symbol": "symbol",
    "id": "identifier",
    "synonym": "synonym",
    "alias_symbol": "alias symbol",
    "previous_symbol": "previous symbol",
    "ncbi_gene": "NCBI Gene ID",
    "uniprot": "UniProt accession",
    "ensembl": "Ensembl gene ID",
    "mgi": "MGI ID",
    "namespace": "namespace",
    "category": "category",
    "locus_type": "locus type",
    "definition": "definition",
    "parent": "parent term",
    "umls": "UMLS concept ID",
    "snomed": "SNOMED CT concept ID",
    "enzyme_id": "EC number",
    "rgd": "RGD ID",
}

# Five paraphrases, as the paper trained with five per pair; the completion is the bare target.
_TEMPLATES: tuple[str, ...] = (
    "What is the {target_noun} of the {source_noun} {source}?",
    "Give the {target_noun} for {source}.",
    "{Source_noun}: {source}\n{Target_noun}:",
    "Map the {source_noun} '{source}' to its {target_noun}.",
    "Which {target_noun} corresponds to the {source_noun} {source}?",
)


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """One prompt paraphrase of a task; :meth:`render` fills in the source text."""

    task: MappingTask
    ontology: str
    text: str

    def render(self, source: str) -> str:
        nouns = _FIELD_NOUNS.get(self.ontology, _GENERIC_NOUNS)

        def noun(field: str) -> str:
            field = "name" if field == "label" else field
            return nouns.get(field, _GENERIC_NOUNS[field])

        source_noun, target_noun = noun(self.task.source), noun(self.task.target)
        return self.text.format(
            source=source,
            source_noun=source_noun,
            target_noun=target_noun,
            Source_noun=source_noun[0].upper() + source_noun[1:],
            Target_noun=target_noun[0].upper() + target_noun[1:],
        )


def fill_template(template: str, text: str) -> str:
    """``template`` with every literal ``{text}`` replaced by ``text``; every other brace stays as it is.

    A user's template is not a format string: ``'{"gene": "{text}"}'``, ``'{text} }'`` and
    ``'{text} {other}'`` keep their other braces, and braces inside ``text`` are never interpreted.
    """
    return template.replace("{text}", text)


def prompt_templates(ontology: str, task: MappingTask | str, n: int = 5) -> list[PromptTemplate]:
    """The first ``n`` (1 to 5) prompt paraphrases of a task; template 0 is the evaluation prompt."""
    if isinstance(task, str):
        task = get_task(ontology, task)
    if not 1 <= n <= len(_TEMPLATES):
        raise TaskError(f"`n` templates must be in [1, {len(_TEMPLATES)}], got {n}")
    return [PromptTemplate(task=task, ontology=ontology, text=t) for t in _TEMPLATES[:n]]


def render_prompts(ontology: str, task: MappingTask | str, source: str, n: int = 5) -> list[str]:
    """The prompts of a task for one source text, one per paraphrase."""
    return [t.render(source) for t in prompt_templates(ontology, task, n)]
