"""Chance levels: permutation nulls (shuffle the pairing), confidence intervals, and the layer-max null.

Each metric has a fast path for the null: the permutations are shared by every layer of a pair (so the
maximum over layers of the null can be taken per permutation), and each metric reuses what does not
change when the pairing is shuffled (neighbour lists, Gram invariants, the ridge operator, the distance
matrix).

Intervals (``MetricOutcome.interval``, 95%, value ± z · SE):

- mutual kNN: SE from disjoint random halves, neighbours recomputed within each half (read off each item's
  deeper neighbour list, so no new search): E (T_A - T_B)² / 4 = Var(T_{n/2}) / 2, rescaled to n by
  μ(1 - μ) (the variance of mutual kNN scales as μ(1 - μ) / n, μ its expectation at that size).
- linear and debiased CKA: the delete-one jackknife, exact and without n refits (removing item j subtracts
  one row's terms from the float64 sums; O(n d²) in all).

The item bootstrap does not work for these metrics: with the neighbour lists kept fixed it misses how an
item moves the others' neighbourhoods (too narrow), and a resample's duplicated items are each other's
nearest neighbours and perfectly aligned with themselves. The delete-one jackknife of mutual kNN is too wide
(a kNN statistic is far from linear). Coverage by simulation: ``benchmarks/coverage_intervals.py``, numbers in
docs/alignment.md. Retrieval and RSA keep the re-centred item bootstrap.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.stats import norm, rankdata

from lexprobe.align._metrics import (
    CKAAccumulator,
    _knn_search,
    _normalized32,
    _overlap,
    _pair_distances,
    _pair_sample,
    _RetrievalScorer,
    _spearman,
    _split,
    knn_indices,
    validate_embeddings,
)
from lexprobe.exceptions import AlignmentError
from lexprobe.stats import (  # generic interval rules, kept importable here
    bootstrap_means,
    jackknife_interval,
    recentred_interval,
)

__all__ = [
    "MetricOutcome",
    "evaluate_metric",
    "evaluate_metrics",
    "summarize_null",
    "cka_null_moments",
    "cantelli_bound",
    "jackknife_interval",
    "recentred_interval",
    "METRIC_NAMES",
]

METRIC_NAMES = ("mknn", "retrieval", "cka", "dcka", "rsa")


LEVEL = 0.95


@dataclasses.dataclass
class MetricOutcome:
    """A metric at one layer: its value, the permutation null values and its confidence interval.

    ``boot`` holds the values the interval came from: the n leave-one-out values of the jackknife (mknn,
    cka, dcka) or the bootstrap values (retrieval, rsa); empty when no interval was asked for (``boots``
    with zero rows), and ``interval`` is then (nan, nan). ``moments`` is the exact mean and sd of the null
    over all n! pairings where they have a closed form (linear and debiased CKA: :func:`cka_null_moments`),
    else None.

    Examples
    --------
    >>> outcome = MetricOutcome(value=0.42, null=np.array([0.1, 0.12, 0.09]), boot=np.empty(0))
    >>> outcome.interval, outcome.moments
    ((nan, nan), None)
    """

    value: float
    null: np.ndarray
    boot: np.ndarray
    interval: tuple[float, float] = (float("nan"), float("nan"))
    moments: tuple[float, float] | None = None


def summarize_null(value: float, null: np.ndarray, moments: tuple[float, float] | None = None) -> dict[str, float]:
    """Null mean and sd, z and the one-sided p-value.

    With ``moments`` (the exact null mean and sd over all pairings), mean, sd and z are exact; the p-value is
    still the empirical (1 + #{null >= value}) / (1 + n_null) of the Monte Carlo ``null`` when it has values,
    and Cantelli's bound 1 / (1 + z²) (:func:`cantelli_bound`) when it has none. Without ``moments`` all four
    come from ``null`` (NaN when it is empty).

    Examples
    --------
    >>> summarize_null(0.5, np.array([0.1, 0.2, 0.3, 0.2]))
    {'null_mean': 0.2, 'null_sd': 0.0816..., 'z': 3.674..., 'p_value': 0.2}
    >>> out = summarize_null(0.5, np.empty(0), moments=(0.2, 0.1))  # exact moments, no permutations: Cantelli's p
    >>> round(out["z"], 6), round(out["p_value"], 6)
    (3.0, 0.1)
    """
    null = np.asarray(null, dtype=float)
    if moments is not None:
        mean, sd = float(moments[0]), float(moments[1])
    elif len(null) == 0:
        return {"null_mean": np.nan, "null_sd": np.nan, "z": np.nan, "p_value": np.nan}
    else:
        mean, sd = float(null.mean()), float(null.std(ddof=1)) if len(null) > 1 else 0.0
    z = (value - mean) / sd if sd > 0 else (np.inf if value > mean else 0.0)
    if len(null):
        p = (1 + int((null >= value).sum())) / (1 + len(null))
    else:
        p = cantelli_bound(z)
    return {"null_mean": mean, "null_sd": sd, "z": float(z), "p_value": float(p)}


def cantelli_bound(z: float | np.ndarray) -> float | np.ndarray:
    """Cantelli's one-sided inequality: P(T - mean >= z sd) <= 1 / (1 + z²) for z > 0 (1 for z <= 0).

    It needs only the mean and the variance, whatever the null's shape, so with the exact permutation moments
    it is a valid (conservative) p-value with no permutation run at all.

    Examples
    --------
    >>> cantelli_bound(3.0)
    0.1
    >>> cantelli_bound(np.array([-1.0, 0.0, 1.0]))
    array([1. , 1. , 0.5])
    """
    z = np.asarray(z, dtype=float)
    out = np.where(z > 0, 1.0 / (1.0 + np.square(np.where(z > 0, z, 0.0))), 1.0)
    return float(out) if out.ndim == 0 else out


def _validate_resamples(perms: np.ndarray, boots: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    perms = np.asarray(perms)
    boots = np.asarray(boots)
    for name, arr in (("perms", perms), ("boots", boots)):
        if arr.ndim != 2 or arr.shape[1] != n or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise AlignmentError(
                f"`{name}` must be an integer array of shape (count, n_items={n}), got shape {arr.shape} "
                f"and dtype {arr.dtype}"
            )
    if len(perms) and not (np.sort(perms, axis=1) == np.arange(n)).all():
        raise AlignmentError("every row of `perms` must be a permutation of range(n_items)")
    if boots.size and (boots.min() < 0 or boots.max() >= n):
        raise AlignmentError(f"`boots` must hold item indices in [0, {n - 1}]")
    return perms.astype(np.int64, copy=False), boots.astype(np.int64, copy=False)


def evaluate_metric(
    metric: str,
    X: np.ndarray,
    Y: np.ndarray,
    perms: np.ndarray,
    boots: np.ndarray,
    *,
    k: int = 10,
    retrieval_k: int = 1,
    retrieval_map: str = "ridge",
    seed: int = 0,
) -> MetricOutcome:
    """Value, permutation null and bootstrap of one metric on (preprocessed) paired X, Y.

    Parameters
    ----------
    metric : {"mknn", "retrieval", "cka", "dcka", "rsa"}
    X, Y : array of shape (n_items, d1) and (n_items, d2)
        Paired rows.
    perms : int array, shape (n_permutations, n_items)
        Shuffled pairings for the null: row p pairs X[i] with Y[perms[p, i]]. Pass the same array for
        every layer of a pair so the maximum over layers can be taken per permutation.
    boots : int array, shape (n_bootstrap, n_items)
        Resampled item indices for the retrieval and RSA intervals. Zero rows: no interval for any metric;
        mknn and CKA intervals do not use the rows (half samples, jackknife).
    k : int
        Neighbours for mutual kNN.
    retrieval_k, retrieval_map :
        Hit within the top ``retrieval_k``; map ``ridge``, ``procrustes`` or ``none`` (see :func:`retrieval`).
    seed : int
        Seed of the retrieval split, of the RSA pair sample and of the mknn half splits.

    Returns
    -------
    MetricOutcome
        ``value`` equals the plain metric function's value on X, Y.

    Raises
    ------
    AlignmentError
        Unknown metric, invalid X / Y, or malformed ``perms`` / ``boots``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 8))
    >>> Y = X + 0.5 * rng.standard_normal((60, 8))
    >>> perms = np.array([rng.permutation(60) for _ in range(50)])
    >>> out = evaluate_metric("retrieval", X, Y, perms, np.empty((0, 60), dtype=int), retrieval_k=1)
    >>> round(out.value, 3), out.null.shape, bool(out.value > out.null.max())
    (0.8, (50,), True)
    """
    if metric not in METRIC_NAMES:
        raise AlignmentError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_NAMES)}")
    sx, sy = _sides(X, Y)
    perms, boots = _validate_resamples(perms, boots, sx.n)
    if metric == "mknn":
        return _mknn(sx, sy, perms, boots, k, seed)
    if metric in ("cka", "dcka"):
        return _cka(sx, sy, perms, boots, debiased=metric == "dcka")
    if metric == "retrieval":
        return _retrieval(sx.X, sy.X, perms, boots, retrieval_k, retrieval_map, seed)
    return _rsa(sx.X, sy.X, perms, boots, seed)


def evaluate_metrics(
    metrics: tuple[str, ...] | list[str],
    X: np.ndarray,
    Y: np.ndarray,
    perms: np.ndarray,
    boots: np.ndarray,
    *,
    k: int = 10,
    retrieval_k: int = 1,
    retrieval_map: str = "ridge",
    seed: int = 0,
    cka_boots: np.ndarray | None = None,
    cka_perms: np.ndarray | None = None,
) -> dict[str, MetricOutcome]:
    """Several metrics at once (arguments as :func:`evaluate_metric`); linear and debiased CKA share work.

    ``cka_boots`` overrides ``boots`` for the two CKA metrics (each of their resamples is a full CKA), and
    ``cka_perms`` overrides ``perms`` for them (zero rows: their null is the exact moments alone).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 8))
    >>> Y = X + 0.5 * rng.standard_normal((60, 8))
    >>> no_resamples = np.empty((0, 60), dtype=int)  # CKA's null from its exact moments alone
    >>> outs = evaluate_metrics(("cka", "dcka"), X, Y, no_resamples, no_resamples)
    >>> {m: round(o.value, 3) for m, o in outs.items()}
    {'cka': 0.846, 'dcka': 0.826}
    >>> round(outs["cka"].moments[0], 3), abs(outs["dcka"].moments[0]) < 1e-12  # null means: CKA's bias, and 0
    (0.118, True)
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise AlignmentError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRIC_NAMES)}")
    sx, sy = _sides(X, Y)
    perms, boots = _validate_resamples(perms, boots, sx.n)
    cka_boots = boots if cka_boots is None else _validate_resamples(perms[:0], cka_boots, sx.n)[1]
    cka_perms = perms if cka_perms is None else _validate_resamples(cka_perms, boots[:0], sx.n)[0]
    out: dict[str, MetricOutcome] = {}
    if "cka" in metrics or "dcka" in metrics:
        both = _cka_both(sx, sy, cka_perms, cka_boots)
        out.update({m: both[m] for m in ("cka", "dcka") if m in metrics})
    for metric in metrics:
        if metric not in out:
            out[metric] = evaluate_metric(
                metric, sx, sy, perms, boots, k=k, retrieval_k=retrieval_k, retrieval_map=retrieval_map, seed=seed
            )
    return {m: out[m] for m in metrics}


