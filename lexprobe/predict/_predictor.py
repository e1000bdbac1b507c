"""The predictor: task-level gain models, thresholds and intervals from held-out predictions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

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
from lexprobe.predict._features import _with_template_share
from lexprobe.predict._schema import COMPUTED, ITEMS, validate_table
from lexprobe.stats import youden_threshold


def _verdict(gains: dict[str, float], thresholds: dict[str, float | None], *, floor: float | None = 0.0) -> str:
    """The verdict of predicted gains: a gain must reach its fitted threshold *and* be above 0 (a measured
    verdict needs a gain interval above 0, so a predicted gain of 0 or less never earns one, whatever a cut
    fitted on a few held-out predictions says). ``floor=None``: no such floor (a rule on a feature)."""
    gen, mem = thresholds["withheld"], thresholds["train"]
    low = -np.inf if floor is None else floor
    if gen is not None and gains["withheld"] >= gen and gains["withheld"] > low:
        return VERDICTS[0]
    if mem is not None and gains["train"] >= mem and gains["train"] > low:
        return VERDICTS[1]
    return VERDICTS[2]


def fitted_cut(
    scores: np.ndarray, reached: np.ndarray, groups: np.ndarray, *, always: float, on: str = ""
) -> tuple[float | None, str]:
    """The cut on ``scores`` for a flag (memorized or generalized) of calibration units in field pairs ``groups``.

    Youden's J (:func:`lexprobe.stats.youden_threshold`) when each side holds units of at least
    :data:`MIN_CLASS_PAIRS` field pairs. Otherwise no cut is fitted: when most units reached the flag the
    cut is ``always`` (the predictor's ``0.0``: its gain floor alone decides; a one-feature rule's ``-inf``:
    every task), else ``None`` (the flag is never predicted). ``on`` names the scores in a fitted cut's note.
    """
    scores, reached, groups = np.asarray(scores, float), np.asarray(reached, bool), np.asarray(groups)
    keep = np.isfinite(scores)
    scores, reached, groups = scores[keep], reached[keep], groups[keep]
    pairs_in = len(set(groups[reached]))
    pairs_out = len(set(groups[~reached]))
    if min(pairs_in, pairs_out) >= MIN_CLASS_PAIRS:
        cut, note = youden_threshold(scores, reached)
        return cut, f"{note} on {on}" if on else note
    if len(reached) and reached.mean() > 0.5:
        return always, (
            f"no cut fitted: {pairs_out} field pair(s) did not reach it (fewer than {MIN_CLASS_PAIRS}), "
            "so it is predicted as most calibration units measured it"
        )
    return None, (
        f"no cut fitted: {pairs_in} field pair(s) reached it (fewer than {MIN_CLASS_PAIRS}), so it is not predicted"
    )


def _stated_verdict(gains, lows, highs, thresholds) -> str:
    """The verdict at the point estimate, or ``uncertain: A or B`` when the intervals straddle a threshold."""
    point = _verdict(gains, thresholds)
    if not all(np.isfinite(v) for v in (*lows.values(), *highs.values())):
        return point
    best = VERDICTS.index(_verdict(highs, thresholds))
    worst = VERDICTS.index(_verdict(lows, thresholds))
    if best == worst:
        return point
    return "uncertain: " + " or ".join(VERDICTS[best : worst + 1])


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
            "ontology": first["ontology"] if "ontology" in part else str(first["label"]).rsplit(" ", 1)[0],
            "task": first["task"] if "task" in part else str(first["label"]).rsplit(" ", 1)[-1],
            "label": first["label"],
            "model": first["model"] if "model" in part else "",
        }
        for f in dict.fromkeys((*features, "template_share", "seen_target_share")):
            row[f] = float(part[f].astype(float).mean())
        if "alignment_z" in part:
            row["alignment_z"] = float(part["alignment_z"].astype(float).mean())
        for split in _SPLITS:
            name = _GAIN_NAMES[split]
            g = part.loc[part["split"] == split, "gain"].astype(float).to_numpy()
            row[f"n_{split}"] = len(g)
            if len(g):
                boots = g[rng.integers(0, len(g), size=(n_boot, len(g)))].mean(axis=1)
                low, high = np.quantile(boots, [0.025, 0.975])
            else:
                low = high = np.nan
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
                *(f"{n}_gain{s}" for n in _GAIN_NAMES.values() for s in ("", "_ci_low", "_ci_high")),
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


def _gain_model(X: np.ndarray, y: np.ndarray, alpha: float):
    """Ridge regression of a task's gain on its standardized task-mean features (the mean where < 3 units)."""
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(y) < 3:
        return DummyRegressor(strategy="mean").fit(np.zeros((len(y), 1)) if not len(X) else X, y)
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X, y)


