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
    _accumulate,
    _knn_ordered,
    _normalized32,
    _overlap,
    _pair_distances,
    _pair_sample,
    _RetrievalScorer,
    _spearman,
    _split,
    knn_indices,
    validate_pair,
)
from lexprobe.exceptions import AlignmentError

__all__ = [
    "MetricOutcome",
    "evaluate_metric",
    "evaluate_metrics",
    "summarize_null",
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
    with zero rows), and ``interval`` is then (nan, nan).
    """

    value: float
    null: np.ndarray
    boot: np.ndarray
    interval: tuple[float, float] = (float("nan"), float("nan"))


def jackknife_interval(value: float, loo: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Normal interval value ± z · SE from delete-one values: SE² = (n - 1) / n · Σ (loo_j - mean(loo))².

    Quenouille-Tukey jackknife variance (Efron & Stein 1981: in expectation it errs on the wide side).
    """
    loo = np.asarray(loo, dtype=np.float64)
    if len(loo) < 2:
        return float("nan"), float("nan")
    n = len(loo)
    se = float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))
    half = float(norm.ppf((1 + level) / 2)) * se
    return float(value - half), float(value + half)


def recentred_interval(value: float, boot: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Bootstrap interval re-centred on the estimate: quantiles of ``value + (boot - mean(boot))``.

    Used for retrieval and RSA. Re-centring drops a shift of the resamples' mean (duplicated items) and keeps
    the bootstrap's spread; for a metric that is a mean over items it is the percentile interval.
    """
    if len(boot) == 0:
        return float("nan"), float("nan")
    centred = value + (np.asarray(boot) - np.mean(boot))
    low, high = np.quantile(centred, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def summarize_null(value: float, null: np.ndarray) -> dict[str, float]:
    """Null mean and sd, z and the empirical one-sided p-value (1 + #{null >= value}) / (1 + n_null)."""
    if len(null) == 0:
        return {"null_mean": np.nan, "null_sd": np.nan, "z": np.nan, "p_value": np.nan}
    mean, sd = float(null.mean()), float(null.std(ddof=1)) if len(null) > 1 else 0.0
    z = (value - mean) / sd if sd > 0 else (np.inf if value > mean else 0.0)
    p = (1 + int((null >= value).sum())) / (1 + len(null))
    return {"null_mean": mean, "null_sd": sd, "z": float(z), "p_value": float(p)}


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
    """
    if metric not in METRIC_NAMES:
        raise AlignmentError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_NAMES)}")
    X, Y = validate_pair(X, Y)
    perms, boots = _validate_resamples(perms, boots, X.shape[0])
    if metric == "mknn":
        return _mknn(X, Y, perms, boots, k, seed)
    if metric in ("cka", "dcka"):
        return _cka(X, Y, perms, boots, debiased=metric == "dcka")
    if metric == "retrieval":
        return _retrieval(X, Y, perms, boots, retrieval_k, retrieval_map, seed)
    return _rsa(X, Y, perms, boots, seed)


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
) -> dict[str, MetricOutcome]:
    """Several metrics at once (arguments as :func:`evaluate_metric`); linear and debiased CKA share work.

    ``cka_boots`` overrides ``boots`` for the two CKA metrics (each of their resamples is a full CKA).
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise AlignmentError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRIC_NAMES)}")
    X, Y = validate_pair(X, Y)
    perms, boots = _validate_resamples(perms, boots, X.shape[0])
    cka_boots = boots if cka_boots is None else _validate_resamples(perms[:0], cka_boots, X.shape[0])[1]
    out: dict[str, MetricOutcome] = {}
    if "cka" in metrics or "dcka" in metrics:
        both = _cka_both(X, Y, perms, cka_boots)
        out.update({m: both[m] for m in ("cka", "dcka") if m in metrics})
    for metric in metrics:
        if metric not in out:
            out[metric] = evaluate_metric(
                metric, X, Y, perms, boots, k=k, retrieval_k=retrieval_k, retrieval_map=retrieval_map, seed=seed
            )
    return {m: out[m] for m in metrics}


def _mknn(X, Y, perms, boots, k, seed: int = 0) -> MetricOutcome:
    NXL, NYL = _knn_ordered(X, k), _knn_ordered(Y, k)  # deep lists: their first k columns are knn_indices
    NX, NY = NXL[:, :k], NYL[:, :k]
    per_item = _overlap(NX, NY) / k
    null = np.empty(len(perms))
    for p, perm in enumerate(perms):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        # neighbours of item i under the shuffled pairing are Y's neighbours of perm[i], renamed
        null[p] = (_overlap(NX, inverse[NY[perm]]) / k).mean()
    value = float(per_item.mean())
    if not len(boots) or k > X.shape[0] // 2 - 1:  # no interval asked for, or halves too small for k
        return MetricOutcome(value, null, np.empty(0))
    halves = _mknn_halves(X, Y, NXL, NYL, k, MKNN_SPLITS, seed)
    return MetricOutcome(value, null, halves.ravel(), _mknn_interval(value, halves))


#: Random half splits behind the mutual-kNN interval (each costs two half-size overlaps, read off the lists).
MKNN_SPLITS = 50


