"""The tables `lexprobe correlate` writes and reads back (``items.csv``, ``tasks.csv``), declared once.

:data:`ITEMS` and :data:`TASKS` name each column the code reads, its kind (text, number, whole number, flag),
whether it is required, the range a value may take and whether a cell may be empty. :func:`validate_table`
checks a table against them where it enters (``correlate --items`` / ``--tasks``, a calibration folder, a
frame given to :func:`lexprobe.predict.evaluate_items`): a missing column, text in a numeric column, NaN,
an infinity, a value out of its range (``1e308`` as a share) or an item given twice is one
:class:`~lexprobe.exceptions.PredictionError` naming the table, the column and the first bad row. Columns the
schema does not declare pass through untouched, and a valid table is returned as it was read.
"""

from __future__ import annotations

import dataclasses
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lexprobe.exceptions import PredictionError

_KINDS = ("text", "number", "whole", "flag")
_INF = math.inf


@dataclasses.dataclass(frozen=True)
class Column:
    """One declared column: ``kind`` is text, number, whole (a whole number) or flag (True/False or 1/0);
    numbers lie in ``[low, high]``; ``missing``: a cell may be empty (NaN); ``allowed``: the only text values.

    Examples
    --------
    >>> Column("gain", low=-1, high=1).kind  # a number unless told otherwise
    'number'
    """

    name: str
    kind: str = "number"
    required: bool = False
    low: float = -_INF
    high: float = _INF
    missing: bool = False
    allowed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"column kind must be one of {_KINDS}, got {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class TableSchema:
    """The declared columns of one table, and the columns whose values identify a row (``key``; the first of
    ``item`` present completes it, and without any the whole row is the key).

    Examples
    --------
    >>> schema = TableSchema("scores", (Column("label", "text", required=True), Column("gain", low=-1, high=1)),
    ...                      key=("label",))
    >>> schema.required, schema.optional
    (('label',), ('gain',))
    """

    what: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    item: tuple[str, ...] = ()
    #: Columns required beyond those declared required, in this order (:meth:`requiring`).
    also_required: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Column:
        return {c.name: c for c in self.columns}[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        own = (c.name for c in self.columns if c.required)
        return tuple(dict.fromkeys((*own, *self.also_required)))

    @property
    def optional(self) -> tuple[str, ...]:
        """The declared columns a table may lack (the code asks :meth:`has` before it reads one)."""
        required = set(self.required)
        return tuple(n for n in self.names if n not in required)

    def has(self, frame: pd.DataFrame, *names: str) -> bool:
        """Whether ``frame`` holds every one of the optional columns ``names``.

        Raises ``ValueError`` (a mistake in the code, not in the table) for a name the schema does not declare
        or declares required: a required column is always there once the table is validated.
        """
        optional = self.optional
        wrong = [n for n in names if n not in optional]
        if wrong:
            raise ValueError(f"{wrong} are not optional columns of the {self.what} ({', '.join(optional)})")
        return all(n in frame.columns for n in names)

    def requiring(self, *names: str, what: str | None = None) -> TableSchema:
        """This schema with the declared columns ``names`` required too (after its own, in that order)."""
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(f"{unknown} are not columns of the {self.what}")
        return dataclasses.replace(self, also_required=(*self.also_required, *names), what=what or self.what)


def _share(name: str, **kw) -> Column:
    return Column(name, "number", low=0.0, high=1.0, **kw)


def _gain(name: str, **kw) -> Column:
    return Column(name, "number", low=-1.0, high=1.0, **kw)


#: The splits of a task's pairs: the values of ``split`` in the items table, the suffixes of the tasks table's
#: per-split measures (``tuned_withheld``...), in the order the tables show them.
SPLITS = ("train", "withheld")

#: The gain each split measures: ``memorization_gain`` on train pairs, ``generalization_gain`` on withheld ones.
GAIN_NAMES = {"train": "memorization", "withheld": "generalization"}

#: A gain's interval columns (``generalization_gain_ci_low``...) beside the gain itself.
INTERVAL = ("", "_ci_low", "_ci_high")


def gain_column(split: str, suffix: str = "") -> str:
    """The tasks table's column of the gain measured on ``split`` (``suffix``: one of :data:`INTERVAL`)."""
    return f"{GAIN_NAMES[split]}_gain{suffix}"


_TEXT_KEYS = (Column("label", "text", required=True), Column("model", "text"))
_LABELS = (Column("ontology", "text"), Column("task", "text"), Column("field_pair", "text", missing=True))

#: ``items.csv``: one row per item of a unit (a task on a model) and split, as :func:`lexprobe.predict.correlate`
#: writes it; ``template_share`` / ``seen_target_share`` are computed from the targets where absent.
ITEMS = TableSchema(
    what="items table",
    columns=(
        *_TEXT_KEYS,
        *_LABELS,
        Column("split", "text", required=True, allowed=SPLITS),
        Column("target", "text", required=True),
        Column("source", "text", missing=True),
        Column("id", "text", missing=True),
        Column("popularity", "number", low=0.0, high=1e15),
        Column("log_popularity", "number", required=True, low=0.0, high=100.0),
        Column("source_tokens", "whole", low=0, high=1e5),
        Column("target_tokens", "whole", required=True, low=0, high=1e5),
        _share("alignment", required=True),
        _share("source_lexicalization"),
        _share("target_lexicalization"),
        _share("lexicalization", required=True),
        Column("bin", "whole", low=0, high=1e6),
        Column("baseline_correct", "flag"),
        Column("tuned_correct", "flag"),
        Column("gained", "flag", required=True),
        Column("lost", "flag"),
        Column("gain", "whole", required=True, low=-1, high=1),
        _share("template_share"),
        _share("seen_target_share"),
        Column("alignment_z", "number", low=-1e6, high=1e6),
        Column("exposures", "number", low=0.0, high=1e9),
    ),
    key=("label", "model", "split"),
    item=("id", "source"),
)

_SPLIT_MEASURES = tuple(
    column
    for split in SPLITS
    for column in (
        _share(f"baseline_{split}", missing=True),
        _share(f"tuned_{split}", missing=True),
        _share(f"fewshot_{split}", missing=True),
        _gain(f"tuned_minus_fewshot_{split}", missing=True),
        _gain(f"tuned_minus_fewshot_{split}_ci_low", missing=True),
        _gain(f"tuned_minus_fewshot_{split}_ci_high", missing=True),
        _share(f"majority_{split}", missing=True),
    )
)
_GAINS = tuple(
    _gain(gain_column(split, suffix), missing=True) for split in SPLITS for suffix in (*INTERVAL, "_all_items")
)

#: ``tasks.csv``: one row per unit. Its gains, intervals, flags and ``alignment_z`` replace those computed from
#: the items where given (an empty cell: computed), so most cells may be empty.
TASKS = TableSchema(
    what="tasks table",
    columns=(
        *_TEXT_KEYS,
        *_LABELS,
        *(Column(n, "text", missing=True) for n in ("ontology_spec", "ontology_checksum", "run", "group")),
        Column("majority_target", "text", missing=True),
        *(Column(n, "whole", low=0, high=1e9, missing=True) for n in ("n_train", "n_withheld", "n_items")),
        Column("layer", "whole", low=0, high=1e4, missing=True),
        Column("shots", "whole", low=0, high=1e4, missing=True),
        Column("exposures", "number", low=0.0, high=1e9, missing=True),
        _share("alignment", missing=True),
        _share("alignment_null", missing=True),
        _gain("alignment_effect", missing=True),
        Column("alignment_z", "number", low=-1e6, high=1e6, missing=True),
        _share("alignment_p", missing=True),
        *(_share(f"{s}lexicalization", missing=True) for s in ("", "source_", "target_")),
        *(Column(f"popularity_{q}", "number", low=0.0, high=1e15, missing=True) for q in ("q25", "median", "q75")),
        _share("popularity_nonzero", missing=True),
        Column("log_popularity", "number", low=0.0, high=100.0, missing=True),
        *_SPLIT_MEASURES,
        *_GAINS,
        Column("memorized", "flag", missing=True),
        Column("generalized", "flag", missing=True),
        _share("template_share", missing=True),
        _share("seen_target_share", missing=True),
        _gain("predicted_memorization_gain", missing=True),
        _gain("predicted_generalization_gain", missing=True),
    ),
    key=("label", "model"),
)

#: Columns of the items table computed from its targets where absent (:func:`lexprobe.predict.template_share`,
#: :func:`lexprobe.predict.seen_target_share`): a feature list may name them without the table holding them.
COMPUTED = ("template_share", "seen_target_share")

#: A calibration folder's tables: what ``correlate --items`` reads and the model of every unit (a calibration
#: is keyed by task and model) and the measured flags.
CALIBRATION_ITEMS = ITEMS.requiring("model", "lost")
CALIBRATION_TASKS = TASKS.requiring("model", "memorized", "generalized")


def _row(row: int, *, file: bool) -> str:
    """Row ``row`` (0-based) as a person counts it; in a file, also its line (the header is line 1)."""
    return f"row {row + 1}" + (f" (line {row + 2})" if file else "")


def _bad_cell(values: pd.Series, column: Column) -> tuple[int, str] | None:
    """The position of the first cell of ``values`` that ``column`` does not allow, and what is wrong with it."""
    missing = values.isna().to_numpy()
    if missing.any() and not column.missing:
        return int(np.argmax(missing)), "an empty cell (NaN)"
    present = ~missing
    if column.kind == "text":
        if column.allowed:
            bad = present & ~values.astype(str).isin(column.allowed).to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                return i, f"{values.iloc[i]!r} (allowed: {', '.join(column.allowed)})"
        return None
    if column.kind == "flag":
        if values.dtype == bool:
            return None
        ok = values.map(lambda v: isinstance(v, (bool, np.bool_)) or (_is_number(v) and v in (0, 1))).to_numpy()
        # a column with one bad cell reads as text throughout: "True"/"False" there are not the first bad cell
        spelled = values.astype(str).isin(("True", "False")).to_numpy()
        for bad in (present & ~ok & ~spelled, present & ~ok):
            if bad.any():
                i = int(np.argmax(bad))
                return i, f"{values.iloc[i]!r} (a flag is True/False or 1/0, not text)"
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    text = present & numbers.isna().to_numpy()
    if text.any():
        i = int(np.argmax(text))
        return i, f"the text {str(values.iloc[i])[:40]!r} in a numeric column"
    x = numbers.to_numpy(dtype=float, na_value=np.nan)
    checks = (
        (np.isinf(x), "an infinite value"),
        (present & ((x < column.low) | (x > column.high)), f"a value outside [{column.low:g}, {column.high:g}]"),
        (present & (np.round(x) != x) if column.kind == "whole" else np.zeros(len(x), bool), "not a whole number"),
    )
    for bad, what in checks:
        if bad.any():
            i = int(np.argmax(bad))
            return i, f"{x[i]:g} ({what})"
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def validate_table(
    frame: pd.DataFrame,
    schema: TableSchema,
    *,
    source: str,
    require: Sequence[str] = (),
    file: bool = False,
) -> pd.DataFrame:
    """Check ``frame`` against ``schema`` (and the extra ``require``d columns); return it unchanged.

    ``source`` names the table in a message (a file's path); with ``file`` a row is also given as its line.

    Raises
    ------
    PredictionError
        No rows; a required column missing; a declared column holding a value its kind, range or emptiness
        does not allow; a row whose key (unit, split and item) repeats an earlier one (with the count).

    Examples
    --------
    >>> schema = TableSchema("scores", (Column("label", "text", required=True), Column("gain", low=-1, high=1)),
    ...                      key=("label",))
    >>> len(validate_table(pd.DataFrame({"label": ["a", "b"], "gain": [0.5, -0.2]}), schema, source="scores.csv"))
    2
    >>> validate_table(pd.DataFrame({"label": ["a"], "gain": [1.5]}), schema, source="scores.csv")
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: scores.csv, row 1: column gain holds 1.5 (a value outside [-1, 1]); ...
    """
    if len(frame) == 0:
        raise PredictionError(f"{source}: the {schema.what} holds no rows; give the {schema.what} correlate wrote")
    missing = [n for n in dict.fromkeys((*schema.required, *require)) if n not in frame.columns]
    if missing:
        raise PredictionError(
            f"{source}: the {schema.what} lacks the column(s) {', '.join(missing)} (it needs "
            f"{', '.join(dict.fromkeys((*schema.required, *require)))}); give the {schema.what} `lexprobe "
            "correlate` wrote"
        )
    if frame.columns.duplicated().any():
        raise PredictionError(
            f"{source}: the {schema.what} names the column {frame.columns[frame.columns.duplicated()][0]} twice"
        )
    for column in schema.columns:
        if column.name not in frame.columns:
            continue
        bad = _bad_cell(frame[column.name], column)
        if bad is not None:
            row, what = bad
            raise PredictionError(
                f"{source}, {_row(row, file=file)}: column {column.name} holds {what}; fix or drop that row"
            )
    check_unique(frame, schema, source=source, file=file)
    return frame


def row_keys(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The columns that identify a row of ``frame`` under ``schema`` (all of them when it has no item column)."""
    keys = [c for c in schema.key if c in frame.columns]
    item = next((c for c in schema.item if c in frame.columns), None)
    if schema.item and item is None:
        return frame
    return frame[keys + ([item] if item else [])]


def check_unique(
    frame: pd.DataFrame, schema: TableSchema, *, source: str, sources: Sequence[str] | None = None, file: bool = False
) -> None:
    """Refuse rows that repeat an earlier row's key: a unit's item (or a unit, in the tasks table) given twice.

    ``sources``: per row, the table it came from (several ``--items`` pooled), named in the message.
    """
    keys = row_keys(frame, schema).astype(str)
    repeated = keys.duplicated(keep="first").to_numpy()
    if not repeated.any():
        return
    later = int(np.argmax(repeated))
    first = int(np.argmax((keys == keys.iloc[later]).all(axis=1).to_numpy()))
    if sources is not None:
        where = f"{sources[first]} and {sources[later]}"
    else:
        where = f"{source}, {_row(first, file=file)} and {_row(later, file=file)}"
    named = ", ".join(f"{c}={keys.iloc[later][c]!r}" for c in keys.columns[:4])
    unit = "item of the same task and model" if schema.item else "task and model"
    raise PredictionError(
        f"{int(repeated.sum())} duplicate row(s) in the {schema.what}: the same {unit} given more than once, "
        f"first {named} in {where}; give each once"
    )


def read_table(
    path: str | os.PathLike[str], schema: TableSchema, *, require: Sequence[str] = (), what: str | None = None
) -> pd.DataFrame:
    """Read a ``.csv`` or ``.csv.gz`` table and :func:`validate_table` it; any problem is one ``PredictionError``
    naming the file (as ``what``, by default the schema's name, where it cannot be read)."""
    path = Path(path)
    what = what or schema.what
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise PredictionError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise PredictionError(f"{path} is a folder, not a {what} (.csv or .csv.gz)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError) as exc:
        raise PredictionError(f"{path} is not a readable {what}: {_short(exc)}") from None
    except (EOFError, OSError, zlib.error) as exc:  # a gzip cut short, a damaged stream, an unreadable file
        raise PredictionError(
            f"{what} {path} is truncated or unreadable ({_short(exc)}); copy it again or re-run `lexprobe correlate`"
        ) from None
    return validate_table(frame, schema, source=str(path), require=require, file=True)


def read_tables(paths: Sequence[str | os.PathLike[str]], schema: TableSchema) -> pd.DataFrame:
    """Several tables (repeated ``--items`` or ``--tasks``), each read and validated, pooled: a row that repeats
    one of another table (the same unit's item, or the same unit) is refused, naming both files."""
    frames = [read_table(p, schema) for p in paths]
    pooled = pd.concat(frames, ignore_index=True)
    sources = [str(p) for p, f in zip(paths, frames) for _ in range(len(f))]
    check_unique(pooled, schema, source="the pooled tables", sources=sources)
    return pooled


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]
