"""Hold-out evaluation by field pair: the predictor beside the baselines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.predict._common import _GAIN_NAMES, _SPLITS, FEATURES, VERDICTS
from lexprobe.predict._predictor import _fit_core, _verdict, fitted_cut
from lexprobe.stats import pooled_spearman

#: The rules every evaluation puts beside the predictor (each fitted without the held-out field pair).
BASELINES = (
    "majority verdict",
    "gain 0 everywhere",
    "nearest calibration task",
    "threshold on lexicalization",
    "threshold on alignment z",
    "threshold on template share",
    "threshold on seen-target share",
)


PREDICTOR_RULE = "predictor (task-level ridge)"


def _threshold_rule(train: pd.DataFrame, test: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray]:
    """One-feature rule: cuts on the feature for generalized and memorized (:func:`fitted_cut`: Youden's J, or
    the calibration's majority where a side has too few field pairs); gain = the mean measured generalization
    gain of the calibration units on the same side of the generalization cut."""
    x_train = train[column].astype(float).to_numpy()
    groups = train["group"].to_numpy()
    gen, _ = fitted_cut(x_train, train["generalized"].astype(bool).to_numpy(), groups, always=-np.inf)
    mem, _ = fitted_cut(x_train, train["memorized"].astype(bool).to_numpy(), groups, always=-np.inf)
    y = train["generalization_gain"].astype(float).to_numpy()
    verdicts, gains = [], []
    for x in test[column].astype(float):
        verdicts.append(_verdict({"withheld": x, "train": x}, {"withheld": gen, "train": mem}, floor=None))
        if gen is None:
            gains.append(y.mean())
        else:
            side = (x_train >= gen) == (x >= gen)
            gains.append(y[side].mean() if side.any() else y.mean())
    return verdicts, np.asarray(gains)


def _baseline_predictions(rule: str, train: pd.DataFrame, test: pd.DataFrame, features) -> tuple[list[str], np.ndarray]:
    n = len(test)
    y = train["generalization_gain"].astype(float).to_numpy()
    if rule == "majority verdict":
        counts = train["measured_verdict"].value_counts()
        top = counts[counts == counts.max()].index
        verdict = max(top, key=VERDICTS.index)  # a tie goes to the more cautious verdict
        return [verdict] * n, np.full(n, y.mean())
    if rule == "gain 0 everywhere":
        return [VERDICTS[2]] * n, np.zeros(n)
    if rule == "nearest calibration task":
        X = train[list(features)].astype(float).to_numpy()
        mu, sd = X.mean(axis=0), X.std(axis=0)
        sd[sd == 0] = 1.0
        Z = (X - mu) / sd
        T = (test[list(features)].astype(float).to_numpy() - mu) / sd
        nearest = np.argmin(((T[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2), axis=1)
        return train["measured_verdict"].to_numpy()[nearest].tolist(), y[nearest]
    column = {
        "threshold on lexicalization": "lexicalization",
        "threshold on alignment z": "alignment_z" if "alignment_z" in train else "alignment",
        "threshold on template share": "template_share",
        "threshold on seen-target share": "seen_target_share",
    }[rule]
    return _threshold_rule(train, test, column)


def evaluate_holdout(
    units: pd.DataFrame,
    *,
    features: Sequence[str] = FEATURES,
    alpha: float = 1.0,
    confidence: float = 0.9,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave one field pair out at a time: the predictor (refitted, thresholds and residuals from its own
    inner leave-one-field-pair-out) and each baseline predict the held-out pair's units.

    Returns
    -------
    holdout : DataFrame
        One row per unit: measured and predicted gains with intervals, the verdicts (point, stated with
        ``uncertain`` when an interval straddles a threshold, measured) and each baseline's verdict and gain.
    baselines : DataFrame
        ``rule, verdicts_right, n_units, gain_mae_points, gain_spearman`` (generalization gain, percentage
        points), then ``memorization_mae_points`` (predictor only) and ``relative_error`` (the rule's error
        over the best baseline's: below 1 is skill).
    """
    features = tuple(features)
    units = units.reset_index(drop=True)
    rows = []
    groups = units["group"].to_numpy()
    for g in dict.fromkeys(groups):
        train, test = units[groups != g].reset_index(drop=True), units[groups == g].reset_index(drop=True)
        inner = _fit_core(train, features, alpha, confidence)
        base = {rule: _baseline_predictions(rule, train, test, features) for rule in BASELINES}
        for i, (_, unit) in enumerate(test.iterrows()):
            p = inner.predict_means(unit[list(features)].astype(float).to_numpy())
            row = {k: unit[k] for k in ("group", "ontology", "task", "label", "model")}
            for name in _GAIN_NAMES.values():
                row |= {
                    f"predicted_{name}_gain": p[f"predicted_{name}_gain"],
                    f"predicted_{name}_gain_ci_low": p[f"predicted_{name}_gain_ci_low"],
                    f"predicted_{name}_gain_ci_high": p[f"predicted_{name}_gain_ci_high"],
                }
                row |= {f"{name}_gain{s}": unit[f"{name}_gain{s}"] for s in ("", "_ci_low", "_ci_high")}
                row[f"{name}_threshold"] = p[f"{name}_threshold"]
            row |= {"verdict": p["verdict"], "stated_verdict": p["stated_verdict"]}
            row["measured_verdict"] = unit["measured_verdict"]
            for rule in BASELINES:
                row[f"{rule}: verdict"] = base[rule][0][i]
                row[f"{rule}: gain"] = float(base[rule][1][i])
            rows.append(row)
    holdout = pd.DataFrame(rows)
    return holdout, baseline_table(holdout)


def _rule_row(rule: str, verdicts, measured, predicted, gains) -> dict[str, Any]:
    predicted, gains = np.asarray(predicted, float), np.asarray(gains, float)
    rho = pooled_spearman(predicted, gains)
    return {
        "rule": rule,
        "verdicts_right": int((np.asarray(verdicts) == np.asarray(measured)).sum()),
        "n_units": len(gains),
        "gain_mae_points": float(100 * np.abs(predicted - gains).mean()),
        "gain_spearman": rho,
    }


def baseline_table(holdout: pd.DataFrame) -> pd.DataFrame:
    """``baselines.csv`` from a hold-out table: the predictor's row first, then each baseline's."""
    measured, gains = holdout["measured_verdict"], holdout["generalization_gain"]
    rows = [_rule_row(PREDICTOR_RULE, holdout["verdict"], measured, holdout["predicted_generalization_gain"], gains)]
    rows[0]["memorization_mae_points"] = float(
        100 * (holdout["predicted_memorization_gain"] - holdout["memorization_gain"]).abs().mean()
    )
    for rule in BASELINES:
        if f"{rule}: verdict" in holdout:
            rows.append(_rule_row(rule, holdout[f"{rule}: verdict"], measured, holdout[f"{rule}: gain"], gains))
    table = pd.DataFrame(rows)
    best = table.loc[table["rule"] != PREDICTOR_RULE, "gain_mae_points"].min()
    table["relative_error"] = table["gain_mae_points"] / best if best > 0 else np.nan
    return table


def _long_holdout(holdout: pd.DataFrame) -> pd.DataFrame:
    """The hold-out table in the long form of ``loto.csv`` (one row per unit and split)."""
    rows = []
    for _, h in holdout.iterrows():
        for split in _SPLITS:
            name = _GAIN_NAMES[split]
            rows.append(
                {
                    "label": h["label"],
                    "model": h["model"],
                    "split": split,
                    "predicted_gain": h[f"predicted_{name}_gain"],
                    "predicted_ci_low": h[f"predicted_{name}_gain_ci_low"],
                    "predicted_ci_high": h[f"predicted_{name}_gain_ci_high"],
                    "measured_gain": h[f"{name}_gain"],
                    "measured_ci_low": h[f"{name}_gain_ci_low"],
                    "measured_ci_high": h[f"{name}_gain_ci_high"],
                    "verdict": h["verdict"],
                    "stated_verdict": h["stated_verdict"],
                    "measured_verdict": h["measured_verdict"],
                    "group": h["group"],
                }
            )
    return pd.DataFrame(rows)


def loto_summary(loto: pd.DataFrame) -> dict[str, Any]:
    """Mean absolute error and Spearman rho of predicted vs measured gains per split, and verdict accuracy."""
    from scipy.stats import spearmanr

    out: dict[str, Any] = {}
    for split in _SPLITS:
        part = loto[loto["split"] == split]
        name = _GAIN_NAMES[split]
        out[f"{name}_mae"] = float((part["predicted_gain"] - part["measured_gain"]).abs().mean())
        if part["predicted_gain"].nunique() > 1 and part["measured_gain"].nunique() > 1:
            out[f"{name}_rho"] = float(spearmanr(part["predicted_gain"], part["measured_gain"]).statistic)
        else:
            out[f"{name}_rho"] = float("nan")
    verdicts = loto.drop_duplicates(["label", "model"] if "model" in loto else "label")
    out["verdict_accuracy"] = float((verdicts["verdict"] == verdicts["measured_verdict"]).mean())
    out["verdicts_right"] = int((verdicts["verdict"] == verdicts["measured_verdict"]).sum())
    out["n_tasks"] = int(len(verdicts))
    return out
