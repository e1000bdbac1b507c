"""``run_alignment``: embed the paired fields of a term sample, measure alignment per layer, with nulls."""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe import figures as plots
from lexprobe.align._metrics import (
    ANN_MIN_ITEMS,
    PREPROCESSING,
    RECALL_QUERIES,
    RECALL_TARGET,
    RETRIEVAL_MAPS,
    preprocess,
)
from lexprobe.align._null import (
    METRIC_NAMES,
    Side,
    cantelli_bound,
    evaluate_metric,
    evaluate_metrics,
    null_form,
    recentred_interval,
    summarize_null,
)
from lexprobe.align._retrieval import retrieval_by_rank, with_surface_share
from lexprobe.align._surface import (
    CONTROLLED,
    controlled_row,
    explained_share,
    residualize,
    surface_inputs,
    surface_record,
    surface_warnings,
)
from lexprobe.config import StageConfig
from lexprobe.embed import ExtractionConfig, ExtractionFields
from lexprobe.exceptions import AlignmentError, LexprobeWarning
from lexprobe.models import load_model
from lexprobe.progress import relabel
from lexprobe.runs import write_result_dir
from lexprobe.tasks import field_column, field_values, sample_terms

__all__ = [
    "AlignmentConfig",
    "AlignmentResult",
    "run_alignment",
    "default_pairs",
    "write_alignment",
    "bootstrap_interval",
]

logger = logging.getLogger(__name__)

#: Items (and as many partners) drawn in each panel of the UMAP figure.
_UMAP_POINTS = 1000

DEFAULT_METRICS = ("mknn", "cka", "dcka")

#: Above this many items ``cka_permutations="auto"`` runs no CKA permutation: z comes from the exact moments and
#: p from Cantelli's bound (at 44,000 HGNC genes the CKA null was 90% of a run; effects there are z > 100).
CKA_MOMENTS_ONLY_ITEMS = 8192
_DEFAULT_PAIRS = {"hgnc": ("name:symbol", "name:id", "symbol:id")}


def default_pairs(ontology: str) -> tuple[str, ...]:
    """Field pairs measured by default: name/symbol/id for HGNC, name:id otherwise.

    Examples
    --------
    >>> default_pairs("hgnc")
    ('name:symbol', 'name:id', 'symbol:id')
    >>> default_pairs("hpo")
    ('name:id',)
    """
    return _DEFAULT_PAIRS.get(ontology, ("name:id",))


