"""Figures, drawn with matplotlib (imported lazily, headless) in one style and a colour-blind-safe palette.

Every figure takes plain tables (pandas DataFrames), arrays and scalars and a folder, and writes a PNG and an
SVG there, atomically. This package imports no stage (``align``, ``lexical``, ``train``, ``predict``): the
stages import it, and do any preprocessing a figure needs before passing the result
(``tests/test_figures.py`` checks both directions).
"""

from __future__ import annotations

from lexprobe.figures._align import (
    UMAP_MISSING,
    cosine_distances32,
    plot_alignment_by_layer,
    plot_retrieval_by_rank,
    plot_umap_pairs,
    umap_unavailable,
)
from lexprobe.figures._labels import label_points, spread_positions
from lexprobe.figures._lexical import plot_lexicalization
from lexprobe.figures._predict import (
    plot_accuracy_by_popularity,
    plot_budget_curve,
    plot_calibration,
    plot_gain_vs_feature,
    plot_gains_by_model,
    plot_popularity_halves,
    plot_reliability,
    plot_task_gains,
)
from lexprobe.figures._style import OKABE_ITO, pyplot, save_figure
from lexprobe.figures._train import plot_accuracy_by_bin, plot_learning_curve, plot_loss_curve

__all__ = [
    "OKABE_ITO",
    "UMAP_MISSING",
    "cosine_distances32",
    "label_points",
    "plot_accuracy_by_bin",
    "plot_accuracy_by_popularity",
    "plot_alignment_by_layer",
    "plot_budget_curve",
    "plot_calibration",
    "plot_gain_vs_feature",
    "plot_gains_by_model",
    "plot_learning_curve",
    "plot_lexicalization",
    "plot_loss_curve",
    "plot_popularity_halves",
    "plot_reliability",
    "plot_retrieval_by_rank",
    "plot_task_gains",
    "plot_umap_pairs",
    "pyplot",
    "save_figure",
    "spread_positions",
    "umap_unavailable",
]