def _predict_gain(model, X: np.ndarray) -> np.ndarray:
    return np.clip(model.predict(X), -1.0, 1.0)


@dataclasses.dataclass
class Predictor:
    """Task-level ridge models of the memorization and generalization gains, thresholds and intervals fitted
    on held-out (nested, leave-one-field-pair-out) predictions of the calibration.

    Attributes
    ----------
    features : tuple of str
        Task means of these item features are the regressors.
    models : dict
        ``train`` (memorization) and ``withheld`` (generalization) gain models.
    thresholds : dict
        Cuts on predicted gain (Youden's J over the calibration units' *held-out* predictions against
        "measured interval above 0"); ``None`` where no calibration unit reached that verdict.
    threshold_notes : dict
    residuals : dict
        Held-out residuals (measured minus predicted) per split: the interval of a prediction is the
        prediction plus their quantiles.
    tasks : DataFrame
        The calibration units with their held-out predicted gains.
    calibration_items : DataFrame
    loto : DataFrame or None
        Leave-one-field-pair-out evaluation, long (one row per unit and split); ``holdout`` one row per unit,
        ``baselines`` the baselines beside the predictor (see :func:`evaluate_holdout`).
    warnings : list of str
    confidence : float
    """

    features: tuple[str, ...]
    models: dict[str, Any]
    thresholds: dict[str, float | None]
    threshold_notes: dict[str, str]
    residuals: dict[str, np.ndarray]
    tasks: pd.DataFrame
    calibration_items: pd.DataFrame
    loto: pd.DataFrame | None
    warnings: list[str]
    holdout: pd.DataFrame | None = None
    baselines: pd.DataFrame | None = None
    confidence: float = 0.9

    def _means(self, items: pd.DataFrame) -> np.ndarray:
        items = _with_template_share(items)
        return items[list(self.features)].astype(float).mean().to_numpy()[None, :]

    def predict(self, items: pd.DataFrame) -> dict[str, Any]:
        """Verdict, predicted gains with intervals, and the features that drove it, for one task's items."""
        return self.predict_means(self._means(items)[0], reasons_items=items)

    def predict_means(self, means: np.ndarray, reasons_items: pd.DataFrame | None = None) -> dict[str, Any]:
        X = np.asarray(means, dtype=float)[None, :]
        alpha = (1 - self.confidence) / 2
        gains, lows, highs = {}, {}, {}
        for split in _SPLITS:
            gains[split] = float(_predict_gain(self.models[split], X)[0])
            r = self.residuals[split]
            if len(r) >= 2:
                lows[split] = float(np.clip(gains[split] + np.quantile(r, alpha, method="lower"), -1, 1))
                highs[split] = float(np.clip(gains[split] + np.quantile(r, 1 - alpha, method="higher"), -1, 1))
            else:
                lows[split] = highs[split] = float("nan")
        out: dict[str, Any] = {
            "verdict": _verdict(gains, self.thresholds),
            "stated_verdict": _stated_verdict(gains, lows, highs, self.thresholds),
        }
        for split in _SPLITS:
            name = _GAIN_NAMES[split]
            out |= {
                f"predicted_{name}_gain": gains[split],
                f"predicted_{name}_gain_ci_low": lows[split],
                f"predicted_{name}_gain_ci_high": highs[split],
                f"{name}_threshold": self.thresholds[split],
            }
        out["reasons"] = self.reasons(X[0]) if reasons_items is not None else []
        return out

    def reasons(self, means: np.ndarray) -> list[dict[str, Any]]:
        """Each feature's push on the predicted generalization gain (points): coefficient times the task's
        standardized distance from the calibration mean, largest first."""
        model = self.models["withheld"]
        if not hasattr(model, "steps"):
            return []
        scaler, ridge = model[0], model[-1]
        rows = []
        for i, feature in enumerate(self.features):
            z = (means[i] - scaler.mean_[i]) / scaler.scale_[i]
            rows.append(
                {
                    "feature": feature,
                    "task_mean": float(means[i]),
                    "calibration_mean": float(scaler.mean_[i]),
                    "gain_points": float(100 * ridge.coef_[i] * z),
                }
            )
        return sorted(rows, key=lambda r: -abs(r["gain_points"]))


