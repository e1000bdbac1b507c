"""Figures of the align stage: metrics by layer, partner retrieval by rank, and a UMAP of each pair's two fields."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import ReportError
from lexprobe.figures._style import METRIC_LABELS, METRIC_TITLES, OKABE_ITO, pyplot, require_columns, save_figure

logger = logging.getLogger(__name__)

#: Why the UMAP figure is not drawn when umap-learn cannot be imported (it is the optional extra ``umap``).
UMAP_MISSING = "umap-learn not installed: pip install 'lexprobe[umap]'"
#: How many items the UMAP figure joins to their partners with a line (a sample, so the lines stay readable).
UMAP_JOINED = 60


def plot_alignment_by_layer(
    table: pd.DataFrame,
    directory: str | os.PathLike[str],
    *,
    title: str = "",
    summary: pd.DataFrame | None = None,
    k: int | None = None,
) -> list[Path]:
    """One panel per metric: value by layer for each pair with its 95% interval as a band, the permutation
    null's mean ± 2 sd as a grey band, the best layer marked with its interval, and, where the table has
    ``value_ctl``, the surface-controlled value as a dashed line of the pair's colour. The legend sits below
    the panels, outside the data.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per pair, metric and layer, with ``pair``, ``metric``, ``layer``, ``value``, ``null_mean`` and
        ``null_sd`` (``alignment.csv``); ``ci_low`` and ``ci_high`` where the run has per-layer intervals.
    directory : path
        Where ``alignment_by_layer.png`` and ``.svg`` go.
    title : str, optional
        Prefix of the figure title (the ontology).
    summary : pandas.DataFrame, optional
        ``alignment_summary.csv`` (``pair, metric, best_layer, value, ci_low, ci_high``): each pair's best layer
        is marked with its interval. Without it no layer is marked.
    k : int, optional
        The mutual-kNN neighbourhood size, shown in that panel's title.

    Returns
    -------
    list of Path
        The PNG and the SVG.

    Examples
    --------
    >>> import tempfile
    >>> layers = np.arange(4)
    >>> table = pd.DataFrame({"pair": "name:symbol", "metric": "mknn", "layer": layers,
    ...                       "value": [0.1, 0.3, 0.2, 0.15], "null_mean": 0.005, "null_sd": 0.001,
    ...                       "ci_low": [0.08, 0.27, 0.18, 0.13], "ci_high": [0.12, 0.33, 0.22, 0.17]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_alignment_by_layer(table, tmp, title="hgnc", k=10)])
    ['alignment_by_layer.png', 'alignment_by_layer.svg']
    """
    require_columns(table, ("pair", "metric", "layer", "value", "null_mean", "null_sd"), "table")
    plt = pyplot()
    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    best = summary.set_index(["pair", "metric"]) if summary is not None and len(summary) else None
    has_ci = {"ci_low", "ci_high"} <= set(table.columns)
    for ax, metric in zip(axes[0], metrics):
        for colour, (pair, group) in zip(OKABE_ITO, table[table["metric"] == metric].groupby("pair", sort=False)):
            _draw_pair(ax, group.sort_values("layer"), colour, pair, metric, best, has_ci)
        ax.set_xlabel("layer (0 = token embeddings)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        words = METRIC_TITLES.get(metric, metric)
        ax.set_title(f"{words} (k = {k})" if metric == "mknn" and k else words)
    _alignment_legend(fig, axes[0][0], "value_ctl" in table, has_ci)
    if title:
        fig.suptitle(f"{title}: alignment by layer", y=1.0)
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    return save_figure(fig, directory, "alignment_by_layer")


def _draw_pair(ax, group: pd.DataFrame, colour: str, pair: str, metric: str, best, has_ci: bool) -> None:
    """One pair's curve, interval, null band, controlled curve and best-layer mark in one panel."""
    layers = group["layer"].to_numpy()
    ax.fill_between(
        layers,
        group["null_mean"] - 2 * group["null_sd"],
        group["null_mean"] + 2 * group["null_sd"],
        color="0.55",
        alpha=0.25,
        linewidth=0,
    )
    if has_ci and group["ci_low"].notna().any():
        ax.fill_between(layers, group["ci_low"], group["ci_high"], color=colour, alpha=0.22, linewidth=0)
    ax.plot(layers, group["value"], color=colour, marker="o", markersize=2.5, linewidth=1.4, label=pair)
    if "value_ctl" in group:
        ax.plot(layers, group["value_ctl"], color=colour, linestyle="--", linewidth=1.1)
    if best is not None and (pair, metric) in best.index:
        row = best.loc[(pair, metric)]
        layer, value = int(row["best_layer"]), float(row["value"])
        low, high = row.get("ci_low", np.nan), row.get("ci_high", np.nan)
        yerr = None if pd.isna(low) or pd.isna(high) else [[value - low], [high - value]]
        ax.errorbar(
            [layer],
            [value],
            yerr=yerr,
            color=colour,
            marker="*",
            markersize=10,
            capsize=3,
            markeredgecolor="k",
            markeredgewidth=0.5,
            linewidth=1.2,
            zorder=5,
        )


