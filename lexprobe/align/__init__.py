"""Alignment between paired embeddings: metrics, permutation nulls, and the ``lexprobe align`` run."""

from __future__ import annotations

from lexprobe.align._metrics import (
    PREPROCESSING,
    RETRIEVAL_MAPS,
    AlignmentScore,
    CKAAccumulator,
    debiased_cka,
    knn_indices,
    linear_cka,
    mutual_knn,
    mutual_knn_per_item,
    neighbour_overlap,
    preprocess,
    retrieval,
    rsa,
    validate_embeddings,
    validate_pair,
)
from lexprobe.align._null import (
    METRIC_NAMES,
    MetricOutcome,
    cantelli_bound,
    cka_null_moments,
    evaluate_metric,
    evaluate_metrics,
    summarize_null,
)
from lexprobe.align._run import (
    DEFAULT_METRICS,
    AlignmentConfig,
    AlignmentResult,
    default_pairs,
    parse_pair,
    run_alignment,
    write_alignment,
)
from lexprobe.align._surface import (
    SURFACE_ALPHA,
    SURFACE_COVARIATES,
    SURFACE_KEEP,
    explained_share,
    residualize,
    surface_covariates,
    surface_warnings,
)

#: The metrics by CLI name (typed functions returning an :class:`AlignmentScore`, a float with its chance level).
METRICS = {"mknn": mutual_knn, "retrieval": retrieval, "cka": linear_cka, "dcka": debiased_cka, "rsa": rsa}

__all__ = [
    "AlignmentConfig",
    "AlignmentResult",
    "AlignmentScore",
    "CKAAccumulator",
    "DEFAULT_METRICS",
    "METRICS",
    "METRIC_NAMES",
    "MetricOutcome",
    "PREPROCESSING",
    "RETRIEVAL_MAPS",
    "SURFACE_ALPHA",
    "SURFACE_COVARIATES",
    "SURFACE_KEEP",
    "debiased_cka",
    "default_pairs",
    "evaluate_metric",
    "evaluate_metrics",
    "explained_share",
    "knn_indices",
    "linear_cka",
    "mutual_knn",
    "mutual_knn_per_item",
    "neighbour_overlap",
    "parse_pair",
    "preprocess",
    "residualize",
    "retrieval",
    "rsa",
    "run_alignment",
    "summarize_null",
    "cka_null_moments",
    "cantelli_bound",
    "surface_covariates",
    "surface_warnings",
    "validate_embeddings",
    "validate_pair",
    "write_alignment",
]
