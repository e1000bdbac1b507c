"""Will fine-tuning generalize? Per-item features, their correlation with fine-tuning outcomes, the predictor.

One module per job:

``_features``
    The features of a task's items, measured with no training: ``alignment`` (per-item mutual kNN at the
    task's best layer; per task its z against the layer-max permutation null), ``lexicalization`` (the
    tokenization part of the lexicalization score, the lower of the two sides; no alignment inside it),
    ``log_popularity``, ``target_tokens``, and the string-template control ``template_share`` (the share of a
    unit's train targets in the item's target family), computed from an items table.
``_common``
    Units (a task on a model) and field pairs (a task and its reverse): every hold-out leaves out a whole
    field pair on every model; a task is identified by the ontology as loaded and its field pair.
``_correlation``
    Spearman correlations pooled and within tasks, and grouped (leave-one-field-pair-out) AUCs, with cluster
    bootstrap intervals over units.
``_estimator``
    The predictor as an estimator (``VerdictPredictor``: ``fit`` / ``predict_proba`` / ``predict``, fitted
    attributes): gains anchored on the kind of task and the majority share, a ridge within each kind,
    verdict probabilities from held-out errors, and the guard against extrapolation (``outside``).
``_predictor``
    Units (a task on a model) and ``Predictor``: a fitted ``VerdictPredictor`` with its calibration and
    evaluations.
``_holdout``
    Hold-out evaluations by field pair, by ontology and by model: the predictor beside the paper's rule, the
    kind mean and the trivial baselines (their cuts: ``fitted_cut``), with proper scores (``baselines.csv``,
    ``baselines_by_kind.csv``). ``_predictor`` imports it, never the other way round.
``_budgets``
    Calibration units at several budgets: a learning curve's snapshots of a retrained unit, one unit each.
``_calibration``
    Calibration sets on disk (the shipped one, ``lexprobe correlate`` outputs).
``_schema``
    The columns of the items and tasks tables (``ITEMS``, ``TASKS``), declared once, and their validation
    where a table enters.
``_correlate`` and ``_predict``
    The ``lexprobe correlate`` and ``lexprobe predict`` stages. ``summary.md`` and the other Markdown are
    rendered by :class:`lexprobe.report.CorrelationMarkdown` in the predictor's words
    (``_correlate.MARKDOWN``); the ``*_markdown`` functions here are its renderers.

Statistics shared with other stages live in :mod:`lexprobe.stats`.
"""

from __future__ import annotations

from lexprobe.predict._budgets import at_recorded_budget, budget_label, curve_units, find_curve_runs
from lexprobe.predict._calibration import load_calibration, read_calibration_manifest, shipped_calibration_dir
from lexprobe.predict._common import (
    FEATURES,
    MEASURED_FEATURES,
    MIN_CLASS_PAIRS,
    VERDICTS,
    field_pair,
    task_identity,
)
from lexprobe.predict._correlate import (
    CorrelationResult,
    correlate,
    evaluate_items,
    evaluation_markdown,
    few_shot_comparison,
    few_shot_markdown,
    kind_markdown,
    majority_rule,
    read_correlate_tables,
    read_items_table,
    read_tasks_table,
    rule_table_markdown,
    summary_markdown,
    summary_table,
    write_correlation,
)
from lexprobe.predict._correlation import (
    CORRELATIONS,
    SURFACE_FEATURES,
    SURFACES,
    auc_comparison,
    correlation_table,
    spearman_pooled_within,
    surface_check,
)
from lexprobe.predict._estimator import (
    COMMIT,
    GENERALIZATION_FEATURES,
    MEMORIZATION_FEATURES,
    KindGainModel,
    VerdictPredictor,
    detection_gain,
    majority_share,
    with_unit_columns,
)
from lexprobe.predict._features import (
    FeatureConfig,
    TaskFeatures,
    family_key,
    measure_features,
    run_features,
    seen_target_share,
    template_share,
)
from lexprobe.predict._holdout import (
    BASELINES,
    KIND_MEAN,
    PAPERS_RULE,
    PREDICTOR_RULE,
    SCHEMES,
    baseline_table,
    best_fallback,
    budget_table,
    evaluate_holdout,
    fitted_cut,
    kind_table,
    loto_summary,
    papers_rule,
    proper_scores,
    reliability_table,
)
from lexprobe.predict._popularity import PopularityResult, popularity_baselines, read_baselines, write_popularity
from lexprobe.predict._predict import (
    PredictionResult,
    new_unit,
    predict_task,
    recorded_evaluation,
    shipped_predictor,
    write_prediction,
)
from lexprobe.predict._predictor import Predictor, fit_predictor, unit_table
from lexprobe.predict._schema import ITEMS, TASKS, Column, TableSchema, validate_table
from lexprobe.report import SUMMARY_HEADER
from lexprobe.stats import cluster_bootstrap, spearman_ci, youden_threshold

__all__ = [
    "COMMIT",
    "SURFACES",
    "SURFACE_FEATURES",
    "surface_check",
    "budget_table",
    "reliability_table",
    "at_recorded_budget",
    "budget_label",
    "curve_units",
    "find_curve_runs",
    "GENERALIZATION_FEATURES",
    "MEMORIZATION_FEATURES",
    "KIND_MEAN",
    "PAPERS_RULE",
    "SCHEMES",
    "KindGainModel",
    "VerdictPredictor",
    "best_fallback",
    "detection_gain",
    "kind_table",
    "majority_share",
    "new_unit",
    "papers_rule",
    "proper_scores",
    "recorded_evaluation",
    "shipped_predictor",
    "with_unit_columns",
    "PopularityResult",
    "popularity_baselines",
    "read_baselines",
    "write_popularity",
    "BASELINES",
    "CORRELATIONS",
    "FEATURES",
    "ITEMS",
    "TASKS",
    "Column",
    "TableSchema",
    "validate_table",
    "read_calibration_manifest",
    "read_correlate_tables",
    "read_tasks_table",
    "MEASURED_FEATURES",
    "MIN_CLASS_PAIRS",
    "PREDICTOR_RULE",
    "SUMMARY_HEADER",
    "VERDICTS",
    "CorrelationResult",
    "FeatureConfig",
    "PredictionResult",
    "Predictor",
    "TaskFeatures",
    "auc_comparison",
    "baseline_table",
    "cluster_bootstrap",
    "correlate",
    "correlation_table",
    "evaluate_holdout",
    "evaluate_items",
    "evaluation_markdown",
    "family_key",
    "few_shot_comparison",
    "few_shot_markdown",
    "kind_markdown",
    "field_pair",
    "fit_predictor",
    "fitted_cut",
    "load_calibration",
    "loto_summary",
    "majority_rule",
    "measure_features",
    "predict_task",
    "read_items_table",
    "rule_table_markdown",
    "run_features",
    "seen_target_share",
    "shipped_calibration_dir",
    "spearman_ci",
    "spearman_pooled_within",
    "summary_markdown",
    "summary_table",
    "task_identity",
    "template_share",
    "unit_table",
    "write_correlation",
    "write_prediction",
    "youden_threshold",
]
