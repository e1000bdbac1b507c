"""Figures, drawn with matplotlib (imported lazily, headless) in one style and a colour-blind-safe palette."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lexprobe.align import AlignmentResult
    from lexprobe.lexical import LexicalResult

__all__ = [
    "OKABE_ITO",
    "plot_accuracy_by_popularity",
    "plot_alignment_by_layer",
    "plot_calibration",
    "plot_gain_vs_feature",
    "plot_gains_by_model",
    "plot_lexicalization",
    "plot_task_gains",
    "plot_umap_pairs",
    "cosine_distances32",
    "pyplot",
    "save_figure",
]

logger = logging.getLogger(__name__)

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

_METRIC_LABELS = {
    "mknn": "mutual kNN (k neighbours shared)",
    "cka": "linear CKA",
    "dcka": "debiased CKA",
    "retrieval": "retrieval hit rate (held out)",
    "rsa": "RSA (Spearman of distances)",
}

#: Axis labels (with units) of the features the correlate stage plots gains against.
_FEATURE_LABELS = {
    "alignment": "alignment of source and target (0 to 1)",
    "alignment_z": "alignment z (standard deviations above the permutation null)",
    "alignment_effect": "alignment effect (value minus null mean)",
    "lexicalization": "lexicalization (0 to 1)",
    "source_lexicalization": "source lexicalization (0 to 1)",
    "target_lexicalization": "target lexicalization (0 to 1)",
    "log_popularity": "log popularity",
    "popularity_median": "median popularity of the task's terms",
}

#: Which gain a split measures: training pairs show memorization, withheld pairs generalization.
_SPLIT_LABELS = {"train": "memorization (train)", "withheld": "generalization (withheld)"}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, with lexprobe's figure style set."""
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
    pyplot().close(fig)
    return paths