def _fit_core(units: pd.DataFrame, features: tuple[str, ...], alpha: float, confidence: float) -> Predictor:
    """Gain models on all ``units``; thresholds and residuals from their leave-one-field-pair-out predictions."""
    X = units[list(features)].astype(float).to_numpy()
    models = {s: _gain_model(X, units[f"{_GAIN_NAMES[s]}_gain"].astype(float).to_numpy(), alpha) for s in _SPLITS}
    held = {s: np.full(len(units), np.nan) for s in _SPLITS}
    groups = units["group"].to_numpy()
    if len(set(groups)) >= 2:
        for g in dict.fromkeys(groups):
            out, keep = groups == g, groups != g
            for s in _SPLITS:
                y = units[f"{_GAIN_NAMES[s]}_gain"].astype(float).to_numpy()
                held[s][out] = _predict_gain(_gain_model(X[keep], y[keep], alpha), X[out])
    thresholds, notes, residuals = {}, {}, {}
    for split, flag in (("train", "memorized"), ("withheld", "generalized")):
        thresholds[split], notes[split] = fitted_cut(
            held[split], units[flag].astype(bool).to_numpy(), groups, always=0.0, on="held-out predictions"
        )
        measured = units[f"{_GAIN_NAMES[split]}_gain"].astype(float).to_numpy()
        residuals[split] = (measured - held[split])[np.isfinite(held[split])]
        if np.ptp(measured) == 0:
            # every calibration unit gained the same: held-out errors of 0 say nothing about a new task
            residuals[split] = np.array([])
    scored = units.assign(predicted_memorization_gain=held["train"], predicted_generalization_gain=held["withheld"])
    return Predictor(
        features=features,
        models=models,
        thresholds=thresholds,
        threshold_notes=notes,
        residuals=residuals,
        tasks=scored,
        calibration_items=pd.DataFrame(),
        loto=None,
        warnings=[],
        confidence=confidence,
    )


def fit_predictor(
    items: pd.DataFrame,
    tasks: pd.DataFrame | None = None,
    *,
    features: Sequence[str] = FEATURES,
    loto: bool = True,
    alpha: float = 1.0,
    confidence: float = 0.9,
    seed: int = 0,
    n_boot: int | None = None,
) -> Predictor:
    """Fit the predictor on calibration outcomes (``items`` and ``tasks`` as :func:`correlate` writes them).

    With ``loto`` the predictor is also evaluated leaving out one field pair at a time (every model's runs
    of a task and of its reverse), beside the baselines (:func:`evaluate_holdout`). ``n_boot`` is accepted
    for compatibility and unused (intervals come from held-out residuals).

    Raises
    ------
    PredictionError
        Fewer than two calibration tasks, or ``items`` not a valid items table
        (:data:`lexprobe.predict.ITEMS`: features missing, a value that is not a finite number in range...).
    """
    from lexprobe.predict._holdout import _long_holdout, evaluate_holdout

    features = tuple(features)
    validate_table(items, ITEMS, source="the calibration items", require=[f for f in features if f not in COMPUTED])
    items = _with_template_share(items)
    if tasks is not None:
        tasks = tasks.drop_duplicates(["label", "model"] if "model" in tasks else "label", keep="last")
        items = items[_units(items).isin(_units(tasks))]
    units = unit_table(items, tasks, features=features, seed=seed)
    if len(units) < 2:
        raise PredictionError(f"the predictor needs outcomes of at least 2 tasks, got {len(units)}")
    predictor = _fit_core(units, features, alpha, confidence)
    predictor.calibration_items = items
    predictor.warnings = _calibration_warnings(units)
    if loto and units["group"].nunique() >= 2:
        holdout, baselines = evaluate_holdout(units, features=features, alpha=alpha, confidence=confidence)
        predictor.holdout, predictor.baselines = holdout, baselines
        predictor.loto = _long_holdout(holdout)
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