@dataclasses.dataclass(frozen=True)
class AlignmentConfig(ExtractionFields, StageConfig):
    """What ``lexprobe align`` measures.

    Parameters
    ----------
    ontology : str
        Built-in name or path.
    pairs : sequence of "a:b", optional
        Field pairs; default :func:`default_pairs`.
    model : str
        Model spec (see :func:`lexprobe.models.load_model`).
    dtype : {"auto", "float32", "bfloat16", "float16"}
        The model's precision (:func:`lexprobe.models.load_model`); ``"auto"`` is bfloat16 where the hardware
        computes it natively.
    limit : int or None
        Size of the popularity-balanced term sample (None: every eligible term).
    categories : tuple of str, optional
        Term categories to sample from: None, the ontology's default (protein-coding genes for HGNC); an empty
        tuple, every category (all approved HGNC genes, about 44,000).
    layers : "all" or tuple of int
    pool : {"mean", "last", "first"}
    template : str
    prefix : str
        Sink prefix, never pooled (see :class:`lexprobe.embed.ExtractionConfig`); ``"none"`` is the old pooling.
    metrics : tuple of str
        From ``mknn, retrieval, cka, dcka, rsa``.
    k : int
        Neighbours for mutual-kNN.
    retrieval_k : int
        Hit within the top ``retrieval_k`` for retrieval.
    retrieval_map : {"ridge", "procrustes", "none"}
        Map fitted on the train half for retrieval; ``none`` compares the two fields directly (one model,
        one space).
    permutations : int
        Permutations of the pairing for the null (0 disables it).
    cka_permutations : "auto" or int
        Monte Carlo permutations for the two CKA metrics, whose per-layer null mean, sd and z are exact whatever
        this is (closed-form moments over all pairings, :func:`lexprobe.align.cka_null_moments`); the
        permutations give the empirical p-value and the layer-max null. With 0, the p-value is Cantelli's
        bound from the exact moments (summed over layers for the best layer), valid and conservative, and the
        summary's ``null`` column says ``moments``. ``"auto"``: ``permutations`` up to
        ``CKA_MOMENTS_ONLY_ITEMS`` items, 0 above (where each permutation costs a GEMM over every item and
        effects are hundreds of standard deviations).
    bootstrap : int
        Bootstrap resamples of items for the retrieval and RSA intervals (0 disables every interval);
        mutual kNN intervals come from 50 random half samples, CKA intervals from the delete-one jackknife.
    ci_layers : {"best", "all"}
        Where CKA / debiased-CKA intervals are computed: at the best layer of each pair by default, or at
        every layer. The other metrics get intervals at every layer.
    preprocess : {"none", "center", "standardize", "clip"}
    seed : int
    batch_size : "auto" or int
        Items per forward pass (``"auto"``: as many as fit); changes the speed, not the result.
    surface_control : bool
        Also measure every metric on each side's states with its surface covariates (token count, digit and
        punctuation share; :func:`lexprobe.align.surface_covariates`) regressed out per layer, with the same
        permutations for its null: the ``*_ctl`` columns, and a warning where the control removes the effect
        (:func:`lexprobe.align.surface_warnings`). The raw columns are the same either way.

    Examples
    --------
    >>> config = AlignmentConfig("hgnc")
    >>> config.resolved_pairs("hgnc")  # the default pairs of an ontology's fields
    (('name', 'symbol'), ('name', 'id'), ('symbol', 'id'))
    >>> config.resolved_cka_permutations(2000), config.resolved_cka_permutations(50000)  # exact moments only
    (100, 0)
    >>> AlignmentConfig("hgnc", pairs=("name-symbol",))
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.AlignmentError: a pair must look like name:symbol (two different fields), got 'name-symbol'
    """

    ontology: str
    pairs: tuple[str, ...] | None = None
    model: str = "smollm2-135m"
    dtype: str = "auto"
    limit: int | None = 2000
    categories: tuple[str, ...] | None = None
    layers: str | tuple[int, ...] = ExtractionConfig.layers
    pool: str = ExtractionConfig.pool
    template: str = ExtractionConfig.template
    prefix: str = ExtractionConfig.prefix
    metrics: tuple[str, ...] = DEFAULT_METRICS
    k: int = 10
    retrieval_k: int = 1
    retrieval_map: str = "ridge"
    permutations: int = 100
    cka_permutations: int | str = "auto"
    bootstrap: int = 100
    ci_layers: str = "best"
    preprocess: str = "standardize"
    seed: int = 0
    batch_size: int | str = ExtractionConfig.batch_size
    surface_control: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown or not self.metrics:
            raise AlignmentError(
                f"--metrics must be from {', '.join(METRIC_NAMES)}, got {','.join(self.metrics) or '(none)'}"
            )
        if self.preprocess not in PREPROCESSING:
            raise AlignmentError(f"--preprocess must be one of {', '.join(PREPROCESSING)}, got {self.preprocess!r}")
        if self.permutations < 0 or self.bootstrap < 0:
            raise AlignmentError("--permutations and --bootstrap must be >= 0")
        if self.cka_permutations != "auto" and (
            isinstance(self.cka_permutations, bool)
            or not isinstance(self.cka_permutations, int)
            or self.cka_permutations < 0
        ):
            raise AlignmentError(f"--cka-permutations must be auto or >= 0, got {self.cka_permutations!r}")
        if self.ci_layers not in ("best", "all"):
            raise AlignmentError(f"--ci-layers must be best or all, got {self.ci_layers!r}")
        if self.k < 1:
            raise AlignmentError(f"--k must be >= 1, got {self.k}")
        if self.retrieval_k < 1:
            raise AlignmentError(f"--retrieval-k must be >= 1, got {self.retrieval_k}")
        if self.retrieval_map not in RETRIEVAL_MAPS:
            raise AlignmentError(
                f"--retrieval-map must be one of {', '.join(RETRIEVAL_MAPS)}, got {self.retrieval_map!r}"
            )
        if self.limit is not None and self.limit < 5:
            raise AlignmentError(f"--limit must be at least 5 terms (or None for all), got {self.limit}")
        for pair in self.pairs or ():
            parse_pair(pair)

    def resolved_cka_permutations(self, n_items: int) -> int:
        """The Monte Carlo permutations the CKA metrics get for ``n_items`` items (``"auto"`` resolved)."""
        if self.cka_permutations == "auto":
            return self.permutations if n_items <= CKA_MOMENTS_ONLY_ITEMS else 0
        return int(self.cka_permutations)

    def resolved_pairs(self, ontology_name: str) -> tuple[tuple[str, str], ...]:
        return tuple(parse_pair(p) for p in (self.pairs or default_pairs(ontology_name)))


