"""Alignment metrics: identities, agreement with the Gram-matrix forms, and planted signals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from lexprobe.align import (
    METRICS,
    CKAAccumulator,
    debiased_cka,
    knn_indices,
    linear_cka,
    mutual_knn,
    preprocess,
    retrieval,
    rsa,
)
from lexprobe.exceptions import AlignmentError


def gram_linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Kornblith et al. 2019 with centered Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = len(X)
    H = np.eye(n) - 1.0 / n
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return float((K * L).sum() / np.sqrt((K * K).sum() * (L * L).sum()))


def unbiased_hsic(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. 2012, eq. 5, on n x n Gram matrices."""
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return float(
        (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ K @ L @ one))
        / (n * (n - 3))
    )


def gram_debiased_cka(X: np.ndarray, Y: np.ndarray) -> float:
    K, L = X @ X.T, Y @ Y.T
    return unbiased_hsic(K, L) / np.sqrt(unbiased_hsic(K, K) * unbiased_hsic(L, L))


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.mark.parametrize(("n", "d1", "d2"), [(50, 5, 7), (200, 30, 20), (120, 64, 64)])
def test_feature_space_cka_agrees_with_the_gram_forms(rng, n: int, d1: int, d2: int) -> None:
    X = rng.standard_normal((n, d1)) + 3.0  # not centered: centering is part of the metric
    Y = X[:, :1] @ rng.standard_normal((1, d2)) + rng.standard_normal((n, d2))
    assert abs(linear_cka(X, Y) - gram_linear_cka(X, Y)) < 1e-8
    assert abs(debiased_cka(X, Y) - gram_debiased_cka(X, Y)) < 1e-8


@pytest.mark.parametrize("cka", [linear_cka, debiased_cka])
def test_cka_of_a_matrix_with_itself_is_one(rng, cka) -> None:
    X = rng.standard_normal((100, 12))
    assert cka(X, X) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("cka", [linear_cka, debiased_cka])
def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(rng, cka) -> None:
    X = rng.standard_normal((150, 16))
    Y = X @ rng.standard_normal((16, 10)) + rng.standard_normal((150, 10))
    Q = ortho_group.rvs(16, random_state=3)
    base = cka(X, Y)
    assert cka(X @ Q, Y) == pytest.approx(base, abs=1e-10)
    assert cka(7.5 * X, 0.01 * Y) == pytest.approx(base, abs=1e-10)
    A = rng.standard_normal((16, 16))  # a general linear map changes CKA: the test can fail
    assert abs(cka(X @ A, Y) - base) > 1e-3


def test_streaming_batches_equal_the_one_shot_result(rng) -> None:
    X, Y = rng.standard_normal((333, 9)), rng.standard_normal((333, 11))
    acc = CKAAccumulator()
    for start in range(0, 333, 50):
        acc.update(X[start : start + 50], Y[start : start + 50])
    assert acc.linear() == pytest.approx(linear_cka(X, Y), abs=1e-12)
    assert acc.debiased() == pytest.approx(debiased_cka(X, Y), abs=1e-12)


def test_debiased_cka_is_near_zero_for_independent_data_where_linear_cka_is_not(rng) -> None:
    X, Y = rng.standard_normal((100, 80)), rng.standard_normal((100, 80))
    assert linear_cka(X, Y) > 0.4  # the bias of linear CKA when d is close to n
    assert abs(debiased_cka(X, Y)) < 0.05


def test_planted_alignment_is_high_and_independence_is_at_chance(rng) -> None:
    n, d = 400, 24
    X = rng.standard_normal((n, d))
    R = ortho_group.rvs(d, random_state=5)
    Y_related = X @ R + 0.1 * rng.standard_normal((n, d))
    Y_indep = rng.standard_normal((n, d))
    k = 10
    assert mutual_knn(X, Y_related, k=k) > 0.6
    assert mutual_knn(X, Y_indep, k=k) < 3 * k / (n - 1)
    assert retrieval(X, Y_related, k=1) > 0.9
    assert retrieval(X, Y_indep, k=1) < 0.05
    assert retrieval(X, Y_related, k=1, method="procrustes") > 0.9
    assert retrieval(X, Y_related @ R.T, k=1, method="none") > 0.9
    assert rsa(X, Y_related) > 0.9
    assert abs(rsa(X, Y_indep)) < 0.05


def test_mutual_knn_of_identical_sets_is_one_and_neighbours_exclude_self(rng) -> None:
    X = rng.standard_normal((60, 8))
    assert mutual_knn(X, X.copy(), k=5) == 1.0
    neighbours = knn_indices(X, 5)
    assert not (neighbours == np.arange(60)[:, None]).any()


