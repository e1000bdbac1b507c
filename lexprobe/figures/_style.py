"""The figure style shared by every figure: the palette, headless pyplot, atomic saving, axis words."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lexprobe.exceptions import ReportError
from lexprobe.runs import atomic_path

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

METRIC_LABELS = {
    "mknn": "mutual kNN (k neighbours shared)",
    "cka": "linear CKA",
    "dcka": "debiased CKA",
    "retrieval": "retrieval hit rate (held out)",
    "rsa": "RSA (Spearman of distances)",
}

#: Panel titles of the alignment metrics, in words (the code names stay the table's ``metric`` values).
METRIC_TITLES = {
    "mknn": "Mutual k-nearest neighbours",
    "cka": "Linear CKA",
    "dcka": "Debiased CKA",
    "retrieval": "Partner retrieval (held-out map)",
    "rsa": "Representational similarity (RSA)",
}

#: Axis labels (with units) of the features the correlate stage plots gains against.
FEATURE_LABELS = {
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
SPLIT_LABELS = {"train": "memorization (train)", "withheld": "generalization (withheld)"}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, with lexprobe's figure style set.

    Examples
    --------
    >>> plt = pyplot()
    >>> plt.get_backend().lower(), plt.rcParams["axes.spines.top"]
    ('agg', False)
    """
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
    """Save ``fig`` as PNG and SVG in ``directory`` (atomically) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    directory : path
        Created if missing.
    stem : str
        File name without extension.

    Returns
    -------
    list of Path
        The PNG and the SVG.

    Examples
    --------
    >>> import tempfile
    >>> fig, ax = pyplot().subplots()
    >>> _ = ax.plot([0, 1], [0, 1])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in save_figure(fig, Path(tmp) / "figures", "diagonal")])  # folder made
    ['diagonal.png', 'diagonal.svg']
    """
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


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    """Raise :class:`~lexprobe.exceptions.ReportError` naming the columns ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"`{name}` lacks the column(s) {', '.join(missing)}; it has {', '.join(map(str, frame))}")


def task_labels(frame: pd.DataFrame) -> pd.Series:
    """The ``label`` column ("hgnc name-to-symbol"), built from ontology and task when absent; with the model
    in brackets when the frame holds several."""
    if "model" in frame and frame["model"].nunique() > 1:
        return task_labels(frame.drop(columns="model")) + " (" + frame["model"].astype(str) + ")"
    if "label" in frame:
        return frame["label"].astype(str)
    parts = [frame[c].astype(str) for c in ("ontology", "task") if c in frame]
    if not parts:
        return pd.Series("all items", index=frame.index)
    return parts[0].str.cat(parts[1:], sep=" ") if len(parts) > 1 else parts[0]


def error_bars(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Asymmetric error-bar lengths of shape (2, n); a missing or inverted bound draws no bar on that side."""
    err = np.vstack([y - low, high - y]).astype(float)
    return np.clip(np.nan_to_num(err, nan=0.0), 0, None)
