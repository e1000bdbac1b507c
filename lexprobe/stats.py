"""Statistics shared by lexprobe's stages, on scipy and scikit-learn where they already do the job.

- :func:`wilson_interval`: a binomial proportion's Wilson score interval (``scipy.stats.binomtest``).
- :func:`spearman_ci`: Spearman's rho with an item bootstrap interval (one task's items).
- :func:`paired_bootstrap_interval`: a percentile interval of a paired mean difference (items resampled).
- :func:`jackknife_interval`: a normal interval from delete-one values (alignment's CKA).
- :func:`recentred_interval`: a bootstrap interval re-centred on the estimate (alignment's retrieval and RSA).
- :func:`bootstrap_mean_interval`, :func:`bootstrap_means`: a percentile interval of a mean (items resampled),
  and the resample means it comes from, drawn from a caller's generator.
- :func:`cluster_bootstrap`: a percentile interval over resamples of whole clusters (units: a task on a model),
  for statistics pooled over tasks, whose items are not independent evidence.
- :func:`youden_threshold`: the cut that best separates two classes (Youden's J).
- :func:`pooled_auc`, :func:`within_auc`: how well a score ranks a binary outcome over all items, and over
  pairs of items of the same unit only.
- :func:`pooled_spearman`, :func:`within_spearman`: Spearman's rho over all items, and with ranks taken inside
  each unit; :func:`rank_correlation`: the kernel for rho from ranks computed once (alignment's RSA).

Constant input: a rank correlation of a side with no spread is undefined, and the statistics here give NaN
(:func:`spearman_ci` also says in ``note`` which side is constant; :func:`pooled_spearman`;
:func:`rank_correlation` by default; :func:`within_spearman` leaves such a unit out and is NaN when none is
left; :func:`pooled_auc` is NaN when one class is missing). The one exception is alignment's RSA
(``lexprobe.align``, ``RSA_CONSTANT``), which scores a constant distance vector 0.0, "no alignment": a
bootstrap resample of a handful of items can hold only two distinct items, hence one distance, and a NaN there
would make the whole re-centred interval NaN. The value and the permutation null of real embeddings never meet
it (it needs every sampled pairwise distance equal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def wilson_interval(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` (scipy's ``binomtest(...).proportion_ci``);
    ``(nan, nan)`` for ``n == 0``.

    Examples
    --------
    >>> [round(x, 3) for x in wilson_interval(0, 30)]  # none right of 30 still allows up to about 11%
    [0.0, 0.114]
    """
    from scipy.stats import binomtest

    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def spearman_ci(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict[str, Any]:
    """Spearman's rho with a percentile bootstrap interval over items and scipy's p-value.

    A constant ``x`` or ``y`` has no rank correlation: ``rho`` is NaN and ``note`` says which is constant.
    (Items of one task only: pooled over tasks, use :func:`spearman_pooled_within`, whose intervals resample
    units.)

    Examples
    --------
    >>> x = np.arange(20.0)
    >>> out = spearman_ci(x, x + np.sin(x) * 3, n_boot=200)
    >>> round(out["rho"], 2), bool(out["ci_low"] < out["rho"] <= out["ci_high"]), out["n"]
    (0.91, True, 20)
    >>> spearman_ci(x, np.ones(20))["note"]
    'y constant'
    """
    from scipy.stats import rankdata, spearmanr

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    out: dict[str, Any] = {"n": n, "rho": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "note": ""}
    if n < 3:
        out["note"] = "fewer than 3 items"
        return out
    constant = [name for name, v in (("x", x), ("y", y)) if np.ptp(v) == 0]
    if constant:
        out["note"] = f"{' and '.join(constant)} constant"
        return out
    result = spearmanr(x, y)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    bx = rankdata(x[idx], axis=1)
    by = rankdata(y[idx], axis=1)
    bx -= bx.mean(axis=1, keepdims=True)
    by -= by.mean(axis=1, keepdims=True)
    denom = np.sqrt((bx**2).sum(axis=1) * (by**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (bx * by).sum(axis=1) / denom
    boots = boots[np.isfinite(boots)]
    alpha = (1 - confidence) / 2
    out |= {"rho": float(result.statistic), "p_value": float(result.pvalue)}
    if len(boots):
        out |= {"ci_low": float(np.quantile(boots, alpha)), "ci_high": float(np.quantile(boots, 1 - alpha))}
    return out


def paired_bootstrap_interval(
    baseline: np.ndarray, tuned: np.ndarray, *, n_boot: int, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of mean(tuned - baseline), resampling items (pairs kept together).

    Examples
    --------
    >>> baseline = np.zeros(40, dtype=bool)
    >>> tuned = np.arange(40) < 10  # 10 of 40 items learned: a gain of 0.25
    >>> low, high = paired_bootstrap_interval(baseline, tuned, n_boot=1000, seed=0)
    >>> bool(low < 0.25 < high), bool(low > 0)
    (True, True)
    """
    n = len(baseline)
    if n == 0:
        return float("nan"), float("nan")
    diff = tuned.astype(float) - baseline.astype(float)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 500):  # chunks bound memory for large splits
        idx = rng.integers(0, n, size=(min(500, n_boot - start), n))
        means[start : start + len(idx)] = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _tails(confidence: float) -> tuple[float, float]:
    """The quantile levels of a two-sided ``confidence`` interval, rounded to 10 decimals so that 0.95 gives
    exactly 0.025 and 0.975 (``(1 - 0.95) / 2`` is 0.025000000000000022 in floating point)."""
    return round((1 - confidence) / 2, 10), round((1 + confidence) / 2, 10)


def bootstrap_mean_interval(
    values: np.ndarray,
    *,
    rng: np.random.Generator,
    n_boot: int = 200,
    confidence: float = 0.95,
    batched: bool = False,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values``, items resampled with replacement.

    Parameters
    ----------
    values : array of shape (n,)
        One number per item.
    rng : numpy.random.Generator
        Draws the resamples; a caller that bootstraps several groups passes one generator to all of them, so
        the draws go on from group to group.
    n_boot : int
        Resamples.
    confidence : float
        Two-sided coverage: the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
        of the resample means (0.025 and 0.975 for 95%).
    batched : bool
        Draw every resample's indices in one ``rng.integers`` call of shape ``(n_boot, n)`` rather than one call
        per resample. Each caller keeps the form its published numbers were drawn with
        (``lexprobe.lexical``: per resample; ``lexprobe.predict``'s unit table: batched).

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` for no values, and then nothing is drawn from ``rng``.

    Examples
    --------
    >>> low, high = bootstrap_mean_interval(np.arange(10.0), rng=np.random.default_rng(0))
    >>> bool(low < 4.5 < high)
    True
    """
    if len(values) == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(bootstrap_means(values, rng=rng, n_boot=n_boot, batched=batched), _tails(confidence))
    return float(low), float(high)


def bootstrap_means(values: np.ndarray, *, rng: np.random.Generator, n_boot: int, batched: bool = False) -> np.ndarray:
    """The means of ``n_boot`` resamples of ``values`` (items drawn with replacement); ``batched`` as in
    :func:`bootstrap_mean_interval`. Empty ``values`` give NaN means and draw nothing.

    Examples
    --------
    >>> bootstrap_means(np.ones(5), rng=np.random.default_rng(0), n_boot=3)
    array([1., 1., 1.])
    """
    values = np.asarray(values)
    n = len(values)
    if n == 0:
        return np.full(n_boot, np.nan)
    if batched:
        return values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    return np.array([values[rng.integers(0, n, n)].mean() for _ in range(n_boot)])


def jackknife_interval(value: float, loo: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Normal interval value ± z · SE from delete-one values: SE² = (n - 1) / n · Σ (loo_j - mean(loo))².

    Quenouille-Tukey jackknife variance (Efron & Stein 1981: in expectation it errs on the wide side). Used for
    linear and debiased CKA (``lexprobe.align``).

    Parameters
    ----------
    value : float
        The estimate on all items: the centre of the interval.
    loo : array of shape (n,)
        The statistic with each item left out in turn.
    level : float
        Two-sided coverage.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` for fewer than 2 delete-one values.

    Examples
    --------
    >>> low, high = jackknife_interval(0.5, np.array([0.4, 0.5, 0.6]))
    >>> round(low, 4), round(high, 4)
    (0.2737, 0.7263)
    """
    from scipy.stats import norm

    loo = np.asarray(loo, dtype=np.float64)
    if len(loo) < 2:
        return float("nan"), float("nan")
    n = len(loo)
    se = float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))
    half = float(norm.ppf((1 + level) / 2)) * se
    return float(value - half), float(value + half)


def recentred_interval(value: float, boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval re-centred on the estimate: quantiles of ``value + (boot - mean(boot))``.

    Used for retrieval and RSA (``lexprobe.align``). Re-centring drops a shift of the resamples' mean
    (duplicated items) and keeps the bootstrap's spread; for a metric that is a mean over items it is the
    percentile interval.

    Parameters
    ----------
    value : float
        The estimate on all items.
    boot : array of shape (n_boot,)
        The statistic on each resample (a NaN makes the interval NaN).
    level : float
        Two-sided coverage.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` when there are no resamples.

    Examples
    --------
    >>> recentred_interval(1.0, np.array([0.0, 0.5, 1.0]), level=0.5)
    (0.75, 1.25)
    """
    if len(boot) == 0:
        return float("nan"), float("nan")
    centred = value + (np.asarray(boot) - np.mean(boot))
    low, high = np.quantile(centred, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def cluster_bootstrap(
    statistic: Callable[[list[Any]], float],
    clusters: Sequence[Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over resamples of whole clusters (units), not of items.

    Examples
    --------
    Three units of items: the mean over items, resampled unit by unit (a unit's items stay together):

    >>> units = [np.array([0.1, 0.2]), np.array([0.5, 0.6, 0.7]), np.array([0.9])]
    >>> low, high = cluster_bootstrap(lambda drawn: float(np.concatenate(drawn).mean()), units, n_boot=200)
    >>> bool(0.1 <= low < high <= 0.9)
    True
    """
    rng = np.random.default_rng(seed)
    k = len(clusters)
    values = []
    for _ in range(n_boot):
        drawn = [clusters[i] for i in rng.integers(0, k, k)]
        v = statistic(drawn)
        if np.isfinite(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float | None, str]:
    """The cut on ``scores`` that best separates ``labels`` (Youden's J = TPR - FPR), with a note.

    Candidates are midpoints between consecutive distinct scores; among equally good cuts the middle one is
    taken. With only positives the cut is the lowest positive score; with only negatives, or with scores that
    are all equal, there is no cut (``None``): that verdict cannot be reached from this calibration.

    Examples
    --------
    >>> youden_threshold(np.array([0.1, 0.2, 0.6, 0.8]), np.array([False, False, True, True]))
    (0.4, "Youden's J = 1.00")
    >>> youden_threshold(np.array([0.1, 0.2]), np.array([False, False]))
    (None, 'no calibration task reached it')
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    keep = np.isfinite(scores)
    scores, labels = scores[keep], labels[keep]
    if not labels.any():
        return None, "no calibration task reached it"
    if labels.all():
        return float(scores.min()), "every calibration task reached it"
    distinct = np.unique(scores)
    if len(distinct) == 1:
        return None, "the calibration's predicted gains are all equal: nothing separates the tasks"
    cuts = (distinct[:-1] + distinct[1:]) / 2
    tpr = np.array([(scores[labels] >= c).mean() for c in cuts])
    fpr = np.array([(scores[~labels] >= c).mean() for c in cuts])
    j = tpr - fpr
    best = np.flatnonzero(np.isclose(j, j.max()))
    return float(cuts[best[len(best) // 2]]), f"Youden's J = {j.max():.2f}"


def pooled_spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of all items together (NaN for fewer than 3 items or a constant side)."""
    from scipy.stats import rankdata

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    return float((rx * ry).sum() / np.sqrt((rx**2).sum() * (ry**2).sum()))


def rank_correlation(ranked_a: np.ndarray, ranked_b: np.ndarray, *, constant: float = float("nan")) -> float:
    """Pearson correlation of two rank vectors (Spearman's rho of the values ranked), ``constant`` when one is
    constant.

    The fast kernel for a rho computed many times against one fixed side (rank it once): alignment's RSA
    scores its value, permutation null and bootstrap with it. See the module docstring for the rule on
    constant input; RSA passes ``constant=0.0`` (``lexprobe.align._metrics.RSA_CONSTANT``).

    Parameters
    ----------
    ranked_a, ranked_b : array of shape (n,)
        Ranks (``scipy.stats.rankdata``) of the two sides.
    constant : float
        The value when either side is constant (zero spread).

    Returns
    -------
    float

    Examples
    --------
    >>> from scipy.stats import rankdata
    >>> rank_correlation(rankdata([1, 2, 3, 5]), rankdata([2, 4, 6, 7]))
    1.0
    >>> rank_correlation(rankdata([1, 2, 3]), rankdata([4, 4, 4])), rank_correlation([1, 2], [3, 3], constant=0.0)
    (nan, 0.0)
    """
    ranked_a, ranked_b = np.asarray(ranked_a), np.asarray(ranked_b)
    if ranked_a.std() == 0 or ranked_b.std() == 0:
        return constant
    return float(np.corrcoef(ranked_a, ranked_b)[0, 1])


def within_spearman(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Spearman within units: ranks taken inside each unit, centred there, then correlated over all items
    (a unit whose x or y is constant adds nothing)."""
    from scipy.stats import rankdata

    sxy = sxx = syy = 0.0
    for x, y in parts:
        if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
            continue  # nothing to rank on one side: its other side's spread would only dilute the others
        rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
        sxy += float((rx * ry).sum())
        sxx += float((rx**2).sum())
        syy += float((ry**2).sum())
    return sxy / np.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def pooled_auc(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """ROC AUC of ``(labels, scores)`` parts pooled into one sample (``sklearn.metrics.roc_auc_score``); NaN
    when one class is missing."""
    from sklearn.metrics import roc_auc_score

    if not parts:
        return float("nan")
    y = np.concatenate([np.asarray(a, dtype=bool) for a, _ in parts])
    p = np.concatenate([np.asarray(b, dtype=float) for _, b in parts])
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def within_auc(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Within-unit AUC of ``(labels, scores)`` parts: over every (positive, negative) pair of items of the same
    unit, the share the score ranks right (ties half); units with one class add no pairs; NaN when none has both.
    """
    from scipy.stats import rankdata

    right = pairs = 0.0
    for y, p in parts:
        y = np.asarray(y, dtype=bool)
        n_pos = int(y.sum())
        n_neg = len(y) - n_pos
        if not n_pos or not n_neg:
            continue
        r = rankdata(np.asarray(p, dtype=float))
        right += r[y].sum() - n_pos * (n_pos + 1) / 2
        pairs += n_pos * n_neg
    return right / pairs if pairs else float("nan")
