"""Correlations of gains with features (pooled and within tasks) and the grouped AUCs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.predict._budgets import at_recorded_budget
from lexprobe.predict._common import FEATURES, _pair_groups, _units
from lexprobe.predict._features import _with_template_share
from lexprobe.predict._schema import ITEMS
from lexprobe.stats import cluster_bootstrap, pooled_auc, pooled_spearman, spearman_ci, within_auc, within_spearman


def spearman_pooled_within(
    items: pd.DataFrame, x: str, y: str, *, n_boot: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Spearman's rho of ``x`` and ``y`` pooled over units (between-task contrasts included) and within units
    (ranks inside each unit), each with a cluster bootstrap interval over units.

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> go = (tasks["ontology"] == "go") & (tasks["model"] == "smollm2-135m") & at_recorded_budget(tasks)
    >>> items = items[items["label"].isin(tasks.loc[go, "label"]) & (items["model"] == "smollm2-135m")]  # 6 units
    >>> pooled, within = spearman_pooled_within(items, "lexicalization", "gain", n_boot=50)
    >>> pooled["scope"], within["scope"], pooled["n_units"]
    ('all', 'within tasks', 6)
    """
    keep = items[[x, y]].astype(float).notna().all(axis=1)
    items = items[keep]
    parts = [(p[x].astype(float).to_numpy(), p[y].astype(float).to_numpy()) for _, p in items.groupby(_units(items))]
    rows = []
    for scope, stat in (
        ("all", lambda ps: pooled_spearman(np.concatenate([a for a, _ in ps]), np.concatenate([b for _, b in ps]))),
        ("within tasks", within_spearman),
    ):
        value = stat(parts) if parts else float("nan")
        low, high = cluster_bootstrap(stat, parts, n_boot=n_boot, seed=seed) if len(parts) >= 2 else (np.nan,) * 2
        note = "" if np.isfinite(value) else "no variation to rank"
        rows.append(
            {
                "scope": scope,
                "n": int(keep.sum()),
                "n_units": len(parts),
                "rho": value,
                "ci_low": low,
                "ci_high": high,
                "p_value": np.nan,
                "interval": "cluster bootstrap over units",
                "note": note,
            }
        )
    return rows


#: (x, y, which split's items, description): the relations the paper describes, then between features.
CORRELATIONS = (
    ("log_popularity", "baseline_correct", "all", "popularity vs baseline accuracy"),
    ("log_popularity", "gain", "train", "popularity vs memorization gain"),
    ("lexicalization", "gain", "withheld", "lexicalization vs generalization gain"),
    ("alignment", "gain", "withheld", "alignment vs generalization gain"),
    ("template_share", "gain", "withheld", "template share vs generalization gain"),
    ("seen_target_share", "gain", "withheld", "seen-target share vs generalization gain"),
    ("alignment", "lexicalization", "withheld", "alignment vs lexicalization (features)"),
    ("alignment", "template_share", "withheld", "alignment vs template share (features)"),
    ("lexicalization", "template_share", "withheld", "lexicalization vs template share (features)"),
)


