"""The predictor fitted on a calibration: units (a task on a model), :class:`Predictor`, :func:`fit_predictor`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

import lexprobe.predict._holdout as _holdout  # looked up when called, so a patched rule is the one used
from lexprobe.exceptions import PredictionError
from lexprobe.predict._common import (
    _GAIN_NAMES,
    _SPLITS,
    FEATURES,
    MIN_CLASS_PAIRS,
    VERDICTS,
    _measured_verdict,
    _pair_groups,
    _units,
)
from lexprobe.predict._estimator import VerdictPredictor, detection_gain, with_unit_columns
from lexprobe.predict._features import _with_template_share
from lexprobe.predict._schema import COMPUTED, INTERVAL, ITEMS, TASKS, gain_column, row_keys, validate_table
from lexprobe.stats import bootstrap_mean_interval


def unit_table(
    items: pd.DataFrame,
    tasks: pd.DataFrame | None = None,
    *,
    features: Sequence[str] = FEATURES,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per unit (a task on one model): task means of the item features, measured gains, verdicts.

    The measured gains are the means of the items' ``gain`` per split with percentile bootstrap intervals over
    items (a paired bootstrap: an item keeps its baseline and tuned outcome); ``memorized`` / ``generalized`` =
    the interval lies above 0. Where ``tasks`` (``tasks.csv``) is given its gains, intervals, flags and
    ``alignment_z`` are used instead, and its order.

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> units = unit_table(items, tasks)
    >>> len(units), int(units["memorized"].sum()), int(units["generalized"].sum())
    (22, 22, 9)
    """
    items = _with_template_share(items)
    item_units = _units(items)
    groups = _pair_groups(items)
    order = list(dict.fromkeys(item_units))
    if tasks is not None:
        known = _units(tasks).tolist()
        order = [u for u in known if u in set(order)] + [u for u in order if u not in set(known)]
        by_task = {u: row for u, (_, row) in zip(known, tasks.iterrows())}
    else:
        by_task = {}
    rng = np.random.default_rng(seed)
    rows = []
    for unit in order:
        mask = (item_units == unit).to_numpy()
        part = items[mask]
        first = part.iloc[0]
        row: dict[str, Any] = {
            "unit": unit,
            "group": groups[mask].iloc[0],
            "ontology": first["ontology"] if ITEMS.has(part, "ontology") else str(first["label"]).rsplit(" ", 1)[0],
            "task": first["task"] if ITEMS.has(part, "task") else str(first["label"]).rsplit(" ", 1)[-1],
            "label": first["label"],
            "model": first["model"] if ITEMS.has(part, "model") else "",
        }
        for f in dict.fromkeys((*features, "template_share", "seen_target_share")):
            row[f] = float(part[f].astype(float).mean())
        if ITEMS.has(part, "alignment_z"):
            row["alignment_z"] = float(part["alignment_z"].astype(float).mean())
        for split in _SPLITS:
            name = _GAIN_NAMES[split]
            g = part.loc[part["split"] == split, "gain"].astype(float).to_numpy()
            row[f"n_{split}"] = len(g)
            low, high = bootstrap_mean_interval(g, rng=rng, n_boot=n_boot, batched=True)
            row |= {
                f"{name}_gain": float(g.mean()) if len(g) else np.nan,
                f"{name}_gain_ci_low": float(low),
                f"{name}_gain_ci_high": float(high),
            }
        row["memorized"] = bool(row["memorization_gain_ci_low"] > 0)
        row["generalized"] = bool(row["generalization_gain_ci_low"] > 0)
        known_row = by_task.get(unit)
        if known_row is not None:
            for key in (
                *(gain_column(split, suffix) for split in _SPLITS for suffix in INTERVAL),
                "memorized",
                "generalized",
                "alignment_z",
            ):
                if key in known_row and pd.notna(known_row[key]):
                    row[key] = known_row[key]
            row["memorized"], row["generalized"] = bool(row["memorized"]), bool(row["generalized"])
            for key, value in known_row.items():  # the task's other measurements (layer, effect, sides...)
                row.setdefault(key, value)
        row["measured_verdict"] = _measured_verdict(row)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclasses.dataclass