def _half_neighbours(NL: np.ndarray, half: np.ndarray, k: int) -> np.ndarray | None:
    """Global ids of each half item's k nearest within the half: the first k entries of its list in the half.

    None when some list holds fewer than k of the half (then the half is searched directly).
    """
    lists = NL[half]
    inside = np.zeros(len(NL), bool)
    inside[half] = True
    inside = inside[lists]
    if (inside.sum(axis=1) < k).any():
        return None
    keep = inside & (np.cumsum(inside, axis=1) <= k)
    return lists[keep].reshape(len(half), k)


def _mknn_halves(X, Y, NXL, NYL, k: int, splits: int, seed: int) -> np.ndarray:
    """Mutual kNN of the two halves of ``splits`` random half splits, neighbours recomputed in each half.

    Returns shape (splits, 2); each value equals ``mutual_knn(X[half], Y[half], k=k)``.
    """
    n = len(NXL)
    rng = np.random.default_rng([seed, 0x6D6B6E6E])
    out = np.empty((splits, 2))
    for s in range(splits):
        order = rng.permutation(n)
        for h, half in enumerate((np.sort(order[: n // 2]), np.sort(order[n // 2 :]))):
            NX, NY = _half_neighbours(NXL, half, k), _half_neighbours(NYL, half, k)
            if NX is None or NY is None:  # a list too shallow for this half (rare): search the half
                NX, NY = half[knn_indices(X[half], k)], half[knn_indices(Y[half], k)]
            out[s, h] = _overlap(NX, NY).mean() / k
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


def _cka(X, Y, perms, boots, debiased: bool) -> MetricOutcome:
    return _cka_both(X, Y, perms, boots)["dcka" if debiased else "cka"]


def _cka_both(X, Y, perms, boots) -> dict[str, MetricOutcome]:
    """Linear and debiased CKA with their nulls, sharing one GEMM per permutation."""
    acc = _accumulate(X, Y)
    n = X.shape[0]
    # Under a shuffled pairing only XᵀY and the paired sums change: compute those per permutation (one
    # float32 GEMM) and keep the float64 invariants.
    s = acc._s
    X32, Y32 = np.asarray(X, np.float32), np.asarray(Y, np.float32)
    a = np.einsum("ij,ij->i", X, X)
    b = np.einsum("ij,ij->i", Y, Y)
    mx, my = s["sx"] / n, s["sy"] / n
    cxx = s["XtX"] - n * np.outer(mx, mx)
    cyy = s["YtY"] - n * np.outer(my, my)
    lin_denom = np.linalg.norm(cxx) * np.linalg.norm(cyy)
    hxx = acc._hsic1(s["XtX"], s["sx"], s["sx"], s["aa"], s["a"], s["a"], s["aX"], s["aX"])
    hyy = acc._hsic1(s["YtY"], s["sy"], s["sy"], s["bb"], s["b"], s["b"], s["bY"], s["bY"])
    deb_denom = np.sqrt(hxx * hyy) if hxx > 0 and hyy > 0 else 0.0
    null_lin, null_deb = np.empty(len(perms)), np.empty(len(perms))
    X32t = np.ascontiguousarray(X32.T)
    sx, sy, m2 = s["sx"], s["sy"], n * float(mx @ mx) * float(my @ my)
    # (bᵀPᵀX)·sx = bᵀPᵀ(X sx): the paired sums need only n-vectors per permutation
    X_sx, Y_sy = X @ sx, Y @ sy
    for p, perm in enumerate(perms):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(n)
        # Xᵀ(PY) = (PᵀX)ᵀY: permute the rows of X instead of Y; the same for the paired sums
        C = (X32t[:, inverse] @ Y32).astype(np.float64)
        c2 = float(np.einsum("ij,ij->", C, C))
        a_inv = a[inverse]
        bp = b[perm]
        cross = float(bp @ X_sx) + float(a_inv @ Y_sy)
        h = _hsic1_from(n, c2, float(sx @ C @ sy), sx, sy, float(a @ bp), s["a"], s["b"], cross)
        null_deb[p] = h / deb_denom if deb_denom > 0 else 0.0
        # ||C - n mx myᵀ||² without forming the matrix
        cxy2 = c2 - 2.0 * float(mx @ C @ my) * n + m2 * n
        null_lin[p] = cxy2 / lin_denom if lin_denom > 0 else 0.0
    lin, deb = acc.linear(), acc.debiased()
    if not len(boots) or n < 6:  # the debiased leave-one-out values need n - 1 >= 5
        return {"cka": MetricOutcome(lin, null_lin, np.empty(0)), "dcka": MetricOutcome(deb, null_deb, np.empty(0))}
    loo_lin, loo_deb = _cka_jackknife(X, Y, acc)
    return {
        "cka": MetricOutcome(lin, null_lin, loo_lin, jackknife_interval(lin, loo_lin)),
        "dcka": MetricOutcome(deb, null_deb, loo_deb, jackknife_interval(deb, loo_deb)),
    }


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


def _hsic1_from(n, c2, sxCsy, sx, sy, ab, a, b, paired) -> float:
    """The unbiased HSIC of CKAAccumulator._hsic1, from ||C||², sxᵀ C sy and paired = Σ b_i x_i·sx + a_i y_i·sy."""
    tr = c2 - ab
    one_k = float(sx @ sx) - a
    one_l = float(sy @ sy) - b
    cross = sxCsy - paired + ab
    return (tr + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


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
    boot = np.array([base[rng.integers(0, len(base), len(base))].mean() for _ in range(len(boots))])
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
