"""Figures of the lexicalization stage: score distributions, tokens per item, probe accuracy by layer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lexprobe.figures._style import OKABE_ITO, pyplot, require_columns, save_figure


def plot_lexicalization(
    items: pd.DataFrame,
    directory: str | os.PathLike[str],
    *,
    layers: pd.DataFrame | None = None,
    title: str = "",
) -> list[Path]:
    """Per-field score distributions, tokens per item by field, and (with ``layers``) probe accuracy by layer.

    Parameters
    ----------
    items : pandas.DataFrame
        One row per item and field (``lexicalization_items.csv``): ``field``, ``n_tokens`` and any of
        ``tokenization_score``, ``embedding_score``, ``score``.
    directory : path
        Where ``lexicalization_distributions``, ``tokens_per_item`` and ``probe_by_layer`` (PNG and SVG) go.
    layers : pandas.DataFrame, optional
        One row per field and layer (``lexicalization_layers.csv``): ``field``, ``layer``, ``probe_accuracy``
        and ``probe_baseline``; the probe figure is drawn when it holds an accuracy.
    title : str, optional
        Prefix of the figure titles (the ontology).

    Returns
    -------
    list of Path
        The PNG and SVG of each figure drawn.

    Examples
    --------
    Without ``layers`` the probe figure is left out:

    >>> import tempfile
    >>> items = pd.DataFrame({"field": ["name"] * 3 + ["symbol"] * 3, "n_tokens": [3, 4, 2, 2, 3, 3],
    ...                       "score": [0.2, 0.5, 0.9, 0.1, 0.3, 0.4]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(sorted(p.name for p in plot_lexicalization(items, tmp, title="hgnc")))
    ['lexicalization_distributions.png', 'lexicalization_distributions.svg',
     'tokens_per_item.png', 'tokens_per_item.svg']
    """
    require_columns(items, ("field", "n_tokens"), "items")
    plt = pyplot()
    fields = list(dict.fromkeys(items["field"]))
    colours = dict(zip(fields, OKABE_ITO))
    prefix = f"{title}: " if title else ""
    written: list[Path] = []

    parts = [c for c in ("tokenization_score", "embedding_score", "score") if c in items and items[c].notna().any()]
    if parts:
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

    if layers is not None and not layers.empty and layers["probe_accuracy"].notna().any():
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
