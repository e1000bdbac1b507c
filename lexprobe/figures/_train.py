"""Figures of the train stage: the loss curve, the learning curve, accuracy by popularity bin."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from lexprobe.figures._style import OKABE_ITO, error_bars, pyplot, require_columns, save_figure


def plot_loss_curve(losses: pd.DataFrame, directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """Training loss per optimiser step, with its running mean over a twentieth of the steps.

    Parameters
    ----------
    losses : pandas.DataFrame
        One row per step, with ``step`` and ``loss`` (``loss.csv``).
    directory : path
        Where ``loss_curve.png`` and ``.svg`` go.
    title : str, optional

    Returns
    -------
    list of Path
        The PNG and the SVG; none when ``losses`` is empty.

    Examples
    --------
    >>> import tempfile
    >>> losses = pd.DataFrame({"step": range(1, 41), "loss": [2.0 / s for s in range(1, 41)]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_loss_curve(losses, tmp, title="hgnc name-to-symbol")])
    ['loss_curve.png', 'loss_curve.svg']
    """
    if losses.empty:
        return []
    require_columns(losses, ("step", "loss"), "losses")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.plot(losses["step"], losses["loss"], color=OKABE_ITO[5], linewidth=0.8, alpha=0.7, label="per step")
    window = max(1, len(losses) // 20)
    smooth = losses["loss"].rolling(window, min_periods=1).mean()
    ax.plot(losses["step"], smooth, color=OKABE_ITO[0], linewidth=1.6, label=f"mean of {window}")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (completion tokens)")
    ax.set_title(title)
    ax.legend(frameon=False)
    return save_figure(fig, directory, "loss_curve")


def plot_learning_curve(
    curve: pd.DataFrame, directory: str | os.PathLike[str], *, ln_n_targets: float, title: str = ""
) -> list[Path]:
    """Accuracy (Wilson 95%) and teacher-forced loss per target against exposures per pair, one line per split.

    Parameters
    ----------
    curve : pandas.DataFrame
        One row per split and point (``learning_curve.csv``): ``split``, ``exposures``, ``accuracy``,
        ``ci_low``, ``ci_high`` and ``loss_mean``.
    directory : path
        Where ``learning_curve.png`` and ``.svg`` go.
    ln_n_targets : float
        ln(number of distinct targets): the loss of a uniform guess, drawn as a reference line.
    title : str, optional

    Returns
    -------
    list of Path
        The PNG and the SVG.

    Examples
    --------
    >>> import math, tempfile
    >>> curve = pd.DataFrame({"split": ["train", "withheld"] * 3, "exposures": [0, 0, 5, 5, 10, 10],
    ...                       "accuracy": [0.0, 0.0, 0.4, 0.0, 0.9, 0.05], "ci_low": [0, 0, 0.25, 0, 0.75, 0.01],
    ...                       "ci_high": [0.1, 0.1, 0.55, 0.1, 0.97, 0.15],
    ...                       "loss_mean": [9.0, 9.1, 3.0, 8.5, 0.4, 8.0]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_learning_curve(curve, tmp, ln_n_targets=math.log(2000))])
    ['learning_curve.png', 'learning_curve.svg']
    """
    require_columns(curve, ("split", "exposures", "accuracy", "ci_low", "ci_high", "loss_mean"), "curve")
    plt = pyplot()
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for colour, (split, g) in zip(OKABE_ITO, curve.groupby("split", sort=False)):
        x = g["exposures"].to_numpy(float)
        y = g["accuracy"].to_numpy(float)
        err = error_bars(y, g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float))
        acc.errorbar(x, y, yerr=err, color=colour, marker="o", markersize=3, capsize=2, linewidth=1.2, label=split)
        loss.plot(x, g["loss_mean"], color=colour, marker="o", markersize=3, linewidth=1.2, label=f"{split} (mean)")
    acc.set_xlabel("exposures per pair (templates x epochs; 0 = base model)")
    acc.set_ylabel("exact-match accuracy (Wilson 95%)")
    acc.set_ylim(-0.02, 1.02)
    acc.set_title(title, fontsize=9)
    acc.legend(frameon=False)
    loss.axhline(ln_n_targets, color="0.4", linestyle="--", linewidth=1)
    loss.text(
        0.98,
        ln_n_targets,
        "ln(number of targets): uniform guess",
        ha="right",
        va="bottom",
        fontsize=7,
        color="0.3",
        transform=loss.get_yaxis_transform(),
    )
    loss.set_xlabel("exposures per pair")
    loss.set_ylabel("loss per target (nats, teacher-forced)")
    loss.set_ylim(bottom=0)
    loss.legend(frameon=False)
    return save_figure(fig, directory, "learning_curve")


def plot_accuracy_by_bin(by_bin: pd.DataFrame, directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """Exact-match accuracy (Wilson 95%) by popularity bin, one panel per split, one line per model.

    Parameters
    ----------
    by_bin : pandas.DataFrame
        One row per split, model and bin: ``split``, ``model`` (baseline or tuned), ``bin``, ``accuracy``,
        ``ci_low`` and ``ci_high``.
    directory : path
        Where ``accuracy_by_bin.png`` and ``.svg`` go.
    title : str, optional
        Prefix of each panel's title.

    Returns
    -------
    list of Path
        The PNG and the SVG; none when ``by_bin`` is empty.

    Examples
    --------
    >>> import tempfile
    >>> by_bin = pd.DataFrame({"split": "withheld", "model": ["baseline", "baseline", "tuned", "tuned"],
    ...                        "bin": [0, 1, 0, 1], "accuracy": [0.0, 0.1, 0.05, 0.3],
    ...                        "ci_low": [0.0, 0.03, 0.01, 0.17], "ci_high": [0.11, 0.26, 0.18, 0.47]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_accuracy_by_bin(by_bin, tmp, title="hgnc")])
    ['accuracy_by_bin.png', 'accuracy_by_bin.svg']
    """
    if by_bin.empty:
        return []
    require_columns(by_bin, ("split", "model", "bin", "accuracy", "ci_low", "ci_high"), "by_bin")
    plt = pyplot()
    splits = list(dict.fromkeys(by_bin["split"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(4.4 * len(splits), 3.2), squeeze=False, sharey=True)
    for ax, s in zip(axes[0], splits):
        for colour, (which, g) in zip(OKABE_ITO, by_bin[by_bin["split"] == s].groupby("model", sort=False)):
            x = g["bin"].astype(int).to_numpy()
            y = g["accuracy"].to_numpy(float)
            # a Wilson bound can sit a rounding error on the wrong side of 0 or 1 accuracy: error_bars clips
            err = error_bars(y, g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float))
            ax.errorbar(x, y, yerr=err, color=colour, marker="o", markersize=3, capsize=2, linewidth=1, label=which)
        ax.set_xlabel("popularity bin (0 = least popular)")
        ax.set_title(f"{title}: {s}" if title else str(s))
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("exact-match accuracy (Wilson 95%)")
    axes[0][0].legend(frameon=False)
    return save_figure(fig, directory, "accuracy_by_bin")
