"""Will fine-tuning generalize? Per-item features, their correlation with fine-tuning outcomes, the predictor.

The features are the paper's two explanations plus what is cheap to count, measured on the items of a task's
train / withheld split (the pairs a fine-tuning run would use), with no training:

``alignment``
    Per item, mutual kNN between the source and target embeddings at the layer where the task's mean is
    highest (:func:`lexprobe.align.mutual_knn_per_item`); per task also its effect and z against the
    permutation null of the *maximum over layers* (the layer was chosen by looking).
``lexicalization``
    Per item and side, :func:`lexprobe.lexical.lexicalization_score` from the tokenization components and
    the neighbourhood agreement with the names (the category probe is left out: a task often has one
    category). The item's ``lexicalization`` is the lower of its two sides: a mapping can be learned as a
    rule only when both ends are meaningful tokens.
``log_popularity``
    ``log1p`` of the task's popularity column (how often a pair is seen).
``target_tokens``
    Tokens of the target text (a long target is harder to produce exactly).

:func:`correlate` joins them with the per-item outcomes of fine-tuning runs (``lexprobe evaluate``):
Spearman correlations with bootstrap intervals and a cross-validated logistic model of "gained on withheld"
against a popularity-only one. :func:`fit_predictor` fits, on such outcomes, two per-item logistic models
(gained / lost on train and on withheld items) whose means give a task's predicted memorization and
generalization gains; the verdict thresholds on those gains are fitted to the calibration tasks (Youden's J
against "the measured gain's interval lies above 0"), and leave-one-task-out evaluation says how well it
predicts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import LexprobeError, PredictionError

__all__ = [
    "FEATURES",
    "VERDICTS",
    "FeatureConfig",
    "Predictor",
    "TaskFeatures",
    "correlate",
    "fit_predictor",
    "load_calibration",
    "measure_features",
    "run_features",
    "spearman_ci",
    "auc_comparison",
    "youden_threshold",
    "shipped_calibration_dir",
    "write_correlation",
    "CorrelationResult",
    "PredictionResult",
    "loto_summary",
    "predict_task",
    "write_prediction",
    "summary_table",
    "summary_markdown",
]

logger = logging.getLogger(__name__)

#: Per-item features of the predictor's models.
FEATURES = ("alignment", "lexicalization", "log_popularity", "target_tokens")
#: The three verdicts, from best to worst.
VERDICTS = ("will generalize", "memorization only", "unlikely to improve")
_SPLITS = ("train", "withheld")
_GAIN_NAMES = {"train": "memorization", "withheld": "generalization"}


# --- features ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How the features of a task are measured (the same for calibration runs and new tasks).

    Parameters
    ----------
    layers, pool, template
        As :class:`lexprobe.embed.ExtractionConfig`.
    k : int
        Neighbours of the mutual kNN.
    preprocess : str
        As :func:`lexprobe.align.preprocess`.
    permutations : int
        Permutations of the pairing for the layer-max null of the task's alignment.
    per_split : int or None
        Items per split (train, withheld) that the features of a fine-tuning run are measured on; larger runs
        are subsampled evenly over popularity bins. Neighbourhood measures depend on how many items there
        are (chance is k / (n - 1)), so calibration and prediction must measure the same number: the
        default, 100, is the split of ``lexprobe study --size small`` (20 bins x 5). None: every item.
    seed : int
    """

    layers: str | tuple[int, ...] = "all"
    pool: str = "mean"
    template: str = "{text}"
    prefix: str = "auto"
    k: int = 10
    preprocess: str = "standardize"
    permutations: int = 100
    per_split: int | None = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_split is not None and self.per_split < 1:
            raise PredictionError(f"per_split must be >= 1 or None, got {self.per_split}")
        if self.k < 1:
            raise PredictionError(f"k must be >= 1, got {self.k}")
        if self.permutations < 2:
            raise PredictionError(f"permutations must be >= 2 for a null, got {self.permutations}")


@dataclasses.dataclass
class TaskFeatures:
    """Per-item features (``items``) and the task's summary (``task``: one flat dict)."""

    items: pd.DataFrame
    task: dict[str, Any]


