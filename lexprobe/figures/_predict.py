"""Figures of the correlate and popularity stages: gains against features, per task and model, calibration."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lexprobe.figures._labels import label_points
from lexprobe.figures._style import (
    FEATURE_LABELS,
    OKABE_ITO,
    SPLIT_LABELS,
    error_bars,
    pyplot,
    require_columns,
    save_figure,
    task_labels,
)


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


#: Points whose gain is within this of zero are not labelled: the pile at zero gain would only hide the rest.
_LABEL_GAIN = 0.01


def _label_gains(ax, x: np.ndarray, y: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> str:
    """Label (beside the axes, in the colour of their series) the points whose gain is above ``_LABEL_GAIN``
    in size; return a note saying how many tasks were left unlabelled."""
    moved = np.isfinite(x) & np.isfinite(y) & (np.abs(y) > _LABEL_GAIN)
    label_points(ax, x[moved], y[moved], labels[moved], colors=colours[moved])
    quiet = len(set(labels) - set(labels[moved]))
    if not quiet:
        return ""
    return f"not labelled: {quiet} of {len(set(labels))} tasks, no gain above {_LABEL_GAIN}"


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

    Examples
    --------
    >>> import tempfile
    >>> items = pd.DataFrame({"label": "hgnc name-to-symbol", "split": ["train", "withheld"] * 4,
    ...                       "bin": [0, 0, 0, 0, 1, 1, 1, 1], "baseline_correct": [0, 0, 0, 0, 1, 0, 0, 1],
    ...                       "tuned_correct": [1, 0, 1, 0, 1, 1, 1, 1]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_accuracy_by_popularity(items, tmp)])
    ['accuracy_by_popularity.png', 'accuracy_by_popularity.svg']
    """
    require_columns(items, ("split", "bin", "baseline_correct", "tuned_correct"), "items")
    plt = pyplot()
    frame = items.assign(
        _label=task_labels(items),
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

    Examples
    --------
    >>> import tempfile
    >>> rng = np.random.default_rng(0)
    >>> items = pd.DataFrame({"label": "hgnc name-to-symbol", "split": "withheld",
    ...                       "lexicalization": rng.random(40), "gain": rng.choice([0, 1], 40)})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_gain_vs_feature(items, "lexicalization", directory=tmp)])
    ['gain_vs_lexicalization.png', 'gain_vs_lexicalization.svg']
    """
    require_columns(items, ("split", "gain", feature), "items")
    plt = pyplot()
    chosen = items[items["split"] == split].dropna(subset=[feature, "gain"])
    labels = task_labels(chosen)
    fig, ax = plt.subplots(figsize=(5.8, 3.8))
    for i, label in enumerate(dict.fromkeys(labels)):
        task = chosen[labels == label]
        stats = _binned_gain(task[feature].astype(float), task["gain"])
        y = stats["mean"].to_numpy()
        drawn = ax.errorbar(
            stats["x"],
            y,
            yerr=error_bars(y, stats["ci_low"].to_numpy(), stats["ci_high"].to_numpy()),
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
    ax.set_xlabel(xlabel or FEATURE_LABELS.get(feature, feature.replace("_", " ")))
    ax.set_ylabel("mean gain per item (tuned − baseline; 95% CI)")
    prefix = f"{title}: " if title else ""
    ax.set_title(f"{prefix}{SPLIT_LABELS.get(split, split)} gain by {feature.replace('_', ' ')}")
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

    Notes
    -----
    Points with a gain above 0.01 in size are named beside the axes as in :func:`plot_calibration`; the
    title counts the tasks left unnamed.

    Examples
    --------
    >>> import tempfile
    >>> tasks = pd.DataFrame({"label": ["hgnc name-to-symbol", "go id-to-name"], "alignment_z": [40.0, 3.0],
    ...                       "memorization_gain": [0.9, 0.6], "memorization_gain_ci_low": [0.8, 0.5],
    ...                       "memorization_gain_ci_high": [0.95, 0.7], "generalization_gain": [0.2, 0.0],
    ...                       "generalization_gain_ci_low": [0.1, -0.02], "generalization_gain_ci_high": [0.3, 0.02]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_task_gains(tasks, "alignment_z", tmp)])
    ['task_gains_alignment_z.png', 'task_gains_alignment_z.svg']
    """
    gains = ("memorization_gain", "generalization_gain")
    require_columns(tasks, (feature, *gains, *(f"{g}_ci_{s}" for g in gains for s in ("low", "high"))), "tasks")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    x = tasks[feature].astype(float).to_numpy()
    labels = task_labels(tasks).to_numpy(str)
    for colour, marker, gain in zip(OKABE_ITO, ("o", "s"), gains):
        y = tasks[gain].astype(float).to_numpy()
        err = error_bars(y, tasks[f"{gain}_ci_low"].to_numpy(float), tasks[f"{gain}_ci_high"].to_numpy(float))
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
    ax.axhline(0, color="#888888", linewidth=0.8)
    ax.set_xlabel(xlabel or FEATURE_LABELS.get(feature, feature.replace("_", " ")))
    ax.set_ylabel("gain in exact-match accuracy (tuned − baseline; 95% CI)")
    ax.legend(frameon=False, loc="best")
    both = np.concatenate([tasks[g].astype(float).to_numpy() for g in gains])
    colours = np.repeat(np.array(OKABE_ITO[:2], dtype=object), len(tasks))
    note = _label_gains(ax, np.concatenate([x, x]), both, np.concatenate([labels, labels]), colours)
    ax.set_title(f"gain of each task by {feature.replace('_', ' ')}" + (f"\n({note})" if note else ""))
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

    Examples
    --------
    >>> import tempfile
    >>> tasks = pd.DataFrame({"label": "hgnc name-to-symbol", "model": ["smollm2", "qwen"],
    ...                       "memorization_gain": [0.9, 0.95], "memorization_gain_ci_low": [0.8, 0.9],
    ...                       "memorization_gain_ci_high": [0.95, 0.98], "generalization_gain": [0.2, 0.3],
    ...                       "generalization_gain_ci_low": [0.1, 0.2], "generalization_gain_ci_high": [0.3, 0.4]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_gains_by_model(tasks, tmp)])
    ['gains_by_model.png', 'gains_by_model.svg']
    """
    gains = ("memorization_gain", "generalization_gain")
    require_columns(
        tasks, ("label", "model", *gains, *(f"{g}_ci_{s}" for g in gains for s in ("low", "high"))), "tasks"
    )
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
            err = error_bars(value, part[f"{gain}_ci_low"].to_numpy(float), part[f"{gain}_ci_high"].to_numpy(float))
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
    Notes
    -----
    Each point whose measured gain is above 0.01 in size is named in a column beside the axes, in its split's
    colour, joined to it by a thin line; the rows keep the points' order and are spaced so that no two
    labels overlap (:func:`lexprobe.figures.label_points`). The rest, a pile at zero gain, are counted in the
    title rather than named (``loto.csv`` names them).

    Examples
    --------
    >>> import tempfile
    >>> loto = pd.DataFrame({"label": ["hgnc name-to-symbol", "go id-to-name"] * 2,
    ...                      "split": ["train", "train", "withheld", "withheld"],
    ...                      "predicted_gain": [0.8, 0.5, 0.15, 0.0], "predicted_ci_low": [0.6, 0.3, 0.0, -0.1],
    ...                      "predicted_ci_high": [0.9, 0.7, 0.3, 0.1], "measured_gain": [0.9, 0.6, 0.2, 0.0],
    ...                      "measured_ci_low": [0.8, 0.5, 0.1, 0.0], "measured_ci_high": [0.95, 0.7, 0.3, 0.02]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_calibration(loto, tmp)])
    ['predictor_calibration.png', 'predictor_calibration.svg']
    """
    columns = [f"{w}_{c}" for w in ("predicted", "measured") for c in ("gain", "ci_low", "ci_high")]
    require_columns(loto, ("split", *columns), "loto")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    for i, (split, group) in enumerate(loto.groupby("split", sort=True)):
        x = group["predicted_gain"].to_numpy(float)
        y = group["measured_gain"].to_numpy(float)
        drawn = ax.errorbar(
            x,
            y,
            xerr=error_bars(x, group["predicted_ci_low"].to_numpy(float), group["predicted_ci_high"].to_numpy(float)),
            yerr=error_bars(y, group["measured_ci_low"].to_numpy(float), group["measured_ci_high"].to_numpy(float)),
            color=OKABE_ITO[i % len(OKABE_ITO)],
            marker="o",
            markersize=4,
            capsize=2,
            linestyle="none",
            label=SPLIT_LABELS.get(str(split), str(split)),
        )
        for bars in drawn[2]:  # the predictions' wide intervals would otherwise hide the points
            bars.set_alpha(0.4)
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
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    splits = sorted(loto["split"].unique())
    colours = loto["split"].map({s: OKABE_ITO[i % len(OKABE_ITO)] for i, s in enumerate(splits)}).to_numpy(object)
    x, y = loto["predicted_gain"].to_numpy(float), loto["measured_gain"].to_numpy(float)
    note = _label_gains(ax, x, y, task_labels(loto).to_numpy(str), colours)
    ax.set_title("predictor calibration" + (f"\n({note})" if note else ""))
    return save_figure(fig, directory, stem)


