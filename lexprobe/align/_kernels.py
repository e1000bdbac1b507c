"""Compiled inner loops of the permutation nulls: the permuted kernel trace and the permuted neighbour overlap.

No library computes these two sums, and in NumPy each needs a gather of n² (trace) or n k² (overlap) elements
per permutation, which costs more than the arithmetic. Numba (a dependency of umap-learn) compiles them once
and caches the machine code on disk (``cache=True``), so later runs load it in milliseconds. Each permutation
is independent: the loops run in parallel over permutations.

The overlap counts integers, so it is exact. The trace accumulates in float64: with float64 kernels it differs
from a NumPy reference only by the order of the additions; with float32 kernels also by the rounding of the
stored entries (see ``KERNEL_F64_MAX_ITEMS`` in :mod:`lexprobe.align._null`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["permuted_traces", "permuted_overlaps", "permuted_traces_torch", "half_overlaps"]


@njit(cache=True, nogil=True, parallel=True)
def _offdiagonal_traces(K, L, perms):  # pragma: no cover - compiled; checked against NumPy in the tests
    m, n = perms.shape
    out = np.zeros(m)
    for q in prange(m):
        p = perms[q]
        row = np.empty(n, dtype=L.dtype)
        total = 0.0
        for i in range(n):
            # copy L's row p(i) in order first (the prefetcher streams it), then gather from the copy in L1
            source = L[p[i]]
            for j in range(n):
                row[j] = source[j]
            ki = K[i]
            # four accumulators: the additions of one row do not wait on each other
            r0 = 0.0
            r1 = 0.0
            r2 = 0.0
            r3 = 0.0
            j = i + 1
            while j + 3 < n:
                r0 += np.float64(ki[j]) * np.float64(row[p[j]])
                r1 += np.float64(ki[j + 1]) * np.float64(row[p[j + 1]])
                r2 += np.float64(ki[j + 2]) * np.float64(row[p[j + 2]])
                r3 += np.float64(ki[j + 3]) * np.float64(row[p[j + 3]])
                j += 4
            while j < n:
                r0 += np.float64(ki[j]) * np.float64(row[p[j]])
                j += 1
            total += (r0 + r1) + (r2 + r3)
        out[q] = 2.0 * total
    return out


@njit(cache=True, nogil=True, parallel=True)
def _overlaps(NX, NY, perms):  # pragma: no cover - compiled; checked against NumPy in the tests
    m, n = perms.shape
    k = NX.shape[1]
    out = np.zeros((m, n), dtype=np.int32)
    for q in prange(m):
        p = perms[q]
        inverse = np.empty(n, dtype=np.int64)
        for i in range(n):
            inverse[p[i]] = i
        stamp = np.full(n, -1, dtype=np.int64)
        for i in range(n):
            for a in range(k):
                stamp[NX[i, a]] = i
            row = NY[p[i]]
            count = 0
            for b in range(row.shape[0]):
                if stamp[inverse[row[b]]] == i:
                    count += 1
            out[q, i] = count
    return out


@njit(cache=True, nogil=True)
def _walk_half(row, inside, tag, stamp, key, k, mark):  # pragma: no cover - compiled
    """Walk an ordered neighbour list to its first k entries in the half (``inside == tag``): stamp them with
    ``key`` (``mark``), or count those already stamped. Returns (entries found, up to k; stamped ones counted)."""
    found = 0
    hits = 0
    for j in range(row.shape[0]):
        item = row[j]
        if inside[item] == tag:
            if mark:
                stamp[item] = key
            elif stamp[item] == key:
                hits += 1
            found += 1
            if found == k:
                break
    return found, hits


@njit(cache=True, nogil=True)
def _half_overlaps(NXL, NYL, orders, k):  # pragma: no cover - compiled; checked against NumPy in the tests
    splits, n = orders.shape
    out = np.full((splits, 2), -1, dtype=np.int64)
    inside = np.zeros(n, dtype=np.int64)
    stamp = np.full(n, -1, dtype=np.int64)
    for s in range(splits):
        for h in range(2):
            start = 0 if h == 0 else n // 2
            stop = n // 2 if h == 0 else n
            tag = 2 * s + h + 1
            for t in range(start, stop):
                inside[orders[s, t]] = tag
            total = 0
            shallow = False
            for t in range(start, stop):
                i = orders[s, t]
                key = tag * n + i
                found, _ = _walk_half(NXL[i], inside, tag, stamp, key, k, True)  # mark X's k nearest in the half
                if found == k:
                    found, hits = _walk_half(NYL[i], inside, tag, stamp, key, k, False)  # count Y's among them
                    total += hits
                if found < k:
                    shallow = True
                    break
            if not shallow:
                out[s, h] = total
    return out


def half_overlaps(NXL: np.ndarray, NYL: np.ndarray, orders: np.ndarray, k: int) -> np.ndarray:
    """Per random half split and half, Σ over the half's items of |kNN_X(i) ∩ kNN_Y(i)| within the half.

    Split s puts items ``orders[s, :n // 2]`` in its first half and the rest in its second. Each item's k
    nearest within a half are the first k entries of its ordered list (``NXL``, ``NYL``, from one search of all
    items) that fall in the half. -1 where some list holds fewer than k of the half (the caller then searches
    that half directly).

    Returns
    -------
    int64 array of shape (splits, 2)
    """
    return _half_overlaps(
        np.ascontiguousarray(NXL, np.int64),
        np.ascontiguousarray(NYL, np.int64),
        np.ascontiguousarray(orders, np.int64),
        k,
    )


def permuted_traces(
    K: np.ndarray, L: np.ndarray, perms: np.ndarray, *, diagonals: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Σ_ij K_ij L_{p(i) p(j)} for every permutation p (a row of ``perms``), for symmetric K and L.

    This is tr(K P L Pᵀ): with K = XXᵀ and L = YYᵀ it is ||Xᵀ P Y||²_F, the cross-covariance term of CKA when
    item i of X is paired with item p(i) of Y. O(n²) per permutation: the diagonal exactly in NumPy, the
    off-diagonal half (by symmetry) in the compiled loop, accumulated in float64 whatever the kernels' dtype.

    Parameters
    ----------
    K, L : float32 or float64 arrays of shape (n, n), symmetric, of one dtype
        float32 kernels halve the memory read per permutation (the loop is bound by memory, not arithmetic)
        at a rounding error of about 2⁻²⁴ per entry; see ``lexprobe.align._null.KERNEL_F64_MAX_ITEMS``.
    perms : int array of shape (m, n)
    diagonals : (a, b), optional
        K's and L's diagonals in float64 (the squared row norms), used instead of the stored ones.

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    dtype = np.float32 if np.asarray(K).dtype == np.float32 and np.asarray(L).dtype == np.float32 else np.float64
    K = np.ascontiguousarray(K, dtype=dtype)
    L = np.ascontiguousarray(L, dtype=dtype)
    perms = np.ascontiguousarray(perms, dtype=np.int32)  # n x n kernels never have 2³¹ rows
    if not len(perms):
        return np.empty(0)
    a, b = diagonals if diagonals is not None else (np.diagonal(K), np.diagonal(L))
    diagonal = np.asarray(b, np.float64)[perms] @ np.asarray(a, np.float64)
    return _offdiagonal_traces(K, L, perms) + diagonal


def permuted_overlaps(NX: np.ndarray, NY: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Per permutation and item, |NX[i] ∩ p⁻¹(NY[p(i)])|: the neighbour overlap when X[i] is paired with Y[p(i)].

    The neighbour lists do not change when the pairing is shuffled: under pairing p, item i's neighbours on
    the Y side are Y's neighbours of p(i), renamed back to X's items by p⁻¹. O(n k) per permutation.

    Parameters
    ----------
    NX : int64 array of shape (n, k)
        Each item's k neighbours on the X side (distinct within a row).
    NY : int64 array of shape (n, k2)
        Each item's neighbours on the Y side.
    perms : int64 array of shape (m, n)

    Returns
    -------
    ndarray of int32, shape (m, n)
    """
    NX = np.ascontiguousarray(NX, dtype=np.int64)
    NY = np.ascontiguousarray(NY, dtype=np.int64)
    perms = np.ascontiguousarray(perms, dtype=np.int64)
    if not len(perms):
        return np.empty((0, NX.shape[0]), dtype=np.int32)
    return _overlaps(NX, NY, perms)


def permuted_traces_torch(K, L, perms: np.ndarray, *, chunk: int = 8) -> np.ndarray:
    """:func:`permuted_traces` with torch tensors K, L on any device (a GPU gathers n² entries in microseconds).

    ``K`` and ``L`` are float64 torch tensors on one device; the permutations are moved there in chunks.
    """
    import torch

    out = np.empty(len(perms))
    for start in range(0, len(perms), chunk):
        block = torch.as_tensor(np.asarray(perms[start : start + chunk]), device=K.device)
        for offset, p in enumerate(block):
            out[start + offset] = float(torch.sum(K * L.index_select(0, p).index_select(1, p)))
    return out
