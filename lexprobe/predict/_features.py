"""Features of a task's items (alignment, lexicalization, popularity, target tokens, the string-template control)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.align import evaluate_metric, mutual_knn_per_item, preprocess, summarize_null
from lexprobe.config import StageConfig
from lexprobe.embed import ExtractionConfig, ExtractionFields, extract_hidden_states
from lexprobe.exceptions import LexprobeError, PredictionError
from lexprobe.lexical import lexicalization_score, tokenization_measures
from lexprobe.models import load_model
from lexprobe.predict._common import _GAIN_NAMES, _SPLITS, _units, field_pair
from lexprobe.predict._schema import COMPUTED, ITEMS
from lexprobe.progress import ProgressCallback, relabel
from lexprobe.stats import paired_bootstrap_interval
from lexprobe.tasks import get_task
from lexprobe.train import read_train_config


@dataclasses.dataclass(frozen=True)
class FeatureConfig(ExtractionFields, StageConfig):
    """How the features of a task are measured (the same for calibration runs and new tasks).

    Parameters
    ----------
    layers, pool, template, prefix
        As :class:`lexprobe.embed.ExtractionConfig`, with its defaults (:attr:`extraction` is the one they make).
    k : int
        Neighbours of the mutual kNN.
    preprocess : str
        As :func:`lexprobe.align.preprocess`.
    dtype : {"auto", "float32", "bfloat16", "float16"}
        The model's precision (:func:`lexprobe.models.load_model`); ``"auto"`` is bfloat16 where the hardware
        computes it natively.
    permutations : int
        Permutations of the pairing for the layer-max null of the task's alignment.
    per_split : int or None
        Items per split (train, withheld) that the features of a fine-tuning run are measured on; larger runs
        are subsampled evenly over popularity bins. Neighbourhood measures depend on how many items there
        are (chance is k / (n - 1)), so calibration and prediction must measure the same number: the
        default, 100, is the split of ``lexprobe study --size small`` (20 bins x 5). None: every item.
    seed : int
    batch_size : "auto" or int
        Items per forward pass (``"auto"``: as many as fit); changes the speed, not the result.

    Examples
    --------
    >>> FeatureConfig().per_split  # items per split, as calibration measured them
    100
    >>> FeatureConfig(permutations=1)
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: permutations must be >= 2 for a null, got 1
    """

    layers: str | tuple[int, ...] = ExtractionConfig.layers
    pool: str = ExtractionConfig.pool
    template: str = ExtractionConfig.template
    prefix: str = ExtractionConfig.prefix
    dtype: str = "auto"
    k: int = 10
    preprocess: str = "standardize"
    permutations: int = 100
    per_split: int | None = 100
    seed: int = 0
    batch_size: int | str = ExtractionConfig.batch_size

    def __post_init__(self) -> None:
        if self.per_split is not None and self.per_split < 1:
            raise PredictionError(f"per_split must be >= 1 or None, got {self.per_split}")
        if self.k < 1:
            raise PredictionError(f"k must be >= 1, got {self.k}")
        if self.permutations < 2:
            raise PredictionError(f"permutations must be >= 2 for a null, got {self.permutations}")


@dataclasses.dataclass
class TaskFeatures:
    """Per-item features (``items``) and the task's summary (``task``: one flat dict).

    Examples
    --------
    >>> features = TaskFeatures(pd.DataFrame({"id": ["HGNC:5", "HGNC:6"], "alignment": [0.4, 0.1]}),
    ...                         {"n_items": 2, "alignment": 0.25})
    >>> features.task["alignment"], float(features.items["alignment"].mean())  # the task's: its items' mean
    (0.25, 0.25)
    """

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
    progress: ProgressCallback | None = None,
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
    cache_dir : path, optional
        Embedding cache (default ``$LEXPROBE_CACHE/embeddings``).
    progress : callable, optional
        ``progress(stage, done, total)``: ``"embedding source"`` and ``"embedding target"`` per batch of items,
        ``"alignment by layer"`` per layer.

    Returns
    -------
    TaskFeatures
        ``items``: ``pairs`` plus ``log_popularity, source_tokens, target_tokens, alignment,
        source_lexicalization, target_lexicalization, lexicalization``. ``task``: ``n_items, layer, alignment,
        alignment_null, alignment_effect, alignment_z, alignment_p, source_lexicalization,
        target_lexicalization, lexicalization, popularity_q25, popularity_median, popularity_q75, popularity_nonzero,
        log_popularity``.

    Examples
    --------
    The pairs are checked before a model is used:

    >>> measure_features(pd.DataFrame({"source": ["insulin"], "target": ["INS"]}), source="name", target="symbol",
    ...                  model=None)
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: pairs need columns ['id', 'popularity']
    """
    config = config or FeatureConfig()
    items = _checked_items(pairs, config)
    n = len(items)
    texts = {"source": items["source"].astype(str).tolist(), "target": items["target"].astype(str).tolist()}
    keys = items["id"].astype(str).tolist()
    extraction = config.extraction
    sets = {
        side: extract_hidden_states(
            texts[side],
            keys=keys,
            model=model,
            config=extraction,
            cache_dir=cache_dir,
            progress=relabel(progress, f"embedding {side}"),
        )
        for side in ("source", "target")
    }
    layer, value, stats, alignment = _best_layer_alignment(sets, config, n, progress)
    tokens, lex = _side_lexicalization(texts, model.tokenizer)
    items["log_popularity"] = np.log1p(items["popularity"].astype(float).clip(lower=0).to_numpy())
    items["source_tokens"] = tokens["source"]["n_tokens"].to_numpy()
    items["target_tokens"] = tokens["target"]["n_tokens"].to_numpy()
    items["alignment"] = alignment
    items["source_lexicalization"] = lex["source"]
    items["target_lexicalization"] = lex["target"]
    items["lexicalization"] = np.minimum(lex["source"], lex["target"])
    task = {
        "n_items": n,
        "layer": int(layer),
        "alignment": float(value),
        "alignment_null": stats["null_mean"],
        "alignment_effect": float(value - stats["null_mean"]),
        "alignment_z": stats["z"],
        "alignment_p": stats["p_value"],
    } | _lexicalization_and_popularity(items, lex)
    return TaskFeatures(items=items, task=task)