def _mknn(sx: Side, sy: Side, perms, boots, k, seed: int = 0) -> MetricOutcome:
    from lexprobe.align._kernels import permuted_overlaps

    NXL, NYL = sx.neighbours(k), sy.neighbours(k)  # deep lists: their first k columns are knn_indices
    NX, NY = NXL[:, :k], NYL[:, :k]
    per_item = _overlap(NX, NY) / k
    # neighbours of item i under a shuffled pairing are Y's neighbours of perm[i], renamed: the lists are
    # searched once, each permutation only counts (exact integers, so the null is what a new search gives)
    counts = permuted_overlaps(NX, NY, perms)
    null = np.array([(row / k).mean() for row in counts])
    value = float(per_item.mean())
    if not len(boots) or k > sx.n // 2 - 1:  # no interval asked for, or halves too small for k
        return MetricOutcome(value, null, np.empty(0))
    halves = _mknn_halves(sx.X, sy.X, NXL, NYL, k, MKNN_SPLITS, seed)
    return MetricOutcome(value, null, halves.ravel(), _mknn_interval(value, halves))


#: Random half splits behind the mutual-kNN interval (each costs two half-size overlaps, read off the lists).
MKNN_SPLITS = 50


def _mknn_halves(X, Y, NXL, NYL, k: int, splits: int, seed: int) -> np.ndarray:
    """Mutual kNN of the two halves of ``splits`` random half splits, neighbours recomputed in each half.

    Returns shape (splits, 2); each value equals ``mutual_knn(X[half], Y[half], k=k)``.
    """
    from lexprobe.align._kernels import half_overlaps

    n = len(NXL)
    rng = np.random.default_rng([seed, 0x6D6B6E6E])
    orders = np.array([rng.permutation(n) for _ in range(splits)], dtype=np.int64).reshape(splits, n)
    totals = half_overlaps(NXL, NYL, orders, k)  # read off the lists
    out = np.empty((splits, 2))
    for s in range(splits):
        for h, half in enumerate((np.sort(orders[s, : n // 2]), np.sort(orders[s, n // 2 :]))):
            total = int(totals[s, h])
            if total < 0:  # a list too shallow for this half (rare): search the half
                NX, NY = half[knn_indices(X[half], k)], half[knn_indices(Y[half], k)]
                total = int(_overlap(NX, NY).sum())
            out[s, h] = total / len(half) / k
    return out


def _mknn_interval(value: float, halves: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """value ± z · SE, SE² from disjoint halves scaled to n items.

    The two halves of a split are independent samples of n/2 items, so E (T_A - T_B)² / 4 = Var(T_{n/2}) / 2.
    Mutual kNN's variance is not c / n: it scales as μ(1 - μ) / n, with μ its expectation at that size
    (checked by simulation; μ falls as n grows), so the half-sample variance is rescaled by
    μ_n(1 - μ_n) / (μ_{n/2}(1 - μ_{n/2})) with μ_n = value and μ_{n/2} = the mean of the halves.
    """
    var_half = float(np.mean((halves[:, 0] - halves[:, 1]) ** 2)) / 4
    mu = float(halves.mean())
    scale = value * (1 - value) / (mu * (1 - mu)) if 0 < mu < 1 else 1.0
    half = float(norm.ppf((1 + level) / 2)) * np.sqrt(var_half * scale)
    return float(value - half), float(value + half)


def _cka(sx: Side, sy: Side, perms, boots, debiased: bool) -> MetricOutcome:
    return _cka_both(sx, sy, perms, boots)["dcka" if debiased else "cka"]


def _cka_both(sx: Side, sy: Side, perms, boots) -> dict[str, MetricOutcome]:
    """Linear and debiased CKA with their nulls; the two nulls share one permuted cross term per permutation."""
    X, Y = sx.X, sy.X
    acc = _accumulate_sides(sx, sy)
    n = X.shape[0]
    scales = _null_scales(acc)
    null_lin, null_deb = _cka_nulls(sx, sy, perms, scales["lin_denom"], scales["deb_denom"])
    moments = _cka_moments(sx, sy, **scales)
    lin, deb = acc.linear(), acc.debiased()
    if not len(boots) or n < 6:  # the debiased leave-one-out values need n - 1 >= 5
        return {
            "cka": MetricOutcome(lin, null_lin, np.empty(0), moments=moments["cka"]),
            "dcka": MetricOutcome(deb, null_deb, np.empty(0), moments=moments["dcka"]),
        }
    loo_lin, loo_deb = _cka_jackknife(X, Y, acc)
    return {
        "cka": MetricOutcome(lin, null_lin, loo_lin, jackknife_interval(lin, loo_lin), moments["cka"]),
        "dcka": MetricOutcome(deb, null_deb, loo_deb, jackknife_interval(deb, loo_deb), moments["dcka"]),
    }


def cka_null_moments(X: np.ndarray, Y: np.ndarray) -> dict[str, tuple[float, float]]:
    """Exact mean and sd of linear and debiased CKA over all n! pairings of X's rows with Y's, in O(n d²).

    The permutation null of :func:`evaluate_metric` draws from this distribution; these are its moments with no
    Monte Carlo error. Returns ``{"cka": (mean, sd), "dcka": (mean, sd)}``. See :func:`_cka_moments` for the
    derivation (Mantel's moments of a quadratic assignment statistic, with the diagonal kept apart).

    Examples
    --------
    >>> from lexprobe.align import linear_cka
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.standard_normal((40, 5)), rng.standard_normal((40, 3))
    >>> moments = cka_null_moments(X, Y)
    >>> sorted(moments), round(moments["cka"][0], 4) == round(linear_cka(X, Y).chance, 4)
    (['cka', 'dcka'], True)
    >>> abs(moments["dcka"][0]) < 1e-12, moments["dcka"][1] > 0
    (True, True)
    """
    sx, sy = _sides(X, Y)  # a Side needs at least 4 rows, as the moments do
    return _cka_moments(sx, sy, **_null_scales(_accumulate_sides(sx, sy)))


def _null_scales(acc: CKAAccumulator) -> dict[str, float]:
    """What the CKA nulls divide by and the moments need, from the metric's own sums: tr K² = ||XᵀX||²_F and
    tr L² of the centred sides (``tk2``, ``tl2``), linear CKA's denominator ||XᵀX||_F ||YᵀY||_F and debiased
    CKA's sqrt(HSIC(K, K) HSIC(L, L))."""
    s, n = acc._s, acc.n
    mx, my = s["sx"] / n, s["sy"] / n
    cxx = s["XtX"] - n * np.outer(mx, mx)
    cyy = s["YtY"] - n * np.outer(my, my)
    hxx = acc._hsic1(s["XtX"], s["sx"], s["sx"], s["aa"], s["a"], s["a"], s["aX"], s["aX"])
    hyy = acc._hsic1(s["YtY"], s["sy"], s["sy"], s["bb"], s["b"], s["b"], s["bY"], s["bY"])
    return {
        "tk2": float(np.sum(cxx * cxx)),
        "tl2": float(np.sum(cyy * cyy)),
        "lin_denom": float(np.linalg.norm(cxx) * np.linalg.norm(cyy)),
        "deb_denom": float(np.sqrt(hxx * hyy)) if hxx > 0 and hyy > 0 else 0.0,
    }


def _assignment_moments(a: np.ndarray, b: np.ndarray, tk2: float, tl2: float, gamma: float) -> tuple[float, float]:
    """Exact mean and variance over uniform permutations p of T(p) = Σ_ij K_ij L_p(i)p(j) - γ Σ_i a_i b_p(i), for
    doubly centred kernels K (K1 = 0) and L with diagonals a, b and tr K² = ``tk2``, tr L² = ``tl2``.

    Split T = D + O: the diagonal D = (1 - γ) Σ_i a_i b_p(i), a linear assignment statistic, and the off-diagonal
    O = Σ_{i≠j} K_ij L_p(i)p(j), a quadratic assignment (Mantel) statistic. With falling factorials n_(k), the
    off-diagonal sums of K, A1 = Σ_{i≠j} K_ij = -Σa (K1 = 0), A2 = Σ_{i≠j} K_ij² = tr K² - Σa², and its squared
    row sums A3 = Σ_i (Σ_{j≠i} K_ij)² = Σa² (likewise B1, B2, B3 of L):

    - E O = A1 B1 / n_(2);  E O² = 2 A2 B2 / n_(2) + 4 (A3 - A2)(B3 - B2) / n_(3)
      + (A1² - 4 A3 + 2 A2)(B1² - 4 B3 + 2 B2) / n_(4) (index pairs sharing two, one or no index);
    - with u = (1 - γ) a, v = b: E D = Σu Σv / n, E D² = Σu² Σv² / n + ((Σu)² - Σu²)((Σv)² - Σv²) / n_(2);
    - with UA = Σ_i u_i Σ_{j≠i} K_ij = -(1 - γ) Σa² and VB = -Σb²: E DO = 2 UA VB / n_(2)
      + (Σu A1 - 2 UA)(Σv B1 - 2 VB) / n_(3).

    Every sum is O(n) given the diagonals and tr K² = ||XᵀX||²_F (O(n d²)); no n x n kernel is formed.
    """
    n = float(len(a))
    n2, n3, n4 = n * (n - 1), n * (n - 1) * (n - 2), n * (n - 1) * (n - 2) * (n - 3)
    sa, sb, saa, sbb = float(a.sum()), float(b.sum()), float(a @ a), float(b @ b)
    A1, A2, A3 = -sa, tk2 - saa, saa
    B1, B2, B3 = -sb, tl2 - sbb, sbb
    mean_o = A1 * B1 / n2
    o2 = 2 * A2 * B2 / n2 + 4 * (A3 - A2) * (B3 - B2) / n3 + (A1**2 - 4 * A3 + 2 * A2) * (B1**2 - 4 * B3 + 2 * B2) / n4
    w = 1.0 - gamma
    su, suu = w * sa, w * w * saa
    mean_d = su * sb / n
    d2 = suu * sbb / n + (su**2 - suu) * (sb**2 - sbb) / n2
    ua, vb = -w * saa, -sbb
    do = 2 * ua * vb / n2 + (su * A1 - 2 * ua) * (sb * B1 - 2 * vb) / n3
    mean = mean_d + mean_o
    return mean, max(d2 + 2 * do + o2 - mean * mean, 0.0)


def _cka_moments(
    sx: Side, sy: Side, tk2: float, tl2: float, lin_denom: float, deb_denom: float
) -> dict[str, tuple[float, float]]:
    """Exact null mean and sd of linear and debiased CKA (see :func:`_assignment_moments`).

    Both nulls are affine in the statistic of :func:`_assignment_moments` (:func:`_cka_nulls`): linear CKA is
    c2 / lin_denom (γ = 0); the unbiased HSIC is (c2 - ab n / (n - 2) + ΣaΣb / ((n-1)(n-2))) / (n(n-3)), so
    γ = n / (n - 2), the constant shifts the mean only, and the scale divides mean and sd alike.
    """
    n = sx.n
    a, b = sx.sq_norms, sy.sq_norms
    out = {}
    mean, var = _assignment_moments(a, b, tk2, tl2, 0.0)
    out["cka"] = (mean / lin_denom, np.sqrt(var) / lin_denom) if lin_denom > 0 else (0.0, 0.0)
    mean, var = _assignment_moments(a, b, tk2, tl2, n / (n - 2))
    scale = n * (n - 3) * deb_denom
    const = float(a.sum() * b.sum()) / ((n - 1) * (n - 2))
    out["dcka"] = ((mean + const) / scale, np.sqrt(var) / scale) if deb_denom > 0 else (0.0, 0.0)
    return {k: (float(m), float(sd)) for k, (m, sd) in out.items()}


def _cka_nulls(sx: Side, sy: Side, perms, lin_denom: float, deb_denom: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear and debiased CKA of every shuffled pairing, in float64 (within 1e-10 with float32 kernels).

    Both CKAs are unchanged by centring X and Y (linear CKA centres by definition; the unbiased HSIC is a
    U-statistic of differences), and with centred X, Y every term that a shuffle changes reduces to two:

    - c2(p) = ||Xᵀ P Y||²_F = Σ_ij K_ij L_{p(i)p(j)} with K = XXᵀ, L = YYᵀ (:func:`permuted_cross`), and
    - ab(p) = Σ_i a_i b_{p(i)}, with a, b the squared row norms (the kernels' diagonals),

    since K1 = 0: tr(K̃ P L̃ Pᵀ) = c2 - ab, 1ᵀK̃1 = -Σa, 1ᵀK̃ P L̃ Pᵀ1 = ab. Linear CKA is c2 / (||XᵀX|| ||YᵀY||),
    the unbiased HSIC (Song et al. 2012, eq. 5) is (c2 - ab + ΣaΣb / ((n-1)(n-2)) - 2 ab / (n-2)) / (n(n-3)).
    """
    n = sx.n
    if not len(perms):
        return np.empty(0), np.empty(0)
    c2 = permuted_cross(sx, sy, perms)
    a, b = sx.sq_norms, sy.sq_norms
    ab = b[perms] @ a
    hsic = (c2 - ab + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2.0 * ab / (n - 2)) / (n * (n - 3))
    null_lin = c2 / lin_denom if lin_denom > 0 else np.zeros(len(perms))
    null_deb = hsic / deb_denom if deb_denom > 0 else np.zeros(len(perms))
    return null_lin, null_deb


#: Above this many items the n x n kernels (8 n² bytes each) are not formed, whatever the cost model says.
KERNEL_MAX_ITEMS = 8192

#: Up to this many items the kernels are kept in float64; above, in float32 (half the memory each permutation
#: reads; the trace still accumulates in float64 and the diagonal is exact). The rounding of the stored
#: off-diagonal entries moved null values by 2e-11 to 6e-11 on the default run's embeddings at n = 2,000
#: (``benchmarks/bench_main_job.py``, docs/benchmarks.md), below the 1e-10 the tests ask.
KERNEL_F64_MAX_ITEMS = 1024

#: Time of one gathered product of the permuted kernel trace over that of one multiply-add of a float64 GEMM, on
#: the two-core development machine (microbenchmarks at n = 2,000, d = 576, quoted in docs/benchmarks.md):
#: 0.35 ns (float32 kernels) to 0.9 ns (float64) against 0.017 ns, a ratio of 21 to 53; the larger is used.
KERNEL_COST_RATIO = 50.0


def null_form(n: int, d1: int, d2: int, n_permutations: int) -> str:
    """``"kernel"`` or ``"feature"``: the cheaper exact form of the CKA null for n items in d1 and d2 dimensions.

    Per permutation the kernel form costs about n² / 2 gathered products (the trace is symmetric), the feature
    form n·d1·d2 multiply-adds of a GEMM; the kernels themselves cost n²(d1 + d2) / 2 once (shared by every
    permutation, and by every pair the field is in). A gathered product costs ``KERNEL_COST_RATIO`` GEMM
    multiply-adds.
    """
    if n > KERNEL_MAX_ITEMS:
        return "feature"
    kernel = n_permutations * KERNEL_COST_RATIO * n * n / 2 + n * n * (d1 + d2) / 2
    feature = n_permutations * n * d1 * d2
    return "kernel" if kernel < feature else "feature"


def permuted_cross(
    sx: Side, sy: Side, perms: np.ndarray, *, form: str | None = None, device: str | None = None
) -> np.ndarray:
    """c2(p) = ||Xᵀ P Y||²_F of the centred sides for every permutation p (X[i] paired with Y[p[i]]), float64.

    ``form`` forces ``"kernel"`` (Σ_ij K_ij L_{p(i)p(j)}, O(n²) per permutation) or ``"feature"`` (one GEMM,
    O(n d1 d2) per permutation); default :func:`null_form`. ``device`` runs it in torch on that device
    (``"cuda"``, ``"cpu"``); default: torch on the GPU when torch sees one, else NumPy and the compiled loop.
    """
    form = form or null_form(sx.n, sx.dim, sy.dim, len(perms))
    device = device or _null_device()
    if form == "kernel":
        if device != "numpy":
            from lexprobe.align._kernels import permuted_traces_torch

            return permuted_traces_torch(sx.kernel_on(device), sy.kernel_on(device), perms)
        from lexprobe.align._kernels import permuted_traces

        return permuted_traces(sx.kernel, sy.kernel, perms, diagonals=(sx.sq_norms, sy.sq_norms))
    import torch

    # the feature form's GEMM runs in torch wherever it runs: on this CPU torch's BLAS (MKL, AVX-512) multiplies
    # 576 x 44,000 x 576 in float64 about twice as fast as NumPy's OpenBLAS (pinned to a generic kernel)
    where = "cpu" if device == "numpy" else device
    Xt = torch.as_tensor(sx.centred, device=where)
    Yt = torch.as_tensor(sy.centred, device=where)
    out = np.empty(len(perms))
    for p, perm in enumerate(perms):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        # Xᵀ(PY) = (PᵀX)ᵀY: gather X's rows by the inverse (contiguous rows) instead of Y's
        C = Xt[torch.as_tensor(inverse, device=where)].T @ Yt
        out[p] = float(torch.sum(C * C))
    return out


def _null_device() -> str:
    """Where the CKA null runs by default: ``cuda`` (torch) when torch sees a GPU, else ``numpy``."""
    import sys

    torch = sys.modules.get("torch")  # only when torch is already loaded (it is whenever a model ran)
    if torch is not None and torch.cuda.is_available():  # pragma: no cover - GPU only
        return "cuda"
    return "numpy"


class Side:
    """One side of a pair (a field's preprocessed states at one layer), with what the nulls need of it cached.

    The centred rows, squared norms, kernel XXᵀ and neighbour lists are computed on first use and kept, so a
    field that is in two pairs (name in name:symbol and name:id) is searched and multiplied once per layer.
    ``recall`` holds the measured recall of approximate neighbour search (None when the search was exact).
    """

    def __init__(self, X: np.ndarray, name: str = "X") -> None:
        self.X = validate_embeddings(X, name)
        self.n, self.dim = self.X.shape
        self._cache: dict = {}
        self.recall: float | None = None

    def _get(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def centred(self) -> np.ndarray:
        def compute():
            X = np.asarray(self.X, np.float64)
            return X - X.mean(0)

        return self._get("centred", compute)

    @property
    def sq_norms(self) -> np.ndarray:
        return self._get("sq", lambda: np.einsum("ij,ij->i", self.centred, self.centred))

    @property
    def kernel(self) -> np.ndarray:
        """XXᵀ of the centred rows: float64 up to ``KERNEL_F64_MAX_ITEMS`` items, float32 above."""

        def compute():
            K = self.centred @ self.centred.T
            return K if self.n <= KERNEL_F64_MAX_ITEMS else K.astype(np.float32)

        return self._get("kernel", compute)

    def kernel_on(self, device: str):
        """:attr:`kernel` as a float64 torch tensor on ``device`` (kept, like the NumPy one)."""
        import torch

        def compute():
            Z = torch.as_tensor(self.centred, device=device)
            return Z @ Z.T

        return self._get(("kernel", device), compute)

    def self_sums(self) -> list[dict]:
        """Per row batch of :func:`_accumulate`: the sums of :class:`CKAAccumulator` that involve this side alone."""

        def compute():
            out = []
            for start in range(0, self.n, ACCUMULATE_BATCH):
                Z = np.asarray(self.X[start : start + ACCUMULATE_BATCH], dtype=np.float64)
                q = np.einsum("ij,ij->i", Z, Z)
                out.append({"Z": Z, "q": q, "G": Z.T @ Z, "s": Z.sum(0), "qq": float(q @ q), "qsum": float(q.sum())})
                out[-1]["qZ"] = q @ Z
            return out

        return self._get("sums", compute)

    def neighbours(self, k: int) -> np.ndarray:
        """Each row's ordered neighbour list, deep enough for the half-sample interval (:func:`_knn_ordered`)."""

        def compute():
            lists, self.recall = _knn_search(self.X, k)
            return lists

        return self._get(("knn", k), compute)


#: Rows per batch of the CKA sums (as :func:`lexprobe.align._metrics._accumulate`).
ACCUMULATE_BATCH = 4096


def _accumulate_sides(sx: Side, sy: Side) -> CKAAccumulator:
    """:func:`_accumulate` of the two sides, each side's own sums computed once and shared by its pairs.

    The sums are the same floating-point operations on the same batches in the same order, so the result
    equals ``_accumulate(sx.X, sy.X)`` bit for bit.
    """
    acc = CKAAccumulator()
    for bx, by in zip(sx.self_sums(), sy.self_sums()):
        X, Y, a, b = bx["Z"], by["Z"], bx["q"], by["q"]
        acc.n += X.shape[0]
        for name, value in (
            ("XtY", X.T @ Y),
            ("XtX", bx["G"]),
            ("YtY", by["G"]),
            ("sx", bx["s"]),
            ("sy", by["s"]),
            ("ab", float(a @ b)),
            ("aa", bx["qq"]),
            ("bb", by["qq"]),
            ("a", bx["qsum"]),
            ("b", by["qsum"]),
            ("bX", b @ X),
            ("aY", a @ Y),
            ("aX", bx["qZ"]),
            ("bY", by["qZ"]),
        ):
            acc._add(name, value)
    return acc


def _sides(X, Y) -> tuple[Side, Side]:
    sx = X if isinstance(X, Side) else Side(X, "X")
    sy = Y if isinstance(Y, Side) else Side(Y, "Y")
    if sx.n != sy.n:
        raise AlignmentError(f"X and Y must be paired row by row; got {sx.n} and {sy.n} rows")
    return sx, sy


def _loo_sums(U, V, C, su, sv, al, be, bU, aV, ab, A, B) -> tuple[np.ndarray, ...]:
    """The scalars CKA needs of the pair (U, V) with row j removed, for every j (n-vectors), in O(n d²).

    C = UᵀV, su / sv the column sums, al / be the squared row norms, bU = Σ be_i u_i, aV = Σ al_i v_i,
    ab = Σ al_i be_i, A = Σ al_i, B = Σ be_i (the uncentred sums of :class:`CKAAccumulator`).
    Returns ||C'||², su'ᵀC'sv', |su'|², |sv'|², ab', A', B', bU'·su', aV'·sv'.
    """
    q = np.einsum("ij,ij->i", U @ C, V)  # u_jᵀ C v_j
    r = U @ (C @ sv)
    t = V @ (C.T @ su)
    us, vs = U @ su, V @ sv
    c2 = float(np.sum(C * C)) - 2.0 * q + al * be  # ||C - u_j v_jᵀ||²
    sCs = float(su @ C @ sv) - r - t + q - (us - al) * (vs - be)
    su2 = float(su @ su) - 2.0 * us + al
    sv2 = float(sv @ sv) - 2.0 * vs + be
    bUsu = float(bU @ su) - U @ bU - be * us + be * al
    aVsv = float(aV @ sv) - V @ aV - al * vs + al * be
    return c2, sCs, su2, sv2, ab - al * be, A - al, B - be, bUsu, aVsv


def _cka_jackknife(X, Y, acc: CKAAccumulator) -> tuple[np.ndarray, np.ndarray]:
    """Linear and debiased CKA with item j removed, for every j, from the accumulated sums (no refit)."""
    s, m = acc._s, acc.n - 1
    a = np.einsum("ij,ij->i", X, X)
    b = np.einsum("ij,ij->i", Y, Y)
    xy = _loo_sums(X, Y, s["XtY"], s["sx"], s["sy"], a, b, s["bX"], s["aY"], s["ab"], s["a"], s["b"])
    xx = _loo_sums(X, X, s["XtX"], s["sx"], s["sx"], a, a, s["aX"], s["aX"], s["aa"], s["a"], s["a"])
    yy = _loo_sums(Y, Y, s["YtY"], s["sy"], s["sy"], b, b, s["bY"], s["bY"], s["bb"], s["b"], s["b"])

    def centred2(c2, sCs, su2, sv2, *_):  # ||C - su svᵀ / m||², the centred cross-product
        return c2 - 2.0 * sCs / m + su2 * sv2 / m**2

    def hsic1(c2, sCs, su2, sv2, ab, A, B, bUsu, aVsv):  # CKAAccumulator._hsic1 on m rows
        cross = sCs - bUsu - aVsv + ab
        return (c2 - ab + (su2 - A) * (sv2 - B) / ((m - 1) * (m - 2)) - 2.0 * cross / (m - 2)) / (m * (m - 3))

    with np.errstate(divide="ignore", invalid="ignore"):
        den_lin = np.sqrt(centred2(*xx) * centred2(*yy))
        lin = np.where(den_lin > 0, centred2(*xy) / den_lin, 0.0)
        hxx, hyy = hsic1(*xx), hsic1(*yy)
        den_deb = np.sqrt(np.where((hxx > 0) & (hyy > 0), hxx * hyy, 0.0))
        deb = np.where(den_deb > 0, hsic1(*xy) / den_deb, 0.0)
    return lin, deb


def _retrieval(X, Y, perms, boots, k, method, seed) -> MetricOutcome:
    n = X.shape[0]
    train, test = _split(n, 0.5, seed)
    scorer = _RetrievalScorer(X, Y, train, test, k=k, method=method, alpha=1.0)
    base = scorer.per_item()
    # The null shuffles the pairing within the train rows and within the held-out rows (a subgroup of all
    # shuffles, so still a valid null): the map is then fitted on wrong pairs and scored on wrong pairs, and
    # the ridge operators need no new solve. perm[train] ranks the train rows in a random order.
    null = np.array([scorer.per_item(np.argsort(perm[train]), np.argsort(perm[test])).mean() for perm in perms])
    # bootstrap over held-out items: resample their per-item hits
    rng = np.random.default_rng(seed)
    boot = bootstrap_means(base, rng=rng, n_boot=len(boots))
    value = float(base.mean())
    return MetricOutcome(value, null, boot, recentred_interval(value, boot))


def _rsa(X, Y, perms, boots, seed) -> MetricOutcome:
    n = X.shape[0]
    i, j = _pair_sample(n, 20000, seed)
    Xn, Yn = _normalized32(X), _normalized32(Y)
    dx = _pair_distances(Xn, i, j)
    rx = rankdata(dx)
    value = _spearman(dx, _pair_distances(Yn, i, j), ranked_a=rx)
    # shuffled pairing: item i of X goes with item perm[i] of Y, so Y's distance for (i, j) is d(perm i, perm j);
    # up to 8,192 items (256 MB) gather them from Y's distance matrix, beyond that compute them per pair
    if len(perms) and n <= 8192:
        DY = 1.0 - Yn @ Yn.T
        null = np.array([_spearman(dx, DY[perm[i], perm[j]], ranked_a=rx) for perm in perms])
    else:
        null = np.array([_spearman(dx, _pair_distances(Yn, perm[i], perm[j]), ranked_a=rx) for perm in perms])
    boot = np.empty(len(boots))
    for r, b in enumerate(boots):
        # resample items: pair (i, j) becomes (b[i], b[j]); pairs of one item drawn twice are dropped
        bi, bj = b[i], b[j]
        keep = bi != bj
        boot[r] = _spearman(_pair_distances(Xn, bi[keep], bj[keep]), _pair_distances(Yn, bi[keep], bj[keep]))
    return MetricOutcome(value, null, boot, recentred_interval(value, boot))