def plot_popularity_halves(tasks: pd.DataFrame, directory: str | os.PathLike[str], *, shots: int = 0) -> list[Path]:
    """Baseline accuracy on the less and the more popular half of each task's items, one panel per model.

    Parameters
    ----------
    tasks : pandas.DataFrame
        One row per task and model (``popularity_tasks.csv``): ``model``, ``label``, ``accuracy_less_popular``
        and ``accuracy_more_popular``.
    directory : path
        Where ``popularity_halves.png`` and ``.svg`` go.
    shots : int, default 0
        How many examples the baseline prompt held (0: zero-shot), for the axis label.

    Returns
    -------
    list of Path
        The PNG and the SVG; none when ``tasks`` is empty.

    Examples
    --------
    >>> import tempfile
    >>> tasks = pd.DataFrame({"model": "smollm2", "label": ["hgnc name-to-symbol", "go id-to-name"],
    ...                       "accuracy_less_popular": [0.05, 0.0], "accuracy_more_popular": [0.4, 0.01]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_popularity_halves(tasks, tmp, shots=3)])
    ['popularity_halves.png', 'popularity_halves.svg']
    """
    if tasks.empty:
        return []
    require_columns(tasks, ("model", "label", "accuracy_less_popular", "accuracy_more_popular"), "tasks")
    plt = pyplot()
    models = list(dict.fromkeys(tasks["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        part = tasks[tasks["model"] == model].reset_index(drop=True)
        y = np.arange(len(part))
        ax.barh(y - 0.2, part["accuracy_less_popular"], height=0.4, color=OKABE_ITO[1], label="less popular half")
        ax.barh(y + 0.2, part["accuracy_more_popular"], height=0.4, color=OKABE_ITO[0], label="more popular half")
        ax.set_yticks(y, part["label"], fontsize=8)
        ax.set_xlabel(f"baseline accuracy ({shots}-shot)" if shots else "baseline accuracy (zero-shot)")
        ax.set_title(model, fontsize=9)
        ax.set_xlim(0, 1)
    axes[0][0].legend(frameon=False, fontsize=7, loc="lower right")
    return save_figure(fig, directory, "popularity_halves")


def plot_reliability(
    table: pd.DataFrame, directory: str | os.PathLike[str], *, stem: str = "reliability"
) -> list[Path]:
    """Reliability diagram: how often a verdict was measured against the probability a rule gave it, held out.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per hold-out scheme, rule and probability bin: ``held_out_by``, ``rule``, ``mean_probability``,
        ``observed`` (share of those verdicts measured) and ``n`` (unit-verdict pairs in the bin), as
        :func:`lexprobe.predict.reliability_table` makes it from ``holdout.csv``.
    directory : path
    stem : str, default "reliability"

    Returns
    -------
    list of Path
        The PNG and the SVG: one panel per scheme, a line per rule, marker area by count, the diagonal.

    Examples
    --------
    >>> import tempfile
    >>> table = pd.DataFrame({"held_out_by": "field pair", "rule": "predictor", "mean_probability": [0.1, 0.5, 0.9],
    ...                       "observed": [0.0, 0.6, 0.85], "n": [12, 5, 9]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_reliability(table, tmp)])
    ['reliability.png', 'reliability.svg']
    """
    require_columns(table, ("held_out_by", "rule", "mean_probability", "observed", "n"), "reliability table")
    plt = pyplot()
    schemes = list(dict.fromkeys(table["held_out_by"]))
    fig, axes = plt.subplots(1, len(schemes), figsize=(3.4 * len(schemes), 3.6), squeeze=False, sharey=True)
    rules = list(dict.fromkeys(table["rule"]))
    for ax, scheme in zip(axes[0], schemes):
        ax.plot([0, 1], [0, 1], color="#888888", linestyle="--", linewidth=0.8, label="perfectly calibrated")
        for i, rule in enumerate(rules):
            part = table[(table["held_out_by"] == scheme) & (table["rule"] == rule)].sort_values("mean_probability")
            if part.empty:
                continue
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            ax.plot(part["mean_probability"], part["observed"], color=colour, linewidth=1.0, label=rule)
            ax.scatter(part["mean_probability"], part["observed"], s=6 + 3 * part["n"], color=colour, zorder=3)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_title(f"held out by {scheme}")
        ax.set_xlabel("probability given to a verdict")
    axes[0][0].set_ylabel("share of those verdicts measured")
    axes[0][-1].legend(frameon=False, fontsize=6, loc="upper left")
    return save_figure(fig, directory, stem)


def plot_budget_curve(
    curve: pd.DataFrame,
    measured: pd.DataFrame,
    directory: str | os.PathLike[str],
    *,
    title: str = "",
    stem: str = "budget_curve",
) -> list[Path]:
    """Predicted gains against the budget (exposures per pair), with intervals, beside measured learning curves.

    Parameters
    ----------
    curve : pandas.DataFrame
        The task's predictions: ``exposures``, ``split`` (``train``: memorization, ``withheld``:
        generalization), ``predicted_gain``, ``ci_low``, ``ci_high`` and ``outside`` (bool: a budget the
        calibration does not span for this kind, drawn hollow).
    measured : pandas.DataFrame
        Calibration units' learning curves: ``label``, ``exposures``, ``split``, ``gain`` (may be empty).
    directory : path
    title : str
    stem : str, default "budget_curve"

    Returns
    -------
    list of Path
        The PNG and the SVG, one panel per split, exposures on a log axis.

    Examples
    --------
    >>> import tempfile
    >>> curve = pd.DataFrame({"exposures": [5, 50, 500] * 2, "split": ["train"] * 3 + ["withheld"] * 3,
    ...                       "predicted_gain": [0.3, 0.8, 0.95, 0.0, 0.05, 0.1], "ci_low": [0.2, 0.7, 0.9, 0, 0, 0.0],
    ...                       "ci_high": [0.4, 0.9, 1.0, 0.05, 0.1, 0.2], "outside": [False] * 5 + [True]})
    >>> measured = pd.DataFrame({"label": "hgnc name-to-symbol", "exposures": [5, 50] * 2,
    ...                          "split": ["train", "train", "withheld", "withheld"], "gain": [0.25, 0.85, 0.0, 0.04]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_budget_curve(curve, measured, tmp, title="hgnc name-to-symbol")])
    ['budget_curve.png', 'budget_curve.svg']
    """
    require_columns(curve, ("exposures", "split", "predicted_gain", "ci_low", "ci_high", "outside"), "budget curve")
    require_columns(measured, ("label", "exposures", "split", "gain"), "measured curves")
    plt = pyplot()
    from matplotlib.ticker import ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.4), sharey=True)
    for ax, split in zip(axes, ("train", "withheld")):
        for j, (_, part) in enumerate(measured[measured["split"] == split].groupby("label", sort=True)):
            part = part.sort_values("exposures")
            ax.plot(
                part["exposures"],
                part["gain"],
                color="#AAAAAA",
                linewidth=0.8,
                marker=".",
                label="measured, calibration tasks of this kind" if j == 0 else None,
            )
        mine = curve[curve["split"] == split].sort_values("exposures")
        x, y = mine["exposures"].to_numpy(float), mine["predicted_gain"].to_numpy(float)
        ax.fill_between(
            x, mine["ci_low"].to_numpy(float), mine["ci_high"].to_numpy(float), color=OKABE_ITO[0], alpha=0.2
        )
        ax.plot(x, y, color=OKABE_ITO[0], linewidth=1.4, label="predicted for this task (interval)")
        out = mine["outside"].to_numpy(bool)
        ax.scatter(x[~out], y[~out], color=OKABE_ITO[0], zorder=3, s=18)
        if out.any():
            ax.scatter(x[out], y[out], facecolors="white", edgecolors=OKABE_ITO[1], zorder=3, s=24)
            ax.scatter([], [], facecolors="white", edgecolors=OKABE_ITO[1], label="outside the calibration (fallback)")
        ax.set_xscale("log")
        ax.set_xticks(sorted(set(x) | set(measured["exposures"].astype(float))))
        ax.get_xaxis().set_major_formatter(ScalarFormatter())
        ax.minorticks_off()
        ax.set_xlabel("exposures per pair (log scale)")
        ax.set_title(SPLIT_LABELS[split])
        ax.axhline(0, color="#888888", linewidth=0.6)
    axes[0].set_ylabel("gain (tuned − baseline accuracy)")
    axes[1].legend(frameon=False, fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, directory, stem)
