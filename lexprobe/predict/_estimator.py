"""The predictor as an estimator: gain models anchored on the kind of the two fields, verdict probabilities.

A reader of the paper already knows the answer *between* kinds of task (identifiers memorize, category and
lexicalized targets can generalize): :class:`KindGainModel` starts from that, the mean gain of the calibration
units of the same kind (:func:`lexprobe.tasks.task_kind`), and adds what the features say *within* the kind.
A category target is anchored on its majority share: a tuned model that learned only the class prior answers
the commonest train target, so the generalization gain is modelled as ``m + (1 - m) * s`` with ``m`` the
share of withheld pairs the majority rule gets right (computed from the split, before any training) and ``s``
the skill beyond it.

:class:`VerdictPredictor` turns predicted gains into probabilities of the three verdicts. A measured verdict
needs a gain interval above 0 (:func:`detection_gain`: with 100 withheld pairs, about 4 right answers more);
the probability that a task clears it is the share of the calibration's *held-out* errors (same kind where
two field pairs give some, else the same kind of source field, else all) that would take the predicted gain
over it. Nothing is fitted on the units a probability is scored on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from lexprobe.exceptions import PredictionError, TaskError
from lexprobe.models import NAMED_MODELS
from lexprobe.predict._common import VERDICTS, _units
from lexprobe.tasks import task_kind

#: What the generalization gain is modelled on within a kind: the alignment of the two fields (the paper's
#: account) and the budget.
GENERALIZATION_FEATURES = ("alignment_z", "log_exposures")

#: What the memorization gain is modelled on within a kind: the target's length in tokens, the model's size
#: and the budget.
MEMORIZATION_FEATURES = ("target_tokens", "log_params", "log_exposures")

#: What stands in for a feature the calibration units lack: ``alignment_z`` is computed per task by
#: ``lexprobe correlate`` (``tasks.csv``); an items table alone has the per-item ``alignment``.
STAND_INS = {"alignment_z": "alignment"}

#: A verdict is committed to when its probability is at least this.
COMMIT = 0.8

#: Columns a unit must have for :class:`VerdictPredictor` (besides its features).
UNIT_COLUMNS = ("group", "kind", "n_train", "n_withheld", "majority_share")


def detection_gain(n: int, level: float = 0.025) -> float:
    """The smallest gain (less half a pair) whose percentile bootstrap interval over ``n`` pairs lies above 0
    when the baseline answers none: ``k`` right answers of ``n`` where a resample of them holds none with
    probability ``(1 - k/n)^n < level``. 100 pairs: 4 answers, 0.035.

    Examples
    --------
    >>> detection_gain(100)  # 4 right answers of 100, less half a pair
    0.035
    """
    n = int(n)
    if n < 1:
        raise PredictionError(f"a split needs at least one pair, got {n}")
    k = next((k for k in range(1, n + 1) if (1 - k / n) ** n < level), n)
    return (k - 0.5) / n


def source_side(kind: str) -> str:
    """The source half of a kind: ``identifier -> category`` -> ``identifier``."""
    return str(kind).split(" -> ")[0]


def unit_kind(task: str) -> str:
    """:func:`lexprobe.tasks.task_kind`, or ``unknown`` for a task of fields the kinds do not know."""
    try:
        return task_kind(task)
    except TaskError:
        return "unknown"


def majority_share(items: pd.DataFrame, keys: pd.Series) -> pd.Series:
    """Per unit (``keys``), the share of its withheld pairs whose target (up to case) is the commonest target of
    its train pairs (ties: the first in sorted order): what the majority rule scores, as
    :func:`lexprobe.predict.majority_rule` computes it from a split.

    Examples
    --------
    >>> items = pd.DataFrame({"split": ["train", "train", "train", "withheld", "withheld"],
    ...                       "target": ["protein", "protein", "RNA", "Protein", "RNA"]})
    >>> majority_share(items, pd.Series("hgnc name-to-locus_type", index=items.index)).tolist()
    [0.5]
    """
    out = {}
    for key, part in items.groupby(keys.to_numpy(), sort=False):
        train = part.loc[part["split"] == "train", "target"].astype(str)
        withheld = part.loc[part["split"] == "withheld", "target"].astype(str)
        if train.empty or withheld.empty:
            out[key] = 0.0
            continue
        counts = train.value_counts()
        top = sorted(counts[counts == counts.max()].index)[0]
        out[key] = float((withheld.str.casefold() == top.casefold()).mean())
    return pd.Series(out, dtype=float)


def _ridge(alpha: float):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=alpha))


class KindGainModel(BaseEstimator):
    """A gain as the mean of the calibration units of the same kind, plus a ridge on features within the kind.

    Parameters
    ----------
    features : sequence of str
        Unit columns the within-kind ridge uses (standardized); empty: the kind mean alone.
    alpha : float
        Ridge penalty.
    anchor : bool
        Model ``(gain - m) / (1 - m)`` with ``m`` the unit's ``majority_share`` and predict ``m + (1 - m) * s``.
    min_pairs : int
        A kind gets a ridge only when its units come from at least this many field pairs.

    Attributes
    ----------
    mean_ : float
        The mean over all units (a unit whose kind and source side the calibration lacks).
    kind_means_, source_means_ : dict
        The mean per kind and per source side.
    ridges_ : dict
        The within-kind ridge pipelines (``StandardScaler`` then ``Ridge``), of the kinds that have one.

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> from lexprobe.predict import unit_table
    >>> units = with_unit_columns(unit_table(items, tasks), items)
    >>> model = KindGainModel().fit(units, units["generalization_gain"])  # no features: the kind means
    >>> by_kind = units.assign(predicted=model.predict(units)).groupby("kind")
    >>> bool(np.allclose(by_kind["predicted"].mean(), by_kind["generalization_gain"].mean()))
    True
    """

    def __init__(
        self, features: Sequence[str] = (), *, alpha: float = 1.0, anchor: bool = False, min_pairs: int = 3
    ) -> None:
        self.features = tuple(features)
        self.alpha = alpha
        self.anchor = anchor
        self.min_pairs = min_pairs

    def _anchor(self, units: pd.DataFrame) -> np.ndarray:
        if not self.anchor:
            return np.zeros(len(units))
        return np.clip(units["majority_share"].astype(float).fillna(0.0).to_numpy(), 0.0, 0.999)

    def fit(self, units: pd.DataFrame, y: Sequence[float]) -> KindGainModel:
        units = units.reset_index(drop=True)
        y = np.asarray(y, dtype=float)
        m = self._anchor(units)
        s = np.clip((y - m) / (1 - m), -1.0, 1.0)
        kinds = units["kind"].astype(str).to_numpy()
        sources = np.array([source_side(k) for k in kinds])
        self.mean_ = float(s.mean())
        self.kind_means_ = {k: float(s[kinds == k].mean()) for k in dict.fromkeys(kinds)}
        self.source_means_ = {k: float(s[sources == k].mean()) for k in dict.fromkeys(sources)}
        self.ridges_ = {}
        groups = units["group"].astype(str).to_numpy()
        for kind in self.kind_means_:
            mask = kinds == kind
            rest = s[mask] - self.kind_means_[kind]
            if self.features and len(set(groups[mask])) >= self.min_pairs and np.ptp(rest) > 0:
                X = units.loc[mask, list(self.features)].astype(float).to_numpy()
                self.ridges_[kind] = _ridge(self.alpha).fit(X, rest)
        return self

    def base(self, kind: str) -> float:
        """The prediction before features: the kind's mean, else the source side's, else the overall mean."""
        return self.kind_means_.get(kind, self.source_means_.get(source_side(kind), self.mean_))

    def predict(self, units: pd.DataFrame) -> np.ndarray:
        units = units.reset_index(drop=True)
        kinds = units["kind"].astype(str).to_numpy()
        s = np.array([self.base(k) for k in kinds], dtype=float)
        for kind, ridge in self.ridges_.items():
            mask = kinds == kind
            if mask.any():
                s[mask] += ridge.predict(units.loc[mask, list(self.features)].astype(float).to_numpy())
        m = self._anchor(units)
        return np.clip(m + (1 - m) * np.clip(s, -1.0, 1.0), -1.0, 1.0)

    def pushes(self, unit: pd.Series | dict[str, Any]) -> list[dict[str, Any]]:
        """Each feature's push (points of gain, before the anchor) on one unit: its kind's ridge coefficient times
        the unit's standardized distance from the kind's mean; ``[]`` for a kind without a ridge."""
        kind = str(unit["kind"])
        ridge = self.ridges_.get(kind)
        if ridge is None:
            return []
        scaler, model = ridge[0], ridge[-1]
        rows = []
        for i, feature in enumerate(self.features):
            value = float(unit[feature])
            z = (value - scaler.mean_[i]) / scaler.scale_[i]
            rows.append(
                {
                    "feature": feature,
                    "task_mean": value,
                    "calibration_mean": float(scaler.mean_[i]),
                    "gain_points": float(100 * model.coef_[i] * z),
                }
            )
        return sorted(rows, key=lambda r: -abs(r["gain_points"]))


def _smoothed_share(hits: np.ndarray) -> float:
    """``(hits + 1/2) / (n + 1)``: a share that a few cases never make exactly 0 or 1."""
    return float((np.sum(hits) + 0.5) / (len(hits) + 1))


class VerdictPredictor(BaseEstimator):
    """Predicted gains, verdict probabilities and intervals for units (a task on a model), fitted on calibration
    units (:func:`lexprobe.predict.unit_table` with :func:`with_unit_columns`).

    Parameters
    ----------
    generalization_features, memorization_features : sequence of str
        The within-kind regressors of the two gains.
    alpha : float
        Ridge penalty of both gain models.
    anchor : bool
        Anchor the generalization gain on the majority share (:class:`KindGainModel`).
    commit : float
        A verdict whose probability reaches this is stated; below it the two likeliest are.
    confidence : float
        Coverage of the gain intervals (quantiles of the held-out errors).

    Attributes
    ----------
    gain_models_ : dict
        ``train`` (memorization) and ``withheld`` (generalization) :class:`KindGainModel`, fitted on all units.
    held_out_ : DataFrame
        The calibration units with their leave-one-field-pair-out predicted gains and errors.
    ranges_ : dict
        Each feature's calibration range ``(min, max)``.
    kinds_ : set of str
    budgets_ : dict
        Per kind, the budgets (exposures) its calibration units were measured at.
    nearest_distance_ : float
        The largest distance from a calibration unit to its nearest unit of another field pair (standardized
        features): a new unit farther than this from every calibration unit lies outside it.

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> from lexprobe.predict import unit_table
    >>> units = with_unit_columns(unit_table(items, tasks), items)
    >>> estimator = VerdictPredictor().fit(units)
    >>> proba = estimator.predict_proba(units)
    >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1))  # one probability per verdict, per unit
    ((22, 3), True)
    >>> set(estimator.predict(units)) <= set(VERDICTS)
    True
    """

    def __init__(
        self,
        generalization_features: Sequence[str] = GENERALIZATION_FEATURES,
        memorization_features: Sequence[str] = MEMORIZATION_FEATURES,
        *,
        alpha: float = 1.0,
        anchor: bool = True,
        commit: float = COMMIT,
        confidence: float = 0.9,
    ) -> None:
        self.generalization_features = tuple(generalization_features)
        self.memorization_features = tuple(memorization_features)
        self.alpha = alpha
        self.anchor = anchor
        self.commit = commit
        self.confidence = confidence

    def clone(self) -> VerdictPredictor:
        """An unfitted copy with the same parameters (:func:`sklearn.base.clone`)."""
        from sklearn.base import clone

        return clone(self)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.generalization_features, *self.memorization_features)))

    @property
    def used_(self) -> tuple[str, ...]:
        """The features the fitted models use: those every calibration unit has."""
        used = self.used_features_
        return tuple(dict.fromkeys((*used["withheld"], *used["train"])))

    def _models(self) -> dict[str, KindGainModel]:
        used = getattr(self, "used_features_", None) or {
            "withheld": self.generalization_features,
            "train": self.memorization_features,
        }
        return {
            "withheld": KindGainModel(used["withheld"], alpha=self.alpha, anchor=self.anchor),
            "train": KindGainModel(used["train"], alpha=self.alpha),
        }

    def fit(self, units: pd.DataFrame) -> VerdictPredictor:
        """Fit on calibration units: gain models on all of them, errors from leave-one-field-pair-out."""
        missing = [c for c in (*UNIT_COLUMNS, *_TARGETS.values()) if c not in units]
        if missing:
            raise PredictionError(f"calibration units lack {missing}")
        units = units.reset_index(drop=True)
        if len(units) < 1:  # one unit fits (the kind mean of one); a hold-out of two field pairs leaves one
            raise PredictionError("the predictor needs at least 1 calibration unit, got none")

        def known(feature: str) -> bool:
            return feature in units and bool(pd.to_numeric(units[feature], errors="coerce").notna().all())

        def use(features: Sequence[str]) -> tuple[str, ...]:
            picked = [f if known(f) else STAND_INS.get(f) for f in features]
            return tuple(dict.fromkeys(f for f in picked if f is not None and known(f)))

        # a feature some calibration unit lacks (a model of unknown size, a budget not recorded) is left out, or
        # its stand-in used (the alignment z of an items table without tasks.csv: the task's mean alignment)
        self.used_features_ = {"withheld": use(self.generalization_features), "train": use(self.memorization_features)}
        self.dropped_features_ = tuple(f for f in self.features if not known(f))
        if not self.used_features_["withheld"] and not self.used_features_["train"] and self.features:
            self.dropped_features_ = self.features
        self.gain_models_ = {s: m.fit(units, units[_TARGETS[s]]) for s, m in self._models().items()}
        held = {s: np.full(len(units), np.nan) for s in _TARGETS}
        groups = units["group"].astype(str).to_numpy()
        for g in dict.fromkeys(groups):
            out = groups == g
            if out.all():
                break
            train, test = units[~out], units[out]
            for split, model in self._models().items():
                held[split][out] = model.fit(train, train[_TARGETS[split]]).predict(test)
        frame = units.copy()
        for split, name in _NAMES.items():
            frame[f"held_out_{name}_gain"] = held[split]
            frame[f"{name}_error"] = frame[_TARGETS[split]].astype(float) - held[split]
        self.held_out_ = frame
        self._error_cache = {}
        self.kinds_ = set(units["kind"].astype(str))
        exposures = pd.to_numeric(units["exposures"], errors="coerce") if "exposures" in units else None
        self.budgets_ = (
            {k: sorted(set(exposures[units["kind"] == k].dropna())) for k in self.kinds_}
            if exposures is not None
            else {}
        )
        used = self.used_
        X = units[list(used)].astype(float)
        self.ranges_ = {f: (float(X[f].min()), float(X[f].max())) for f in used}
        self._scale = X.std(ddof=0).replace(0, 1.0).to_numpy()
        self._center = X.mean().to_numpy()
        Z = (X.to_numpy() - self._center) / self._scale
        self._Z, self._groups = Z, groups
        d = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2))
        d[groups[:, None] == groups[None, :]] = np.inf
        nearest = d.min(axis=1)
        self.nearest_distance_ = float(nearest[np.isfinite(nearest)].max()) if np.isfinite(nearest).any() else 0.0
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "gain_models_"):
            raise PredictionError("this predictor is not fitted yet: call fit(units) first")

    def predict_gains(self, units: pd.DataFrame) -> pd.DataFrame:
        """Predicted memorization and generalization gains with their intervals, one row per unit."""
        self._check_fitted()
        units = units.reset_index(drop=True)
        out = pd.DataFrame(index=units.index)
        a = (1 - self.confidence) / 2
        for split, name in _NAMES.items():
            gains = self.gain_models_[split].predict(units)
            out[f"predicted_{name}_gain"] = gains
            low, high = np.full(len(units), np.nan), np.full(len(units), np.nan)
            for i, (_, unit) in enumerate(units.iterrows()):
                errors = self._errors(unit, name)
                if len(errors) >= 2:
                    low[i] = np.clip(gains[i] + np.quantile(errors, a, method="lower"), -1, 1)
                    high[i] = np.clip(gains[i] + np.quantile(errors, 1 - a, method="higher"), -1, 1)
            out[f"predicted_{name}_gain_ci_low"], out[f"predicted_{name}_gain_ci_high"] = low, high
        return out

    def _errors(self, unit: pd.Series, name: str) -> np.ndarray:
        """The held-out errors of the calibration units most like ``unit``: its kind where they come from two
        field pairs, else its source side, else all."""
        kind = str(unit["kind"])
        if (kind, name) not in self._error_cache:
            self._error_cache[kind, name] = self._find_errors(kind, name)
        return self._error_cache[kind, name]

    def _find_errors(self, kind: str, name: str) -> np.ndarray:
        frame = self.held_out_
        for mask in (
            frame["kind"].astype(str) == kind,
            frame["kind"].astype(str).map(source_side) == source_side(kind),
            pd.Series(True, index=frame.index),
        ):
            part = frame[mask & frame[f"{name}_error"].notna()]
            if part["group"].nunique() >= 2:
                return part[f"{name}_error"].astype(float).to_numpy()
        return frame[f"{name}_error"].dropna().astype(float).to_numpy()

    def predict_proba(self, units: pd.DataFrame) -> np.ndarray:
        """Probabilities of :data:`VERDICTS` (will generalize, memorization only, unlikely to improve), one row
        per unit."""
        units = units.reset_index(drop=True)
        gains = self.predict_gains(units)
        rows = []
        for i, (_, unit) in enumerate(units.iterrows()):
            p = {}
            for split, name in _NAMES.items():
                cut = detection_gain(int(unit["n_withheld" if split == "withheld" else "n_train"]))
                errors = self._errors(unit, name)
                p[split] = _smoothed_share(gains.loc[i, f"predicted_{name}_gain"] + errors > cut)
            rows.append([p["withheld"], (1 - p["withheld"]) * p["train"], (1 - p["withheld"]) * (1 - p["train"])])
        return np.asarray(rows, dtype=float)

    def predict(self, units: pd.DataFrame) -> list[str]:
        """The most probable verdict of each unit."""
        return [VERDICTS[i] for i in self.predict_proba(units).argmax(axis=1)]

    def stated(self, proba: Sequence[float]) -> str:
        """The verdict as stated: the likeliest when its probability reaches :attr:`commit`, else
        ``uncertain: A or B`` of the two likeliest (in :data:`VERDICTS` order)."""
        proba = np.asarray(proba, dtype=float)
        order = np.argsort(-proba, kind="stable")
        if proba[order[0]] >= self.commit:
            return VERDICTS[order[0]]
        return "uncertain: " + " or ".join(VERDICTS[i] for i in sorted(order[:2]))

    def outside(self, unit: pd.Series | dict[str, Any]) -> list[str]:
        """Why ``unit`` lies outside what the calibration spans, one sentence each (``[]``: inside): a kind
        it never measured, a feature outside its range, or no calibration unit near it (standardized
        distance beyond :attr:`nearest_distance_`)."""
        self._check_fitted()
        reasons = []
        kind = str(unit["kind"])
        if kind not in self.kinds_:
            reasons.append(f"kind '{kind}': no calibration task is of this kind")
        budgets = self.budgets_.get(kind, [])
        if "log_exposures" in self.used_ and budgets and "exposures" in unit and pd.notna(unit["exposures"]):
            e = float(unit["exposures"])
            if not (budgets[0] / 1.05 <= e <= budgets[-1] * 1.05):
                span = ", ".join(f"{b:g}" for b in budgets)
                reasons.append(f"exposures = {e:g}: the calibration measured '{kind}' tasks at {span} only")
        used = self.used_
        x = np.array([float(unit[f]) if f in unit and pd.notna(unit[f]) else np.nan for f in used])
        for f, value in zip(used, x):
            if not np.isfinite(value):
                reasons.append(f"{f} is not known for this task")
                continue
            low, high = self.ranges_[f]
            slack = 0.05 * (high - low)
            if not (low - slack <= value <= high + slack):
                span = f"{_fmt(low)}" if low == high else f"{_fmt(low)} to {_fmt(high)}"
                reasons.append(f"{f} = {_fmt(value)} lies outside the calibration's {span}")
        if len(x) and np.isfinite(x).all():
            d = float(np.sqrt((((x - self._center) / self._scale - self._Z) ** 2).sum(axis=1)).min())
            if d > self.nearest_distance_ * 1.05 and self.nearest_distance_ > 0:
                reasons.append(
                    f"no calibration task is near it (distance {d:.2f} against at most "
                    f"{self.nearest_distance_:.2f} between calibration tasks of different field pairs)"
                )
        return reasons


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


_TARGETS = {"train": "memorization_gain", "withheld": "generalization_gain"}
_NAMES = {"train": "memorization", "withheld": "generalization"}


def model_parameters(model: str) -> float:
    """A calibration unit's model size: a named model's parameter count (:data:`lexprobe.models.NAMED_MODELS`),
    NaN for another model (give the units a ``parameters`` column)."""
    named = NAMED_MODELS.get(str(model))
    return float(named.parameters) if named is not None and named.parameters else float("nan")


def with_unit_columns(units: pd.DataFrame, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """``units`` (one row per task on a model) with what :class:`VerdictPredictor` reads: ``kind``,
    ``majority_share`` (from ``items`` where missing), ``log_params`` (from a ``parameters`` column, else the
    named model's count) and ``log_exposures`` (from ``exposures``).

    Examples
    --------
    >>> from lexprobe.predict import at_recorded_budget, load_calibration, shipped_calibration_dir
    >>> items, tasks, _ = load_calibration([shipped_calibration_dir()])
    >>> tasks = tasks[tasks["ontology"].isin(["go", "hpo"]) & at_recorded_budget(tasks)]  # a part, for speed
    >>> items = items[items["label"].isin(tasks["label"])]
    >>> from lexprobe.predict import unit_table
    >>> units = with_unit_columns(unit_table(items, tasks), items)
    >>> units.loc[0, "label"], units.loc[0, "kind"], float(units.loc[0, "majority_share"])
    ('go id-to-name', 'identifier -> lexicalized', 0.0)
    >>> bool(units[["log_params", "log_exposures"]].notna().all().all())
    True
    """
    units = units.copy()
    units["kind"] = units["task"].astype(str).map(unit_kind)
    if "majority_share" not in units or units["majority_share"].isna().any():
        if items is None:
            raise PredictionError("units need a majority_share column, or the items to compute it from")
        shares = majority_share(items, _units(items))
        known = units["majority_share"] if "majority_share" in units else pd.Series(np.nan, index=units.index)
        units["majority_share"] = known.fillna(_units(units).map(shares))
    if "parameters" not in units:
        units["parameters"] = units["model"].map(model_parameters) if "model" in units else np.nan
    units["log_params"] = np.log10(units["parameters"].astype(float))
    if "exposures" not in units:  # not recorded: the budget is left out of the predictor's features
        units["exposures"] = np.nan
    units["log_exposures"] = np.log10(units["exposures"].astype(float))
    return units