def plot_alignment_by_layer(table: pd.DataFrame, directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """One panel per metric: value by layer for each pair, with the permutation null's mean ± 2 sd as a band."""
    plt = pyplot()
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


def _cached_umap():
    """umap-learn, with its compiled functions cached on disk between runs.

    umap-learn compiles its Numba functions without ``cache=True``, which costs about 6 s in every new
    process; enabling the cache (a public method of Numba's dispatchers) before they first compile makes
    later processes load them instead. A dispatcher that cannot cache is left as it is.
    """
    import umap
    import umap.layouts
    import umap.umap_
    import umap.utils

    if not getattr(umap, "_lexprobe_cached", False):
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher

        for module in (umap.umap_, umap.layouts, umap.utils):
            for value in list(vars(module).values()):
                if isinstance(value, CPUDispatcher) and isinstance(getattr(value, "_cache", None), NullCache):
                    try:
                        value.enable_caching()
                    except Exception:  # noqa: BLE001 - a dispatcher that cannot cache compiles as before
                        logger.debug("numba cannot cache %s", getattr(value, "__name__", value))
        umap._lexprobe_cached = True
    return umap


def cosine_distances32(Z: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances 1 - cos(z_i, z_j) of the rows of Z, by one BLAS product, clipped at 0."""
    Z = np.asarray(Z, dtype=np.float32)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    Zn = Z / np.where(norms > 0, norms, 1.0)
    D = 1.0 - Zn @ Zn.T
    np.clip(D, 0.0, 2.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def plot_umap_pairs(
    result: AlignmentResult, directory: str | os.PathLike[str], *, seed: int = 0, max_points: int = 1000
) -> list[Path]:
    """UMAP of each pair's two fields at the pair's best layer (by the first metric), coloured by field.

    The cosine distances are computed once by BLAS and given to UMAP as a precomputed matrix (UMAP's own
    cosine metric calls a function per pair of points); UMAP's compiled functions are cached between runs.
    """
    import warnings

    try:
        umap = _cached_umap()
    except ImportError as exc:  # pragma: no cover - umap-learn is a dependency
        raise ImportError("the UMAP figure needs umap-learn: pip install umap-learn") from exc
    from lexprobe.align import preprocess

    plt = pyplot()
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
        distances = cosine_distances32(np.vstack([X[keep], Y[keep]]))
        reducer = umap.UMAP(
            n_neighbors=15, min_dist=0.1, n_epochs=200, metric="precomputed", random_state=seed, n_jobs=1
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="using precomputed metric")
            points = reducer.fit_transform(distances)
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
    plt = pyplot()
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


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    from lexprobe.exceptions import ReportError

    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"`{name}` lacks the column(s) {', '.join(missing)}; it has {', '.join(map(str, frame))}")


def _task_labels(frame: pd.DataFrame) -> pd.Series:
    """The ``label`` column ("hgnc name-to-symbol"), built from ontology and task when absent; with the model
    in brackets when the frame holds several."""
    if "model" in frame and frame["model"].nunique() > 1:
        return _task_labels(frame.drop(columns="model")) + " (" + frame["model"].astype(str) + ")"
    if "label" in frame:
        return frame["label"].astype(str)
    parts = [frame[c].astype(str) for c in ("ontology", "task") if c in frame]
    if not parts:
        return pd.Series("all items", index=frame.index)
    return parts[0].str.cat(parts[1:], sep=" ") if len(parts) > 1 else parts[0]


def _errors(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Asymmetric error-bar lengths; a missing or inverted bound draws no bar on that side."""
    err = np.vstack([y - low, high - y]).astype(float)
    return np.clip(np.nan_to_num(err, nan=0.0), 0, None)


def _annotate(ax, x, y, labels) -> None:
    for xi, yi, text in zip(x, y, labels):
        if np.isfinite(xi) and np.isfinite(yi):
            ax.annotate(text, (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=7, color="#333333")


def plot_accuracy_by_popularity(
    items: pd.DataFrame, directory: str | os.PathLike[str], *, title: str = ""
) -> list[Path]:
    """Exact-match accuracy by popularity bin: baseline (dashed) and tuned (solid), train and withheld.

    One small panel per task (``label``), four to a row, sharing the y axis.

    Parameters
    ----------
    items : pandas.DataFrame
        One row per item and split, with ``split``, ``bin`` (0 = least popular), ``baseline_correct``,
        ``tuned_correct`` and ``label`` (or ``ontology`` and ``task``).
    directory : path
        Where ``accuracy_by_popularity.png`` and ``.svg`` go.
    title : str, optional
        Prefix of the figure title.

    Returns
    -------
    list of Path
        The PNG and the SVG.
    """
    _require(items, ("split", "bin", "baseline_correct", "tuned_correct"), "items")
    plt = pyplot()
    frame = items.assign(
        _label=_task_labels(items),
        baseline=items["baseline_correct"].astype(float),
        tuned=items["tuned_correct"].astype(float),
    )
    labels = list(dict.fromkeys(frame["_label"]))
    n_cols = min(4, len(labels))
    n_rows = -(-len(labels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.3 * n_cols, 2.8 * n_rows + 0.4), squeeze=False, sharey=True)
    colours = {"train": OKABE_ITO[0], "withheld": OKABE_ITO[1]}
    for ax, label in zip(axes.flat, labels):
        task = frame[frame["_label"] == label]
        for split, group in task.groupby("split", sort=True):
            means = group.groupby("bin")[["baseline", "tuned"]].mean()
            colour = colours.get(str(split), OKABE_ITO[2])
            x = means.index.astype(int)
            for which, style, width in (("baseline", "--", 1.0), ("tuned", "-", 1.4)):
                ax.plot(
                    x,
                    means[which],
                    color=colour,
                    linestyle=style,
                    marker="o",
                    markersize=2.5,
                    linewidth=width,
                    label=f"{split}, {which}",
                )
        ax.set_title(label)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("popularity bin (low → high)")
    for ax in axes[:, 0]:
        ax.set_ylabel("exact-match accuracy (0 to 1)")
    for ax in list(axes.flat)[len(labels) :]:
        ax.set_visible(False)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 1.0))
    prefix = f"{title}: " if title else ""
    fig.suptitle(f"{prefix}accuracy by popularity, baseline (dashed) and tuned (solid)", y=1.06)
    fig.tight_layout()
    return save_figure(fig, directory, "accuracy_by_popularity")


def _binned_gain(values: pd.Series, gain: pd.Series, *, max_bins: int = 10) -> pd.DataFrame:
    """Mean gain in up to ``max_bins`` quantile bins of ``values``, with a normal-approximation 95% CI."""
    n_bins = int(min(max_bins, values.nunique()))
    if n_bins < 2:
        codes = pd.Series(0, index=values.index)
    else:
        codes = pd.qcut(values.rank(method="first"), n_bins, labels=False)
    table = pd.DataFrame({"x": values, "gain": gain.astype(float), "bin": codes})
    stats = table.groupby("bin").agg(x=("x", "mean"), mean=("gain", "mean"), sd=("gain", "std"), n=("gain", "size"))
    half = 1.96 * stats["sd"].fillna(0.0) / np.sqrt(stats["n"])
    return stats.assign(ci_low=stats["mean"] - half, ci_high=stats["mean"] + half)


def plot_gain_vs_feature(
    items: pd.DataFrame,
    feature: str,
    *,
    directory: str | os.PathLike[str],
    split: str = "withheld",
    stem: str | None = None,
    xlabel: str | None = None,
    title: str = "",
) -> list[Path]:
    """Mean per-item gain in quantile bins of a feature, one colour per task.

    Parameters
    ----------
    items : pandas.DataFrame
        One row per item, with ``split``, ``gain`` (tuned minus baseline correct: -1, 0 or 1), the
        ``feature`` column and ``label`` (or ``ontology`` and ``task``).
    feature : str
        The column on the x axis (``"lexicalization"``, ``"alignment"``).
    directory : path
        Where the PNG and SVG go.
    split : str, default "withheld"
        Which items: ``"withheld"`` (generalization) or ``"train"`` (memorization).
    stem : str, optional
        File name without extension (default ``gain_vs_<feature>``).
    xlabel : str, optional
        Label of the x axis (default: a known label with units, else the column name).
    title : str, optional
        Prefix of the figure title.

    Returns
    -------
    list of Path
        The PNG and the SVG.

    Notes
    -----
    A gain is -1, 0 or 1, so single items say little: each task's items are cut into up to 10 equal-count
    bins of the feature (ranks break ties) and each bin shows its mean gain at the bin's mean feature value,
    with a normal-approximation 95% interval (mean ± 1.96 sd / sqrt(n)).
    """
    _require(items, ("split", "gain", feature), "items")
    plt = pyplot()
    chosen = items[items["split"] == split].dropna(subset=[feature, "gain"])
    labels = _task_labels(chosen)
    fig, ax = plt.subplots(figsize=(5.8, 3.8))
    for i, label in enumerate(dict.fromkeys(labels)):
        task = chosen[labels == label]
        stats = _binned_gain(task[feature].astype(float), task["gain"])
        y = stats["mean"].to_numpy()
        drawn = ax.errorbar(
            stats["x"],
            y,
            yerr=_errors(y, stats["ci_low"].to_numpy(), stats["ci_high"].to_numpy()),
            color=OKABE_ITO[i % len(OKABE_ITO)],
            marker="o",
            markersize=3,
            capsize=2,
            linewidth=1,
            label=f"{label} (n={len(task)})",
        )
        for bars in drawn[2]:  # lighter intervals keep several tasks' lines readable
            bars.set_alpha(0.5)
    if chosen.empty:
        ax.text(0.5, 0.5, f"no {split} items with a {feature} value", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="task (items)")
    ax.axhline(0, color="#888888", linewidth=0.8)
    ax.set_xlabel(xlabel or _FEATURE_LABELS.get(feature, feature.replace("_", " ")))
    ax.set_ylabel("mean gain per item (tuned − baseline; 95% CI)")
    prefix = f"{title}: " if title else ""
    ax.set_title(f"{prefix}{_SPLIT_LABELS.get(split, split)} gain by {feature.replace('_', ' ')}")
    return save_figure(fig, directory, stem or f"gain_vs_{feature}")


def plot_task_gains(
    tasks: pd.DataFrame,
    feature: str,
    directory: str | os.PathLike[str],
    *,
    stem: str | None = None,
    xlabel: str | None = None,
) -> list[Path]:
    """Memorization and generalization gain of each task against one task-level feature.

    Parameters
    ----------
    tasks : pandas.DataFrame
        One row per task, with the ``feature`` column, ``memorization_gain``, ``generalization_gain``, their
        ``_ci_low`` / ``_ci_high`` bounds and ``label`` (or ``ontology`` and ``task``).
    feature : str
        The column on the x axis (``"alignment_z"``, ``"lexicalization"``).
    directory : path
        Where the PNG and SVG go.
    stem : str, optional
        File name without extension (default ``task_gains_<feature>``).
    xlabel : str, optional
        Label of the x axis (default: a known label with units, else the column name).

    Returns
    -------
    list of Path
        The PNG and the SVG.
    """
    gains = ("memorization_gain", "generalization_gain")
    _require(tasks, (feature, *gains, *(f"{g}_ci_{s}" for g in gains for s in ("low", "high"))), "tasks")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    x = tasks[feature].astype(float).to_numpy()
    labels = _task_labels(tasks).tolist()
    for colour, marker, gain in zip(OKABE_ITO, ("o", "s"), gains):
        y = tasks[gain].astype(float).to_numpy()
        err = _errors(y, tasks[f"{gain}_ci_low"].to_numpy(float), tasks[f"{gain}_ci_high"].to_numpy(float))
        ax.errorbar(
            x,
            y,
            yerr=err,
            color=colour,
            marker=marker,
            markersize=5,
            capsize=2,
            linestyle="none",
            label=gain.replace("_", " "),
        )
        _annotate(ax, x, y, labels)
    ax.axhline(0, color="#888888", linewidth=0.8)
    ax.set_xlabel(xlabel or _FEATURE_LABELS.get(feature, feature.replace("_", " ")))
    ax.set_ylabel("gain in exact-match accuracy (tuned − baseline; 95% CI)")
    ax.set_title(f"gain of each task by {feature.replace('_', ' ')}")
    ax.legend(frameon=False, loc="best")
    return save_figure(fig, directory, stem or f"task_gains_{feature}")


def plot_gains_by_model(
    tasks: pd.DataFrame,
    directory: str | os.PathLike[str],
    *,
    stem: str = "gains_by_model",
) -> list[Path]:
    """Memorization and generalization gain of each task, one bar per model, side by side.

    Parameters
    ----------
    tasks : pandas.DataFrame
        One row per task and model: ``label``, ``model``, ``memorization_gain``, ``generalization_gain`` and
        their ``_ci_low`` / ``_ci_high`` bounds (``tasks.csv`` of ``lexprobe correlate``).
    directory : path
        Where the PNG and SVG go.
    stem : str
        File name without extension.

    Returns
    -------
    list of Path
        The PNG and the SVG.
    """
    gains = ("memorization_gain", "generalization_gain")
    _require(tasks, ("label", "model", *gains, *(f"{g}_ci_{s}" for g in gains for s in ("low", "high"))), "tasks")
    plt = pyplot()
    labels = list(dict.fromkeys(tasks["label"].astype(str)))
    models = list(dict.fromkeys(tasks["model"].astype(str)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(labels) + 1.6), sharey=True)
    height = 0.8 / len(models)
    for ax, gain in zip(axes, gains):
        for m, (model, colour) in enumerate(zip(models, OKABE_ITO)):
            part = tasks[tasks["model"].astype(str) == model].set_index("label")
            part = part.reindex(labels)
            y = np.arange(len(labels)) + (m - (len(models) - 1) / 2) * height
            value = part[gain].to_numpy(float)
            err = _errors(value, part[f"{gain}_ci_low"].to_numpy(float), part[f"{gain}_ci_high"].to_numpy(float))
            ax.barh(y, np.nan_to_num(value), height=height, color=colour, label=model, xerr=err, capsize=2)
        ax.axvline(0, color="#888888", linewidth=0.8)
        ax.set_title(gain.replace("_", " ") + (" (train pairs)" if gain.startswith("mem") else " (withheld pairs)"))
        ax.set_xlabel("tuned − baseline exact-match accuracy (95% CI)")
    axes[0].set_yticks(np.arange(len(labels)), labels)
    axes[0].invert_yaxis()
    axes[1].legend(frameon=False, loc="lower right")
    return save_figure(fig, directory, stem)


def plot_calibration(
    loto: pd.DataFrame, directory: str | os.PathLike[str], *, stem: str = "predictor_calibration"
) -> list[Path]:
    """Predicted against measured gain per task and split, with the y = x diagonal.

    Parameters
    ----------
    loto : pandas.DataFrame
        One row per task and split (leave-one-task-out predictions), with ``predicted_gain``,
        ``predicted_ci_low``, ``predicted_ci_high``, ``measured_gain``, ``measured_ci_low``,
        ``measured_ci_high``, ``split`` (``"train"``: memorization, ``"withheld"``: generalization) and
        ``label``.
    directory : path
        Where the PNG and SVG go.
    stem : str, default "predictor_calibration"
        File name without extension.

    Returns
    -------
    list of Path
        The PNG and the SVG.
    """
    columns = [f"{w}_{c}" for w in ("predicted", "measured") for c in ("gain", "ci_low", "ci_high")]
    _require(loto, ("split", *columns), "loto")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    labels = _task_labels(loto)
    for i, (split, group) in enumerate(loto.groupby("split", sort=True)):
        x = group["predicted_gain"].to_numpy(float)
        y = group["measured_gain"].to_numpy(float)
        ax.errorbar(
            x,
            y,
            xerr=_errors(x, group["predicted_ci_low"].to_numpy(float), group["predicted_ci_high"].to_numpy(float)),
            yerr=_errors(y, group["measured_ci_low"].to_numpy(float), group["measured_ci_high"].to_numpy(float)),
            color=OKABE_ITO[i % len(OKABE_ITO)],
            marker="o",
            markersize=4,
            capsize=2,
            linestyle="none",
            label=_SPLIT_LABELS.get(str(split), str(split)),
        )
        moved = np.abs(y) > 0.01  # label the units that gained; the pile at (0, 0) would be unreadable
        _annotate(ax, x[moved], y[moved], labels[group.index].to_numpy()[moved])
    bounds = loto[columns].to_numpy(float)
    finite = bounds[np.isfinite(bounds)]
    low, high = (min(finite.min(), 0.0), max(finite.max(), 1.0)) if finite.size else (0.0, 1.0)
    pad = 0.05 * (high - low)
    ax.plot(
        [low - pad, high + pad],
        [low - pad, high + pad],
        color="#888888",
        linestyle="--",
        linewidth=0.8,
        label="y = x (perfect calibration)",
    )
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted gain, its field pair held out (interval)")
    ax.set_ylabel("measured gain (tuned − baseline; 95% CI)")
    ax.set_title("predictor calibration")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    return save_figure(fig, directory, stem)
