"""Chance levels: permutation nulls (shuffle the pairing), bootstrap intervals, and the layer-max null.

Each metric has a fast path for the null: the permutations are shared by every layer of a pair (so the
maximum over layers of the null can be taken per permutation), and each metric reuses what does not
change when the pairing is shuffled (neighbour lists, Gram invariants, the ridge operator, the distance
matrix).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.stats import rankdata

from lexprobe.align._metrics import (
    CKAAccumulator,
    _accumulate,
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

__all__ = ["MetricOutcome", "evaluate_metric", "evaluate_metrics", "summarize_null", "METRIC_NAMES"]

METRIC_NAMES = ("mknn", "retrieval", "cka", "dcka", "rsa")


@dataclasses.dataclass
class MetricOutcome:
    """A metric at one layer: its value, the permutation null values and the bootstrap values."""

    value: float
    null: np.ndarray
    boot: np.ndarray


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
        Resampled item indices for the confidence interval (may have zero rows).
    k : int
        Neighbours for mutual kNN.
    retrieval_k, retrieval_map :
        Hit within the top ``retrieval_k``; map ``ridge``, ``procrustes`` or ``none`` (see :func:`retrieval`).
    seed : int
        Seed of the retrieval split and of the RSA pair sample.

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
        return _mknn(X, Y, perms, boots, k)
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


def _mknn(X, Y, perms, boots, k) -> MetricOutcome:
    NX, NY = knn_indices(X, k), knn_indices(Y, k)
    per_item = _overlap(NX, NY) / k
    null = np.empty(len(perms))
    for p, perm in enumerate(perms):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        # neighbours of item i under the shuffled pairing are Y's neighbours of perm[i], renamed
        null[p] = (_overlap(NX, inverse[NY[perm]]) / k).mean()
    boot = np.array([per_item[b].mean() for b in boots])
    return MetricOutcome(float(per_item.mean()), null, boot)


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
    boot_lin, boot_deb = np.empty(len(boots)), np.empty(len(boots))
    for r, idx in enumerate(boots):
        acc_b = CKAAccumulator().update(X[idx], Y[idx])
        boot_lin[r], boot_deb[r] = acc_b.linear(), acc_b.debiased()
    return {
        "cka": MetricOutcome(acc.linear(), null_lin, boot_lin),
        "dcka": MetricOutcome(acc.debiased(), null_deb, boot_deb),
    }


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
    return MetricOutcome(float(base.mean()), null, boot)


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
    return MetricOutcome(value, null, boot)
