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
import re
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

#: Per-item features measured on a task's items (no training).
MEASURED_FEATURES = ("alignment", "lexicalization", "log_popularity", "target_tokens")
#: Features of the predictor (task means) and of the AUC models (per item): the measured ones and the
#: string-template control, computed from an items table (:func:`template_share`).
FEATURES = (*MEASURED_FEATURES, "template_share")
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
    for side in ("source", "target"):
        measures = tokens[side].copy()
        # no neighbourhood agreement here: for the non-name side of a name pair it *is* the item's alignment,
        # and the predictor must be able to tell the two explanations apart (the lexicalization of a task's
        # items is its tokenization score; `lexprobe lexicalization` keeps the agreement)
        measures["agreement"] = np.nan
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
    from lexprobe.ontology import load_ontology
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
    try:
        loaded = load_ontology(ontology)
    except LexprobeError as exc:
        raise PredictionError(str(exc)) from None
    # task identity is the ontology as loaded (a built-in and its file given as a path are the same), never a
    # file name
    ontology_spec, ontology = ontology, loaded.name
    label = f"{ontology} {task_name}"
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
    items.insert(2, "field_pair", field_pair(task_name))
    row: dict[str, Any] = {"ontology": ontology, "task": task_name, "model": model_name, "label": label}
    row |= {"field_pair": field_pair(task_name), "ontology_spec": ontology_spec, "ontology_checksum": loaded.checksum}
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
    (Items of one task only: pooled over tasks, use :func:`spearman_pooled_within`, whose intervals resample
    units.)
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