def _alignment_legend(fig, ax, controlled: bool, has_ci: bool) -> None:
    """The legend of the by-layer figure, below the panels: the pairs, then what each mark means."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color="0.55", alpha=0.35, linewidth=0))
    labels.append("permutation null, mean ± 2 sd")
    if has_ci:
        handles.append(Patch(color=OKABE_ITO[0], alpha=0.3, linewidth=0))
        labels.append("95% interval")
    handles.append(Line2D([], [], color="0.3", marker="*", linestyle="none", markersize=9))
    labels.append("best layer, with its interval")
    if controlled:
        handles.append(Line2D([], [], color="0.3", linestyle="--"))
        labels.append("length and digits regressed out")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False, fontsize=8)


def plot_retrieval_by_rank(table: pd.DataFrame, directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """Partner retrieval by rank: for each pair and direction, the share of items whose partner is among
    their k nearest items of the other field (k = 1 ... 100, log axis), against chance k / n and, where the
    table has ``surface_share``, the surface-form control (dash-dot, thinner: the same retrieval from each
    item's token count, digit and punctuation share alone, the mean of the two directions).

    Parameters
    ----------
    table : pandas.DataFrame
        ``retrieval_by_rank.csv``: ``pair, layer, direction, k, share, chance`` (one row per k), optionally
        ``surface_share`` (:func:`lexprobe.align._retrieval.with_surface_share`).
    directory : path
        Where ``retrieval_by_rank.png`` and ``.svg`` go.
    title : str, optional
        Prefix of the figure title (the ontology).

    Returns
    -------
    list of Path
        The PNG and the SVG.

    Examples
    --------
    >>> import tempfile
    >>> ks = np.arange(1, 11)
    >>> table = pd.DataFrame({"pair": "name:symbol", "layer": 4, "direction": "name -> symbol", "k": ks,
    ...                       "share": np.minimum(1, 0.2 + 0.05 * ks), "chance": ks / 2000,
    ...                       "surface_share": 0.01 * ks})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in plot_retrieval_by_rank(table, tmp)])
    ['retrieval_by_rank.png', 'retrieval_by_rank.svg']
    """
    require_columns(table, ("pair", "layer", "direction", "k", "share", "chance"), "table")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for colour, (pair, group) in zip(OKABE_ITO, table.groupby("pair", sort=False)):
        for style, (direction, part) in zip(("-", "--"), group.groupby("direction", sort=False)):
            part = part.sort_values("k")
            label = f"{direction} (layer {int(part['layer'].iloc[0])})"
            ax.plot(part["k"], part["share"], color=colour, linestyle=style, linewidth=1.5, label=label)
        if "surface_share" in group and group["surface_share"].notna().any():
            surface = group.groupby("k", sort=True)["surface_share"].mean()
            ax.plot(
                surface.index,
                surface.to_numpy(),
                color=colour,
                linestyle="-.",
                linewidth=0.9,
                label=f"{pair}: surface form only",
            )
    chance = table.drop_duplicates("k").sort_values("k")
    ax.plot(chance["k"], chance["chance"], color="0.45", linestyle=":", linewidth=1.2, label="chance, k / n")
    ax.set_xscale("log")
    ax.set_xlabel("k (partner among the k nearest of the other field)")
    ax.set_ylabel("share of items")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    heading = "Partner retrieval by rank at each pair's best layer"
    ax.set_title(f"{title}: {heading}" if title else heading, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, directory, "retrieval_by_rank")


def _cached_umap():
    """umap-learn, with its compiled functions cached on disk between runs.

    umap-learn compiles its Numba functions without ``cache=True``, which costs about 6 s in every new
    process; enabling the cache (a public method of Numba's dispatchers) before they first compile makes
    later processes load them instead. A dispatcher that cannot cache is left as it is.
    """
    try:
        import umap
        import umap.layouts
        import umap.umap_
        import umap.utils
    except ImportError as exc:
        raise ImportError(f"the UMAP figure cannot be drawn: {UMAP_MISSING}") from exc

    if not getattr(umap, "_lexprobe_cached", False):
        try:
            from numba.core.caching import NullCache
            from numba.core.registry import CPUDispatcher
        except ImportError:  # another Numba layout: umap compiles in each process, as it does by itself
            return umap
        for module in (umap.umap_, umap.layouts, umap.utils):
            for value in list(vars(module).values()):
                if isinstance(value, CPUDispatcher) and isinstance(getattr(value, "_cache", None), NullCache):
                    try:
                        value.enable_caching()
                    except Exception:  # noqa: BLE001 - a dispatcher that cannot cache compiles as before
                        logger.debug("numba cannot cache %s", getattr(value, "__name__", value))
        umap._lexprobe_cached = True
    return umap


def umap_unavailable() -> str | None:
    """Why the UMAP figure cannot be drawn here (umap-learn, the extra ``umap``, is not importable), or None.

    Examples
    --------
    Where umap-learn cannot be imported (here made so by hiding it):

    >>> import sys
    >>> from unittest import mock
    >>> with mock.patch.dict(sys.modules, {"umap": None}):
    ...     print(umap_unavailable())
    umap-learn not installed: pip install 'lexprobe[umap]'
    """
    try:
        _cached_umap()
    except ImportError:
        return UMAP_MISSING
    return None


def cosine_distances32(Z: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances 1 - cos(z_i, z_j) of the rows of Z, by one BLAS product, clipped at 0.

    Parameters
    ----------
    Z : array of shape (n_items, n_features)

    Returns
    -------
    array of shape (n_items, n_items), float32

    Examples
    --------
    >>> cosine_distances32(np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])).tolist()
    [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]
    """
    Z = np.asarray(Z, dtype=np.float32)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    Zn = Z / np.where(norms > 0, norms, 1.0)
    D = 1.0 - Zn @ Zn.T
    np.clip(D, 0.0, 2.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def _umap_panel(
    ax: Any, umap: Any, X: np.ndarray, Y: np.ndarray, fields: tuple[str, str], rng: Any, seed: int, max_points: int
) -> tuple[int, int]:
    """One pair's UMAP panel: a random sample of items and their partners, coloured by field, with lines joining
    :data:`UMAP_JOINED` of them; how many items and how many lines it drew."""
    import warnings

    from matplotlib.collections import LineCollection

    keep = np.sort(rng.choice(len(X), size=min(max_points, len(X)), replace=False))
    distances = cosine_distances32(np.vstack([X[keep], Y[keep]]))
    reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, n_epochs=200, metric="precomputed", random_state=seed, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="using precomputed metric")
        points = reducer.fit_transform(distances)
    m = len(keep)
    ax.scatter(points[:m, 0], points[:m, 1], s=3, color=OKABE_ITO[0], alpha=0.6, label=fields[0])
    ax.scatter(points[m:, 0], points[m:, 1], s=3, color=OKABE_ITO[1], alpha=0.6, label=fields[1])
    joined = np.sort(rng.choice(m, size=min(UMAP_JOINED, m), replace=False))
    segments = np.stack([points[joined], points[m + joined]], axis=1)
    ax.add_collection(LineCollection(segments, colors="0.2", linewidths=0.45, alpha=0.55, zorder=3))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, markerscale=3, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2)
    return m, len(joined)


