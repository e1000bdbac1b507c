"""Mapping tasks (field A -> field B of an ontology), popularity-balanced splits and prompt templates.

A task is the paper's unit of analysis: "map GO term names to GO ids", "map HGNC gene names to gene
symbols". This module turns a term table into (source, target) pairs, samples them in popularity-balanced
train / withheld splits, and holds the prompt paraphrases the trainer and evaluator share.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lexprobe.exceptions import TaskError

if TYPE_CHECKING:
    from lexprobe.ontology import Ontology

__all__ = [
    "FIELD_COLUMNS",
    "NAMED_TASKS",
    "DEFAULT_CATEGORIES",
    "MappingTask",
    "Split",
    "PromptTemplate",
    "field_column",
    "field_values",
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

#: User-facing field names and the term-table column each reads.
FIELD_COLUMNS: dict[str, str] = {"name": "label", "label": "label", "symbol": "symbol", "id": "id"}

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

#: Terms a built-in ontology's tasks use by default (``category`` column). HGNC: protein-coding genes, the
#: genes whose names and symbols a biomedical model meets most; pass ``categories=()`` for every locus type.
DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {"hgnc": ("gene with protein product",)}

_TASK_RE = re.compile(r"^([a-z_]+)-to-([a-z_]+)$")


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
        allowed = ", ".join(sorted(set(FIELD_COLUMNS) - {"label"}))
        raise TaskError(f"unknown field {field!r}; allowed fields are {allowed}") from None


def _has_value(series: pd.Series) -> pd.Series:
    return series.notna() & (series.astype(str).str.strip() != "")


def field_values(terms: pd.DataFrame, field: str) -> list[str]:
    """The values of ``field`` for each row of ``terms``, as whitespace-normalised strings.

    Raises
    ------
    TaskError
        If the field is unknown, its column is absent, or a row has no value for it.
    """
    column = field_column(field)
    if column not in terms.columns:
        raise TaskError(f"field {field!r} (column {column!r}) is not in this term table")
    values = terms[column]
    missing = ~_has_value(values)
    if missing.any():
        first = terms.loc[missing, "id"].iloc[0] if "id" in terms.columns else missing.idxmax()
        raise TaskError(
            f"{int(missing.sum())} rows have no {field!r} (first: {first}); select terms with "
            f"`select_terms(..., fields=({field!r},))` first"
        )
    return [" ".join(str(v).split()) for v in values]


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

    Any ``<field>-to-<field>`` pair of the term table works; :data:`NAMED_TASKS` lists the paper's.

    Raises
    ------
    TaskError
        If the name is malformed, a field is unknown, or the ontology has no values for a field.
    """
    m = _TASK_RE.match(task.strip().lower())
    if m is None:
        raise TaskError(f"task must look like 'name-to-id', got {task!r}")
    source, target = m.group(1), m.group(2)
    for field in (source, target):
        if field not in FIELD_COLUMNS:
            allowed = ", ".join(sorted(set(FIELD_COLUMNS) - {"label"}))
            raise TaskError(f"task {task!r} names unknown field {field!r}; fields are {allowed}")
    mapping = MappingTask(name=f"{source}-to-{target}", source=source, target=target)
    if not isinstance(ontology, str):
        for field in (source, target):
            column = field_column(field)
            if column not in ontology.terms.columns or not _has_value(ontology.terms[column]).any():
                named = ", ".join(NAMED_TASKS.get(ontology.name, ())) or "name-to-id, id-to-name"
                raise TaskError(
                    f"ontology {ontology.name!r} has no {field!r} values, so task {task!r} is impossible; "
                    f"try one of: {named}"
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
        Fields every selected term must have (``"name"``, ``"symbol"``, ``"id"``).
    categories : sequence of str, optional
        Keep only terms whose ``category`` is one of these. ``None`` uses :data:`DEFAULT_CATEGORIES` for the
        ontology (protein-coding genes for HGNC); an empty sequence keeps every category.
    include_obsolete : bool
        Keep obsolete / withdrawn terms (out of tasks by default, as the design says).

    Raises
    ------
    TaskError
        If the selection is empty.
    """
    terms = ontology.terms if include_obsolete else ontology.active()
    if categories is None:
        categories = DEFAULT_CATEGORIES.get(ontology.name, ())
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
                "(name and id exist for every ontology; symbol for hgnc)"
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
    """All (source, target) pairs of a task, one row per term.

    Terms whose source text is shared by terms with different targets are dropped: the mapping would be
    ambiguous and no model could be scored fairly on them.

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``target``, ``id``, ``popularity`` (0 where the ontology has no popularity).
    """
    if isinstance(task, str):
        task = get_task(ontology, task)
    terms = select_terms(
        ontology, fields=(task.source, task.target), categories=categories, include_obsolete=include_obsolete
    )
    pop_col = _popularity_column(ontology, popularity)
    pairs = pd.DataFrame(
        {
            "source": field_values(terms, task.source),
            "target": field_values(terms, task.target),
            "id": terms["id"].astype(str).to_numpy(),
            "popularity": (terms[pop_col].astype(float).to_numpy() if pop_col else np.zeros(len(terms), dtype=float)),
        }
    )
    key = pairs["source"].str.casefold()
    n_targets = pairs.groupby(key)["target"].transform("nunique")
    pairs = pairs[n_targets == 1].drop_duplicates(subset=["id"])
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

    Pairs are ranked by popularity and cut into ``bins`` equal-count bins; from each bin ``2 * per_bin``
    pairs are drawn without replacement, the first half for training and the second withheld.

    Raises
    ------
    TaskError
        If any bin has fewer than ``2 * per_bin`` pairs (a short split would silently unbalance the bins).
    """
    if isinstance(task, str):
        task = get_task(ontology, task)
    if per_bin < 1:
        raise TaskError(f"`per_bin` must be >= 1, got {per_bin}")
    pop_col = _popularity_column(ontology, popularity)
    pairs = task_pairs(ontology, task, popularity=pop_col, categories=categories)
    need = 2 * per_bin * bins
    if len(pairs) < need:
        raise TaskError(
            f"task {task.name!r} on {ontology.name!r} has {len(pairs)} pairs, but --bins {bins} x --per-bin "
            f"{per_bin} needs {need} (train + withheld); lower --per-bin or --bins"
        )
    pairs = pairs.assign(bin=assign_popularity_bins(pairs["popularity"].to_numpy(), bins=bins, seed=seed))
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    held_idx: list[np.ndarray] = []
    for b in range(bins):
        members = np.flatnonzero(pairs["bin"].to_numpy() == b)
        drawn = rng.choice(members, size=2 * per_bin, replace=False)
        train_idx.append(drawn[:per_bin])
        held_idx.append(drawn[per_bin:])
    columns = ["source", "target", "id", "popularity", "bin"]
    train = pairs.iloc[np.sort(np.concatenate(train_idx))][columns].reset_index(drop=True)
    withheld = pairs.iloc[np.sort(np.concatenate(held_idx))][columns].reset_index(drop=True)
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
    "hgnc": {"name": "gene name", "symbol": "HGNC gene symbol", "id": "HGNC identifier"},
    "hpo": {"name": "HPO term", "id": "HPO identifier", "symbol": "HPO symbol"},
    "go": {"name": "GO term", "id": "GO identifier", "symbol": "GO symbol"},
}
_GENERIC_NOUNS = {"name": "term name", "symbol": "symbol", "id": "identifier"}

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
        source_noun = nouns.get(self.task.source, _GENERIC_NOUNS[self.task.source])
        target_noun = nouns.get(self.task.target, _GENERIC_NOUNS[self.task.target])
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