def _correlation_rows(items: pd.DataFrame, scope: str, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """One unit's correlations (item bootstrap: the items of one task are the only cluster)."""
    rows = []
    for x, y, split, what in CORRELATIONS:
        part = items if split == "all" else items[items["split"] == split]
        stats = spearman_ci(part[x].to_numpy(), part[y].astype(float).to_numpy(), n_boot=n_boot, seed=seed)
        rows.append(
            {"scope": scope, "x": x, "y": y, "split": split, "relation": what}
            | stats
            | {"interval": "bootstrap over items"}
        )
    return rows


def correlation_table(items: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``correlations.csv``: each relation pooled (``all``) and within tasks, with cluster-bootstrap intervals
    over units, then per unit (a task on a model) with item-bootstrap intervals.

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> go = (tasks["ontology"] == "go") & (tasks["model"] == "smollm2-135m") & at_recorded_budget(tasks)
    >>> items = items[items["label"].isin(tasks.loc[go, "label"]) & (items["model"] == "smollm2-135m")]  # 6 units
    >>> table = correlation_table(items, n_boot=50)
    >>> row = table[(table["relation"] == "lexicalization vs generalization gain") & (table["scope"] == "all")]
    >>> round(float(row["rho"].iloc[0]), 2), row["interval"].iloc[0]
    (0.41, 'cluster bootstrap over units')
    """
    items = _with_template_share(items)
    rows = []
    for x, y, split, what in CORRELATIONS:
        part = items if split == "all" else items[items["split"] == split]
        for r in spearman_pooled_within(part, x, y, n_boot=n_boot, seed=seed):
            rows.append({"scope": r.pop("scope"), "x": x, "y": y, "split": split, "relation": what} | r)
    units = _units(items)
    if units.nunique() > 1:
        several = ITEMS.has(items, "model") and items["model"].nunique() > 1
        for unit in dict.fromkeys(units):
            part = items[units == unit]
            label = part["label"].iloc[0]
            scope = f"{label} ({part['model'].iloc[0]})" if several else label
            rows += _correlation_rows(part, scope, n_boot, seed)
    return pd.DataFrame(rows)


def _classifier(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))


def _grouped_oof(X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold scores with sklearn's LeaveOneGroupOut: each fold's logistic log-odds *without its
    intercept* (the intercept is the other pairs' base rate; kept, it would rank a held-out pair's items by
    how many positives the *other* pairs hold, which pushes the pooled AUC below 0.5 for any feature). A
    fold with one class in training gives no ranking (0)."""
    from sklearn.model_selection import LeaveOneGroupOut

    out = np.zeros(len(y))
    for fit, held in LeaveOneGroupOut().split(X, y, groups):
        if y[fit].all() or not y[fit].any():
            continue
        model = _classifier(seed).fit(X[fit], y[fit])
        out[held] = model.decision_function(X[held]) - model[-1].intercept_[0]
    return out


def auc_comparison(
    items: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    baseline_features: Sequence[str] = ("log_popularity",),
    target: str = "gained",
    n_boot: int = 1000,
    seed: int = 0,
    folds: int | None = None,
) -> pd.DataFrame:
    """Grouped cross-validated AUC of a logistic model of ``target``: leave one field pair out (sklearn
    ``LeaveOneGroupOut``; a task and its reverse, on every model, are one group), so no item is predicted by a
    model that saw its task or its mirror.

    Rows: ``features``, ``popularity only`` (``baseline_features``), ``template share only``, ``alignment
    only``, ``lexicalization only`` and ``difference`` (features minus popularity). ``auc`` pools every item;
    ``within_auc`` counts only pairs of items of the same unit (does the model rank items *inside* a task?).
    Intervals: cluster bootstrap over units. ``folds`` is accepted for compatibility and unused.

    Examples
    --------
    The withheld items of three GO tasks (three field pairs) on one model, from the shipped calibration:

    >>> from lexprobe.predict import load_calibration, shipped_calibration_dir
    >>> items, _, _ = load_calibration([shipped_calibration_dir()])
    >>> labels = ["go id-to-name", "go id-to-namespace", "go name-to-namespace"]
    >>> items = items[items["label"].isin(labels) & (items["model"] == "smollm2-135m")]
    >>> auc = auc_comparison(items[items["split"] == "withheld"], n_boot=3)  # 3 resamples: an example's intervals
    >>> auc.set_index("model").loc[["features", "popularity only"], ["auc", "within_auc"]].round(2)
                      auc  within_auc
    model
    features         0.86        0.21
    popularity only  0.58        0.55
    """
    items = _with_template_share(items)
    features = tuple(features) if features is not None else FEATURES
    y = items[target].astype(bool).to_numpy()
    groups = _pair_groups(items).to_numpy()
    units = _units(items).to_numpy()
    n, n_pos = len(y), int(y.sum())
    models = {
        "features": features,
        "popularity only" if tuple(baseline_features) == ("log_popularity",) else "baseline": tuple(baseline_features),
        "template share only": ("template_share",),
        "seen-target share only": ("seen_target_share",),
        "alignment only": ("alignment",),
        "lexicalization only": ("lexicalization",),
    }
    names = list(models)
    base = {
        "n": n,
        "n_positive": n_pos,
        "n_units": len(set(units)),
        "n_groups": len(set(groups)),
        "cv": "leave one field pair out",
    }
    blank = {
        "auc": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "within_auc": np.nan,
        "within_ci_low": np.nan,
        "within_ci_high": np.nan,
    }
    note = _not_estimable(groups, y, target)
    raw = _raw_feature_rows(items, y, units, n_boot=n_boot, seed=seed, base=base)
    if note:
        rows = [{"model": m} | blank | base | {"note": note} for m in (*names, "difference")]
        return pd.DataFrame(rows + raw)
    preds = {
        name: _grouped_oof(items[list(cols)].astype(float).to_numpy(), y, groups, seed) for name, cols in models.items()
    }
    rows = [row | base | {"note": ""} for row in _bootstrapped_aucs(preds, names, y, units, n_boot, seed)]
    return pd.DataFrame(rows + raw)


def _not_estimable(groups: np.ndarray, y: np.ndarray, target: str) -> str:
    """Why the grouped AUC cannot be estimated from these items, or ``""``."""
    n, n_pos = len(y), int(y.sum())
    if len(set(groups)) < 2:
        return "one field pair only: nothing to hold out"
    if min(n_pos, n - n_pos) < 2:
        return f"{n_pos} of {n} items {target}: too few of one class"
    if len(set(groups[y])) < 2:
        return (
            f"every item {target} is in one field pair ({groups[y][0]}): held out, its model never saw one; "
            "the grouped AUC is not estimable from this calibration"
        )
    return ""


def _bootstrapped_aucs(
    preds: dict[str, np.ndarray], names: list[str], y: np.ndarray, units: np.ndarray, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """Pooled and within-unit AUC of each model's held-out predictions, and of the first minus the second
    (``difference``), each with its cluster-bootstrap interval over units."""
    order = list(dict.fromkeys(units))
    clusters = [(y[units == u], np.column_stack([preds[m][units == u] for m in names])) for u in order]

    def stat(fn, column):
        return lambda cs: fn([(a, b[:, column]) for a, b in cs])

    def diff(fn):
        return lambda cs: fn([(a, b[:, 0]) for a, b in cs]) - fn([(a, b[:, 1]) for a, b in cs])

    rows = []
    for j, name in enumerate([*names, "difference"]):
        row: dict[str, Any] = {"model": name}
        for prefix, fn in (("", pooled_auc), ("within_", within_auc)):
            s = diff(fn) if name == "difference" else stat(fn, j)
            low, high = cluster_bootstrap(s, clusters, n_boot=n_boot, seed=seed)
            key = "auc" if not prefix else "within_auc"
            row |= {key: s(clusters), f"{prefix}ci_low": low, f"{prefix}ci_high": high}
        rows.append(row)
    return rows


#: Features whose own values are scored as a ranking of items (higher = gained), with no fit.
RAW_FEATURES = ("alignment", "lexicalization", "template_share", "seen_target_share", "log_popularity")


def _raw_feature_rows(items, y, units, *, n_boot: int, seed: int, base: dict[str, Any]) -> list[dict[str, Any]]:
    """AUC of each feature's own value (no model, so no cross-validation), pooled and within units, with
    cluster bootstrap intervals: does the feature rank gained items above the others inside a task?"""
    order = list(dict.fromkeys(units))
    rows = []
    for feature in RAW_FEATURES:
        if feature not in items:
            continue
        x = items[feature].astype(float).to_numpy()
        clusters = [(y[units == u], x[units == u]) for u in order]
        row: dict[str, Any] = {"model": f"{feature} itself"}
        for prefix, fn in (("", pooled_auc), ("within_", within_auc)):
            low, high = cluster_bootstrap(fn, clusters, n_boot=n_boot, seed=seed) if len(order) > 1 else (np.nan,) * 2
            key = "within_auc" if prefix else "auc"
            row |= {key: fn(clusters), f"{prefix}ci_low": low, f"{prefix}ci_high": high}
        note = "" if 0 < y.sum() < len(y) else "one class only"
        rows.append(row | base | {"cv": "none: the feature's own value, higher = gained", "note": note})
    return rows


#: The surface forms a task-level feature could be measuring instead of what it claims: the length of the two
#: sides in tokens and the share of the target's characters that are digits or punctuation.
SURFACES = ("source_tokens", "target_tokens", "target_digit_share")

#: The predictor's within-kind features that are measured on the items, each with the gain whose ridge reads it
#: (:data:`lexprobe.predict.GENERALIZATION_FEATURES`, :data:`~lexprobe.predict.MEMORIZATION_FEATURES`; the
#: model size and the budget are settings, not measurements). ``target_tokens`` is itself a surface form: it
#: is checked against the others it could be standing in for.
SURFACE_FEATURES = {"alignment_z": "generalization", "target_tokens": "memorization"}


def surface_check(
    items: pd.DataFrame, units: pd.DataFrame, features: Sequence[str] = tuple(SURFACE_FEATURES)
) -> pd.DataFrame:
    """Whether the predictor's within-kind features follow surface form (``surface.csv``).

    Per kind, over its units at their recorded budget, Spearman's rho of each feature with each of
    :data:`SURFACES` but itself (unit means from ``items``). A kind's ridge reads the feature within the kind,
    so this is where a length effect would pass for alignment, or digits for the target's length;
    ``|rho| >= 0.7`` is flagged.

    Parameters
    ----------
    items : DataFrame
        Per-item rows with ``label``, ``model``, ``target`` and ``target_tokens`` (``source_tokens`` where
        measured).
    units : DataFrame
        One row per unit with ``kind``, ``group`` and the features.
    features : sequence of str
        The unit columns checked (default :data:`SURFACE_FEATURES`); one that ``units`` lacks is skipped.

    Returns
    -------
    DataFrame
        One row per kind, feature and surface: ``kind, feature, gain`` (the gain whose model reads the feature,
        ``""`` for another column), ``surface, n_units, n_field_pairs, rho, flagged``.

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> from lexprobe.predict import unit_table, with_unit_columns
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hgnc"]) & at_recorded_budget(tasks)]
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> check = surface_check(items, with_unit_columns(unit_table(items, tasks), items))
    >>> row = check[(check["kind"] == "identifier -> lexicalized") & (check["feature"] == "alignment_z")]
    >>> row[["surface", "rho", "flagged"]].round(2).values.tolist()  # alignment z follows the target's length here
    [['source_tokens', 0.15, False], ['target_tokens', 0.82, True], ['target_digit_share', -0.88, True]]
    """
    items = items[at_recorded_budget(items).to_numpy()]
    units = units[at_recorded_budget(units).to_numpy()]
    target = items["target"].astype(str)
    digits = target.map(lambda t: sum(not c.isalpha() and not c.isspace() for c in t) / max(len(t), 1))
    surfaces = (
        pd.DataFrame(
            {
                "source_tokens": items["source_tokens"].astype(float) if ITEMS.has(items, "source_tokens") else np.nan,
                "target_tokens": items["target_tokens"].astype(float),
                "target_digit_share": digits,
            }
        )
        .groupby(_units(items).to_numpy())
        .mean()
    )
    means = surfaces.reindex(_units(units).to_numpy())
    rows = []
    for kind, mask in units.groupby(units["kind"].astype(str)).groups.items():
        part, surface = units.loc[mask], means.loc[_units(units.loc[mask]).to_numpy()]
        for feature in (f for f in features if f in units):
            x = part[feature].astype(float).to_numpy()
            for name in (s for s in SURFACES if s != feature):
                y = surface[name].astype(float).to_numpy()
                ok = np.isfinite(x) & np.isfinite(y)
                rho = pooled_spearman(x[ok], y[ok])
                rows.append(
                    {
                        "kind": kind,
                        "feature": feature,
                        "gain": SURFACE_FEATURES.get(feature, ""),
                        "surface": name,
                        "n_units": int(ok.sum()),
                        "n_field_pairs": int(part.loc[ok, "group"].nunique()) if "group" in part else np.nan,
                        "rho": rho,
                        "flagged": bool(np.isfinite(rho) and abs(rho) >= 0.7),
                    }
                )
    return pd.DataFrame(rows)
