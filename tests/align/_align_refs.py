"""Slow, independent references for the alignment tests: n x n Gram-form CKA / HSIC and kNN by full sort."""

from __future__ import annotations

import numpy as np


def gram_hsic(K: np.ndarray, L: np.ndarray, unbiased: bool) -> float:
    """HSIC written out on n x n Gram matrices: tr(KHLH) (biased) or Song et al. 2012, eq. 5 (unbiased)."""
    n = len(K)
    if not unbiased:
        H = np.eye(n) - 1.0 / n
        return float(np.trace(K @ H @ L @ H))
    K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return float(
        (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ K @ L @ one))
        / (n * (n - 3))
    )


def gram_cka(X: np.ndarray, Y: np.ndarray, unbiased: bool) -> float:
    K, L = X @ X.T, Y @ Y.T
    return gram_hsic(K, L, unbiased) / np.sqrt(gram_hsic(K, K, unbiased) * gram_hsic(L, L, unbiased))


def slow_mutual_knn(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Mutual kNN from full cosine-similarity matrices, self excluded, ties to the lower index."""

    def neighbours(Z: np.ndarray) -> list[set[int]]:
        Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        S = np.round(Zn @ Zn.T, 6)
        return [set([j for j in np.lexsort((np.arange(len(Z)), -S[i])) if j != i][:k]) for i in range(len(Z))]

    return float(np.mean([len(a & b) / k for a, b in zip(neighbours(X), neighbours(Y))]))
