"""Hold-out evaluations: the predictor beside the rules it must beat, held out three ways.

Every rule is refitted without the held-out units and predicts them:

- by **field pair** (a task and its reverse, on every model): a new task of a known ontology;
- by **ontology** (every field pair of one ontology): a user's new ontology, the honest test;
- by **model** (fit on one model's units, predict the other's): a new model.

The rules: the paper's rule (the commonest measured verdict and the mean gains of the other units of the
same kind of task, :func:`lexprobe.tasks.task_kind`), the kind mean (the kind's mean gains, verdict
probabilities as the predictor makes them), the majority verdict, gain 0 everywhere, the nearest calibration
task, and a threshold on each of four features. Verdicts are scored right or wrong and with proper scores
(multi-class Brier, log loss); a rule that states a verdict without a probability gives it probability 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.predict._common import _GAIN_NAMES, _SPLITS, FEATURES, MIN_CLASS_PAIRS, VERDICTS
from lexprobe.predict._estimator import COMMIT, VerdictPredictor
from lexprobe.stats import pooled_spearman, youden_threshold

#: How a hold-out leaves units out, and the unit column it groups by.
SCHEMES = {"field pair": "group", "ontology": "ontology", "model": "model"}

PREDICTOR_RULE = "predictor (kind-anchored)"
PAPERS_RULE = "the paper's rule (kinds of the fields)"
KIND_MEAN = "kind mean"

#: The rules every evaluation puts beside the predictor (each fitted without the held-out units), the one a
#: reader of the paper would apply first.
BASELINES = (
    PAPERS_RULE,
    KIND_MEAN,
    "majority verdict",
    "gain 0 everywhere",
    "nearest calibration task",
    "threshold on lexicalization",
    "threshold on alignment z",
    "threshold on template share",
    "threshold on seen-target share",
)

#: A probability below this counts as this in the log loss (a rule certain and wrong costs ln 100).
LOG_LOSS_FLOOR = 0.01

_P_COLUMNS = tuple(f"p: {v}" for v in VERDICTS)


def _one_hot(verdicts: Sequence[str]) -> np.ndarray:
    return np.array([[float(v == w) for w in VERDICTS] for v in verdicts])


def _peers(train: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The training units of ``kind``, else all (a kind the calibration lacks gets the overall mean)."""
    same = train["kind"].astype(str) == kind
    return train[same] if same.any() else train


