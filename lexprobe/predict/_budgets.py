"""Calibration units at several budgets: a task's learning curve (``lexprobe evaluate --checkpoints``) as one
unit per number of exposures.

A learning curve scores the snapshots of one training run on the run's own split. Its items are the items of
the calibration unit the run retrained (same task, model and split), so each budget point becomes a unit whose
item features are copied from that unit, whose baseline is the curve's untuned point and whose tuned outcome
is the snapshot's. The point at the unit's recorded budget keeps the unit's label; the others are labelled
``"<label> @ <N> exposures"``, and all of them keep the unit's ontology, task, model and field pair, so every
hold-out leaves all budgets of a field pair out together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import PredictionError
from lexprobe.predict._common import _GAIN_NAMES, _SPLITS, _units
from lexprobe.predict._features import _train_config
from lexprobe.predict._schema import ITEMS, TASKS
from lexprobe.stats import paired_bootstrap_interval

#: The file of a learning curve's per-item outcomes (``lexprobe evaluate --checkpoints``).
CURVE_ITEMS = "learning_curve_items.csv"


def budget_label(label: str, exposures: float) -> str:
    """``"hgnc name-to-symbol @ 5 exposures"``: the label of a unit at a budget other than its recorded one.

    Examples
    --------
    >>> budget_label("hgnc name-to-symbol", 5.0)
    'hgnc name-to-symbol @ 5 exposures'
    """
    return f"{label} @ {exposures:g} exposures"


def find_curve_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The train runs with a scored learning curve under each path (a run, or a folder holding runs).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run = Path(tmp) / "runs" / "hgnc-name-to-symbol"
    ...     run.mkdir(parents=True)
    ...     (run / CURVE_ITEMS).touch()  # what `lexprobe evaluate RUN --checkpoints all` writes
    ...     print([p.name for p in find_curve_runs([Path(tmp) / "runs"])])
    ['hgnc-name-to-symbol']
    """
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise PredictionError(f"learning-curve folder not found: {path}")
        found = [path] if (path / CURVE_ITEMS).is_file() else sorted(p.parent for p in path.rglob(CURVE_ITEMS))
        if not found:
            raise PredictionError(
                f"{path} holds no scored learning curve ({CURVE_ITEMS}); run `lexprobe evaluate RUN --checkpoints all`"
            )
        runs.extend(found)
    return list(dict.fromkeys(runs))


def _run_task(run: Path) -> tuple[str, str, str]:
    """The ontology as the run's ``train_config.json`` gives it (a built-in's name or a path, never loaded), its
    task and its model."""
    config = _train_config(run)
    return str(config.ontology), config.task, config.model


def _on_ontology(tasks: pd.DataFrame, ontology: str) -> pd.Series:
    """Which units were measured on the ontology a run was trained on, given as its train config gives it: units
    whose ``ontology_spec`` (the train config's ontology, as ``lexprobe correlate`` records it) is that, else
    (a tasks table without the spec, or a spec that differs) units whose ontology's name is that."""
    by_name = tasks["ontology"].astype(str) == ontology
    if not TASKS.has(tasks, "ontology_spec"):
        return by_name
    by_spec = tasks["ontology_spec"].astype(str) == ontology
    return by_spec if by_spec.any() else by_name