class Predictor:
    """A fitted :class:`~lexprobe.predict.VerdictPredictor` with the calibration it was fitted on and, where
    evaluated, its hold-out evaluations.

    Attributes
    ----------
    estimator : VerdictPredictor
        The fitted estimator: gain models anchored on the kind of task, verdict probabilities.
    tasks : DataFrame
        The calibration units (:func:`unit_table` plus :func:`lexprobe.predict.with_unit_columns`) with their
        leave-one-field-pair-out predicted gains.
    calibration_items : DataFrame
    holdout : DataFrame or None
        :func:`lexprobe.predict.evaluate_holdout`: every unit held out by field pair, ontology and model,
        the predictor beside the baselines; ``baselines`` its scores per scheme and rule, ``by_kind`` the same
        within each kind, ``by_budget`` at each budget of the tasks measured at several; ``loto`` the
        field-pair hold-out in long form.
    warnings : list of str
    fallback : str
        The rule a task outside the calibration gets instead (:data:`lexprobe.predict.PAPERS_RULE`, or the
        baseline with the lowest Brier score held out by ontology).

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> predictor = fit_predictor(items, tasks, loto=False)
    >>> unit = predictor.tasks.iloc[0]  # go id-to-name, as a new task would come
    >>> prediction = predictor.predict_unit(unit)
    >>> prediction["stated_verdict"], prediction["p: memorization only"], prediction["outside"]
    ('memorization only', 0.81, [])
    """

    estimator: VerdictPredictor
    tasks: pd.DataFrame
    calibration_items: pd.DataFrame
    warnings: list[str]
    loto: pd.DataFrame | None = None
    holdout: pd.DataFrame | None = None
    baselines: pd.DataFrame | None = None
    by_kind: pd.DataFrame | None = None
    by_budget: pd.DataFrame | None = None
    fallback: str = "the paper's rule (kinds of the fields)"
    #: The kind mean fitted on ``tasks`` (the fallback where :attr:`fallback` names it), fitted on first use and
    #: kept with the table it was fitted on, so a budget curve fits it once, not once per budget.
    _kind_mean: tuple[pd.DataFrame, VerdictPredictor] | None = dataclasses.field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def features(self) -> tuple[str, ...]:
        return self.estimator.features

    @property
    def confidence(self) -> float:
        return self.estimator.confidence

    @property
    def thresholds(self) -> dict[str, float]:
        """The gain a measured verdict needs (:func:`lexprobe.predict.detection_gain`) at the calibration's
        median split size."""
        return {split: detection_gain(int(self.tasks[f"n_{split}"].median())) for split in _SPLITS}

    @property
    def threshold_notes(self) -> dict[str, str]:
        return {
            split: f"the smallest gain whose 95% interval clears 0 with {int(self.tasks[f'n_{split}'].median())} "
            f"{split} pairs and a baseline of 0"
            for split in _SPLITS
        }

    def budget_curve(self, unit: dict[str, Any] | pd.Series, budgets: Sequence[float] = ()) -> pd.DataFrame:
        """One unit's predicted gains at each budget: the calibration's budgets and ``budgets``, one row per
        budget and split (``exposures, split, predicted_gain, ci_low, ci_high, outside`` and the rule used),
        each as :meth:`predict_unit` gives it (a budget outside the calibration gets the fallback rule, fitted
        once for the whole curve)."""
        measured = pd.to_numeric(self.tasks.get("exposures", pd.Series(dtype=float)), errors="coerce").dropna()
        grid = sorted({float(b) for b in (*measured, *budgets) if b == b and b > 0})
        rows = []
        for exposures in grid:
            one = dict(unit) | {"exposures": exposures, "log_exposures": float(np.log10(exposures))}
            got = self.predict_unit(one)
            for split in _SPLITS:
                name = _GAIN_NAMES[split]
                rows.append(
                    {
                        "exposures": exposures,
                        "split": split,
                        "predicted_gain": got[f"predicted_{name}_gain"],
                        "ci_low": got[f"predicted_{name}_gain_ci_low"],
                        "ci_high": got[f"predicted_{name}_gain_ci_high"],
                        "outside": bool(got["outside"]),
                        "rule": got["rule"],
                    }
                )
        return pd.DataFrame(rows)

    def measured_curves(self, kind: str) -> pd.DataFrame:
        """The calibration's learning curves of one kind: per unit of a field pair measured at two or more
        budgets, its gains per budget and split (``label, exposures, split, gain``)."""
        units = self.tasks[self.tasks["kind"].astype(str) == str(kind)]
        if not TASKS.has(units, "exposures"):
            return pd.DataFrame(columns=["label", "exposures", "split", "gain"])
        key = units["ontology"].astype(str) + " " + units["task"].astype(str) + " (" + units["model"].astype(str) + ")"
        budgets = units.groupby(key)["exposures"].transform("nunique")
        rows = [
            {
                "label": k,
                "exposures": float(u["exposures"]),
                "split": split,
                "gain": float(u[f"{_GAIN_NAMES[split]}_gain"]),
            }
            for k, (_, u), n in zip(key, units.iterrows(), budgets)
            if n >= 2
            for split in _SPLITS
        ]
        return pd.DataFrame(rows, columns=["label", "exposures", "split", "gain"])

    def predict_unit(self, unit: dict[str, Any] | pd.Series) -> dict[str, Any]:
        """Verdict probabilities, the most probable verdict, the stated verdict, predicted gains with
        intervals and what drove them, for one unit (a task on a model, with the columns of
        :func:`lexprobe.predict.with_unit_columns`). A unit outside what the calibration spans
        (:meth:`VerdictPredictor.outside`) gets :attr:`fallback` instead, with the reasons (``outside``)."""
        frame = pd.DataFrame([dict(unit)])
        est = self.estimator
        gains = est.predict_gains(frame).iloc[0].to_dict()
        proba = est.predict_proba(frame)[0]
        outside = est.outside(frame.iloc[0])
        rule = PREDICTOR_NAME
        if outside and self.fallback == _holdout.KIND_MEAN:
            rule = _holdout.KIND_MEAN
            kind_mean = self._fitted_kind_mean()
            gains = kind_mean.predict_gains(frame).iloc[0].to_dict()
            proba = kind_mean.predict_proba(frame)[0]
        elif outside:
            rule = _holdout.PAPERS_RULE
            rule_out = _holdout.papers_rule(self.tasks, frame)
            proba = rule_out["proba"][0]
            gains["predicted_generalization_gain"] = float(rule_out["gain"][0])
            gains["predicted_memorization_gain"] = float(rule_out["memorization"][0])
            for name in _GAIN_NAMES.values():
                gains[f"predicted_{name}_gain_ci_low"] = gains[f"predicted_{name}_gain_ci_high"] = float("nan")
        best = int(np.argmax(proba))
        out: dict[str, Any] = {
            "verdict": VERDICTS[best],
            "probability": float(proba[best]),
            "committed": bool(proba[best] >= est.commit),
            "stated_verdict": est.stated(proba),
            **{f"p: {v}": float(p) for v, p in zip(VERDICTS, proba)},
            "rule": rule,
            "kind": str(frame.iloc[0]["kind"]),
            **gains,
        }
        thresholds = self.thresholds
        for split in _SPLITS:
            out[f"{_GAIN_NAMES[split]}_threshold"] = thresholds[split]
        out["outside"] = outside
        out["reasons"] = [] if outside else est.gain_models_["withheld"].pushes(frame.iloc[0])
        out["memorization_reasons"] = [] if outside else est.gain_models_["train"].pushes(frame.iloc[0])
        return out

    def _fitted_kind_mean(self) -> VerdictPredictor:
        """The kind mean fitted on :attr:`tasks`: fitted once, and again only when ``tasks`` is replaced (its
        fit holds every field pair out in turn, as the predictor's does)."""
        if self._kind_mean is None or self._kind_mean[0] is not self.tasks:
            self._kind_mean = (self.tasks, _holdout.kind_mean_rule().fit(self.tasks))
        return self._kind_mean[1]


