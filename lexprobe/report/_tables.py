"""What the HTML report reads and how it shows it: safe reads inside a run directory, readable tables.

A table is shown with human column headers (:data:`COLUMN_LABELS`; a column it does not know keeps its CSV
name), numbers to 3 significant digits, a missing value as an em dash, and long hashes shortened (the whole
value stays in the cell's tooltip). The CSV name of every column stays in its header's tooltip.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from numbers import Number
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: What a missing value (NaN, None, an empty cell) shows as; never "nan".
MISSING = "—"

#: Rows shown per table; the rest stay in the CSV.
MAX_ROWS = 60

#: Human headers for the columns the stages write. A column not listed here is shown under its CSV name.
COLUMN_LABELS: dict[str, str] = {
    # alignment_summary.csv
    "pair": "field pair",
    "best_layer": "best layer",
    "null_max_mean": "null max (mean)",
    "null_max_sd": "null max (sd)",
    "p_value": "p",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "ratio_to_name_symbol": "effect / name:symbol's",
    "best_layer_ctl": "best layer, surface-controlled",
    "value_ctl": "value, surface-controlled",
    "null_max_mean_ctl": "null max (mean), controlled",
    "null_max_sd_ctl": "null max (sd), controlled",
    "z_ctl": "z, controlled",
    "p_value_ctl": "p, controlled",
    "effect_ctl": "effect, controlled",
    "effect_kept": "effect kept by the control",
    # lexicalization_fields.csv
    "n_items": "items",
    "tokens_mean": "tokens / item",
    "chars_per_token": "characters / token",
    "single_token_share": "single-token share",
    "single_token_spaced_share": "single token after a space",
    "digit_punct_share": "digit or punct. tokens",
    "wordlike_share": "word-like tokens",
    "log_rank": "vocabulary rank (log, scaled)",
    "tokenization_score": "tokenization score",
    "agreement": "agreement with names",
    "agreement_chance": "agreement by chance",
    "effective_rank": "effective rank",
    "probe_accuracy": "category probe",
    "probe_baseline": "majority baseline",
    "probe_reference": "probe on names",
    "probe_best_accuracy": "probe, best layer",
    "embedding_score": "embedding score",
    "score": "lexicalization score",
    "score_ci_low": "score 95% CI low",
    "score_ci_high": "score 95% CI high",
    # evaluation_summary.csv, evaluation.json
    "bin": "popularity bin",
    "n_correct": "correct",
    "accuracy": "exact-match accuracy",
    "n_exact": "exact",
    "n_alt": "alternative names",
    "n_well_formed": "well-formed",
    "n_hallucinated": "hallucinated",
    "hallucinated_share": "hallucinated share",
    "baseline": "baseline accuracy",
    "tuned": "tuned accuracy",
    "gain_ci_low": "gain 95% CI low",
    "gain_ci_high": "gain 95% CI high",
    # tasks.csv, holdout.csv, prediction.csv
    "field_pair": "field pair",
    "ontology_spec": "ontology as given",
    "ontology_checksum": "ontology checksum",
    "n_train": "train pairs",
    "n_withheld": "withheld pairs",
    "alignment_null": "alignment null",
    "alignment_effect": "alignment effect",
    "alignment_z": "alignment z",
    "alignment_p": "alignment p",
    "source_lexicalization": "source lexicalization",
    "target_lexicalization": "target lexicalization",
    "lexicalization": "lexicalization (lower side)",
    "popularity_q25": "popularity Q1",
    "popularity_median": "popularity median",
    "popularity_q75": "popularity Q3",
    "popularity_nonzero": "share with popularity > 0",
    "log_popularity": "mean log(1 + popularity)",
    "baseline_train": "baseline accuracy, train",
    "tuned_train": "tuned accuracy, train",
    "baseline_withheld": "baseline accuracy, withheld",
    "tuned_withheld": "tuned accuracy, withheld",
    "memorization_gain": "memorization gain",
    "memorization_gain_ci_low": "memorization gain CI low",
    "memorization_gain_ci_high": "memorization gain CI high",
    "memorization_gain_all_items": "memorization gain, all items",
    "generalization_gain": "generalization gain",
    "generalization_gain_ci_low": "generalization gain CI low",
    "generalization_gain_ci_high": "generalization gain CI high",
    "generalization_gain_all_items": "generalization gain, all items",
    "group": "field pair group",
    "template_share": "template share",
    "seen_target_share": "seen-target share",
    "predicted_memorization_gain": "predicted memorization gain",
    "predicted_memorization_gain_ci_low": "predicted memorization CI low",
    "predicted_memorization_gain_ci_high": "predicted memorization CI high",
    "predicted_generalization_gain": "predicted generalization gain",
    "predicted_generalization_gain_ci_low": "predicted generalization CI low",
    "predicted_generalization_gain_ci_high": "predicted generalization CI high",
    "memorization_threshold": "memorization threshold",
    "generalization_threshold": "generalization threshold",
    "measured_memorization_gain": "measured memorization gain",
    "measured_generalization_gain": "measured generalization gain",
    "n_calibration_tasks": "calibration tasks",
    # loto.csv
    "predicted_gain": "predicted gain",
    "predicted_ci_low": "predicted CI low",
    "predicted_ci_high": "predicted CI high",
    "measured_gain": "measured gain",
    "measured_ci_low": "measured CI low",
    "measured_ci_high": "measured CI high",
    "stated_verdict": "verdict as stated (with uncertainty)",
    "measured_verdict": "measured verdict",
    # baselines.csv
    "verdicts_right": "verdicts right",
    "n_units": "units",
    "gain_mae_points": "generalization gain error (MAE, points)",
    "gain_spearman": "Spearman (predicted, measured)",
    "memorization_mae_points": "memorization gain error (MAE, points)",
    "relative_error": "error / best baseline's",
    # auc.csv, correlations.csv
    "auc": "AUC, pooled",
    "within_auc": "AUC within tasks",
    "within_ci_low": "within 95% CI low",
    "within_ci_high": "within 95% CI high",
    "n_positive": "gained",
    "n_groups": "field pairs",
    "cv": "cross-validation",
    "x": "feature",
    "y": "outcome",
    "rho": "Spearman ρ",
}

#: Codes shown in words, per column.
VALUE_LABELS: dict[str, dict[str, str]] = {
    "metric": {
        "mknn": "mutual kNN",
        "cka": "linear CKA",
        "dcka": "debiased CKA",
        "retrieval": "retrieval",
        "rsa": "RSA",
    },
}

#: Text longer than this wraps in its cell; shorter text (names, tasks, labels) stays on one line.
_LONG_TEXT = 32

#: A hex digest this long or longer is shortened in a cell (the whole value in its tooltip).
_HASH = re.compile(r"[0-9a-f]{32,}")
_HASH_SHOWN = 12


def column_label(name: str) -> str:
    """The header a column is shown under: its label, ``task_<x>`` as "<x's label> (task)", else its name."""
    if name in COLUMN_LABELS:
        return COLUMN_LABELS[name]
    if name.startswith("task_") and name[5:] in COLUMN_LABELS:
        return f"{COLUMN_LABELS[name[5:]]} (task)"
    return name


def is_missing(value: Any) -> bool:
    """Whether ``value`` is None, NaN, NaT, ``pd.NA`` or a blank string."""
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # not a scalar
        return False


def format_number(number: float) -> str:
    """3 significant digits; whole numbers without a decimal point; thousands separated; −∞/∞ spelled out."""
    if math.isnan(number):
        return MISSING
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.3g}"


def format_value(value: Any) -> tuple[str, bool]:
    """(text, is_number) of one table cell; a missing value is :data:`MISSING`."""
    if is_missing(value):
        return MISSING, False
    if isinstance(value, (bool, np.bool_)):
        return ("yes" if value else "no"), False
    if isinstance(value, Number):
        return format_number(float(value)), True  # type: ignore[arg-type]
    return str(value), False


def format_gain(value: Any, low: Any = None, high: Any = None, *, signed: bool = True) -> str:
    """A value to 3 decimals with its interval, ``+0.190 [+0.135, +0.245]``; an interval not given or missing
    is left out, a missing value is :data:`MISSING`."""
    if is_missing(value):
        return MISSING
    spec = "+.3f" if signed else ".3f"

    def shown(x: Any) -> str:
        return format(round(float(x), 3) or 0.0, spec)  # -0.0002 shows as +0.000, not −0.000

    text = shown(value)
    if not (is_missing(low) or is_missing(high)):  # the interval never breaks; it may go under the value
        text += f" [{shown(low)},\u00a0{shown(high)}]"
    return text.replace("-", "−")


@dataclass(frozen=True)
class Cell:
    """One table cell as shown: its text, whether it is a number (right-aligned), a tooltip, a link."""

    text: str
    numeric: bool = False
    title: str | None = None
    href: str | None = None

    @property
    def css(self) -> str | None:
        """The cell's class: ``num`` (right-aligned, kept on one line), ``missing``, ``long`` (text that wraps)."""
        if self.numeric:
            return "num wrap" if "[" in self.text else "num"  # a value over its interval when narrow
        if self.text == MISSING:
            return "missing"
        return "long" if len(self.text) > _LONG_TEXT else None