def curve_units(
    items: pd.DataFrame,
    tasks: pd.DataFrame,
    runs: Sequence[str | os.PathLike[str]],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace each calibration unit that a learning curve retrained by one unit per budget of the curve.

    Parameters
    ----------
    items, tasks : DataFrame
        A calibration's items and tasks (``items.csv``, ``tasks.csv`` of ``lexprobe correlate``).
    runs : sequence of path
        Train runs with a scored learning curve (:func:`find_curve_runs`). A run's unit is found from its
        ``train_config.json`` (ontology as given, task, model) and the calibration's ``ontology_spec`` (else
        ``ontology``) column; no ontology is loaded.

    Returns
    -------
    items, tasks : DataFrame
        The calibration with the retrained units replaced; both gain an ``exposures`` column per row.

    Raises
    ------
    PredictionError
        A run without a readable train config, a run whose task is not a calibration unit, a second curve
        of one unit, or a curve whose items are not that unit's (another split).

    Examples
    --------
    Without learning curves the calibration's units are kept as they are:

    >>> from lexprobe.predict import load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> new_items, new_tasks = curve_units(items, tasks, [])
    >>> new_tasks["label"].tolist() == tasks["label"].tolist(), "exposures" in new_tasks
    (True, True)
    """
    items = items.copy()
    tasks = tasks.reset_index(drop=True).copy()
    item_units, task_units = _units(items), _units(tasks)
    replaced: set[str] = set()
    new_items, new_tasks = [], []
    for run in map(Path, runs):
        row, unit, same = _curve_unit(run, tasks, task_units)
        if unit in replaced:
            raise PredictionError(f"{run}: a second learning curve of {unit}")
        # the unit and any budgets an earlier curve gave it (a calibration made with curves, given again)
        replaced |= set(task_units[same])
        base = items[(item_units == unit).to_numpy()].set_index(["split", "id"])
        for label, exposures, part in _curve_budgets(run, row, base, unit):
            new_items.append(part)
            new_tasks.append(_task_row(row, part, label, exposures, run, n_boot, seed))
    if not replaced:
        return items, tasks
    keep_items = ~item_units.isin(replaced).to_numpy()
    columns = list(items.columns) + ([] if ITEMS.has(items, "exposures") else ["exposures"])
    items = pd.concat([items[keep_items], *new_items], ignore_index=True)[columns]
    if TASKS.has(tasks, "exposures"):
        filled = dict(zip(_units(tasks), tasks["exposures"]))
        items["exposures"] = items["exposures"].fillna(_units(items).map(filled))
    tasks = pd.concat([tasks[~task_units.isin(replaced)], pd.DataFrame(new_tasks)], ignore_index=True)
    return items.reset_index(drop=True), tasks


def _curve_unit(run: Path, tasks: pd.DataFrame, task_units: pd.Series) -> tuple[pd.Series, str, pd.Series]:
    """The calibration unit a curve run retrained: its task row at the recorded budget, its unit name, and
    which task rows are that unit (at any budget)."""
    ontology, task, model = _run_task(run)
    same = (tasks["task"] == task) & (tasks["model"] == model)
    same &= _on_ontology(tasks[same], ontology).reindex(tasks.index, fill_value=False)
    match = tasks[same & at_recorded_budget(tasks)]
    if match.empty:
        raise PredictionError(
            f"{run}: {ontology} {task} on {model} is not a unit of the calibration (its ontology is matched "
            "with the units' ontology as correlate was given it, `ontology_spec`, or the ontology's name)"
        )
    return match.iloc[0], task_units[match.index[0]], same


def _curve_budgets(run: Path, row: pd.Series, base: pd.DataFrame, unit: str) -> list[tuple[str, float, pd.DataFrame]]:
    """One items table per budget of a run's curve: the unit's items (``base``, indexed by split and id) with
    the outcome at that budget; with its label and exposures."""
    curve = pd.read_csv(run / CURVE_ITEMS, dtype={"id": str})
    baseline = curve[curve["exposures"] == 0].set_index(["split", "id"])["correct"].astype(bool)
    keys = set(base.index)
    if set(baseline.index) != keys:
        raise PredictionError(f"{run}: its curve's items are not those of the calibration unit {unit}")
    recorded = float(row["exposures"]) if pd.notna(row.get("exposures")) else np.nan
    out = []
    for exposures, point in curve[curve["exposures"] > 0].groupby("exposures"):
        tuned = point.set_index(["split", "id"])["correct"].astype(bool)
        if set(tuned.index) != keys:
            raise PredictionError(f"{run}: the curve at {exposures:g} exposures scored other items")
        part = base.copy()
        order = part.index
        b, t = baseline.loc[order].to_numpy(), tuned.loc[order].to_numpy()
        label = row["label"] if exposures == recorded else budget_label(row["label"], exposures)
        part["label"] = label
        part["baseline_correct"], part["tuned_correct"] = b, t
        part["gained"], part["lost"], part["gain"] = t & ~b, b & ~t, t.astype(int) - b.astype(int)
        part["exposures"] = float(exposures)
        out.append((label, float(exposures), part.reset_index()))
    return out


def _task_row(
    row: pd.Series, part: pd.DataFrame, label: str, exposures: float, run: Path, n_boot: int, seed: int
) -> dict[str, Any]:
    out = row.to_dict() | {"label": label, "exposures": exposures, "run": f"{run}#exposures-{exposures:g}"}
    for split in _SPLITS:
        side = part[part["split"] == split]
        b, t = side["baseline_correct"].to_numpy(), side["tuned_correct"].to_numpy()
        low, high = paired_bootstrap_interval(b, t, n_boot=n_boot, seed=seed)
        name = _GAIN_NAMES[split]
        out |= {f"baseline_{split}": float(b.mean()), f"tuned_{split}": float(t.mean())}
        out |= {f"{name}_gain": float(t.mean() - b.mean()), f"{name}_gain_ci_low": low, f"{name}_gain_ci_high": high}
        out[f"{name}_gain_all_items"] = float(t.mean() - b.mean())
    out["memorized"] = bool(out["memorization_gain_ci_low"] > 0)
    out["generalized"] = bool(out["generalization_gain_ci_low"] > 0)
    # what the 20-exposure run was compared with does not hold at another budget
    for stale in [c for c in out if c.startswith(("tuned_minus_fewshot", "predicted_"))]:
        out[stale] = np.nan
    return out


def at_recorded_budget(frame: pd.DataFrame) -> pd.Series:
    """Which rows (items or units) are at their unit's recorded budget: not a learning curve's other points.

    Examples
    --------
    >>> units = pd.DataFrame({"label": ["hgnc name-to-symbol", budget_label("hgnc name-to-symbol", 5.0)]})
    >>> at_recorded_budget(units).tolist()  # the second is a learning curve's earlier point
    [True, False]
    """
    return ~frame["label"].astype(str).str.contains(" @ ", regex=False)