def parse_pair(pair: str) -> tuple[str, str]:
    """``"name:symbol"`` -> ``("name", "symbol")``.

    Examples
    --------
    >>> parse_pair("name:symbol")
    ('name', 'symbol')
    >>> parse_pair("name")
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.AlignmentError: a pair must look like name:symbol (two different fields), got 'name'
    """
    parts = [p.strip() for p in str(pair).split(":")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise AlignmentError(f"a pair must look like name:symbol (two different fields), got {pair!r}")
    for field in parts:
        field_column(field)
    return parts[0], parts[1]


@dataclasses.dataclass
class AlignmentResult:
    """Per-layer alignment (``table``), the chosen-layer summary, and what made them.

    Examples
    --------
    >>> table = pd.DataFrame({"pair": ["name:symbol"], "layer": [6], "metric": ["mknn"], "value": [0.31]})
    >>> result = AlignmentResult(table, table.iloc[:0], embeddings={}, terms=pd.DataFrame(), manifest={})
    >>> float(result.table.loc[0, "value"])
    0.31
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    embeddings: dict[str, Any]
    terms: pd.DataFrame
    manifest: dict[str, Any]


def run_alignment(
    config: AlignmentConfig,
    *,
    model: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> AlignmentResult:
    """Measure alignment between paired fields of an ontology's terms, per layer, with chance levels.

    Parameters
    ----------
    config : AlignmentConfig
    model : LoadedModel, optional
        A loaded model to reuse; default loads ``config.model``.
    progress : callable, optional
        ``progress(stage, done, total)``: ``"loading model"``; ``"embedding <field>"`` per batch of items;
        ``"measuring"`` per (layer, pair); ``"intervals at the best layer"`` per CKA summary row.
    cache_dir : path, optional
        Embedding cache (default ``$LEXPROBE_CACHE/embeddings``).

    Returns
    -------
    AlignmentResult
        ``table`` has one row per (pair, layer, metric) with columns ``pair, layer, metric, value,
        null_mean, null_sd, z, p_value, ci_low, ci_high, effect, n_items, n_permutations`` and, with
        ``surface_control``, the same metric on the surface-controlled states: ``value_ctl, null_mean_ctl,
        null_sd_ctl, z_ctl, p_value_ctl, effect_ctl``.
        ``summary`` has one row per (pair, metric): the best layer, its value, and the null of the *maximum
        over layers* (so choosing the best layer does not inflate the evidence); with ``surface_control`` also
        the controlled metric at its own best layer (``best_layer_ctl, value_ctl, null_max_mean_ctl,
        null_max_sd_ctl, z_ctl, p_value_ctl, effect_ctl``) and ``effect_kept`` = effect_ctl / effect.

    Warns
    -----
    LexprobeWarning
        For each pair whose alignment the surface-form control removes: raw p <= 0.05 and either the
        controlled p > 0.05 or the controlled effect below half the raw effect, each at its own best layer
        against its own layer-max null (:func:`lexprobe.align.surface_warnings`); the same lines are in the
        manifest's ``warnings``.

    Examples
    --------
    >>> config = AlignmentConfig(ontology="hgnc", limit=8, k=10)  # the bundled HGNC snapshot
    >>> run_alignment(config)  # checked against the sample before any model loads
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.AlignmentError: --k must be in [1, n_items - 1] = [1, 7], got 10; lower --k or raise --limit
    >>> result = run_alignment(AlignmentConfig(ontology="hgnc", limit=200))  # doctest: +SKIP
    >>> result.summary[["pair", "metric", "best_layer", "value", "z"]]  # doctest: +SKIP
    """
    from lexprobe.ontology import load_ontology  # pandas, curies, pooch: not for every `import lexprobe.align`

    ontology = load_ontology(config.ontology)
    pairs, fields, terms = _alignment_sample(config, ontology)
    n = len(terms)
    clock = _Clock()
    lm = _alignment_model(config, model, progress)
    clock.lap("load_model")
    embeddings, extraction = _embedded_fields(config, terms, fields, lm, cache_dir, progress)
    clock.lap("embed")
    logger.debug("embedded %s: %d items, %.1f s", ", ".join(fields), n, clock.record["embed"])
    layers = embeddings[fields[0]].layers
    draws = _draws(config, n)  # permutations, bootstrap resamples, the CKA null's permutations
    covariates = surface_inputs(embeddings, lm, extraction) if config.surface_control else {}
    table, nulls, moments, recall, explained = _measure_layers(
        config, embeddings, pairs, n, covariates, draws, progress
    )
    summary = _best_layer_summary(config, table, nulls, moments, embeddings, bool(covariates), draws[1], progress)
    clock.lap("measure")
    manifest = {
        "stage": "align",
        "config": config.to_dict() | {"pairs_resolved": [f"{a}:{b}" for a, b in pairs]},
        "inputs": _alignment_inputs(ontology, lm, n, layers, embeddings),
    } | _alignment_record(config, embeddings, n, summary, recall, covariates, explained, draws, clock)
    for line in surface_warnings(summary):
        warnings.warn(line, LexprobeWarning, stacklevel=2)
    return AlignmentResult(table=table, summary=summary, embeddings=embeddings, terms=terms, manifest=manifest)


def _alignment_sample(config: AlignmentConfig, ontology: Any) -> tuple[list[tuple[str, str]], tuple[str, ...], Any]:
    """The resolved field pairs, the fields they name (each once) and the term sample; ``--k`` checked against
    its size before any model loads."""
    pairs = config.resolved_pairs(ontology.name)
    fields = tuple(dict.fromkeys(f for pair in pairs for f in pair))
    terms = sample_terms(ontology, config.limit, seed=config.seed, fields=fields, categories=config.categories)
    n = len(terms)
    if config.k > n - 1:
        raise AlignmentError(
            f"--k must be in [1, n_items - 1] = [1, {n - 1}], got {config.k}; lower --k or raise --limit"
        )
    return pairs, fields, terms


def _alignment_model(config: AlignmentConfig, model: Any, progress: Callable[[str, int, int], None] | None) -> Any:
    """``model`` when given, else ``config.model`` loaded (reported as ``"loading model"``)."""
    if model is None and progress:
        progress("loading model", 0, 1)
    lm = model if model is not None else load_model(config.model, dtype=config.dtype)
    if model is None and progress:
        progress("loading model", 1, 1)
    return lm


def _embedded_fields(
    config: AlignmentConfig,
    terms: pd.DataFrame,
    fields: tuple[str, ...],
    lm: Any,
    cache_dir: str | os.PathLike[str] | None,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[dict[str, Any], Any]:
    """The hidden states of each field's values (``"embedding <field>"`` per batch) and the extraction
    settings they were taken with."""
    from lexprobe.embed import extract_hidden_states  # as called: a stand-in put there is used

    extraction = config.extraction
    embeddings = {}
    for field in fields:
        embeddings[field] = extract_hidden_states(
            field_values(terms, field),
            keys=list(terms["id"]),
            model=lm,
            config=extraction,
            cache_dir=cache_dir,
            progress=relabel(progress, f"embedding {field}"),
        )
    return embeddings, extraction


def _draws(config: AlignmentConfig, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seeded permutations (of the metrics' nulls), bootstrap resamples and the CKA null's permutations
    (the first of the same draws)."""
    rng = np.random.default_rng(config.seed)
    n_cka = config.resolved_cka_permutations(n)
    drawn = max(config.permutations, n_cka)
    perms = np.array([rng.permutation(n) for _ in range(drawn)], dtype=np.int64).reshape(-1, n)
    boots = rng.integers(0, n, size=(config.bootstrap, n))
    cka_perms, perms = perms[:n_cka], perms[: config.permutations]
    return perms, boots, cka_perms


def _measure_layers(
    config: AlignmentConfig,
    embeddings: dict[str, Any],
    pairs: list[tuple[str, str]],
    n: int,
    covariates: dict[str, Any],
    draws: tuple[np.ndarray, np.ndarray, np.ndarray],
    progress: Callable[[str, int, int], None] | None,
) -> tuple[pd.DataFrame, dict, dict, dict, dict[str, list[float]]]:
    """Every metric of every pair at every layer (``"measuring"`` per (layer, pair)).

    Layer by layer: each field is preprocessed, searched and multiplied once per layer, whatever the number of
    pairs it is in (a Side caches its centred rows, kernel and neighbour lists). Returns the table (pairs,
    then layers, then metrics in ``config.metrics`` order), the nulls and null moments by (pair, metric,
    layer), the neighbour recall by field and layer, and the share of each field the surface form explains
    per layer.
    """
    fields = tuple(embeddings)
    layers = embeddings[fields[0]].layers
    cells, nulls, moments, recall = {}, {}, {}, {}
    explained: dict[str, list[float]] = {f: [] for f in covariates}
    n_cells = len(layers) * len(pairs)
    if progress:
        progress("measuring", 0, n_cells)
    for l_index, layer in enumerate(layers):
        sides = {f: Side(preprocess(embeddings[f].layer(layer), config.preprocess), f) for f in fields}
        controlled = {}
        for f, covs in covariates.items():  # the surface-form control: same metrics, same permutations
            controlled[f] = Side(residualize(sides[f].X, covs), f"{f} (surface-controlled)")
            explained[f].append(round(explained_share(sides[f].X, controlled[f].X), 6))
        for p_index, (a, b) in enumerate(pairs):
            rows = _measure_pair(config, sides, controlled, (a, b), layer, n, draws, nulls, moments)
            for metric, row in rows.items():
                cells[(p_index, l_index, metric)] = row
            if progress:
                progress("measuring", l_index * len(pairs) + p_index + 1, n_cells)
        logger.debug("layer %s measured (%d of %d)", layer, l_index + 1, len(layers))
        for field, side in [*sides.items(), *((f"{f} (controlled)", s) for f, s in controlled.items())]:
            if side.recall is not None:
                recall[f"{field}@{layer}"] = side.recall
    rows = [cells[key] for key in sorted(cells, key=lambda key: (key[0], key[1], config.metrics.index(key[2])))]
    return pd.DataFrame(rows), nulls, moments, recall, explained


def _measure_pair(
    config: AlignmentConfig,
    sides: dict[str, Side],
    controlled: dict[str, Side],
    fields: tuple[str, str],
    layer: int,
    n: int,
    draws: tuple[np.ndarray, np.ndarray, np.ndarray],
    nulls: dict,
    moments: dict,
) -> dict[str, dict[str, Any]]:
    """The table rows (by metric) of one pair at one layer, with the surface-controlled metric's columns where
    the control is on; each metric's null and null moments go into ``nulls`` and ``moments``."""
    a, b = fields
    pair = f"{a}:{b}"
    perms, boots, cka_perms = draws
    options = dict(k=config.k, retrieval_k=config.retrieval_k, retrieval_map=config.retrieval_map, seed=config.seed)
    cka_boots = boots[:0] if config.ci_layers == "best" else boots
    outcomes = evaluate_metrics(
        config.metrics, sides[a], sides[b], perms, boots, **options, cka_boots=cka_boots, cka_perms=cka_perms
    )
    rows = {}
    for metric, outcome in outcomes.items():
        nulls[(pair, metric, layer)] = outcome.null
        moments[(pair, metric, layer)] = outcome.moments
        rows[metric] = _row(pair, layer, metric, outcome.value, outcome.null, outcome.interval, n, outcome.moments)
    if controlled:
        # intervals are the raw metric's only: the controlled one gets its value and its null
        outcomes = evaluate_metrics(
            config.metrics, controlled[a], controlled[b], perms, boots[:0], **options, cka_perms=cka_perms
        )
        for metric, outcome in outcomes.items():
            nulls[(pair, metric + CONTROLLED, layer)] = outcome.null
            moments[(pair, metric + CONTROLLED, layer)] = outcome.moments
            rows[metric] |= controlled_row(outcome.value, outcome.null, outcome.moments)
    return rows


def _best_layer_summary(
    config: AlignmentConfig,
    table: pd.DataFrame,
    nulls: dict,
    moments: dict,
    embeddings: dict[str, Any],
    controlled: bool,
    boots: np.ndarray,
    progress: Callable[[str, int, int], None] | None,
) -> pd.DataFrame:
    """The summary by (pair, metric) against the layer-max null, with the controlled metric's where the control
    is on; with ``ci_layers="best"`` the best layer's intervals are filled into ``table`` and the summary."""
    layers = next(iter(embeddings.values())).layers
    summary = _summarize(table, nulls, layers, moments)
    if controlled:
        summary = _with_controlled_summary(summary, table, nulls, layers, moments)
    if config.bootstrap and config.ci_layers == "best":
        _fill_best_layer_cis(table, summary, embeddings, boots, config, progress)
    return summary


def _alignment_inputs(ontology: Any, lm: Any, n: int, layers: list[int], embeddings: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``inputs``: the ontology, the model, the sample size, the layers and each field's
    embedding inputs."""
    return {
        "ontology": ontology.describe(),
        "model": lm.describe(),
        "n_items": n,
        "layers": layers,
        "embeddings": {f: e.manifest.get("inputs", {}) for f, e in embeddings.items()},
    }


def _alignment_record(
    config: AlignmentConfig,
    embeddings: dict[str, Any],
    n: int,
    summary: pd.DataFrame,
    recall: dict,
    covariates: dict[str, Any],
    explained: dict[str, list[float]],
    draws: tuple[np.ndarray, np.ndarray, np.ndarray],
    clock: _Clock,
) -> dict[str, Any]:
    """The manifest past its config and inputs: token norms, warnings, the surface control, neighbours, the CKA
    null, timings and the seed."""
    perms, _, cka_perms = draws
    first = next(iter(embeddings.values()))  # the first field's: every field has the same layers and width
    layers, dim = first.layers, int(first.array.shape[-1])
    cka = {"cka", "dcka"} & set(config.metrics)
    return {
        "token_norms": {f: e.manifest.get("outputs", {}).get("token_norms") for f, e in embeddings.items()},
        "warnings": [f"{f}: {w}" for f, e in embeddings.items() for w in e.manifest.get("warnings", [])]
        + _recall_warnings(recall)
        + _permutation_warnings(config.permutations)
        + _moments_only_warnings(summary)
        + surface_warnings(summary),
        "surface_control": surface_record(covariates, explained, layers, len(perms)),
        "neighbours": _neighbour_record(n, recall),
        "cka_null_form": null_form(n, dim, dim, len(cka_perms)) if cka else None,
        "cka_null": _cka_null_record(len(cka_perms)) if cka else None,
        "timings": clock.record,
        "seed": config.seed,
    }


class _Clock:
    """Wall-clock seconds of each stage of a run, for its manifest (``timings``)."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.record: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self._now()
        self.record[stage] = round(self.record.get(stage, 0.0) + now - self._last, 3)
        self._last = now


def _neighbour_record(n: int, recall: dict[str, float]) -> dict[str, Any]:
    """How the neighbour lists were searched: exact, or HNSW with its measured recall@k per field and layer."""
    if not recall:
        return {"search": "exact", "n_items": n, "ann_min_items": ANN_MIN_ITEMS}
    values = np.array(list(recall.values()))
    return {
        "search": "hnsw",
        "n_items": n,
        "ann_min_items": ANN_MIN_ITEMS,
        "recall_queries": min(RECALL_QUERIES, n),
        "recall_target": RECALL_TARGET,
        "recall_min": float(values.min()),
        "recall_mean": float(values.mean()),
        "recall": recall,
    }


#: Fewer permutations than this get a warning: the p-value cannot go below 1 / (permutations + 1), and z rests
#: on the sd of that few null values.
MIN_PERMUTATIONS = 100


def _permutation_warnings(permutations: int) -> list[str]:
    if not 0 < permutations < MIN_PERMUTATIONS:
        return []
    return [
        f"with {permutations} permutations no p-value can be below 1/{permutations + 1} = "
        f"{1 / (permutations + 1):.3f} however large z is, and z rests on the sd of {permutations} null values; "
        f"use --permutations {MIN_PERMUTATIONS} or more for evidence"
    ]


def _recall_warnings(recall: dict[str, float]) -> list[str]:
    low = {key: value for key, value in recall.items() if value < RECALL_TARGET}
    if not low:
        return []
    worst = min(low, key=low.get)
    return [
        f"approximate neighbour search reached recall@k {low[worst]:.3f} < {RECALL_TARGET} at {worst} "
        f"({len(low)} field-layers below target); mutual-kNN values there are approximate"
    ]


#: Kept for callers of the old name: the re-centred bootstrap interval (retrieval and RSA use it).
bootstrap_interval = recentred_interval


def _cka_null_record(n_permutations: int) -> dict[str, Any]:
    """The manifest's ``cka_null``: how the CKA metrics' null was measured."""
    return {
        "moments": "exact mean and sd over all n! pairings (closed form, lexprobe.align.cka_null_moments): "
        "null_mean, null_sd and z of every alignment.csv row",
        "permutations": n_permutations,
        "p_value": "empirical over the permutations; layer max over the same permutations"
        if n_permutations
        else "Cantelli's bound 1 / (1 + z^2) from the exact moments; at the best layer summed over layers",
    }


def _moments_only_warnings(summary: pd.DataFrame) -> list[str]:
    """A line per moments-only row whose bound cannot show significance (the bound is loose near z = 4)."""
    if "null" not in summary:
        return []
    weak = summary[(summary["null"] == "moments") & (summary["p_value"] > 0.05)]
    return [
        f"{row.pair} {row.metric}: with no CKA permutation the p-value is Cantelli's bound ({row.p_value:.2g}), "
        "which cannot show significance here; use --cka-permutations 100 for an empirical p"
        for row in weak.itertuples(index=False)
    ]


def _row(pair, layer, metric, value, null, interval, n, moments=None) -> dict[str, Any]:
    stats = summarize_null(value, null, moments)
    low, high = interval
    return {
        "pair": pair,
        "layer": int(layer),
        "metric": metric,
        "value": value,
        **stats,
        "ci_low": float(low),
        "ci_high": float(high),
        "effect": value - stats["null_mean"],
        "n_items": n,
        "n_permutations": len(null),
    }


def _best_layers(
    table: pd.DataFrame, nulls: dict, layers: Sequence[int], suffix: str = "", moments: dict | None = None
) -> list[dict[str, Any]]:
    """Per (pair, metric): the layer with the highest ``value<suffix>`` against the layer-max of its nulls.

    A metric with exact moments and no permutation (CKA with ``cka_permutations=0``) gets the union bound
    instead: p = min(1, Σ_layers Cantelli(v*)) with v* the best value; z the smallest of v*'s per-layer z;
    the null mean the largest per-layer mean (a lower bound of the layer max's mean, so the effect is an
    upper bound of the layer-max effect); no sd. Its ``null`` column says ``moments``.
    """
    moments = moments or {}
    out = []
    for (pair, metric), group in table.groupby(["pair", "metric"], sort=False):
        best = group.loc[group[f"value{suffix}"].idxmax()]
        stacked = np.stack([nulls[(pair, metric + suffix, layer)] for layer in layers], axis=1)
        layer_max = stacked.max(axis=1) if stacked.size else np.array([])
        value = float(best[f"value{suffix}"])
        exact = [moments.get((pair, metric + suffix, layer)) for layer in layers]
        if len(layer_max):
            stats, how = summarize_null(value, layer_max), "permutations"
        elif all(m is not None for m in exact):
            stats, how = _union_bound(value, exact), "moments"
        else:
            stats, how = summarize_null(value, layer_max), "none"
        out.append(
            {
                "pair": pair,
                "metric": metric,
                f"best_layer{suffix}": int(best["layer"]),
                f"value{suffix}": value,
                f"null_max_mean{suffix}": stats["null_mean"],
                f"null_max_sd{suffix}": stats["null_sd"],
                f"z{suffix}": stats["z"],
                f"p_value{suffix}": stats["p_value"],
                f"effect{suffix}": value - stats["null_mean"],
                **({} if suffix else {"ci_low": float(best["ci_low"]), "ci_high": float(best["ci_high"])}),
                **({} if suffix else {"null": how}),
            }
        )
    return out


def _union_bound(value: float, exact: list[tuple[float, float]]) -> dict[str, float]:
    """The layer-max summary from exact per-layer moments alone (see :func:`_best_layers`)."""
    means = np.array([m for m, _ in exact])
    sds = np.array([sd for _, sd in exact])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sds > 0, (value - means) / sds, np.where(value > means, np.inf, 0.0))
    return {
        "null_mean": float(means.max()),
        "null_sd": float("nan"),
        "z": float(z.min()),
        "p_value": float(min(1.0, np.sum(cantelli_bound(z)))),
    }


def _with_controlled_summary(
    summary: pd.DataFrame, table: pd.DataFrame, nulls: dict, layers, moments: dict | None = None
) -> pd.DataFrame:
    """``summary`` with the controlled metric's own best layer and layer-max null beside the raw one, and
    ``effect_kept``: the controlled effect over the raw one."""
    controlled = pd.DataFrame(_best_layers(table, nulls, layers, CONTROLLED, moments))
    merged = summary.merge(controlled, on=["pair", "metric"], how="left", sort=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = merged["effect_ctl"] / merged["effect"]
    merged["effect_kept"] = kept.where(merged["effect"] > 0)
    return merged


def _summarize(table: pd.DataFrame, nulls: dict, layers: Sequence[int], moments: dict | None = None) -> pd.DataFrame:
    summary = pd.DataFrame(_best_layers(table, nulls, layers, moments=moments))
    # effect sizes relative to the reference pair (name:symbol where measured): "how many times weaker"
    for _metric, group in summary.groupby("metric"):
        ref = group[group["pair"] == "name:symbol"]
        if not ref.empty and ref["effect"].iloc[0] > 0:
            summary.loc[group.index, "ratio_to_name_symbol"] = group["effect"] / ref["effect"].iloc[0]
    return summary


def _fill_best_layer_cis(table, summary, embeddings, boots, config, progress=None) -> None:
    rows = summary[summary["metric"].isin(("cka", "dcka"))]
    for number, (index, row) in enumerate(rows.iterrows()):
        if progress:
            progress("intervals at the best layer", number, len(rows))
        a, b = row["pair"].split(":")
        X = preprocess(embeddings[a].layer(row["best_layer"]), config.preprocess)
        Y = preprocess(embeddings[b].layer(row["best_layer"]), config.preprocess)
        outcome = evaluate_metric(row["metric"], X, Y, np.empty((0, len(X)), dtype=np.int64), boots)
        low, high = outcome.interval
        summary.loc[index, ["ci_low", "ci_high"]] = [low, high]
        mask = (
            (table["pair"] == row["pair"]) & (table["metric"] == row["metric"]) & (table["layer"] == row["best_layer"])
        )
        table.loc[mask, ["ci_low", "ci_high"]] = [low, high]
    if progress and len(rows):
        progress("intervals at the best layer", len(rows), len(rows))


def write_alignment(
    result: AlignmentResult, out: str | os.PathLike[str], *, figures: bool = True, umap: bool = True
) -> list[Path]:
    """Write ``alignment.csv``, ``alignment_summary.csv``, ``manifest.json`` and figures into ``out``, atomically.

    ``umap=False`` skips the UMAP figure (the by-layer figure is still drawn); so does a missing umap-learn
    (the extra ``umap``), logged once and recorded in the manifest's ``figures_skipped``. The seconds spent
    drawing go into the manifest's ``timings``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> table = pd.DataFrame({"pair": ["name:symbol"], "layer": [6], "metric": ["mknn"], "value": [0.31]})
    >>> record = {"config": {}, "inputs": {}, "seed": 0}  # run_alignment records the config, ontology and model
    >>> result = AlignmentResult(table, table, embeddings={}, terms=pd.DataFrame(), manifest=record)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(sorted(p.name for p in write_alignment(result, Path(tmp) / "align-hgnc", figures=False)))
    ['alignment.csv', 'alignment_summary.csv', 'manifest.json']
    """

    def draw(directory: Path) -> list[Path]:
        clock = _Clock()
        title = result.manifest["inputs"]["ontology"]["name"]
        k = result.manifest.get("config", {}).get("k")
        written = plots.plot_alignment_by_layer(result.table, directory, title=title, summary=result.summary, k=k)
        if retrieval is not None:
            written += plots.plot_retrieval_by_rank(retrieval, directory, title=title)
        clock.lap("figures")
        if umap:
            if missing is None:
                written += plots.plot_umap_pairs(
                    pairs, directory, titles=titles, seed=result.manifest["seed"], max_points=_UMAP_POINTS
                )
                clock.lap("umap")
            else:
                logger.warning("the UMAP figure is skipped: %s", missing)
                result.manifest.setdefault("figures_skipped", {})["umap"] = missing
        result.manifest.setdefault("timings", {}).update(clock.record)
        return written

    missing = plots.umap_unavailable() if figures and umap else None
    retrieval, pairs, titles = _at_best_layers(result, umap=figures and umap and missing is None)
    tables = {"alignment.csv": result.table, "alignment_summary.csv": result.summary}
    if retrieval is not None:
        tables["retrieval_by_rank.csv"] = retrieval
    return write_result_dir(
        out,
        tables,
        stage="align",
        record=result.manifest,
        figures=draw if figures else None,
    )


def _at_best_layers(result: AlignmentResult, *, umap: bool) -> tuple[pd.DataFrame | None, dict, dict]:
    """What is read at each pair's best layer by the first metric, in one pass over the pairs (one pair's two
    whole layers held at a time, each preprocessed once, as measured): partner retrieval by rank on every item
    (``retrieval_by_rank.csv``; None when the result holds no embeddings) and, with ``umap``, the UMAP figure's
    input, ``_UMAP_POINTS`` items drawn at random (seeded), with the panels' titles."""
    summary = result.summary
    if not result.embeddings or summary.empty or "best_layer" not in summary:
        return None, {}, {}
    first_metric = summary["metric"].iloc[0]
    preprocessing = result.manifest["config"]["preprocess"]
    rng = np.random.default_rng(result.manifest["seed"])
    parts, pairs, titles = [], {}, {}
    for _, row in summary[summary["metric"] == first_metric].iterrows():
        a, b = row["pair"].split(":")
        if a not in result.embeddings or b not in result.embeddings:
            continue
        layer = int(row["best_layer"])
        X = preprocess(result.embeddings[a].layer(layer), preprocessing)
        Y = preprocess(result.embeddings[b].layer(layer), preprocessing)
        table = retrieval_by_rank(X, Y, names=(a, b), layer=layer)  # and its surface-only control beside it
        parts.append(
            with_surface_share(table, result.embeddings[a], result.embeddings[b], seed=result.manifest["seed"])
        )
        if umap:
            keep = np.sort(rng.choice(len(X), size=min(_UMAP_POINTS, len(X)), replace=False))
            pairs[a, b] = (X[keep], Y[keep])
            titles[a, b] = f"{row['pair']} at layer {layer} ({first_metric} {row['value']:.3f})"
    return (pd.concat(parts, ignore_index=True) if parts else None), pairs, titles