@dataclass(frozen=True)
class Table:
    """A table ready to show: a caption, (label, CSV name) headers, rows of cells, and how many rows it cut."""

    caption: str
    headers: list[tuple[str, str]]
    rows: list[list[Cell]]
    n_rows: int

    @property
    def clipped(self) -> bool:
        return self.n_rows > len(self.rows)


@dataclass(frozen=True)
class Note:
    """A sentence shown where a table or figure could not be (missing, a link out, unreadable)."""

    text: str


def _cell(column: str, value: Any) -> Cell:
    text, numeric = format_value(value)
    if not numeric and column in VALUE_LABELS and text in VALUE_LABELS[column]:
        return Cell(VALUE_LABELS[column][text], title=text)
    if not numeric and _HASH.fullmatch(text):
        return Cell(text[:_HASH_SHOWN] + "…", title=text)
    return Cell(text, numeric)


def make_table(frame: pd.DataFrame, caption: str, *, max_rows: int = MAX_ROWS, labels: bool = True) -> Table:
    """A :class:`Table` of ``frame``'s first ``max_rows`` rows, headers labelled (``labels``) or as they are."""
    shown = frame.head(max_rows)
    headers = [(column_label(str(c)) if labels else str(c), str(c)) for c in shown.columns]
    rows = [
        [_cell(str(c), v) for c, v in zip(shown.columns, row, strict=True)]
        for row in shown.itertuples(index=False, name=None)
    ]
    return Table(caption=caption, headers=headers, rows=rows, n_rows=len(frame))