def measure_features(
    pairs: pd.DataFrame,
    *,
    source: str,
    target: str,
    model: Any,
    config: FeatureConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> TaskFeatures:
    """Measure the per-item and per-task features of a task's pairs.

    Parameters
    ----------
    pairs : DataFrame
        Columns ``source, target, id, popularity`` (a split's train and withheld rows together).
    source, target : str
        The task's fields (``name``, ``symbol``, ``id``...).
    model : LoadedModel
        From :func:`lexprobe.models.load_model`.
    config : FeatureConfig, optional

    Returns
    -------
    TaskFeatures
        ``items``: ``pairs`` plus ``log_popularity, source_tokens, target_tokens, alignment,
        source_lexicalization, target_lexicalization, lexicalization``. ``task``: ``n_items, layer, alignment,
        alignment_null, alignment_effect, alignment_z, alignment_p, source_lexicalization,
        target_lexicalization, lexicalization, popularity_q25, popularity_median, popularity_q75, popularity_nonzero,
        log_popularity``.
    """
    from lexprobe.align import evaluate_metric, mutual_knn_per_item, preprocess, summarize_null
    from lexprobe.embed import ExtractionConfig, extract_hidden_states
    from lexprobe.lexical import lexicalization_score, tokenization_measures

    config = config or FeatureConfig()
    missing = [c for c in ("source", "target", "id", "popularity") if c not in pairs]
    if missing:
        raise PredictionError(f"pairs need columns {missing}")
    n = len(pairs)
    if n <= config.k + 1:
        raise PredictionError(f"{n} pairs are too few to measure features with k={config.k} neighbours")
    items = pairs.reset_index(drop=True).copy()
    texts = {"source": items["source"].astype(str).tolist(), "target": items["target"].astype(str).tolist()}
    keys = items["id"].astype(str).tolist()
    extraction = ExtractionConfig(
        layers=config.layers,  # type: ignore[arg-type]
        pool=config.pool,  # type: ignore[arg-type]
        template=config.template,
        prefix=config.prefix,
    )
    sets = {
        side: extract_hidden_states(texts[side], keys=keys, model=model, config=extraction, cache_dir=cache_dir)
        for side in ("source", "target")
    }
    layers = list(sets["source"].layers)
    rng = np.random.default_rng(config.seed)
    perms = np.stack([rng.permutation(n) for _ in range(config.permutations)])
    no_boots = np.zeros((0, n), dtype=np.int64)

    def pair(layer: int) -> tuple[np.ndarray, np.ndarray]:
        return tuple(preprocess(sets[side].layer(layer), config.preprocess) for side in ("source", "target"))

    values, nulls = [], []
    for layer in layers:
        outcome = evaluate_metric("mknn", *pair(layer), perms, no_boots, k=config.k)
        values.append(outcome.value)
        nulls.append(outcome.null)
    best = int(np.argmax(values))
    layer_max_null = np.max(np.stack(nulls), axis=0)
    stats = summarize_null(values[best], layer_max_null)
    alignment = mutual_knn_per_item(*pair(layers[best]), k=config.k)

    tokens = {side: tokenization_measures(texts[side], model.tokenizer) for side in ("source", "target")}
    lex = {}
    for side, field, other in (("source", source, target), ("target", target, source)):
        measures = tokens[side].copy()
        # agreement with the names, as lexprobe.lexical defines it: only the non-name side of a name pair has it
        measures["agreement"] = alignment if (other == "name" and field != "name") else np.nan
        lex[side] = lexicalization_score(measures)["score"].to_numpy()
    items["log_popularity"] = np.log1p(items["popularity"].astype(float).clip(lower=0).to_numpy())
    items["source_tokens"] = tokens["source"]["n_tokens"].to_numpy()
    items["target_tokens"] = tokens["target"]["n_tokens"].to_numpy()
    items["alignment"] = alignment
    items["source_lexicalization"] = lex["source"]
    items["target_lexicalization"] = lex["target"]
    items["lexicalization"] = np.minimum(lex["source"], lex["target"])
    task = {
        "n_items": n,
        "layer": int(layers[best]),
        "alignment": float(values[best]),
        "alignment_null": stats["null_mean"],
        "alignment_effect": float(values[best] - stats["null_mean"]),
        "alignment_z": stats["z"],
        "alignment_p": stats["p_value"],
        "source_lexicalization": float(lex["source"].mean()),
        "target_lexicalization": float(lex["target"].mean()),
        "lexicalization": float(items["lexicalization"].mean()),
        "popularity_q25": float(items["popularity"].quantile(0.25)),
        "popularity_median": float(items["popularity"].median()),
        "popularity_q75": float(items["popularity"].quantile(0.75)),
        "popularity_nonzero": float((items["popularity"] > 0).mean()),
        "log_popularity": float(items["log_popularity"].mean()),
    }
    return TaskFeatures(items=items, task=task)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictionError(f"{path.parent} is not an evaluated lexprobe train run: {path.name} is missing") from None
    except json.JSONDecodeError as exc:
        raise PredictionError(f"{path} is not valid JSON: {exc}") from None


def _train_config(run: Path) -> Any:
    from lexprobe.train import read_train_config

    try:
        return read_train_config(run)
    except LexprobeError as exc:
        raise PredictionError(str(exc)) from None


def run_features(
    run_dir: str | os.PathLike[str],
    *,
    config: FeatureConfig | None = None,
    model: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Join an evaluated train run's per-item outcomes with the features of its items.

    Returns
    -------
    items : DataFrame
        One row per item (train and withheld): ``ontology, task, model, label, split, id, source, target,
        popularity, bin, baseline_correct, tuned_correct, gained, lost, gain`` and the features.
    task : dict
        The task's features (see :func:`measure_features`) beside its measured accuracies and gains.
    """
    from lexprobe.models import load_model
    from lexprobe.tasks import get_task
    from lexprobe.train import paired_bootstrap_interval

    run = Path(run_dir)
    train_config = _train_config(run)
    evaluation = _read_json(run / "evaluation.json")
    gains = evaluation.get("gains") or {}
    if not all(s in gains for s in _SPLITS):
        raise PredictionError(
            f"{run} was evaluated without the adapter or on one split; run `lexprobe evaluate --run {run}`"
        )
    try:
        outcomes = pd.read_csv(run / "outcomes.csv")
    except FileNotFoundError:
        raise PredictionError(f"{run} has no outcomes.csv; run `lexprobe evaluate --run {run}`") from None
    config = config or FeatureConfig()
    outcomes = _subsample(outcomes, config.per_split, config.seed)
    ontology, task_name, model_name = train_config.ontology, train_config.task, train_config.model
    try:
        task = get_task(ontology, task_name)
    except LexprobeError as exc:
        raise PredictionError(str(exc)) from None
    lm = model if model is not None else load_model(model_name)
    features = measure_features(
        outcomes[["source", "target", "id", "popularity"]],
        source=task.source,
        target=task.target,
        model=lm,
        config=config,
        cache_dir=cache_dir,
    )
    items = features.items
    label = f"{Path(ontology).stem if os.sep in ontology else ontology} {task_name}"
    baseline = outcomes["baseline_correct"].astype(bool).to_numpy()
    tuned = outcomes["tuned_correct"].astype(bool).to_numpy()
    items.insert(0, "split", outcomes["split"].to_numpy())
    for position, (column, value) in enumerate(
        (("ontology", ontology), ("task", task_name), ("model", model_name), ("label", label))
    ):
        items.insert(position, column, value)
    items["bin"] = outcomes["bin"].to_numpy()
    items["baseline_correct"] = baseline
    items["tuned_correct"] = tuned
    items["gained"] = tuned & ~baseline
    items["lost"] = baseline & ~tuned
    items["gain"] = tuned.astype(int) - baseline.astype(int)
    row: dict[str, Any] = {"ontology": ontology, "task": task_name, "model": model_name, "label": label}
    row |= {f"n_{s}": int((items["split"] == s).sum()) for s in _SPLITS}
    row |= features.task
    for split in _SPLITS:
        part = items[items["split"] == split]
        b, t = part["baseline_correct"].to_numpy(), part["tuned_correct"].to_numpy()
        low, high = paired_bootstrap_interval(b, t, n_boot=2000, seed=config.seed)
        name = _GAIN_NAMES[split]
        row |= {f"baseline_{split}": float(b.mean()), f"tuned_{split}": float(t.mean())}
        row |= {f"{name}_gain": float(t.mean() - b.mean()), f"{name}_gain_ci_low": low, f"{name}_gain_ci_high": high}
        row[f"{name}_gain_all_items"] = gains[split]["gain"]
    row["memorized"] = bool(row["memorization_gain_ci_low"] > 0)
    row["generalized"] = bool(row["generalization_gain_ci_low"] > 0)
    row["run"] = str(run)
    return items, row


def _subsample(outcomes: pd.DataFrame, per_split: int | None, seed: int) -> pd.DataFrame:
    """At most ``per_split`` items of each split, spread evenly over the popularity bins (seeded)."""
    if per_split is None:
        return outcomes
    rng = np.random.default_rng(seed)
    keep = []
    for _, part in outcomes.groupby("split", sort=False):
        if len(part) <= per_split:
            keep.append(part.index.to_numpy())
            continue
        # a random order within each bin, then round-robin over bins: the first per_split are bin-balanced
        ranked = part.assign(_r=rng.random(len(part)))
        ranked["_k"] = ranked.sort_values("_r").groupby("bin").cumcount()
        keep.append(ranked.sort_values(["_k", "bin"]).index.to_numpy()[:per_split])
    return outcomes.loc[np.sort(np.concatenate(keep))].reset_index(drop=True)


# --- correlation -------------------------------------------------------------------------------------------


def spearman_ci(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict[str, Any]:
    """Spearman's rho with a percentile bootstrap interval over items and scipy's p-value.

    A constant ``x`` or ``y`` has no rank correlation: ``rho`` is NaN and ``note`` says which is constant.
    """
    from scipy.stats import rankdata, spearmanr

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    out: dict[str, Any] = {"n": n, "rho": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "note": ""}
    if n < 3:
        out["note"] = "fewer than 3 items"
        return out
    constant = [name for name, v in (("x", x), ("y", y)) if np.ptp(v) == 0]
    if constant:
        out["note"] = f"{' and '.join(constant)} constant"
        return out
    result = spearmanr(x, y)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    bx = rankdata(x[idx], axis=1)
    by = rankdata(y[idx], axis=1)
    bx -= bx.mean(axis=1, keepdims=True)
    by -= by.mean(axis=1, keepdims=True)
    denom = np.sqrt((bx**2).sum(axis=1) * (by**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (bx * by).sum(axis=1) / denom
    boots = boots[np.isfinite(boots)]
    alpha = (1 - confidence) / 2
    out |= {"rho": float(result.statistic), "p_value": float(result.pvalue)}
    if len(boots):
        out |= {"ci_low": float(np.quantile(boots, alpha)), "ci_high": float(np.quantile(boots, 1 - alpha))}
    return out


#: (x, y, which split's items, description): the relations the paper describes.
CORRELATIONS = (
    ("log_popularity", "baseline_correct", "all", "popularity vs baseline accuracy"),
    ("log_popularity", "gain", "train", "popularity vs memorization gain"),
    ("lexicalization", "gain", "withheld", "lexicalization vs generalization gain"),
    ("alignment", "gain", "withheld", "alignment vs generalization gain"),
)


def _correlation_rows(items: pd.DataFrame, scope: str, n_boot: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for x, y, split, what in CORRELATIONS:
        part = items if split == "all" else items[items["split"] == split]
        stats = spearman_ci(part[x].to_numpy(), part[y].astype(float).to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({"scope": scope, "x": x, "y": y, "split": split, "relation": what} | stats)
    return rows


def _classifier(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))


def auc_comparison(
    items: pd.DataFrame,
    *,
    features: Sequence[str] = FEATURES,
    baseline_features: Sequence[str] = ("log_popularity",),
    target: str = "gained",
    folds: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Cross-validated AUC of a logistic model of ``target`` on ``features`` against ``baseline_features``.

    Out-of-fold probabilities come from stratified ``folds``-fold cross-validation; the intervals (AUC of
    each model and their difference) are percentile bootstraps over items of those out-of-fold predictions.

    Returns
    -------
    DataFrame
        Rows ``features``, ``popularity only`` (or the baseline's names) and ``difference``, with ``auc,
        ci_low, ci_high, n, n_positive, note``.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = items[target].astype(bool).to_numpy()
    n, n_pos = len(y), int(y.sum())
    names = ("features", "popularity only" if tuple(baseline_features) == ("log_popularity",) else "baseline")
    blank = {"auc": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": n, "n_positive": n_pos}
    if min(n_pos, n - n_pos) < folds:
        note = f"{n_pos} of {n} items {target}: too few of one class for {folds}-fold cross-validation"
        return pd.DataFrame([{"model": m} | blank | {"note": note} for m in (*names, "difference")])
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    preds = {}
    for name, cols in zip(names, (features, baseline_features)):
        X = items[list(cols)].astype(float).to_numpy()
        preds[name] = cross_val_predict(_classifier(seed), X, y, cv=cv, method="predict_proba")[:, 1]
    aucs = {name: roc_auc_score(y, p) for name, p in preds.items()}
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {name: [] for name in (*names, "difference")}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if y[idx].all() or not y[idx].any():
            continue
        a = [roc_auc_score(y[idx], preds[name][idx]) for name in names]
        boots[names[0]].append(a[0])
        boots[names[1]].append(a[1])
        boots["difference"].append(a[0] - a[1])
    rows = []
    for name, value in (*aucs.items(), ("difference", aucs[names[0]] - aucs[names[1]])):
        b = np.asarray(boots[name])
        rows.append(
            {
                "model": name,
                "auc": value,
                "ci_low": float(np.quantile(b, 0.025)),
                "ci_high": float(np.quantile(b, 0.975)),
            }
            | {"n": n, "n_positive": n_pos, "note": ""}
        )
    return pd.DataFrame(rows)


# --- the predictor -----------------------------------------------------------------------------------------


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float | None, str]:
    """The cut on ``scores`` that best separates ``labels`` (Youden's J = TPR - FPR), with a note.

    Candidates are midpoints between consecutive distinct scores; among equally good cuts the middle one is
    taken. With only positives the cut is the lowest positive score; with only negatives, or with scores that
    are all equal (e.g. every task predicted by the same rate), there is no cut (``None``): that verdict
    cannot be reached from this calibration.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if not labels.any():
        return None, "no calibration task reached it"
    if labels.all():
        return float(scores.min()), "every calibration task reached it"
    distinct = np.unique(scores)
    if len(distinct) == 1:
        return None, "the calibration's predicted gains are all equal: nothing separates the tasks"
    cuts = (distinct[:-1] + distinct[1:]) / 2
    tpr = np.array([(scores[labels] >= c).mean() for c in cuts])
    fpr = np.array([(scores[~labels] >= c).mean() for c in cuts])
    j = tpr - fpr
    best = np.flatnonzero(np.isclose(j, j.max()))
    return float(cuts[best[len(best) // 2]]), f"Youden's J = {j.max():.2f}"


class _ConstantModel:
    """P(event) = the calibration rate, for an event too rare to model."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.full(len(X), self.rate)
        return np.column_stack([1 - p, p])


def _fit_event(X: np.ndarray, y: np.ndarray, seed: int, min_events: int = 5):
    if min(int(y.sum()), int((~y).sum())) < min_events:
        return _ConstantModel(float(y.mean()) if len(y) else 0.0)
    return _classifier(seed).fit(X, y)


@dataclasses.dataclass
class _SplitModel:
    gained: Any
    lost: Any

    def gain(self, X: np.ndarray) -> float:
        return float(self.gained.predict_proba(X)[:, 1].mean() - self.lost.predict_proba(X)[:, 1].mean())


def _fit_split_models(items: pd.DataFrame, features: Sequence[str], seed: int) -> dict[str, _SplitModel]:
    models = {}
    for split in _SPLITS:
        part = items[items["split"] == split]
        X = part[list(features)].astype(float).to_numpy()
        models[split] = _SplitModel(
            gained=_fit_event(X, part["gained"].astype(bool).to_numpy(), seed),
            lost=_fit_event(X, part["lost"].astype(bool).to_numpy(), seed),
        )
    return models


def _task_gains(models: dict[str, _SplitModel], items: pd.DataFrame, features: Sequence[str]) -> dict[str, float]:
    """Predicted gain per split for one task's items (each split's model on all of the task's items)."""
    X = items[list(features)].astype(float).to_numpy()
    return {split: models[split].gain(X) for split in _SPLITS}


def _verdict(gains: dict[str, float], thresholds: dict[str, float | None]) -> str:
    gen, mem = thresholds["withheld"], thresholds["train"]
    if gen is not None and gains["withheld"] >= gen:
        return VERDICTS[0]
    if mem is not None and gains["train"] >= mem:
        return VERDICTS[1]
    return VERDICTS[2]


def _measured_verdict(task_row: pd.Series | dict[str, Any]) -> str:
    if task_row["generalized"]:
        return VERDICTS[0]
    if task_row["memorized"]:
        return VERDICTS[1]
    return VERDICTS[2]


@dataclasses.dataclass
class Predictor:
    """Per-item models of gained / lost on train and withheld items, and verdict thresholds fitted to tasks.

    Attributes
    ----------
    features : tuple of str
    models : dict
        ``train`` and ``withheld`` models (:meth:`predict` uses them on a task's items).
    boot_models : list of dict
        The same models refitted on task-bootstrap resamples of the calibration (for intervals).
    thresholds : dict
        ``train`` (memorization) and ``withheld`` (generalization) cuts on predicted gain; ``None`` where no
        calibration task reached that verdict.
    threshold_notes : dict
    tasks : DataFrame
        The calibration tasks with their in-sample predicted gains.
    loto : DataFrame or None
        Leave-one-task-out evaluation (see :func:`fit_predictor`).
    warnings : list of str
        Why the calibration may be thin.
    """

    features: tuple[str, ...]
    models: dict[str, _SplitModel]
    boot_models: list[dict[str, _SplitModel]]
    thresholds: dict[str, float | None]
    threshold_notes: dict[str, str]
    tasks: pd.DataFrame
    calibration_items: pd.DataFrame
    loto: pd.DataFrame | None
    warnings: list[str]

    def predict(self, items: pd.DataFrame) -> dict[str, Any]:
        """Verdict, predicted gains with bootstrap intervals, and the features that drove it, for one task."""
        gains = _task_gains(self.models, items, self.features)
        boots = np.array(
            [[b[s] for s in _SPLITS] for b in (_task_gains(m, items, self.features) for m in self.boot_models)]
        )
        out: dict[str, Any] = {"verdict": _verdict(gains, self.thresholds)}
        for i, split in enumerate(_SPLITS):
            name = _GAIN_NAMES[split]
            low, high = np.quantile(boots[:, i], [0.025, 0.975]) if len(boots) else (np.nan, np.nan)
            out |= {
                f"predicted_{name}_gain": gains[split],
                f"predicted_{name}_gain_ci_low": float(low),
                f"predicted_{name}_gain_ci_high": float(high),
                f"{name}_threshold": self.thresholds[split],
            }
        out["reasons"] = self.reasons(items)
        return out

    def reasons(self, items: pd.DataFrame) -> list[dict[str, Any]]:
        """Each feature's push on the log-odds of "gained on withheld", at the task's mean against the
        calibration's mean (coefficient x standardized difference), largest first."""
        model = self.models["withheld"].gained
        means = items[list(self.features)].astype(float).mean()
        ref = self.calibration_items[list(self.features)].astype(float).mean()
        rows = []
        if isinstance(model, _ConstantModel):
            return rows
        scaler, logistic = model[0], model[-1]
        for i, feature in enumerate(self.features):
            z = (means[feature] - scaler.mean_[i]) / scaler.scale_[i]
            rows.append(
                {
                    "feature": feature,
                    "task_mean": float(means[feature]),
                    "calibration_mean": float(ref[feature]),
                    "log_odds": float(logistic.coef_[0, i] * z),
                }
            )
        return sorted(rows, key=lambda r: -abs(r["log_odds"]))


def _units(frame: pd.DataFrame) -> pd.Series:
    """One key per calibration unit: a task (``label``) measured with one model. The same task tuned on two
    models is two units; leave-one-task-out leaves out both."""
    if "model" not in frame:
        return frame["label"].astype(str)
    return frame["label"].astype(str) + " | " + frame["model"].astype(str)


def _thresholds(models, items: pd.DataFrame, tasks: pd.DataFrame, features) -> tuple[dict, dict, pd.DataFrame]:
    item_units, units = _units(items), _units(tasks).tolist()
    predicted = {unit: _task_gains(models, items[item_units == unit], features) for unit in units}
    thresholds, notes = {}, {}
    for split, flag in (("train", "memorized"), ("withheld", "generalized")):
        scores = np.array([predicted[unit][split] for unit in units])
        thresholds[split], notes[split] = youden_threshold(scores, tasks[flag].astype(bool).to_numpy())
    tasks = tasks.assign(
        predicted_memorization_gain=[predicted[unit]["train"] for unit in units],
        predicted_generalization_gain=[predicted[unit]["withheld"] for unit in units],
    )
    return thresholds, notes, tasks


def _boot_models(items, tasks, features, n_boot, seed) -> list[dict[str, _SplitModel]]:
    rng = np.random.default_rng(seed)
    units = _units(tasks).to_numpy()
    item_units = _units(items)
    by_unit = {unit: items[item_units == unit] for unit in units}
    out = []
    for _ in range(n_boot):
        drawn = rng.choice(units, size=len(units), replace=True)
        sample = pd.concat([by_unit[unit] for unit in drawn], ignore_index=True)
        out.append(_fit_split_models(sample, features, seed))
    return out


def fit_predictor(
    items: pd.DataFrame,
    tasks: pd.DataFrame,
    *,
    features: Sequence[str] = FEATURES,
    n_boot: int = 200,
    loto: bool = True,
    seed: int = 0,
) -> Predictor:
    """Fit the predictor on calibration outcomes (``items`` and ``tasks`` as :func:`correlate` writes them).

    Leave-one-task-out: for each task, models and thresholds are fitted on the other tasks (thresholds on
    their in-sample predicted gains) and the held-out task gets a predicted gain, an interval and a verdict,
    beside its measured gain and verdict.

    Raises
    ------
    PredictionError
        Fewer than two calibration tasks, or features missing from ``items``.
    """
    features = tuple(features)
    missing = [c for c in (*features, "label", "split", "gained", "lost") if c not in items]
    if missing:
        raise PredictionError(f"calibration items lack columns {missing}")
    tasks = tasks.drop_duplicates(["label", "model"] if "model" in tasks else "label", keep="last")
    tasks = tasks.reset_index(drop=True)
    if len(tasks) < 2:
        raise PredictionError(f"the predictor needs outcomes of at least 2 tasks, got {len(tasks)}")
    items = items[_units(items).isin(_units(tasks))]
    models = _fit_split_models(items, features, seed)
    thresholds, notes, scored = _thresholds(models, items, tasks, features)
    boot_models = _boot_models(items, tasks, features, n_boot, seed)
    loto_table = (
        _leave_one_task_out(items, tasks, features, max(n_boot // 4, 20), seed)
        if loto and tasks["label"].nunique() >= 3
        else None
    )
    return Predictor(
        features=features,
        models=models,
        boot_models=boot_models,
        thresholds=thresholds,
        threshold_notes=notes,
        tasks=scored,
        calibration_items=items,
        loto=loto_table,
        warnings=_calibration_warnings(tasks),
    )


def _leave_one_task_out(items, tasks, features, n_boot, seed) -> pd.DataFrame:
    """Per task (label), refit on the other tasks (every model's runs of the task left out) and predict each
    model's run of it."""
    rows = []
    item_units = _units(items)
    for label in dict.fromkeys(tasks["label"]):
        rest_tasks = tasks[tasks["label"] != label]
        rest = items[items["label"] != label]
        models = _fit_split_models(rest, features, seed)
        thresholds, notes, _ = _thresholds(models, rest, rest_tasks, features)
        inner = Predictor(
            features=features,
            models=models,
            boot_models=_boot_models(rest, rest_tasks, features, n_boot, seed),
            thresholds=thresholds,
            threshold_notes=notes,
            tasks=rest_tasks,
            calibration_items=rest,
            loto=None,
            warnings=[],
        )
        held_tasks = tasks[tasks["label"] == label]
        for unit, (_, held) in zip(_units(held_tasks), held_tasks.iterrows()):
            rows += _loto_rows(label, held, inner.predict(items[item_units == unit]))
    return pd.DataFrame(rows)


def _loto_rows(label: str, held: pd.Series, predicted: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for split in _SPLITS:
        name = _GAIN_NAMES[split]
        rows.append(
            {
                "label": label,
                "model": held.get("model", ""),
                "split": split,
                "predicted_gain": predicted[f"predicted_{name}_gain"],
                "predicted_ci_low": predicted[f"predicted_{name}_gain_ci_low"],
                "predicted_ci_high": predicted[f"predicted_{name}_gain_ci_high"],
                "measured_gain": held[f"{name}_gain"],
                "measured_ci_low": held[f"{name}_gain_ci_low"],
                "measured_ci_high": held[f"{name}_gain_ci_high"],
                "verdict": predicted["verdict"],
                "measured_verdict": _measured_verdict(held),
            }
        )
    return rows


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
    out["n_tasks"] = int(len(verdicts))
    return out


def _calibration_warnings(tasks: pd.DataFrame) -> list[str]:
    warnings = []
    n = len(tasks)
    if n < 6:
        warnings.append(f"thin calibration: {n} tasks (leave-one-task-out needs several per verdict)")
    for flag, what in (("generalized", "generalized"), ("memorized", "memorized")):
        k = int(tasks[flag].astype(bool).sum())
        if k < 2:
            warnings.append(f"thin calibration: {k} of {n} tasks {what} (the {what} threshold rests on {k})")
        if n - k < 2:
            warnings.append(f"thin calibration: {n - k} of {n} tasks did not get {what}")
    models = sorted(tasks["model"].astype(str).unique()) if "model" in tasks else []
    if len(models) == 1:
        warnings.append(f"calibration from one model only ({models[0]})")
    return warnings


# --- calibration sets --------------------------------------------------------------------------------------


def shipped_calibration_dir() -> Path:
    """The calibration set the project ships (``data/calibration``; ``lexprobe/data/calibration`` installed)."""
    from importlib import resources

    return Path(str(resources.files("lexprobe.data"))) / "calibration"


def _find_correlation_dirs(path: Path) -> list[Path]:
    if (path / "tasks.csv").is_file() and ((path / "items.csv").is_file() or (path / "items.csv.gz").is_file()):
        return [path]
    found = sorted(
        {
            p.parent
            for p in path.rglob("tasks.csv")
            if (p.parent / "items.csv").is_file() or (p.parent / "items.csv.gz").is_file()
        }
    )
    return found


def load_calibration(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Read calibration outcomes from ``lexprobe correlate`` directories (or directories holding them).

    A task measured with the same model in several places is kept once (the last given wins); the same task
    measured with two models is two calibration units.

    Returns
    -------
    items, tasks : DataFrame
    manifests : list of dict
        Each directory's manifest (provenance), with its ``path``.
    """
    by_unit: dict[str, tuple[pd.DataFrame, pd.Series]] = {}
    manifests = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise PredictionError(f"calibration directory not found: {path}")
        dirs = _find_correlation_dirs(path)
        if not dirs:
            raise PredictionError(f"{path} holds no `lexprobe correlate` output (tasks.csv and items.csv)")
        for d in dirs:
            items_file = d / "items.csv" if (d / "items.csv").is_file() else d / "items.csv.gz"
            reading = items_file
            try:
                items = pd.read_csv(items_file)
                reading = d / "tasks.csv"
                tasks = pd.read_csv(reading)
            except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
                raise PredictionError(f"{d} has a malformed calibration table: {exc}") from None
            except (EOFError, OSError, zlib.error) as exc:  # a gzip cut short, a damaged stream, an unreadable file
                raise PredictionError(
                    f"calibration table {reading} is truncated or unreadable ({' '.join(str(exc).split())[:160]}); "
                    "copy it again or re-run `lexprobe correlate`"
                ) from None
            need = {"label", "model", "split", "gained", "lost", *FEATURES}
            if not need <= set(items.columns) or not {"label", "model", "memorized", "generalized"} <= set(
                tasks.columns
            ):
                raise PredictionError(f"{d}: items.csv / tasks.csv lack the columns `lexprobe correlate` writes")
            item_units = _units(items)
            for unit, (_, row) in zip(_units(tasks), tasks.iterrows()):
                by_unit[unit] = (items[item_units == unit], row)
            manifest_file = d / "manifest.json"
            manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else {}
            manifests.append({"path": str(d)} | manifest)
    items = pd.concat([part for part, _ in by_unit.values()], ignore_index=True)
    tasks = pd.DataFrame([row for _, row in by_unit.values()]).reset_index(drop=True)
    return items, tasks, manifests


# --- correlate: the whole analysis of a set of runs ---------------------------------------------------------


@dataclasses.dataclass
class CorrelationResult:
    """Per-item table, per-task table, correlations, AUC comparison, the predictor's LOTO evaluation."""

    items: pd.DataFrame
    tasks: pd.DataFrame
    correlations: pd.DataFrame
    auc: pd.DataFrame
    loto: pd.DataFrame | None
    manifest: dict[str, Any]


def correlate(
    run_dirs: Sequence[str | os.PathLike[str]],
    *,
    config: FeatureConfig | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    base: str | os.PathLike[str] | None = None,
) -> CorrelationResult:
    """Measure the features of each evaluated train run's items and relate them to the outcomes.

    Correlations are given pooled over every run (``scope == "all"``) and per task; the AUC comparison uses
    the pooled withheld items; the predictor's leave-one-task-out evaluation needs three or more tasks.
    Relative ``run_dirs`` are read under ``base`` when given (and recorded as given, so that a directory of
    runs can move).
    """
    from lexprobe.models import load_model

    config = config or FeatureConfig()
    if not run_dirs:
        raise PredictionError("give at least one evaluated `lexprobe train` run directory")
    item_frames, task_rows, models = [], [], {}
    inputs = []
    for number, run in enumerate(run_dirs):
        if progress:
            progress("measuring features", number, len(run_dirs))
        path = Path(base) / run if base is not None else Path(run)
        train_config = _train_config(path)
        name = train_config.model
        if name not in models:
            models[name] = load_model(name)
        items, row = run_features(path, config=config, model=models[name], cache_dir=cache_dir)
        row["run"] = str(run)
        item_frames.append(items)
        task_rows.append(row)
        inputs.append({"run": str(run), "train_config": train_config.to_dict(), "model": models[name].describe()})
    if progress:
        progress("measuring features", len(run_dirs), len(run_dirs))
    items = pd.concat(item_frames, ignore_index=True)
    tasks = pd.DataFrame(task_rows)
    units = _units(tasks)
    if units.duplicated().any():
        raise PredictionError(
            f"several runs of the same task and model: {sorted(units[units.duplicated()])}; give one run per task"
        )
    rows = _correlation_rows(items, "all", n_boot, seed)
    if len(tasks) > 1:
        # a task's scope names its model when the runs used several
        several = tasks["model"].nunique() > 1
        item_units = _units(items)
        for label, unit, model in zip(tasks["label"], units, tasks["model"]):
            scope = f"{label} ({model})" if several else label
            rows += _correlation_rows(items[item_units == unit], scope, n_boot, seed)
    correlations = pd.DataFrame(rows)
    auc = auc_comparison(items[items["split"] == "withheld"], n_boot=n_boot, seed=seed)
    loto = None
    if tasks["label"].nunique() >= 3:
        predictor = fit_predictor(items, tasks, n_boot=max(n_boot // 5, 20), seed=seed)
        loto = predictor.loto
        tasks = predictor.tasks
    manifest = {
        "stage": "correlate",
        "config": {"features": dataclasses.asdict(config), "predictor_features": list(FEATURES), "n_boot": n_boot},
        "inputs": {"runs": inputs},
        "seed": seed,
    }
    return CorrelationResult(items=items, tasks=tasks, correlations=correlations, auc=auc, loto=loto, manifest=manifest)


def write_correlation(result: CorrelationResult, out: str | os.PathLike[str], *, figures: bool = True) -> list[Path]:
    """Write ``items.csv``, ``tasks.csv``, ``correlations.csv``, ``auc.csv`` (and ``loto.csv``), figures and
    the manifest into ``out``, each atomically."""
    from lexprobe.runs import write_result_dir

    tables = {
        "items.csv": result.items,
        "tasks.csv": result.tasks,
        "correlations.csv": result.correlations,
        "auc.csv": result.auc,
    }
    if result.loto is not None:
        tables["loto.csv"] = result.loto
    record = dict(result.manifest)
    if result.loto is not None:
        record["inputs"] = record["inputs"] | {"loto_summary": loto_summary(result.loto)}

    def draw(directory: Path) -> list[Path]:
        from lexprobe import figures as fig

        paths = fig.plot_accuracy_by_popularity(result.items, directory)
        for feature, label in (
            ("lexicalization", "lexicalization score (lower side, 0-1)"),
            ("alignment", "alignment (mutual kNN, 0-1)"),
        ):
            paths += fig.plot_gain_vs_feature(result.items, feature, directory=directory, xlabel=label)
        paths += fig.plot_task_gains(result.tasks, "alignment_z", directory, xlabel="alignment z (vs layer-max null)")
        paths += fig.plot_task_gains(result.tasks, "lexicalization", directory, xlabel="lexicalization score (0-1)")
        if result.loto is not None:
            paths += fig.plot_calibration(result.loto, directory)
        if result.tasks["model"].nunique() > 1:
            paths += fig.plot_gains_by_model(result.tasks, directory)
        return paths

    texts = {"summary.md": summary_markdown(summary_table(result.tasks, result.loto))}
    return write_result_dir(
        out, tables, stage="correlate", record=record, figures=draw if figures else None, texts=texts
    )


def summary_table(tasks: pd.DataFrame, loto: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per task and model: accuracies with Wilson intervals, gains, features and the verdicts.

    Parameters
    ----------
    tasks : DataFrame
        ``tasks.csv`` as :func:`correlate` writes it.
    loto : DataFrame, optional
        ``loto.csv``: adds the verdict of the predictor fitted without the task, and its predicted
        generalization gain.

    Returns
    -------
    DataFrame
        Numeric columns, in the tasks' order: ``model, label, n_train, n_withheld``; ``baseline_train``,
        ``tuned_train``, ``baseline_withheld``, ``tuned_withheld`` each with ``_ci_low`` / ``_ci_high``; the
        two gains with intervals; ``layer, alignment_z, lexicalization, popularity_median``;
        ``predicted_verdict, predicted_generalization_gain, measured_verdict``.
    """
    from lexprobe.train._scoring import wilson_interval

    rows = []
    for _, t in tasks.iterrows():
        row: dict[str, Any] = {"model": t["model"], "label": t["label"]}
        row |= {"n_train": int(t["n_train"]), "n_withheld": int(t["n_withheld"])}
        for split in _SPLITS:
            n = int(t[f"n_{split}"])
            for which in ("baseline", "tuned"):
                accuracy = float(t[f"{which}_{split}"])
                low, high = wilson_interval(round(accuracy * n), n)
                row |= {f"{which}_{split}": accuracy, f"{which}_{split}_ci_low": low, f"{which}_{split}_ci_high": high}
        for name in _GAIN_NAMES.values():
            for suffix in ("", "_ci_low", "_ci_high"):
                row[f"{name}_gain{suffix}"] = float(t[f"{name}_gain{suffix}"])
        row |= {c: t[c] for c in ("layer", "alignment_z", "lexicalization", "popularity_median")}
        row |= {"predicted_verdict": "", "predicted_generalization_gain": np.nan, "measured_verdict": ""}
        if loto is not None:
            held = loto[(loto["label"] == t["label"]) & (loto["split"] == "withheld")]
            if "model" in loto:
                held = held[held["model"].astype(str) == str(t["model"])]
            if len(held):
                h = held.iloc[0]
                row |= {
                    "predicted_verdict": h["verdict"],
                    "predicted_generalization_gain": float(h["predicted_gain"]),
                    "measured_verdict": h["measured_verdict"],
                }
        if not row["measured_verdict"]:
            row["measured_verdict"] = _measured_verdict(t)
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(frame_row: pd.Series, name: str, sign: str = "") -> str:
    return f"{frame_row[name]:{sign}.3f} [{frame_row[name + '_ci_low']:.3f}, {frame_row[name + '_ci_high']:.3f}]"


SUMMARY_HEADER = (
    "| task | pairs | baseline train | tuned train | baseline withheld | tuned withheld | memorization gain "
    "| generalization gain | layer | alignment z | lexicalization | predicted without the task | measured |"
)


def summary_markdown(summary: pd.DataFrame) -> str:
    """:func:`summary_table` as Markdown: one table per model, accuracies and gains with 95% intervals."""
    out = []
    for model, part in summary.groupby("model", sort=False):
        out += [f"### {model}", "", SUMMARY_HEADER, "|" + "---|" * SUMMARY_HEADER.count(" | ") + "---|"]
        for _, r in part.iterrows():
            predicted = (
                f"{r['predicted_verdict']} ({r['predicted_generalization_gain']:+.3f})"
                if r["predicted_verdict"]
                else ""
            )
            cells = [
                r["label"],
                f"{r['n_train']}+{r['n_withheld']}",
                *(_interval(r, f"{w}_{s}") for s in _SPLITS for w in ("baseline", "tuned")),
                _interval(r, "memorization_gain", "+"),
                _interval(r, "generalization_gain", "+"),
                str(int(r["layer"])),
                f"{r['alignment_z']:.1f}",
                f"{r['lexicalization']:.3f}",
                predicted,
                r["measured_verdict"],
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


# --- predict: a verdict for a task nobody has fine-tuned yet -------------------------------------------------


@dataclasses.dataclass
class PredictionResult:
    """The verdict for one task, its measured features, and the predictor it came from."""

    prediction: dict[str, Any]
    items: pd.DataFrame
    task: dict[str, Any]
    predictor: Predictor
    measured: dict[str, Any] | None
    manifest: dict[str, Any]


def predict_task(
    ontology: str,
    task: str,
    *,
    model: str = "smollm2-135m",
    calibration: Sequence[str | os.PathLike[str]] = (),
    shipped: bool = True,
    bins: int = 20,
    per_bin: int = 5,
    config: FeatureConfig | None = None,
    n_boot: int = 200,
    seed: int = 0,
    loaded_model: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PredictionResult:
    """Measure a task's features on the split a fine-tuning run would use and predict what tuning would do.

    The predictor is fitted on the shipped calibration set (unless ``shipped=False``) and the
    ``calibration`` directories (``lexprobe correlate`` outputs). A task that is itself in the calibration is
    left out of the fit (with every model's run of it, as in leave-one-task-out), so the prediction is out of
    sample; its measured outcome with this model, if any, is returned beside it (``measured``).

    Raises
    ------
    PredictionError
        No calibration, or fewer than two calibration tasks once the task itself is left out.
    """
    from lexprobe.models import load_model
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import make_split

    config = config or FeatureConfig()
    paths = [*([shipped_calibration_dir()] if shipped else []), *calibration]
    if not paths:
        raise PredictionError(
            "no calibration: keep the shipped set or pass --calibration DIR (lexprobe correlate output)"
        )
    try:
        ont = load_ontology(ontology)
        split = make_split(ont, task, bins=bins, per_bin=per_bin, seed=seed)
    except LexprobeError as exc:
        raise PredictionError(str(exc)) from None
    cal_items, cal_tasks, provenance = load_calibration(paths)
    label = f"{ont.name} {split.task.name}"
    lm = loaded_model if loaded_model is not None else load_model(model)
    model_name = model  # the spec as given: calibration tasks are keyed by it
    same = (cal_tasks["label"] == label) & (cal_tasks["model"].astype(str) == model_name)
    measured = cal_tasks[same].iloc[0].to_dict() if same.any() else None
    left_out = sorted(_units(cal_tasks[cal_tasks["label"] == label]))
    cal_tasks = cal_tasks[cal_tasks["label"] != label].reset_index(drop=True)
    cal_items = cal_items[cal_items["label"] != label]
    predictor = fit_predictor(cal_items, cal_tasks, n_boot=n_boot, seed=seed)
    pairs = pd.concat([split.train.assign(split="train"), split.withheld.assign(split="withheld")], ignore_index=True)
    pairs = _subsample(pairs, config.per_split, seed)
    features = measure_features(
        pairs, source=split.task.source, target=split.task.target, model=lm, config=config, cache_dir=cache_dir
    )
    prediction = predictor.predict(features.items)
    warnings = list(predictor.warnings)
    cal_models = sorted(cal_tasks["model"].astype(str).unique())
    if model_name not in cal_models:
        warnings.append(
            f"no calibration task used model {model_name} (calibration: {', '.join(cal_models)}): "
            "the prediction extrapolates"
        )
    ours = {k: v for k, v in dataclasses.asdict(config).items() if k != "seed"}
    for record in provenance:
        theirs = (record.get("config") or {}).get("features")
        if theirs is not None:
            differ = sorted(k for k, v in ours.items() if k in theirs and _jsonable(theirs[k]) != _jsonable(v))
            if differ:
                warnings.append(f"features measured with other settings ({', '.join(differ)}) in {record['path']}")
    prediction |= {"ontology": ont.name, "task": split.task.name, "model": model_name, "label": label}
    prediction["warnings"] = warnings
    prediction["n_calibration_tasks"] = len(cal_tasks)
    manifest = {
        "stage": "predict",
        "config": {
            "ontology": ontology,
            "task": task,
            "model": model_name,
            "bins": bins,
            "per_bin": per_bin,
            "features": dataclasses.asdict(config),
            "n_boot": n_boot,
            "shipped_calibration": shipped,
            "calibration": [str(p) for p in calibration],
        },
        "inputs": {
            "ontology": ont.describe(),
            "model": lm.describe(),
            "calibration": provenance,
            "calibration_tasks": _units(cal_tasks).tolist(),
            "left_out": left_out,
        },
        "seed": seed,
    }
    return PredictionResult(
        prediction=prediction,
        items=features.items,
        task=features.task,
        predictor=predictor,
        measured=measured,
        manifest=manifest,
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def write_prediction(result: PredictionResult, out: str | os.PathLike[str]) -> list[Path]:
    """Write ``prediction.csv`` (one row), ``reasons.csv``, ``features.csv`` (per item), ``calibration_tasks.csv``
    (with ``loto.csv`` when evaluated) and the manifest into ``out``, each atomically."""
    from lexprobe.runs import write_result_dir

    row = {k: v for k, v in result.prediction.items() if k not in ("reasons", "warnings")}
    row |= {f"task_{k}": v for k, v in result.task.items()}
    row["warnings"] = " | ".join(result.prediction["warnings"])
    if result.measured is not None:
        row |= {f"measured_{k}": result.measured[k] for k in ("memorization_gain", "generalization_gain")}
        row["measured_verdict"] = _measured_verdict(result.measured)
    tables = {
        "prediction.csv": pd.DataFrame([row]),
        "reasons.csv": pd.DataFrame(result.prediction["reasons"]),
        "features.csv": result.items,
        "calibration_tasks.csv": result.predictor.tasks,
    }
    if result.predictor.loto is not None:
        tables["loto.csv"] = result.predictor.loto
    record = dict(result.manifest)
    if result.predictor.loto is not None:
        record["inputs"] = record["inputs"] | {"loto_summary": loto_summary(result.predictor.loto)}
    record["inputs"] = record["inputs"] | {
        "thresholds": result.predictor.thresholds,
        "threshold_notes": result.predictor.threshold_notes,
    }
    return write_result_dir(out, tables, stage="predict", record=record)