#: The predictor's name in tables (``rule``).
PREDICTOR_NAME = "predictor (kind-anchored)"


def fit_predictor(
    items: pd.DataFrame,
    tasks: pd.DataFrame | None = None,
    *,
    features: Sequence[str] = FEATURES,
    loto: bool = True,
    estimator: VerdictPredictor | None = None,
    seed: int = 0,
    n_boot: int | None = None,
) -> Predictor:
    """Fit the predictor on calibration outcomes (``items`` and ``tasks`` as :func:`correlate` writes them).

    With ``loto`` it is also evaluated held out by field pair, by ontology and by model beside the baselines
    (:func:`evaluate_holdout`); ``features`` are the item features the tables need and the nearest-task
    baseline uses. ``n_boot`` is accepted for compatibility and unused (intervals come from held-out errors).

    Raises
    ------
    PredictionError
        Fewer than two calibration tasks, or ``items`` not a valid items table
        (:data:`lexprobe.predict.ITEMS`: features missing, a value that is not a finite number in range...).

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> predictor = fit_predictor(items, tasks, loto=False)  # loto=True also evaluates it held out (slower)
    >>> predictor.warnings
    ["thin calibration: 0 field pair(s) with the verdict 'unlikely to improve' (fewer than 3)"]
    """
    features = tuple(features)
    validate_table(items, ITEMS, source="the calibration items", require=[f for f in features if f not in COMPUTED])
    items = _with_template_share(items)
    if tasks is not None:
        tasks = tasks.drop_duplicates(list(row_keys(tasks, TASKS).columns), keep="last")
        items = items[_units(items).isin(_units(tasks))]
    units = unit_table(items, tasks, features=features, seed=seed)
    if len(units) < 2:
        raise PredictionError(f"the predictor needs outcomes of at least 2 tasks, got {len(units)}")
    units = with_unit_columns(units, items)
    estimator = (estimator or VerdictPredictor()).clone().fit(units)
    held = estimator.held_out_
    scored = units.assign(
        predicted_memorization_gain=held["held_out_memorization_gain"].to_numpy(),
        predicted_generalization_gain=held["held_out_generalization_gain"].to_numpy(),
    )
    predictor = Predictor(
        estimator=estimator, tasks=scored, calibration_items=items, warnings=_calibration_warnings(units)
    )
    if loto and units["group"].nunique() >= 2:
        holdout, baselines = _holdout.evaluate_holdout(units, estimator=estimator, features=features)
        predictor.holdout, predictor.baselines = holdout, baselines
        predictor.by_kind = _holdout.kind_table(holdout)
        by_budget = _holdout.budget_table(holdout)
        predictor.by_budget = by_budget if len(by_budget) else None
        predictor.loto = _holdout._long_holdout(holdout)
        predictor.fallback = _holdout.best_fallback(baselines)
    return predictor


def _calibration_warnings(units: pd.DataFrame) -> list[str]:
    warnings = []
    n_pairs = units["group"].nunique()
    if n_pairs < 6:
        warnings.append(f"thin calibration: {n_pairs} field pairs (each hold-out leaves one out)")
    for verdict in VERDICTS:
        k = units.loc[units["measured_verdict"] == verdict, "group"].nunique()
        if k < MIN_CLASS_PAIRS:
            warnings.append(
                f"thin calibration: {k} field pair(s) with the verdict '{verdict}' (fewer than {MIN_CLASS_PAIRS})"
            )
    models = sorted(units["model"].astype(str).unique())
    if len(models) == 1:
        warnings.append(f"calibration from one model only ({models[0]})")
    return warnings
