"""Point labels that never overlap: a column beside the axes, each label joined to its points by a thin line."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Height of one label row, in multiples of the font size (the line height plus a little air).
_ROW = 1.35
#: The smallest font (points) labels shrink to so that their column fits beside the axes.
_MIN_FONTSIZE = 5.0


def spread_positions(wanted: np.ndarray, gap: float, *, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Positions as close as possible to ``wanted`` (least squares) that are at least ``gap`` apart.

    Parameters
    ----------
    wanted : array of shape (n,)
        Where each label would like to sit (any order).
    gap : float
        The least distance between two positions.
    low, high : float
        The column's extent: the positions are shifted into it when they fit, centred on it when not.

    Returns
    -------
    array of shape (n,)
        The positions, in the order of ``wanted``.

    Notes
    -----
    With the labels sorted, ``y[i + 1] - y[i] >= gap`` is ``z = y - gap * i`` non-decreasing, so the closest
    positions are the isotonic regression of ``wanted - gap * i`` plus ``gap * i``.

    Examples
    --------
    Two labels that would overlap move apart symmetrically; the one far away stays where it is:

    >>> spread_positions(np.array([0.50, 0.52, 0.9]), 0.1).round(2).tolist()
    [0.46, 0.56, 0.9]
    """
    from sklearn.isotonic import IsotonicRegression

    wanted = np.asarray(wanted, dtype=float)
    if wanted.size == 0:
        return wanted.copy()
    order = np.argsort(wanted, kind="stable")
    steps = gap * np.arange(wanted.size)
    z = IsotonicRegression().fit_transform(np.arange(wanted.size), wanted[order] - steps)
    placed = z + steps
    half = gap / 2
    if placed[-1] - placed[0] + gap <= high - low:
        placed -= max(0.0, placed[-1] + half - high)
        placed += max(0.0, low + half - placed[0])
    else:
        placed += (low + high) / 2 - (placed[0] + placed[-1]) / 2
    out = np.empty_like(placed)
    out[order] = placed
    return out


def label_points(
    ax,
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    *,
    colors: Sequence[str] | None = None,
    fontsize: float = 7,
) -> list:
    """Write ``labels`` in a column to the right of ``ax``, each joined by a thin line to its point.

    The labels keep the order of their points' heights, as near them as the spacing allows, so the lines
    do not cross. Call it once the axes' limits (and aspect) are final: positions are computed from them.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x, y : sequence of float
        The points, in data coordinates; a point with a non-finite coordinate gets no label.
    labels : sequence of str
        One text per point.
    colors : sequence of colours, optional
        One per point, for its text (default dark grey): the colour of the point's series ties the two.
    fontsize : float, default 7
        In points; sets the rows' spacing too. When the column would be taller than the axes the labels
        shrink to fit, down to 5 points; past that the column is centred on the axes and overflows them.

    Returns
    -------
    list of matplotlib.text.Annotation
        The labels written.

    Examples
    --------
    >>> from lexprobe.figures import pyplot
    >>> fig, ax = pyplot().subplots()
    >>> _ = ax.scatter([0.1, 0.5, 0.9], [0.30, 0.31, np.nan])
    >>> [t.get_text() for t in label_points(ax, [0.1, 0.5, 0.9], [0.30, 0.31, np.nan], ["hgnc", "go", "hpo"])]
    ['hgnc', 'go']
    >>> pyplot().close(fig)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return []
    points = np.column_stack([x[keep], y[keep]])
    texts = [str(t) for t in np.asarray(labels, dtype=object)[keep]]
    colours = ["#333333"] * len(texts) if colors is None else list(np.asarray(colors, dtype=object)[keep])
    ax.apply_aspect()  # an equal aspect shrinks the axes box at draw time; the spacing needs the final one
    wanted = (ax.transData + ax.transAxes.inverted()).transform(points)[:, 1]
    height_in = ax.get_position().height * ax.figure.get_figheight()
    fontsize = max(min(fontsize, height_in * 72 / (len(texts) * _ROW)), _MIN_FONTSIZE)
    rows = spread_positions(wanted, fontsize * _ROW / 72 / height_in)
    line = {"arrowstyle": "-", "color": "#999999", "linewidth": 0.5, "shrinkA": 1, "shrinkB": 2.5, "relpos": (0, 0.5)}
    return [
        ax.annotate(
            text,
            tuple(point),
            xytext=(1.03, row),
            textcoords="axes fraction",
            annotation_clip=False,
            fontsize=fontsize,
            color=colour,
            va="center",
            ha="left",
            arrowprops=line,
        )
        for text, colour, point, row in zip(texts, colours, points, rows)
    ]