def _pooled_rho(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    return float((rx * ry).sum() / np.sqrt((rx**2).sum() * (ry**2).sum()))


def _within_rho(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Spearman within units: ranks taken inside each unit, centred there, then correlated over all items
    (a unit whose x or y is constant adds nothing)."""
    from scipy.stats import rankdata

    sxy = sxx = syy = 0.0
    for x, y in parts:
        if len(x) < 2:
            continue
        rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
        sxy += float((rx * ry).sum())
        sxx += float((rx**2).sum())
        syy += float((ry**2).sum())
    return sxy / np.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def cluster_bootstrap(
    statistic: Callable[[list[Any]], float],
    clusters: Sequence[Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over resamples of whole clusters (units), not of items."""
    rng = np.random.default_rng(seed)
    k = len(clusters)
    values = []
    for _ in range(n_boot):
        drawn = [clusters[i] for i in rng.integers(0, k, k)]
        v = statistic(drawn)
        if np.isfinite(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def spearman_pooled_within(
    items: pd.DataFrame, x: str, y: str, *, n_boot: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Spearman's rho of ``x`` and ``y`` pooled over units (between-task contrasts included) and within units
    (ranks inside each unit), each with a cluster bootstrap interval over units."""
    keep = items[[x, y]].astype(float).notna().all(axis=1)
    items = items[keep]
    parts = [(p[x].astype(float).to_numpy(), p[y].astype(float).to_numpy()) for _, p in items.groupby(_units(items))]
    rows = []
    for scope, stat in (
        ("all", lambda ps: _pooled_rho(np.concatenate([a for a, _ in ps]), np.concatenate([b for _, b in ps]))),
        ("within tasks", _within_rho),
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
    over units, then per unit (a task on a model) with item-bootstrap intervals."""
    items = _with_template_share(items)
    rows = []
    for x, y, split, what in CORRELATIONS:
        part = items if split == "all" else items[items["split"] == split]
        for r in spearman_pooled_within(part, x, y, n_boot=n_boot, seed=seed):
            rows.append({"scope": r.pop("scope"), "x": x, "y": y, "split": split, "relation": what} | r)
    units = _units(items)
    if units.nunique() > 1:
        several = "model" in items and items["model"].nunique() > 1
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


def _auc_pooled(parts) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([a for a, _ in parts])
    p = np.concatenate([b for _, b in parts])
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _auc_within(parts) -> float:
    """Within-unit AUC: over every (gained, not gained) pair of items of the same unit, the share ranked right
    (ties half); units with one class add no pairs."""
    from scipy.stats import rankdata

    right = pairs = 0.0
    for y, p in parts:
        n_pos = int(y.sum())
        n_neg = len(y) - n_pos
        if not n_pos or not n_neg:
            continue
        r = rankdata(p)
        right += r[y].sum() - n_pos * (n_pos + 1) / 2
        pairs += n_pos * n_neg
    return right / pairs if pairs else float("nan")


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
    note = ""
    if len(set(groups)) < 2:
        note = "one field pair only: nothing to hold out"
    elif min(n_pos, n - n_pos) < 2:
        note = f"{n_pos} of {n} items {target}: too few of one class"
    elif len(set(groups[y])) < 2:
        note = (
            f"every item {target} is in one field pair ({groups[y][0]}): held out, its model never saw one; "
            "the grouped AUC is not estimable from this calibration"
        )
    if note:
        return pd.DataFrame([{"model": m} | blank | base | {"note": note} for m in (*names, "difference")])
    preds = {
        name: _grouped_oof(items[list(cols)].astype(float).to_numpy(), y, groups, seed) for name, cols in models.items()
    }
    order = list(dict.fromkeys(units))
    clusters = [(y[units == u], np.column_stack([preds[m][units == u] for m in names])) for u in order]

    def stat(fn, column):
        return lambda cs: fn([(a, b[:, column]) for a, b in cs])

    def diff(fn):
        return lambda cs: fn([(a, b[:, 0]) for a, b in cs]) - fn([(a, b[:, 1]) for a, b in cs])

    rows = []
    for j, name in enumerate([*names, "difference"]):
        row: dict[str, Any] = {"model": name}
        for prefix, fn in (("", _auc_pooled), ("within_", _auc_within)):
            s = diff(fn) if name == "difference" else stat(fn, j)
            low, high = cluster_bootstrap(s, clusters, n_boot=n_boot, seed=seed)
            key = "auc" if not prefix else "within_auc"
            row |= {key: s(clusters), f"{prefix}ci_low": low, f"{prefix}ci_high": high}
        rows.append(row | base | {"note": ""})
    return pd.DataFrame(rows)


# --- units, field pairs, the string-template control ------------------------------------------------------


def field_pair(task: str) -> str:
    """The field pair of a task: ``name-to-symbol`` and ``symbol-to-name`` are both ``name/symbol``.

    A task and its reverse share their items' texts (and, on one model, their alignment, lexicalization and
    popularity), so they are held out together: the hold-out unit of every evaluation is the field pair.
    """
    match = re.fullmatch(r"(.+?)-to-(.+)", str(task).strip())
    if not match:
        return str(task).strip()
    return "/".join(sorted((match.group(1), match.group(2))))


def task_identity(ontology: str, task: str) -> str:
    """``"<ontology name> <field pair>"``: what identifies a task for leaving it out (never a file name).

    ``ontology`` is the name of the ontology as loaded (:attr:`lexprobe.ontology.Ontology.name`), which is the
    same for a built-in and for its file given as a path.
    """
    return f"{ontology} {field_pair(task)}"


def _units(frame: pd.DataFrame) -> pd.Series:
    """One key per calibration unit: a task (``label``) measured with one model. The same task tuned on two
    models is two units; every hold-out leaves out all units of a field pair."""
    if "model" not in frame:
        return frame["label"].astype(str)
    return frame["label"].astype(str) + " | " + frame["model"].astype(str)


def _pair_groups(frame: pd.DataFrame) -> pd.Series:
    """The hold-out group of each row: ontology and field pair (a ``field_pair`` column wins when given)."""
    label = frame["label"].astype(str)
    ontology = frame["ontology"].astype(str) if "ontology" in frame else label.str.rsplit(" ", n=1).str[0]
    if "field_pair" in frame and frame["field_pair"].notna().all():
        pair = frame["field_pair"].astype(str)
    elif "task" in frame:
        pair = frame["task"].map(field_pair)
    else:
        pair = label.str.rsplit(" ", n=1).str[-1].map(field_pair)
    return ontology + " " + pair


_DIGIT = re.compile(r"\d")


def family_key(text: str) -> str:
    """The string template of a target: its text before the first digit, case-folded (``SLC25A1`` -> ``slc``,
    ``zinc finger protein 12`` -> ``zinc finger protein``); a text without digits is its own family."""
    folded = " ".join(str(text).casefold().split())
    match = _DIGIT.search(folded)
    return (folded[: match.start()] if match else folded).strip(" -_:./")


def template_share(items: pd.DataFrame, *, namespace_share: float = 0.5) -> np.ndarray:
    """Per item, the share of its unit's *train* targets (itself excluded) in the item's target family.

    The string-template control: a withheld ``SLC25A3`` is easy to produce when ``SLC25A1`` was trained,
    whatever the embeddings say. A family that holds more than ``namespace_share`` of a unit's targets is a
    namespace (``hp``, ``go``, ``hgnc`` of identifiers), not a template, and counts as no family (0).
    """
    out = np.zeros(len(items))
    if not len(items):
        return out
    items = items.reset_index(drop=True)
    positions = pd.Series(np.arange(len(items)), index=items.index)
    for _, part in items.groupby(_units(items), sort=False):
        keys = part["target"].map(family_key).to_numpy()
        is_train = (part["split"] == "train").to_numpy()
        n_train = int(is_train.sum())
        counts = pd.Series(keys[is_train]).value_counts()
        whole = pd.Series(keys).value_counts() / len(keys)
        same = pd.Series(keys).map(counts).fillna(0).to_numpy() - is_train
        denom = np.maximum(n_train - is_train, 1)
        share = same / denom
        share[(pd.Series(keys).map(whole).to_numpy() > namespace_share) | (keys == "")] = 0.0
        out[positions[part.index].to_numpy()] = share
    return out


def _with_template_share(items: pd.DataFrame) -> pd.DataFrame:
    if "template_share" in items:
        return items
    if not {"target", "split"} <= set(items.columns):
        raise PredictionError("items need `target` and `split` columns for the string-template control")
    return items.assign(template_share=template_share(items))


# --- the predictor: task-level gains at the scale they are measured ----------------------------------------


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float | None, str]:
    """The cut on ``scores`` that best separates ``labels`` (Youden's J = TPR - FPR), with a note.

    Candidates are midpoints between consecutive distinct scores; among equally good cuts the middle one is
    taken. With only positives the cut is the lowest positive score; with only negatives, or with scores that
    are all equal, there is no cut (``None``): that verdict cannot be reached from this calibration.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    keep = np.isfinite(scores)
    scores, labels = scores[keep], labels[keep]
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


def _measured_verdict(task_row: pd.Series | dict[str, Any]) -> str:
    if task_row["generalized"]:
        return VERDICTS[0]
    if task_row["memorized"]:
        return VERDICTS[1]
    return VERDICTS[2]


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
        for f in dict.fromkeys((*features, "template_share")):
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
        thresholds[split], notes[split] = youden_threshold(held[split], units[flag].astype(bool).to_numpy())
        notes[split] += " on held-out predictions"
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
        Fewer than two calibration tasks, or features missing from ``items``.
    """
    features = tuple(features)
    items = _with_template_share(items)
    missing = [c for c in (*features, "label", "split", "gain") if c not in items]
    if missing:
        raise PredictionError(f"calibration items lack columns {missing}")
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


# --- hold-out evaluation: the predictor beside the baselines -----------------------------------------------

#: The rules every evaluation puts beside the predictor (each fitted without the held-out field pair).
BASELINES = (
    "majority verdict",
    "gain 0 everywhere",
    "nearest calibration task",
    "threshold on lexicalization",
    "threshold on alignment z",
    "threshold on template share",
)
PREDICTOR_RULE = "predictor (task-level ridge)"


def _threshold_rule(train: pd.DataFrame, test: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray]:
    """One-feature rule: Youden cuts on the feature for generalized and memorized; gain = the mean measured
    generalization gain of the calibration units on the same side of the generalization cut."""
    x_train = train[column].astype(float).to_numpy()
    gen, _ = youden_threshold(x_train, train["generalized"].astype(bool).to_numpy())
    mem, _ = youden_threshold(x_train, train["memorized"].astype(bool).to_numpy())
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
    from scipy.stats import spearmanr

    predicted, gains = np.asarray(predicted, float), np.asarray(gains, float)
    rho = float(spearmanr(predicted, gains).statistic) if np.ptp(predicted) > 0 and np.ptp(gains) > 0 else float("nan")
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


def _calibration_warnings(units: pd.DataFrame) -> list[str]:
    warnings = []
    n_pairs = units["group"].nunique()
    if n_pairs < 6:
        warnings.append(f"thin calibration: {n_pairs} field pairs (each hold-out leaves one out)")
    for verdict in VERDICTS:
        k = units.loc[units["measured_verdict"] == verdict, "group"].nunique()
        if k < 3:
            warnings.append(f"thin calibration: {k} field pair(s) with the verdict '{verdict}' (fewer than 3)")
    models = sorted(units["model"].astype(str).unique())
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
            need = {"label", "model", "split", "gained", "lost", *MEASURED_FEATURES}
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
    """Per-item table, per-task table, correlations, grouped AUCs, the hold-out evaluation and baselines."""

    items: pd.DataFrame
    tasks: pd.DataFrame
    correlations: pd.DataFrame
    auc: pd.DataFrame
    loto: pd.DataFrame | None
    manifest: dict[str, Any]
    holdout: pd.DataFrame | None = None
    baselines: pd.DataFrame | None = None


def evaluate_items(
    items: pd.DataFrame,
    tasks: pd.DataFrame | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    manifest: dict[str, Any] | None = None,
) -> CorrelationResult:
    """The whole evaluation of an items table (one row per item, the columns of ``items.csv``; optionally
    ``field_pair`` and ``alignment_z``): correlations pooled and within tasks, grouped AUCs, the predictor held
    out by field pair beside the baselines.

    ``tasks`` (``tasks.csv``) supplies the gains' intervals and ``alignment_z`` where given; without it they
    come from the items.
    """
    need = {"label", "split", "gain", "gained", "target", *MEASURED_FEATURES}
    missing = sorted(need - set(items.columns))
    if missing:
        raise PredictionError(f"the items table lacks columns {missing}")
    if "baseline_correct" not in items:
        items = items.assign(baseline_correct=False)
    items = _with_template_share(items.reset_index(drop=True))
    units = unit_table(items, tasks, n_boot=n_boot, seed=seed)
    if units["unit"].duplicated().any():
        raise PredictionError("several runs of the same task and model; give one run per task")
    correlations = correlation_table(items, n_boot=n_boot, seed=seed)
    auc = auc_comparison(items[items["split"] == "withheld"], n_boot=n_boot, seed=seed)
    holdout = baselines = loto = None
    scored = tasks if tasks is not None else units
    if units["group"].nunique() >= 2:
        predictor = fit_predictor(items, tasks, seed=seed)
        holdout, baselines, loto = predictor.holdout, predictor.baselines, predictor.loto
        if tasks is not None:
            extra = predictor.tasks.set_index("unit")[
                ["group", "template_share", "predicted_memorization_gain", "predicted_generalization_gain"]
            ]
            scored = tasks.drop(columns=[c for c in extra.columns if c in tasks]).join(extra, on=_units(tasks))
        else:
            scored = predictor.tasks
    record = dict(manifest or {"stage": "correlate", "config": {}, "inputs": {}, "seed": seed})
    record["config"] = dict(record.get("config", {})) | {"predictor_features": list(FEATURES), "n_boot": n_boot}
    return CorrelationResult(
        items=items,
        tasks=scored,
        correlations=correlations,
        auc=auc,
        loto=loto,
        manifest=record,
        holdout=holdout,
        baselines=baselines,
    )


def read_items_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a user's items table (``.csv`` or ``.csv.gz``) as :func:`evaluate_items` takes it."""
    path = Path(path)
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise PredictionError(f"items table not found: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise PredictionError(f"{path} is not a readable items table: {' '.join(str(exc).split())[:160]}") from None
    except (EOFError, OSError, zlib.error) as exc:
        raise PredictionError(
            f"items table {path} is truncated or unreadable ({' '.join(str(exc).split())[:160]})"
        ) from None


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
    """Measure the features of each evaluated train run's items and relate them to the outcomes
    (:func:`evaluate_items` on the items measured).

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
    manifest = {
        "stage": "correlate",
        "config": {"features": dataclasses.asdict(config), "predictor_features": list(FEATURES), "n_boot": n_boot},
        "inputs": {"runs": inputs},
        "seed": seed,
    }
    return evaluate_items(items, tasks, n_boot=n_boot, seed=seed, manifest=manifest)


def write_correlation(result: CorrelationResult, out: str | os.PathLike[str], *, figures: bool = True) -> list[Path]:
    """Write ``items.csv``, ``tasks.csv``, ``correlations.csv``, ``auc.csv`` (and, with two or more field
    pairs, ``holdout.csv``, ``baselines.csv``, ``loto.csv``), ``summary.md``, figures and the manifest into
    ``out``, each atomically."""
    from lexprobe.runs import write_result_dir

    tables = {
        "items.csv": result.items,
        "tasks.csv": result.tasks,
        "correlations.csv": result.correlations,
        "auc.csv": result.auc,
    }
    if result.loto is not None:
        tables["loto.csv"] = result.loto
    if result.holdout is not None:
        tables["holdout.csv"] = result.holdout
    if result.baselines is not None:
        tables["baselines.csv"] = result.baselines
    record = dict(result.manifest)
    if result.loto is not None:
        record["inputs"] = dict(record.get("inputs", {})) | {"loto_summary": loto_summary(result.loto)}

    def draw(directory: Path) -> list[Path]:
        from lexprobe import figures as fig

        paths = []
        if "bin" in result.items and "tuned_correct" in result.items:
            paths += fig.plot_accuracy_by_popularity(result.items, directory)
        for feature, label in (
            ("lexicalization", "lexicalization score (lower side, 0-1)"),
            ("alignment", "alignment (mutual kNN, 0-1)"),
        ):
            paths += fig.plot_gain_vs_feature(result.items, feature, directory=directory, xlabel=label)
        if "alignment_z" in result.tasks:
            paths += fig.plot_task_gains(
                result.tasks, "alignment_z", directory, xlabel="alignment z (vs layer-max null)"
            )
        paths += fig.plot_task_gains(result.tasks, "lexicalization", directory, xlabel="lexicalization score (0-1)")
        if result.loto is not None:
            paths += fig.plot_calibration(result.loto, directory)
        if result.tasks["model"].nunique() > 1:
            paths += fig.plot_gains_by_model(result.tasks, directory)
        return paths

    text = evaluation_markdown(result)
    if {"baseline_train", "layer", "alignment_z", "popularity_median"} <= set(result.tasks.columns):
        text = summary_markdown(summary_table(result.tasks, result.loto)) + "\n" + text
    return write_result_dir(
        out, tables, stage="correlate", record=record, figures=draw if figures else None, texts={"summary.md": text}
    )


def evaluation_markdown(result: CorrelationResult) -> str:
    """The evaluation in Markdown: the predictor beside the baselines (leave one field pair out), the grouped
    AUCs, and the correlations pooled and within tasks."""
    out = ["## Held out by field pair: the predictor beside the baselines", ""]
    if result.baselines is None:
        out += ["One field pair only: no hold-out evaluation.", ""]
    else:
        b = result.baselines
        n = int(b["n_units"].iloc[0])
        out += [
            "| rule | verdicts right | generalization gain MAE (points) | Spearman (predicted, measured) "
            "| error / best baseline's |",
            "|---|---|---|---|---|",
        ]
        for _, r in b.iterrows():
            rho = "-" if pd.isna(r["gain_spearman"]) else f"{r['gain_spearman']:+.2f}"
            rel = "-" if pd.isna(r["relative_error"]) else f"{r['relative_error']:.2f}"
            out.append(f"| {r['rule']} | {int(r['verdicts_right'])}/{n} | {r['gain_mae_points']:.2f} | {rho} | {rel} |")
        best = b[b["rule"] != PREDICTOR_RULE].sort_values("gain_mae_points").iloc[0]
        own = b[b["rule"] == PREDICTOR_RULE].iloc[0]
        skill = "shows skill" if own["gain_mae_points"] < best["gain_mae_points"] else "shows no skill"
        out += [
            "",
            f"The predictor {skill} over the best baseline ({best['rule']}): generalization gain error "
            f"{own['gain_mae_points']:.2f} against {best['gain_mae_points']:.2f} points (ratio "
            f"{own['relative_error']:.2f}); {int(own['verdicts_right'])}/{n} verdicts right against "
            f"{int(b.loc[b['rule'] != PREDICTOR_RULE, 'verdicts_right'].max())}/{n} for the best baseline by "
            "verdicts.",
            "",
        ]
        h = result.holdout
        out += [
            "| unit | field pair | predicted gen. gain [interval] | measured | verdict | measured verdict |",
            "|---|---|---|---|---|---|",
        ]
        for _, r in h.iterrows():
            out.append(
                f"| {r['label']} ({r['model']}) | {r['group']} | {r['predicted_generalization_gain']:+.3f} "
                f"[{r['predicted_generalization_gain_ci_low']:+.3f}, "
                f"{r['predicted_generalization_gain_ci_high']:+.3f}] "
                f"| {r['generalization_gain']:+.3f} | {r['stated_verdict']} | {r['measured_verdict']} |"
            )
        out.append("")
    out += [
        "## Gained on a withheld pair: grouped AUC (leave one field pair out)",
        "",
        "| model | AUC, pooled [95% CI] | AUC within tasks [95% CI] |",
        "|---|---|---|",
    ]
    for _, r in result.auc.iterrows():

        def fmt(v, lo, hi):
            return "-" if pd.isna(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"

        out.append(
            f"| {r['model']} | {fmt(r['auc'], r['ci_low'], r['ci_high'])} "
            f"| {fmt(r['within_auc'], r['within_ci_low'], r['within_ci_high'])} |"
        )
    note = result.auc["note"].iloc[0] if len(result.auc) else ""
    out += ["", f"Intervals: cluster bootstrap over units. {note}".strip(), ""]
    out += [
        "## Spearman correlations, pooled and within tasks (cluster bootstrap over units)",
        "",
        "| relation | items | pooled [95% CI] | within tasks [95% CI] |",
        "|---|---|---|---|",
    ]
    c = result.correlations
    for relation, part in c[c["scope"].isin(["all", "within tasks"])].groupby("relation", sort=False):
        cells = []
        for scope in ("all", "within tasks"):
            r = part[part["scope"] == scope].iloc[0]
            cells.append("-" if pd.isna(r["rho"]) else f"{r['rho']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
        out.append(f"| {relation} ({part['split'].iloc[0]}) | {int(part['n'].iloc[0])} | {cells[0]} | {cells[1]} |")
    out.append("")
    return "\n".join(out)


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
    # the task's whole field pair (the task and its reverse, every model) is left out; identity is the
    # ontology as loaded (name, or the checksum a calibration recorded) and the field pair, never a file name
    identity = task_identity(ont.name, split.task.name)
    mine = _pair_groups(cal_tasks) == identity
    if "ontology_checksum" in cal_tasks:
        mine |= (cal_tasks["ontology_checksum"].astype(str) == ont.checksum) & (
            cal_tasks["task"].map(field_pair) == field_pair(split.task.name)
        )
    left_out = sorted(_units(cal_tasks[mine]))
    left_units = set(left_out)
    cal_tasks = cal_tasks[~mine].reset_index(drop=True)
    cal_items = cal_items[~_units(cal_items).isin(left_units)]
    if cal_tasks.empty or cal_items.empty:
        raise PredictionError(f"no calibration task is left once {identity} is left out")
    predictor = fit_predictor(cal_items, cal_tasks, seed=seed)
    pairs = pd.concat([split.train.assign(split="train"), split.withheld.assign(split="withheld")], ignore_index=True)
    pairs = _subsample(pairs, config.per_split, seed)
    features = measure_features(
        pairs, source=split.task.source, target=split.task.target, model=lm, config=config, cache_dir=cache_dir
    )
    prediction = predictor.predict(features.items.assign(label=label, model=model_name))
    warnings = list(predictor.warnings)
    units = predictor.tasks
    reached = units.loc[units["measured_verdict"] == prediction["verdict"], "group"].nunique()
    if reached == 0:
        warnings.append(
            f"no calibration field pair other than this task's own reached '{prediction['verdict']}': "
            "the verdict rests on no example"
        )
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
    prediction["field_pair"] = identity
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
            "predictor_features": list(FEATURES),
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
    if result.predictor.holdout is not None:
        tables["holdout.csv"] = result.predictor.holdout
        tables["baselines.csv"] = result.predictor.baselines
    record = dict(result.manifest)
    if result.predictor.loto is not None:
        record["inputs"] = record["inputs"] | {"loto_summary": loto_summary(result.predictor.loto)}
    record["inputs"] = record["inputs"] | {
        "thresholds": result.predictor.thresholds,
        "threshold_notes": result.predictor.threshold_notes,
    }
    return write_result_dir(out, tables, stage="predict", record=record)