def test_ties_are_broken_deterministically_by_index() -> None:
    # four identical rows: every row's neighbours are the other three, lowest index first
    X = np.vstack([np.ones((4, 3)), np.eye(3) * 5])
    neighbours = knn_indices(X, 3)
    assert neighbours[0].tolist() == [1, 2, 3]
    assert neighbours[3].tolist() == [0, 1, 2]
    assert np.array_equal(neighbours, knn_indices(X, 3))


def test_preprocessing_tames_a_massive_activation_dimension(rng) -> None:
    X = rng.standard_normal((300, 20))
    Y = X + 0.3 * rng.standard_normal((300, 20))
    X_massive, Y_massive = X.copy(), Y.copy()
    # one huge dimension that carries no pairing signal, as the "massive activations" of LLM states
    X_massive[:, 0] = 1e3 * rng.standard_normal(300)
    Y_massive[:, 0] = 1e3 * rng.standard_normal(300)
    raw = mutual_knn(preprocess(X_massive, "none"), preprocess(Y_massive, "none"), k=10)
    fixed = mutual_knn(preprocess(X_massive, "standardize"), preprocess(Y_massive, "standardize"), k=10)
    clipped = preprocess(X_massive, "clip")
    assert raw < 0.15 and fixed > raw + 0.3
    assert np.abs(clipped[:, 0]).max() <= 5 * np.median(X_massive.std(axis=0)) + 1e-9
    assert mutual_knn(clipped, preprocess(Y_massive, "clip"), k=10) > raw + 0.1
    assert preprocess(X, "center").mean(axis=0) == pytest.approx(np.zeros(20), abs=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda X, Y: mutual_knn(X, Y, k=500), r"`k` must be in \[1, n_items - 1\] = \[1, 49\], got 500"),
        (lambda X, Y: linear_cka(X, Y[:10]), "paired row by row; got 50 and 10 rows"),
        (lambda X, Y: debiased_cka(X[:, 0], Y), "must be 2-D"),
        (lambda X, Y: rsa(X.astype(int), Y), "must hold floats"),
        (lambda X, Y: linear_cka(np.where(X > 2, np.nan, X), Y), "non-finite"),
        (lambda X, Y: retrieval(X, Y[:, :3], method="procrustes"), "needs equal dimensions"),
        (lambda X, Y: retrieval(X, Y, method="magic"), "ridge, procrustes or none"),
        (lambda X, Y: preprocess(X, "whiten"), "`preprocess` must be one of"),
        (lambda X, Y: retrieval(X, Y, k=26), r"retrieval `k` must be in \[1, n_test\] = \[1, 25\], got 26"),
        (lambda X, Y: retrieval(X, Y, test_size=1.0), r"`test_size` must be in \(0, 1\)"),
        (lambda X, Y: rsa(X, Y, n_pairs=3), "`n_pairs` must be at least 10"),
        (lambda X, Y: mutual_knn(X[:3], Y[:3], k=1), "has 3 rows; at least 4 are needed"),
    ],
)
def test_bad_inputs_raise_clear_errors(rng, call, match: str) -> None:
    X, Y = rng.standard_normal((50, 6)), rng.standard_normal((50, 6))
    with pytest.raises(AlignmentError, match=match):
        call(X, Y)


def test_the_registry_maps_cli_names_to_float_metrics(rng) -> None:
    X, Y = rng.standard_normal((40, 5)), rng.standard_normal((40, 5))
    assert set(METRICS) == {"mknn", "retrieval", "cka", "dcka", "rsa"}
    for fn in METRICS.values():
        assert isinstance(fn(X, Y), float)


def test_rsa_uses_every_pair_when_there_are_few_and_a_seeded_sample_otherwise(rng) -> None:
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    exact = spearmanr(pdist(X, "cosine"), pdist(Y, "cosine")).statistic
    assert rsa(X, Y) == pytest.approx(exact, abs=1e-6)
    X, Y = rng.standard_normal((400, 5)), rng.standard_normal((400, 5))
    assert rsa(X, Y, n_pairs=500, seed=1) == rsa(X, Y, n_pairs=500, seed=1)
    assert rsa(X, Y, n_pairs=500, seed=1) != rsa(X, Y, n_pairs=500, seed=2)


def test_unfitted_retrieval_and_procrustes_undo_a_rotation_that_ridge_also_learns(rng) -> None:
    n, d = 300, 12
    X = rng.standard_normal((n, d))
    Q = ortho_group.rvs(d, random_state=9)
    Y = X @ Q + 0.2 * rng.standard_normal((n, d))
    assert retrieval(X, Y, method="none") < 0.2  # rotated: the raw spaces do not line up
    assert retrieval(X, Y @ Q.T, method="none") > 0.9
    assert retrieval(X, Y, method="procrustes") > 0.9
    assert retrieval(X, Y, method="ridge") > 0.9
