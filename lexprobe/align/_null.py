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
    _pair_sample,
    _ridge_operator,
    _split,
    knn_indices,
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


def evaluate_metric(
    metric: str,
    X: np.ndarray,
    Y: np.ndarray,
    perms: np.ndarray,
    boots: np.ndarray,
    *,
    k: int = 10,
    retrieval_k: int = 1,
    seed: int = 0,
) -> MetricOutcome:
    """Value, null and bootstrap of one metric on preprocessed X, Y.

    Parameters
    ----------
    perms : int array, shape (n_permutations, n_items)
        Row orders of Y for the null (pairing shuffled).
    boots : int array, shape (n_bootstrap, n_items)
        Resampled item indices for the confidence interval (may have zero rows).
    """
    if metric == "mknn":
        return _mknn(X, Y, perms, boots, k)
    if metric in ("cka", "dcka"):
        return _cka(X, Y, perms, boots, debiased=metric == "dcka")
    if metric == "retrieval":
        return _retrieval(X, Y, perms, boots, retrieval_k, seed)
    if metric == "rsa":
        return _rsa(X, Y, perms, boots, seed)
    raise AlignmentError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_NAMES)}")


def evaluate_metrics(
    metrics: tuple[str, ...] | list[str],
    X: np.ndarray,
    Y: np.ndarray,
    perms: np.ndarray,
    boots: np.ndarray,
    *,
    k: int = 10,
    retrieval_k: int = 1,
    seed: int = 0,
    cka_boots: np.ndarray | None = None,
) -> dict[str, MetricOutcome]:
    """Several metrics at once; linear and debiased CKA share their per-permutation work.

    ``cka_boots`` overrides ``boots`` for the two CKA metrics (their resamples are costly).
    """
    out: dict[str, MetricOutcome] = {}
    if "cka" in metrics or "dcka" in metrics:
        both = _cka_both(X, Y, perms, boots if cka_boots is None else cka_boots)
        out.update({m: both[m] for m in ("cka", "dcka") if m in metrics})
    for metric in metrics:
        if metric not in out:
            out[metric] = evaluate_metric(metric, X, Y, perms, boots, k=k, retrieval_k=retrieval_k, seed=seed)
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
    for p, perm in enumerate(perms):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(n)
        # Xᵀ(PY) = (PᵀX)ᵀY: permute the rows of X instead of Y; the same for the paired sums
        C = (X32t[:, inverse] @ Y32).astype(np.float64)
        c2 = float(np.einsum("ij,ij->", C, C))
        a_inv = a[inverse]
        bp = b[perm]
        h = _hsic1_from(n, c2, float(sx @ C @ sy), sx, sy, float(a @ bp), s["a"], s["b"], bp @ X, a_inv @ Y)
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


def _hsic1_from(n, c2, sxCsy, sx, sy, ab, a, b, bX, aY) -> float:
    """The unbiased HSIC of CKAAccumulator._hsic1, from precomputed ||C||² and sxᵀ C sy."""
    tr = c2 - ab
    one_k = float(sx @ sx) - a
    one_l = float(sy @ sy) - b
    cross = sxCsy - float(bX @ sx) - float(aY @ sy) + ab
    return (tr + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


def _retrieval(X, Y, perms, boots, k, seed) -> MetricOutcome:
    n = X.shape[0]
    train, test = _split(n, 0.5, seed)
    if not 1 <= k <= len(test):
        raise AlignmentError(f"retrieval `k` must be in [1, {len(test)}], got {k}")
    ops = {"xy": _ridge_operator(X[train], 1.0), "yx": _ridge_operator(Y[train], 1.0)}

    def per_item_hits(order: np.ndarray) -> np.ndarray:
        Yo = Y[order]
        hits = []
        for A, B, op in ((X, Yo, ops["xy"]), (Yo, X, None)):
            W = (op if op is not None else _ridge_operator(Yo[train], 1.0)) @ B[train]
            pred = _normalized32(A[test] @ W)
            sims = pred @ _normalized32(B[test]).T
            own = sims[np.arange(len(test)), np.arange(len(test))]
            hits.append(((sims > own[:, None]).sum(axis=1) < k).astype(float))
        return (hits[0] + hits[1]) / 2

    identity = np.arange(n)
    base = per_item_hits(identity)
    null = np.array([per_item_hits(perm).mean() for perm in perms])
    # bootstrap over held-out items: resample the per-item hit rates
    boot = np.array(
        [base[np.random.default_rng(seed + r).integers(0, len(base), len(base))].mean() for r in range(len(boots))]
    )
    return MetricOutcome(float(base.mean()), null, boot)


def _rsa(X, Y, perms, boots, seed) -> MetricOutcome:
    n = X.shape[0]
    i, j = _pair_sample(n, min(20000, n * (n - 1) // 2), seed)
    Xn, Yn = _normalized32(X), _normalized32(Y)
    rx = rankdata(1.0 - np.einsum("ij,ij->i", Xn[i], Xn[j]))
    DY = 1.0 - Yn @ Yn.T  # n x n float32; the permutation null gathers from it

    def spearman(ry: np.ndarray, rxs: np.ndarray = rx) -> float:
        return float(np.corrcoef(rxs, ry)[0, 1])

    value = spearman(rankdata(DY[i, j]))
    null = np.array([spearman(rankdata(DY[perm[i], perm[j]])) for perm in perms])
    boot = np.empty(len(boots))
    rng = np.random.default_rng(seed)
    dy = DY[i, j]
    dx = 1.0 - np.einsum("ij,ij->i", Xn[i], Xn[j])
    for r in range(len(boots)):
        pick = rng.integers(0, len(i), len(i))  # resample pairs
        boot[r] = spearman(rankdata(dy[pick]), rankdata(dx[pick]))
    return MetricOutcome(value, null, boot)