def contained(directory: Path, path: Path) -> bool:
    """Whether ``path`` is a regular file that, with every symlink resolved, lies inside ``directory``.

    A report reads only files the run layout names, and only these: a run directory received from someone
    else may hold a symlink (``manifest.json -> ~/.ssh/id_rsa``) that would otherwise copy a file of the reader's
    into the page.
    """
    try:
        resolved = path.resolve(strict=True)
        return resolved.is_file() and resolved.is_relative_to(directory.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
        return False


def read_csv(path: Path) -> pd.DataFrame | Note:
    """The CSV at ``path`` (inside its run directory ``path.parent``), or a :class:`Note` saying why not."""
    if not path.is_file() and not path.is_symlink():
        return Note(f"{path.name} is not in this run directory.")
    if not contained(path.parent, path):
        return Note(f"{path.name} is a link out of the run directory or not a file; left out.")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return Note(f"{path.name} could not be read: {' '.join(str(exc).split())}")


def read_json(directory: Path, name: str) -> dict[str, Any] | None:
    """``directory/name`` as a JSON object, or None if it is missing, a link out, or not a JSON object."""
    path = directory / name
    if not contained(directory, path):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Run:
    """A run directory as the report sees it: where it is, its stage, and its manifest."""

    path: Path
    stage: str
    manifest: dict[str, Any]


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return None if value in (None, "") else str(value)


def describe(run: Run, *, task: bool = True) -> list[str]:
    """Ontology, task (or pairs, fields; unless not ``task``) and model of a run, from its manifest."""
    config = run.manifest.get("config") if isinstance(run.manifest.get("config"), dict) else {}
    inputs = run.manifest.get("inputs") if isinstance(run.manifest.get("inputs"), dict) else {}
    trained = inputs.get("train_config") if isinstance(inputs.get("train_config"), dict) else {}
    what = _what(run, config, trained) if task else None
    described = [
        _name(config.get("ontology") or trained.get("ontology") or inputs.get("ontology")),
        _name(what),
        _name(config.get("model") or trained.get("model") or inputs.get("model")),
    ]
    shots = config.get("shots") if run.stage == "evaluate" else None
    if isinstance(shots, int) and not isinstance(shots, bool) and shots > 0:
        described.append(f"{shots}-shot")
    return [d for d in described if d]


def _what(run: Run, config: dict[str, Any], trained: dict[str, Any]) -> str | None:
    """The task, the field pairs or fields measured, or the number of tasks correlated."""
    what = config.get("task") or trained.get("task")
    for key in ("pairs_resolved", "fields_resolved"):
        if not what and isinstance(config.get(key), list):
            what = ", ".join(map(str, config[key]))
    if not what and contained(run.path, run.path / "tasks.csv"):
        tasks = read_csv(run.path / "tasks.csv")
        what = f"{len(tasks)} tasks" if isinstance(tasks, pd.DataFrame) else None
    return what


def heading(run: Run) -> str:
    """The run's heading: its stage, then what :func:`describe` finds, joined by middle dots."""
    return " · ".join([run.stage, *describe(run)])
