"""Figures, drawn with matplotlib (imported lazily, headless) in one style and a colour-blind-safe palette."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lexprobe.align import AlignmentResult
    from lexprobe.lexical import LexicalResult

__all__ = ["OKABE_ITO", "plot_alignment_by_layer", "plot_lexicalization", "plot_umap_pairs", "save_figure"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

_METRIC_LABELS = {
    "mknn": "mutual kNN (k neighbours shared)",
    "cka": "linear CKA",
    "dcka": "debiased CKA",
    "retrieval": "retrieval hit rate (held out)",
    "rsa": "RSA (Spearman of distances)",
}


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("figures need matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 9,
            "svg.hashsalt": "lexprobe",
            "svg.fonttype": "none",
        }
    )
    return plt


def save_figure(fig, directory: str | os.PathLike[str], stem: str) -> list[Path]:
    """Save ``fig`` as PNG and SVG in ``directory`` (atomically) and close it."""
    from lexprobe.runs import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        target = directory / f"{stem}.{ext}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None)
        paths.append(target)
    _pyplot().close(fig)
    return paths


def plot_alignment_by_layer(table: pd.DataFrame, directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """One panel per metric: value by layer for each pair, with the permutation null's mean ± 2 sd as a band."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for colour, (pair, group) in zip(OKABE_ITO, table[table["metric"] == metric].groupby("pair", sort=False)):
            group = group.sort_values("layer")
            ax.plot(group["layer"], group["value"], color=colour, marker="o", markersize=2.5, label=pair)
            low = group["null_mean"] - 2 * group["null_sd"]
            high = group["null_mean"] + 2 * group["null_sd"]
            ax.fill_between(group["layer"], low, high, color=colour, alpha=0.18, linewidth=0)
        ax.set_xlabel("layer (0 = token embeddings)")
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
        ax.set_title(metric)
    axes[0][0].legend(frameon=False, title="pair (band: null ±2 sd)")
    if title:
        fig.suptitle(f"{title}: alignment by layer", y=1.02)
    return save_figure(fig, directory, "alignment_by_layer")


def plot_umap_pairs(
    result: AlignmentResult, directory: str | os.PathLike[str], *, seed: int = 0, max_points: int = 1000
) -> list[Path]:
    """UMAP of each pair's two fields at the pair's best layer (by the first metric), coloured by field."""
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is a dependency
        raise ImportError("the UMAP figure needs umap-learn: pip install umap-learn") from exc
    from lexprobe.align._metrics import preprocess

    plt = _pyplot()
    summary = result.summary
    first_metric = summary["metric"].iloc[0]
    chosen = summary[summary["metric"] == first_metric]
    preprocessing = result.manifest["config"]["preprocess"]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.0 * len(chosen), 3.8), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, (_, row) in zip(axes[0], chosen.iterrows()):
        a, b = row["pair"].split(":")
        layer = int(row["best_layer"])
        X = preprocess(result.embeddings[a].layer(layer), preprocessing)
        Y = preprocess(result.embeddings[b].layer(layer), preprocessing)
        keep = np.sort(rng.choice(len(X), size=min(max_points, len(X)), replace=False))
        both = np.vstack([X[keep], Y[keep]]).astype(np.float32)
        reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed, n_jobs=1)
        points = reducer.fit_transform(both)
        m = len(keep)
        ax.scatter(points[:m, 0], points[:m, 1], s=3, color=OKABE_ITO[0], alpha=0.6, label=a)
        ax.scatter(points[m:, 0], points[m:, 1], s=3, color=OKABE_ITO[1], alpha=0.6, label=b)
        ax.set_title(f"{row['pair']} at layer {layer} ({first_metric} {row['value']:.3f})")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(frameon=False, markerscale=3)
    fig.suptitle(f"UMAP of items and their partners ({len(keep)} items each)", y=1.02)
    return save_figure(fig, directory, "umap_pairs")


def plot_lexicalization(result: LexicalResult, directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """Three figures: per-field score distributions, tokens per item by field, probe accuracy by layer."""
    plt = _pyplot()
    items = result.items
    fields = list(dict.fromkeys(items["field"]))
    colours = dict(zip(fields, OKABE_ITO))
    prefix = f"{title}: " if title else ""
    written: list[Path] = []

    parts = [c for c in ("tokenization_score", "embedding_score", "score") if c in items and items[c].notna().any()]
    fig, axes = plt.subplots(1, len(parts), figsize=(3.6 * len(parts), 3.4), squeeze=False)
    for ax, column in zip(axes[0], parts):
        data = [items.loc[items["field"] == f, column].dropna().to_numpy() for f in fields]
        shown = [(f, d) for f, d in zip(fields, data) if len(d)]
        box = ax.boxplot(
            [d for _, d in shown], patch_artist=True, widths=0.6, showfliers=False, medianprops={"color": "black"}
        )
        ax.set_xticks(range(1, len(shown) + 1), [f for f, _ in shown])
        for patch, (f, _) in zip(box["boxes"], shown):
            patch.set_facecolor(colours[f])
            patch.set_alpha(0.6)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"{column.replace('_', ' ')} (0 to 1)")
        ax.set_title(column.replace("_", " "))
    fig.suptitle(f"{prefix}lexicalization per item, by field", y=1.02)
    written += save_figure(fig, directory, "lexicalization_distributions")

    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    top = int(items["n_tokens"].max())
    bins = np.arange(0.5, top + 1.5)
    for f in fields:
        counts = items.loc[items["field"] == f, "n_tokens"]
        ax.hist(counts, bins=bins, alpha=0.55, color=colours[f], label=f"{f} (mean {counts.mean():.1f})")
    ax.set_xlabel("tokens per item (model tokenizer)")
    ax.set_ylabel("items")
    ax.legend(frameon=False)
    ax.set_title(f"{prefix}tokens per item")
    written += save_figure(fig, directory, "tokens_per_item")

    layers = result.layers
    if not layers.empty and layers["probe_accuracy"].notna().any():
        fig, ax = plt.subplots(figsize=(5.6, 3.6))
        for f, group in layers.dropna(subset=["probe_accuracy"]).groupby("field", sort=False):
            group = group.sort_values("layer")
            ax.plot(group["layer"], group["probe_accuracy"], color=colours[f], marker="o", markersize=2.5, label=f)
        baseline = layers["probe_baseline"].dropna()
        if len(baseline):
            ax.axhline(baseline.iloc[0], color="#555555", linestyle="--", linewidth=1, label="majority class")
        ax.set_xlabel("layer (0 = token embeddings)")
        ax.set_ylabel("category probe accuracy (cross-validated)")
        ax.set_ylim(0, 1)
        ax.legend(frameon=False)
        ax.set_title(f"{prefix}semantic category from each field's embeddings")
        written += save_figure(fig, directory, "probe_by_layer")
    return written
