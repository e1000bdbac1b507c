"""Figures of the align stage: metrics by layer, and a UMAP of each pair's two fields."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lexprobe.exceptions import ReportError
from lexprobe.figures._style import METRIC_LABELS, OKABE_ITO, pyplot, require_columns, save_figure

logger = logging.getLogger(__name__)

#: Why the UMAP figure is not drawn when umap-learn cannot be imported (it is the optional extra ``umap``).
UMAP_MISSING = "umap-learn not installed: pip install 'lexprobe[umap]'"


def plot_alignment_by_layer(table: pd.DataFrame, directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """One panel per metric: value by layer for each pair, with the permutation null's mean ± 2 sd as a band,
    and, where the table has ``value_ctl``, the surface-controlled value as a dashed line of the pair's colour.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per pair, metric and layer, with ``pair``, ``metric``, ``layer``, ``value``, ``null_mean`` and
        ``null_sd`` (``alignment.csv``).
    directory : path
        Where ``alignment_by_layer.png`` and ``.svg`` go.
    title : str, optional
        Prefix of the figure title (the ontology).

    Returns
    -------
    list of Path
        The PNG and the SVG.
    """
    require_columns(table, ("pair", "metric", "layer", "value", "null_mean", "null_sd"), "table")
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
            if "value_ctl" in group:
                ax.plot(group["layer"], group["value_ctl"], color=colour, linestyle="--", linewidth=1.2)
        ax.set_xlabel("layer (0 = token embeddings)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(metric)
    controlled = "; dashed: surface-controlled" if "value_ctl" in table else ""
    axes[0][0].legend(frameon=False, title=f"pair (band: null ±2 sd{controlled})")
    if title:
        fig.suptitle(f"{title}: alignment by layer", y=1.02)
    return save_figure(fig, directory, "alignment_by_layer")


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
    """Why the UMAP figure cannot be drawn here (umap-learn, the extra ``umap``, is not importable), or None."""
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
    """
    Z = np.asarray(Z, dtype=np.float32)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    Zn = Z / np.where(norms > 0, norms, 1.0)
    D = 1.0 - Zn @ Zn.T
    np.clip(D, 0.0, 2.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def plot_umap_pairs(
    pairs: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    directory: str | os.PathLike[str],
    *,
    titles: Mapping[tuple[str, str], str] | None = None,
    seed: int = 0,
    max_points: int = 1000,
) -> list[Path]:
    """UMAP of each pair's two fields in one panel, coloured by field.

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
    """
    import warnings

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
        keep = np.sort(rng.choice(len(X), size=min(max_points, len(X)), replace=False))
        distances = cosine_distances32(np.vstack([np.asarray(X)[keep], np.asarray(Y)[keep]]))
        reducer = umap.UMAP(
            n_neighbors=15, min_dist=0.1, n_epochs=200, metric="precomputed", random_state=seed, n_jobs=1
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="using precomputed metric")
            points = reducer.fit_transform(distances)
        m = len(keep)
        ax.scatter(points[:m, 0], points[:m, 1], s=3, color=OKABE_ITO[0], alpha=0.6, label=a)
        ax.scatter(points[m:, 0], points[m:, 1], s=3, color=OKABE_ITO[1], alpha=0.6, label=b)
        ax.set_title(titles.get((a, b), f"{a}:{b}"))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(frameon=False, markerscale=3)
    fig.suptitle(f"UMAP of items and their partners ({len(keep)} items each)", y=1.02)
    return save_figure(fig, directory, "umap_pairs")