def papers_rule(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """The rule a reader of the paper applies without a tool: per test unit, the measured verdicts of the
    training units of the same kind of task (all of them for a kind they lack), as
    probabilities (counts plus one each) and the commonest (a tie goes to the more cautious verdict), and
    their mean gains.

    Examples
    --------
    >>> train = pd.DataFrame({"kind": ["identifier -> category"] * 3 + ["text -> identifier"],
    ...                       "measured_verdict": ["will generalize", "will generalize", "memorization only",
    ...                                            "memorization only"],
    ...                       "generalization_gain": [0.5, 0.3, 0.0, 0.0], "memorization_gain": [0.9, 0.8, 0.7, 0.6]})
    >>> rule = papers_rule(train, pd.DataFrame({"kind": ["identifier -> category"]}))
    >>> rule["verdicts"], rule["proba"].round(2).tolist(), rule["gain"].round(2).tolist()
    (['will generalize'], [[0.5, 0.33, 0.17]], [0.27])
    """
    verdicts, proba, gen, mem = [], [], [], []
    for kind in test["kind"].astype(str):
        peers = _peers(train, kind)
        counts = np.array([(peers["measured_verdict"] == v).sum() for v in VERDICTS], dtype=float)
        top = np.flatnonzero(counts == counts.max())
        verdicts.append(VERDICTS[int(top.max())])
        proba.append((counts + 1) / (counts.sum() + len(VERDICTS)))
        gen.append(float(peers["generalization_gain"].astype(float).mean()))
        mem.append(float(peers["memorization_gain"].astype(float).mean()))
    return {"verdicts": verdicts, "proba": np.array(proba), "gain": np.array(gen), "memorization": np.array(mem)}


def kind_mean_rule() -> VerdictPredictor:
    """The kind mean: the predictor without features or anchor (gains = the kind's means)."""
    return VerdictPredictor((), (), anchor=False)


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

    Examples
    --------
    Six units of three field pairs reached the flag and six of three others did not: a cut is fitted.

    >>> scores = np.array([0.1, 0.2, 0.15, 0.3, 0.25, 0.1, 0.6, 0.7, 0.8, 0.65, 0.9, 0.75])
    >>> reached = scores > 0.5
    >>> groups = np.repeat(["a", "b", "c", "d", "e", "f"], 2)
    >>> cut, note = fitted_cut(scores, reached, groups, always=0.0, on="the predicted gain")
    >>> round(cut, 2), note
    (0.45, "Youden's J = 1.00 on the predicted gain")
    >>> fitted_cut(scores, scores > 0.85, groups, always=0.0)[0] is None  # one field pair reached it: never
    True
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


def _baseline(rule: str, train: pd.DataFrame, test: pd.DataFrame, features: Sequence[str]) -> dict[str, Any]:
    """One rule's predictions of ``test``: verdicts, probabilities, generalization and memorization gains."""
    n = len(test)
    y = train["generalization_gain"].astype(float).to_numpy()
    ym = train["memorization_gain"].astype(float).to_numpy()
    if rule == PAPERS_RULE:
        return papers_rule(train, test)
    if rule == KIND_MEAN:
        model = kind_mean_rule().fit(train)
        proba = model.predict_proba(test)
        gains = model.predict_gains(test)
        return {
            "verdicts": [VERDICTS[i] for i in proba.argmax(axis=1)],
            "proba": proba,
            "gain": gains["predicted_generalization_gain"].to_numpy(),
            "memorization": gains["predicted_memorization_gain"].to_numpy(),
        }
    if rule == "majority verdict":
        counts = np.array([(train["measured_verdict"] == v).sum() for v in VERDICTS], dtype=float)
        top = np.flatnonzero(counts == counts.max())
        verdict = VERDICTS[int(top.max())]  # a tie goes to the more cautious verdict
        proba = np.tile((counts + 1) / (counts.sum() + len(VERDICTS)), (n, 1))
        return {
            "verdicts": [verdict] * n,
            "proba": proba,
            "gain": np.full(n, y.mean()),
            "memorization": np.full(n, ym.mean()),
        }
    if rule == "gain 0 everywhere":
        verdicts = [VERDICTS[2]] * n
        return {"verdicts": verdicts, "proba": _one_hot(verdicts), "gain": np.zeros(n), "memorization": np.zeros(n)}
    if rule == "nearest calibration task":
        X = train[list(features)].astype(float).to_numpy()
        mu, sd = X.mean(axis=0), X.std(axis=0)
        sd[sd == 0] = 1.0
        Z = (X - mu) / sd
        T = (test[list(features)].astype(float).to_numpy() - mu) / sd
        nearest = np.argmin(((T[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2), axis=1)
        verdicts = train["measured_verdict"].to_numpy()[nearest].tolist()
        return {"verdicts": verdicts, "proba": _one_hot(verdicts), "gain": y[nearest], "memorization": ym[nearest]}
    column = {
        "threshold on lexicalization": "lexicalization",
        "threshold on alignment z": "alignment_z" if "alignment_z" in train else "alignment",
        "threshold on template share": "template_share",
        "threshold on seen-target share": "seen_target_share",
    }[rule]
    verdicts, gains = _threshold_rule(train, test, column)
    return {"verdicts": verdicts, "proba": _one_hot(verdicts), "gain": gains, "memorization": np.full(n, np.nan)}


def evaluate_holdout(
    units: pd.DataFrame,
    *,
    estimator: VerdictPredictor | None = None,
    schemes: Sequence[str] = tuple(SCHEMES),
    features: Sequence[str] = FEATURES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold units out by each scheme (:data:`SCHEMES`): the predictor (a clone of ``estimator``, refitted, its
    errors from its own inner leave-one-field-pair-out) and each baseline predict the held-out units.

    ``units`` are calibration units with :func:`lexprobe.predict.with_unit_columns`; ``features`` are the
    nearest-task baseline's.

    Returns
    -------
    holdout : DataFrame
        One row per scheme and unit (``held_out_by``): measured and predicted gains with intervals, the
        predictor's probabilities (``p: VERDICT``), verdict, stated verdict, and each baseline's verdict,
        gains and probabilities.
    baselines : DataFrame
        One row per scheme and rule: :func:`baseline_table`.

    Examples
    --------
    Held out by model, on the units of one ontology measured with two models:

    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> from lexprobe.predict import unit_table, with_unit_columns
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[(tasks["ontology"] == "go") & at_recorded_budget(tasks)]
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> units = with_unit_columns(unit_table(items, tasks), items)
    >>> holdout, baselines = evaluate_holdout(units, schemes=("model",))
    >>> len(holdout) == len(units), baselines["rule"].iloc[0]
    (True, 'predictor (kind-anchored)')
    """
    estimator = estimator or VerdictPredictor()
    units = units.reset_index(drop=True)
    rows = []
    for scheme in schemes:
        key = units[SCHEMES[scheme]].astype(str).to_numpy()
        if len(set(key)) < 2:
            continue
        for g in dict.fromkeys(key):
            train, test = units[key != g].reset_index(drop=True), units[key == g].reset_index(drop=True)
            model = estimator.clone().fit(train)
            gains = model.predict_gains(test)
            proba = model.predict_proba(test)
            base = {rule: _baseline(rule, train, test, features) for rule in BASELINES}
            for i, unit in test.iterrows():
                row: dict[str, Any] = {"held_out_by": scheme}
                row |= {k: unit[k] for k in ("group", "ontology", "task", "label", "model", "kind")}
                row["exposures"] = float(unit["exposures"]) if "exposures" in unit else float("nan")
                for name in _GAIN_NAMES.values():
                    row |= {
                        f"predicted_{name}_gain{s}": float(gains.loc[i, f"predicted_{name}_gain{s}"])
                        for s in ("", "_ci_low", "_ci_high")
                    }
                    row |= {f"{name}_gain{s}": unit[f"{name}_gain{s}"] for s in ("", "_ci_low", "_ci_high")}
                row |= dict(zip(_P_COLUMNS, map(float, proba[i])))
                row["verdict"] = VERDICTS[int(proba[i].argmax())]
                row["probability"] = float(proba[i].max())
                row["stated_verdict"] = model.stated(proba[i])
                row["measured_verdict"] = unit["measured_verdict"]
                for rule in BASELINES:
                    b = base[rule]
                    row[f"{rule}: verdict"] = b["verdicts"][i]
                    row[f"{rule}: gain"] = float(b["gain"][i])
                    row[f"{rule}: memorization gain"] = float(b["memorization"][i])
                    row |= {f"{rule}: {c}": float(p) for c, p in zip(_P_COLUMNS, b["proba"][i])}
                rows.append(row)
    holdout = pd.DataFrame(rows)
    return holdout, baseline_table(holdout)


def proper_scores(proba: np.ndarray, measured: Sequence[str]) -> dict[str, float]:
    """Multi-class Brier score (:func:`sklearn.metrics.brier_score_loss`: the sum over the three verdicts of
    the squared error, 0 to 2, mean over units) and log loss (a probability below :data:`LOG_LOSS_FLOOR`
    counts as it, so one confident miss does not decide a comparison), means over units. Each row is divided
    by its sum first: a table read back from CSV holds rounded probabilities.

    Examples
    --------
    >>> proba = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])  # will generalize, memorization only, unlikely
    >>> scores = proper_scores(proba, ["will generalize", "memorization only"])
    >>> scores["brier"]  # 0 for the first, 0.25 + 0.25 for the second
    0.25
    """
    from sklearn.metrics import brier_score_loss

    proba = np.asarray(proba, dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    truth = _one_hot(measured)
    order = np.argsort(VERDICTS)  # sklearn reads the columns in the labels' sorted order
    labels = [VERDICTS[i] for i in order]
    brier = float(brier_score_loss(list(measured), proba[:, order], labels=labels, scale_by_half=False))
    log_loss = float(-np.log(np.clip((proba * truth).sum(axis=1), LOG_LOSS_FLOOR, 1.0)).mean())
    return {"brier": brier, "log_loss": log_loss}


def _rule_row(rule: str, part: pd.DataFrame, prefix: str) -> dict[str, Any]:
    verdicts = part["verdict" if not prefix else f"{prefix}verdict"]
    proba = part[[f"{prefix}{c}" for c in _P_COLUMNS]].to_numpy(float)
    gen = part["predicted_generalization_gain" if not prefix else f"{prefix}gain"].astype(float)
    mem = part["predicted_memorization_gain" if not prefix else f"{prefix}memorization gain"].astype(float)
    right = verdicts.to_numpy() == part["measured_verdict"].to_numpy()
    committed = proba.max(axis=1) >= COMMIT
    row = {
        "rule": rule,
        "verdicts_right": int(right.sum()),
        "n_units": len(part),
        **proper_scores(proba, part["measured_verdict"]),
        "committed_share": float(committed.mean()),
        "committed_right": float(right[committed].mean()) if committed.any() else float("nan"),
        "gain_mae_points": float(100 * (gen - part["generalization_gain"].astype(float)).abs().mean()),
        "memorization_mae_points": float(100 * (mem - part["memorization_gain"].astype(float)).abs().mean())
        if mem.notna().all()
        else float("nan"),
        "gain_spearman": pooled_spearman(gen.to_numpy(), part["generalization_gain"].astype(float).to_numpy()),
    }
    return row


def _rule_rows(part: pd.DataFrame) -> list[dict[str, Any]]:
    rows = [_rule_row(PREDICTOR_RULE, part, "")]
    rows += [_rule_row(rule, part, f"{rule}: ") for rule in BASELINES if f"{rule}: verdict" in part]
    return rows


def _relative(table: pd.DataFrame) -> pd.DataFrame:
    """Each rule's Brier skill over the paper's rule and its gain error over the kind mean's (per scheme)."""
    table = table.copy()
    paper = table["rule"] == PAPERS_RULE
    kind = table["rule"] == KIND_MEAN
    ref_brier = table.loc[paper, "brier"].iloc[0] if paper.any() else np.nan
    ref_gain = table.loc[kind, "gain_mae_points"].iloc[0] if kind.any() else np.nan
    table["brier_skill_over_papers_rule"] = 1 - table["brier"] / ref_brier if ref_brier > 0 else np.nan
    table["gain_error_over_kind_mean"] = table["gain_mae_points"] / ref_gain if ref_gain > 0 else np.nan
    return table


def baseline_table(holdout: pd.DataFrame) -> pd.DataFrame:
    """``baselines.csv``: per scheme (``held_out_by``), the predictor's row, then each baseline's: verdicts
    right, Brier, log loss, the share of units with a committed verdict (probability >= :data:`COMMIT`) and
    how often it is right, the generalization and memorization gain errors (points), Spearman's rho of the
    generalization gain, Brier skill over the paper's rule and gain error over the kind mean's.

    Examples
    --------
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> holdout = pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "holdout.csv")
    >>> holdout = holdout[holdout["held_out_by"] == "field pair"]
    >>> table = baseline_table(holdout)
    >>> table[["rule", "verdicts_right", "n_units"]].head(3).values.tolist()
    [['predictor (kind-anchored)', 62, 74], ["the paper's rule (kinds of the fields)", 49, 74], ['kind mean', 49, 74]]
    """
    if "held_out_by" not in holdout:
        holdout = holdout.assign(held_out_by="field pair")
    frames = []
    for scheme, part in holdout.groupby("held_out_by", sort=False):
        frames.append(_relative(pd.DataFrame(_rule_rows(part))).assign(held_out_by=scheme))
    table = pd.concat(frames, ignore_index=True)
    return table[["held_out_by", *[c for c in table.columns if c != "held_out_by"]]]


def kind_table(holdout: pd.DataFrame) -> pd.DataFrame:
    """Skill within kinds (``baselines_by_kind.csv``): per scheme, kind and rule, the scores of
    :func:`baseline_table` over that kind's units only. Between kinds the paper's rule answers; this is
    where a tool must add to it.

    Examples
    --------
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> holdout = pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "holdout.csv")
    >>> holdout = holdout[holdout["held_out_by"] == "field pair"]
    >>> table = kind_table(holdout)
    >>> sorted(table["kind"].unique())[:2]
    ['identifier -> category', 'identifier -> lexicalized']
    """
    frames = []
    for (scheme, kind), part in holdout.groupby(["held_out_by", "kind"], sort=False):
        frames.append(_relative(pd.DataFrame(_rule_rows(part))).assign(held_out_by=scheme, kind=kind))
    table = pd.concat(frames, ignore_index=True)
    return table[["held_out_by", "kind", *[c for c in table.columns if c not in ("held_out_by", "kind")]]]


def budget_table(holdout: pd.DataFrame) -> pd.DataFrame:
    """Skill at each budget (``baselines_by_budget.csv``): per scheme, budget (``exposures``) and rule, the
    scores of :func:`baseline_table` over the tasks measured at several budgets on a model (learning curves),
    so every budget's row covers the same tasks. Empty when no task has two budgets.

    Examples
    --------
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> holdout = pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "holdout.csv")
    >>> holdout = holdout[holdout["held_out_by"] == "field pair"]
    >>> table = budget_table(holdout)
    >>> sorted(table["exposures"].unique().tolist())  # the budgets of the learning curves
    [5, 10, 20]
    """
    if "exposures" not in holdout or holdout["exposures"].isna().all():
        return pd.DataFrame()
    curve = holdout["group"].astype(str) + " | " + holdout["model"].astype(str)  # a unit's learning curve
    curved = holdout[holdout.groupby(curve)["exposures"].transform("nunique").to_numpy() >= 2]
    frames = []
    for (scheme, exposures), part in curved.groupby(["held_out_by", "exposures"], sort=True):
        frames.append(_relative(pd.DataFrame(_rule_rows(part))).assign(held_out_by=scheme, exposures=exposures))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    order = {s: i for i, s in enumerate(SCHEMES)}
    table = table.sort_values(
        ["held_out_by", "exposures"], key=lambda c: c.map(order) if c.name == "held_out_by" else c, kind="stable"
    )
    return table[
        ["held_out_by", "exposures", *[c for c in table.columns if c not in ("held_out_by", "exposures")]]
    ].reset_index(drop=True)


def reliability_table(holdout: pd.DataFrame, *, bins: int = 5, rules: Sequence[str] | None = None) -> pd.DataFrame:
    """The reliability diagram's points (``reliability.csv``): per scheme and rule, every held-out unit's
    probability of each of the three verdicts against whether that verdict was measured, pooled and cut into
    ``bins`` equal-width bins; per bin the mean probability, the share measured and the count.

    Examples
    --------
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> holdout = pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "holdout.csv")
    >>> holdout = holdout[holdout["held_out_by"] == "field pair"]
    >>> table = reliability_table(holdout, rules=["predictor (kind-anchored)"])
    >>> table[["mean_probability", "observed"]].round(2).values.tolist()  # five bins, near the diagonal
    [[0.04, 0.03], [0.28, 0.32], [0.6, 0.12], [0.77, 0.89], [0.93, 0.95]]
    """
    rules = list(rules) if rules is not None else [PREDICTOR_RULE, PAPERS_RULE, KIND_MEAN]
    if "held_out_by" not in holdout:
        holdout = holdout.assign(held_out_by="field pair")
    rows = []
    for scheme, part in holdout.groupby("held_out_by", sort=False):
        truth = _one_hot(part["measured_verdict"]).ravel()
        for rule in rules:
            prefix = "" if rule == PREDICTOR_RULE else f"{rule}: "
            columns = [f"{prefix}{c}" for c in _P_COLUMNS]
            if not set(columns) <= set(part.columns):
                continue
            proba = part[columns].to_numpy(float).ravel()
            which = np.minimum((proba * bins).astype(int), bins - 1)
            for b in np.unique(which):
                mask = which == b
                rows.append(
                    {
                        "held_out_by": scheme,
                        "rule": rule,
                        "bin_low": b / bins,
                        "bin_high": (b + 1) / bins,
                        "mean_probability": float(proba[mask].mean()),
                        "observed": float(truth[mask].mean()),
                        "n": int(mask.sum()),
                    }
                )
    return pd.DataFrame(rows)


#: The rules a task outside the calibration can fall back to: those that read nothing but the kind of its
#: two fields, since a feature outside the calibration's range is what made the predictor unsafe there.
FALLBACKS = (PAPERS_RULE, KIND_MEAN)


def best_fallback(baselines: pd.DataFrame) -> str:
    """Of :data:`FALLBACKS`, the rule with the lowest Brier score held out by ontology (what a task outside the
    calibration gets); the paper's rule where none was evaluated so.

    Examples
    --------
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> best_fallback(pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "baselines.csv"))
    'kind mean'
    """
    by_ontology = baselines[(baselines["held_out_by"] == "ontology") & baselines["rule"].isin(FALLBACKS)]
    if by_ontology.empty:
        return PAPERS_RULE
    return str(by_ontology.sort_values("brier", kind="stable").iloc[0]["rule"])


def _long_holdout(holdout: pd.DataFrame) -> pd.DataFrame:
    """The field-pair hold-out in the long form of ``loto.csv`` (one row per unit and split)."""
    if "held_out_by" in holdout:
        holdout = holdout[holdout["held_out_by"] == "field pair"]
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
    """Mean absolute error and Spearman rho of predicted vs measured gains per split, and verdict accuracy.

    Examples
    --------
    >>> from lexprobe.predict import shipped_calibration_dir
    >>> summary = loto_summary(pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "loto.csv"))
    >>> summary["verdicts_right"], summary["n_tasks"], round(summary["generalization_rho"], 2)
    (62, 74, 0.97)
    """
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