def _checked_items(pairs: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """A copy of ``pairs`` on a fresh index, once checked to have the columns and enough rows for ``config.k``."""
    missing = [c for c in ("source", "target", "id", "popularity") if c not in pairs]
    if missing:
        raise PredictionError(f"pairs need columns {missing}")
    n = len(pairs)
    if n <= config.k + 1:
        raise PredictionError(f"{n} pairs are too few to measure features with k={config.k} neighbours")
    return pairs.reset_index(drop=True).copy()


def _best_layer_alignment(
    sets: dict[str, Any], config: FeatureConfig, n: int, progress: ProgressCallback | None
) -> tuple[int, float, dict[str, Any], np.ndarray]:
    """The layer where source and target align best (mutual k-NN, ``"alignment by layer"`` per layer), its
    value, its statistics against the null of the maximum over layers, and each item's alignment there."""
    layers = list(sets["source"].layers)
    rng = np.random.default_rng(config.seed)
    perms = np.stack([rng.permutation(n) for _ in range(config.permutations)])
    no_boots = np.zeros((0, n), dtype=np.int64)

    def pair(layer: int) -> tuple[np.ndarray, np.ndarray]:
        return tuple(preprocess(sets[side].layer(layer), config.preprocess) for side in ("source", "target"))

    values, nulls = [], []
    for number, layer in enumerate(layers):
        if progress:
            progress("alignment by layer", number, len(layers))
        outcome = evaluate_metric("mknn", *pair(layer), perms, no_boots, k=config.k)
        values.append(outcome.value)
        nulls.append(outcome.null)
    if progress:
        progress("alignment by layer", len(layers), len(layers))
    best = int(np.argmax(values))
    layer_max_null = np.max(np.stack(nulls), axis=0)
    stats = summarize_null(values[best], layer_max_null)
    alignment = mutual_knn_per_item(*pair(layers[best]), k=config.k)
    return layers[best], values[best], stats, alignment


def _side_lexicalization(texts: dict[str, list[str]], tokenizer: Any) -> tuple[dict[str, pd.DataFrame], dict]:
    """Each side's tokenization measures and its per-item lexicalization score (tokenization only)."""
    tokens = {side: tokenization_measures(texts[side], tokenizer) for side in ("source", "target")}
    lex = {}
    for side in ("source", "target"):
        measures = tokens[side].copy()
        # no neighbourhood agreement here: for the non-name side of a name pair it *is* the item's alignment,
        # and the predictor must be able to tell the two explanations apart (the lexicalization of a task's
        # items is its tokenization score; `lexprobe lexicalization` keeps the agreement)
        measures["agreement"] = np.nan
        lex[side] = lexicalization_score(measures)["score"].to_numpy()
    return tokens, lex


def _lexicalization_and_popularity(items: pd.DataFrame, lex: dict[str, np.ndarray]) -> dict[str, float]:
    """The task's mean lexicalization of each side and of both, and its popularity quartiles."""
    return {
        "source_lexicalization": float(lex["source"].mean()),
        "target_lexicalization": float(lex["target"].mean()),
        "lexicalization": float(items["lexicalization"].mean()),
        "popularity_q25": float(items["popularity"].quantile(0.25)),
        "popularity_median": float(items["popularity"].median()),
        "popularity_q75": float(items["popularity"].quantile(0.75)),
        "popularity_nonzero": float((items["popularity"] > 0).mean()),
        "log_popularity": float(items["log_popularity"].mean()),
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictionError(f"{path.parent} is not an evaluated lexprobe train run: {path.name} is missing") from None
    except json.JSONDecodeError as exc:
        raise PredictionError(f"{path} is not valid JSON: {exc}") from None


def _train_config(run: Path) -> Any:
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
    progress: ProgressCallback | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Join an evaluated train run's per-item outcomes with the features of its items.

    ``progress(stage, done, total)`` is passed to :func:`measure_features`.

    Returns
    -------
    items : DataFrame
        One row per item (train and withheld): ``ontology, task, model, label, split, id, source, target,
        popularity, bin, baseline_correct, tuned_correct, gained, lost, gain`` and the features.
    task : dict
        The task's features (see :func:`measure_features`) beside its measured accuracies and gains.

    Examples
    --------
    An evaluated train run is needed (``lexprobe train`` then ``lexprobe evaluate``):

    >>> run_features("no-such-run")
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.PredictionError: run directory 'no-such-run' does not exist; make one with ...
    """
    from lexprobe.ontology import load_ontology

    run = Path(run_dir)
    train_config = _train_config(run)
    evaluation = _read_json(run / "evaluation.json")
    gains, outcomes = _evaluated_outcomes(run, evaluation)
    config = config or FeatureConfig()
    outcomes = _subsample(outcomes, config.per_split, config.seed)
    ontology, task_name, model_name = train_config.ontology, train_config.task, train_config.model
    try:
        task = get_task(ontology, task_name)
    except LexprobeError as exc:
        raise PredictionError(str(exc)) from None
    lm = model if model is not None else load_model(model_name, dtype=config.dtype)
    features = measure_features(
        outcomes[["source", "target", "id", "popularity"]],
        source=task.source,
        target=task.target,
        model=lm,
        config=config,
        cache_dir=cache_dir,
        progress=progress,
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
    row |= _split_gains(items, gains, config.seed)
    row["memorized"] = bool(row["memorization_gain_ci_low"] > 0)
    row["generalized"] = bool(row["generalization_gain_ci_low"] > 0)
    row["exposures"] = _exposures(run, train_config)
    row["run"] = str(run)
    return items, row


def _evaluated_outcomes(run: Path, evaluation: Mapping[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """An evaluated run's gains (``evaluation.json``) and per-item outcomes, or a one-line error saying how to
    make them."""
    gains = evaluation.get("gains") or {}
    if not all(s in gains for s in _SPLITS):
        raise PredictionError(f"{run} was evaluated without the adapter or on one split; run `lexprobe evaluate {run}`")
    try:
        return gains, pd.read_csv(run / "outcomes.csv")
    except FileNotFoundError:
        raise PredictionError(f"{run} has no outcomes.csv; run `lexprobe evaluate {run}`") from None


def _split_gains(items: pd.DataFrame, gains: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Per split, of the (possibly subsampled) items: baseline and tuned accuracy, the gain with its paired
    bootstrap interval, and the gain the evaluation measured on all its items."""
    row: dict[str, Any] = {}
    for split in _SPLITS:
        part = items[items["split"] == split]
        b, t = part["baseline_correct"].to_numpy(), part["tuned_correct"].to_numpy()
        low, high = paired_bootstrap_interval(b, t, n_boot=2000, seed=seed)
        name = _GAIN_NAMES[split]
        row |= {f"baseline_{split}": float(b.mean()), f"tuned_{split}": float(t.mean())}
        row |= {f"{name}_gain": float(t.mean() - b.mean()), f"{name}_gain_ci_low": low, f"{name}_gain_ci_high": high}
        row[f"{name}_gain_all_items"] = gains[split]["gain"]
    return row


def _exposures(run: Path, train_config: Any) -> float:
    """Exposures per pair the run trained for: recorded in its manifest, else templates x epochs."""
    import json

    try:
        return float(json.loads((run / "manifest.json").read_text(encoding="utf-8"))["outputs"]["exposures"])
    except (OSError, ValueError, KeyError, TypeError):
        planned = train_config.exposures
        return float(planned) if planned is not None else float("nan")


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


_DIGIT = re.compile(r"\d")


def family_key(text: str) -> str:
    """The string template of a target: its text before the first digit, case-folded (``SLC25A1`` -> ``slc``,
    ``zinc finger protein 12`` -> ``zinc finger protein``); a text without digits is its own family.

    Examples
    --------
    >>> family_key("SLC25A1"), family_key("zinc finger protein 12"), family_key("insulin")
    ('slc', 'zinc finger protein', 'insulin')
    """
    folded = " ".join(str(text).casefold().split())
    match = _DIGIT.search(folded)
    return (folded[: match.start()] if match else folded).strip(" -_:./")


def _train_share(items: pd.DataFrame, key, *, namespace_share: float | None = None) -> np.ndarray:
    """Per item, the share of its unit's *train* items (itself excluded) whose ``key(target)`` equals its own;
    with ``namespace_share``, a key held by more than that share of a unit's items, or an empty one, gives 0."""
    out = np.zeros(len(items))
    if not len(items):
        return out
    items = items.reset_index(drop=True)
    positions = pd.Series(np.arange(len(items)), index=items.index)
    for _, part in items.groupby(_units(items), sort=False):
        keys = part["target"].astype(str).map(key).to_numpy()
        is_train = (part["split"] == "train").to_numpy()
        counts = pd.Series(keys[is_train]).value_counts()
        same = pd.Series(keys).map(counts).fillna(0).to_numpy() - is_train
        share = same / np.maximum(int(is_train.sum()) - is_train, 1)
        if namespace_share is not None:
            whole = pd.Series(keys).value_counts() / len(keys)
            share[(pd.Series(keys).map(whole).to_numpy() > namespace_share) | (keys == "")] = 0.0
        out[positions[part.index].to_numpy()] = share
    return out


def template_share(items: pd.DataFrame, *, namespace_share: float = 0.5) -> np.ndarray:
    """Per item, the share of its unit's *train* targets (itself excluded) in the item's target family.

    The string-template control: a withheld ``SLC25A3`` is easy to produce when ``SLC25A1`` was trained,
    whatever the embeddings say. A family that holds more than ``namespace_share`` of a unit's targets is a
    namespace (``hp``, ``go``, ``hgnc`` of identifiers), not a template, and counts as no family (0).

    Examples
    --------
    Three train targets of the SLC25 family: a withheld SLC25A3 shares its template with all of them.

    >>> items = pd.DataFrame({"label": "hgnc name-to-symbol", "split": ["train"] * 4 + ["withheld"],
    ...                       "target": ["SLC25A1", "SLC25A2", "SLC25A4", "INS", "SLC25A3"]})
    >>> template_share(items, namespace_share=0.9).round(2).tolist()
    [0.67, 0.67, 0.67, 0.0, 0.75]
    """
    return _train_share(items, family_key, namespace_share=namespace_share)


def seen_target_share(items: pd.DataFrame) -> np.ndarray:
    """Per item, the share of its unit's *train* targets (itself excluded) that are its own target, up to case.

    The seen-answer control: where targets repeat (a category: a locus type, a GO namespace) a withheld item's
    answer is a string training showed many times, and a model that learned only which answers exist, or only
    the commonest one, scores on withheld pairs. Targets that never repeat (identifiers, symbols, names) give
    0. Unlike :func:`template_share`, a target held by most of a unit's items counts in full: here the
    repeated answer is the point, not a namespace prefix.

    Examples
    --------
    >>> items = pd.DataFrame({"label": "hgnc name-to-locus-type", "split": ["train"] * 3 + ["withheld"],
    ...                       "target": ["gene with protein product", "gene with protein product",
    ...                                  "RNA, long non-coding", "Gene with protein product"]})
    >>> seen_target_share(items).round(2).tolist()  # up to case, the withheld answer is 2 of the 3 train ones
    [0.5, 0.5, 0.0, 0.67]
    """
    return _train_share(items, lambda text: " ".join(text.casefold().split()))


def _with_template_share(items: pd.DataFrame) -> pd.DataFrame:
    """``items`` with the two controls computed from its targets: ``template_share`` and
    ``seen_target_share`` (each only where missing)."""
    missing = [c for c in COMPUTED if not ITEMS.has(items, c)]
    if not missing:
        return items
    if not {"target", "split"} <= set(items.columns):
        raise PredictionError("items need `target` and `split` columns for the string-template control")
    made = {"template_share": template_share, "seen_target_share": seen_target_share}
    return items.assign(**{c: made[c](items) for c in missing})