def plot_umap_pairs(
    pairs: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    directory: str | os.PathLike[str],
    *,
    titles: Mapping[tuple[str, str], str] | None = None,
    seed: int = 0,
    max_points: int = 1000,
) -> list[Path]:
    """UMAP of each pair's two fields in one panel, coloured by field, with lines joining a random sample of
    items to their partners (:data:`UMAP_JOINED`): short lines where partners sit together, long ones where
    the two fields form separate clouds.

    Parameters
    ----------
    pairs : mapping of (field_a, field_b) -> (X, Y)
        For each pair of fields, their embeddings as arrays of shape (n_items, n_features), row ``i`` of
        ``X`` the partner of row ``i`` of ``Y``, already preprocessed as the measurement was (the align stage
        passes each pair's best layer).
    directory : path
        Where ``umap_pairs.png`` and ``.svg`` go.
    titles : mapping of (field_a, field_b) -> str, optional
        Each panel's title (default ``"field_a:field_b"``).
    seed : int, default 0
        Seeds the choice of items and UMAP.
    max_points : int, default 1000
        At most this many items (and as many partners) per panel, drawn at random.

    Returns
    -------
    list of Path
        The PNG and the SVG.

    Raises
    ------
    ImportError
        umap-learn is not installed (:func:`umap_unavailable` says so without raising).
    ReportError
        ``pairs`` is empty, or an ``X`` and its ``Y`` are not 2-D arrays of the same shape.

    Notes
    -----
    The cosine distances are computed once by BLAS and given to UMAP as a precomputed matrix (UMAP's own
    cosine metric calls a function per pair of points); UMAP's compiled functions are cached between runs.

    Examples
    --------
    The inputs are checked before UMAP is imported (a run of UMAP itself takes seconds):

    >>> X = np.random.default_rng(0).normal(size=(50, 8))
    >>> plot_umap_pairs({("name", "symbol"): (X, X[:, :4])}, "figures")
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.ReportError: the embeddings of name:symbol must be two 2-D arrays of the same shape ...
    """
    if not pairs:
        raise ReportError("`pairs` is empty: the UMAP figure needs at least one pair of fields")
    for (a, b), (X, Y) in pairs.items():
        if np.ndim(X) != 2 or np.shape(X) != np.shape(Y) or len(X) < 2:
            raise ReportError(
                f"the embeddings of {a}:{b} must be two 2-D arrays of the same shape with 2 rows or more, "
                f"got {np.shape(X)} and {np.shape(Y)}"
            )
    umap = _cached_umap()
    plt = pyplot()
    titles = titles or {}
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.0 * len(pairs), 3.8), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, ((a, b), (X, Y)) in zip(axes[0], pairs.items()):
        kept, joined = _umap_panel(ax, umap, np.asarray(X), np.asarray(Y), (a, b), rng, seed, max_points)
        ax.set_title(titles.get((a, b), f"{a}:{b}"), fontsize=9)
    fig.suptitle(
        f"UMAP of items and their partners ({kept} items each); lines join {joined} partners drawn at random",
        y=1.0,
    )
    fig.tight_layout()
    return save_figure(fig, directory, "umap_pairs")
