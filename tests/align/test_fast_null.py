"""The fast nulls compute what the plain definitions compute: CKA nulls to 1e-10, mutual-kNN nulls exactly.

References are independent: CKA of the shuffled pairing recomputed from scratch (``linear_cka(X, Y[perm])``),
and the neighbour overlap recomputed with NumPy from the shuffled pairing's own lists.
"""

from __future__ import annotations

import numpy as np
import pytest

from lexprobe.align import debiased_cka, evaluate_metrics, linear_cka, mutual_knn, preprocess
from lexprobe.align._kernels import half_overlaps, permuted_overlaps, permuted_traces, permuted_traces_torch
from lexprobe.align._metrics import _knn_ordered, _knn_search, _overlap, knn_indices
from lexprobe.align._null import (
    KERNEL_F64_MAX_ITEMS,
    Side,
    _accumulate_sides,
    _mknn_halves,
    null_form,
    permuted_cross,
)


def related(n: int, d: int, seed: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two views of a shared 8-dimensional latent, with noise and (optionally) a mean far from 0."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 8))
    X = Z @ rng.standard_normal((8, d)) + rng.standard_normal((n, d)) + offset
    Y = Z @ rng.standard_normal((8, d + 3)) + 2 * rng.standard_normal((n, d + 3)) - offset
    return X, Y


def perms_for(n: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([rng.permutation(n) for _ in range(count)])


@pytest.mark.parametrize(("n", "d", "offset"), [(40, 6, 0.0), (300, 20, 5.0), (KERNEL_F64_MAX_ITEMS + 476, 48, 0.0)])
@pytest.mark.parametrize("form", ["kernel", "feature"])
def test_both_exact_forms_give_the_cka_of_each_shuffled_pairing_to_1e_10(n, d, offset, form, monkeypatch) -> None:
    import lexprobe.align._null as null_module

    X, Y = related(n, d, seed=n, offset=offset)
    perms = perms_for(n, 6, seed=1)
    monkeypatch.setattr(null_module, "null_form", lambda *args: form)
    outcomes = evaluate_metrics(["cka", "dcka"], X, Y, perms, np.empty((0, n), int))
    for metric, reference in (("cka", linear_cka), ("dcka", debiased_cka)):
        expected = np.array([reference(X, Y[perm]) for perm in perms])
        np.testing.assert_allclose(outcomes[metric].null, expected, rtol=0, atol=1e-10, err_msg=f"{form} {metric}")
        assert outcomes[metric].value == reference(X, Y)


def test_the_permuted_trace_is_the_permuted_double_sum_for_float64_and_float32_kernels() -> None:
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((50, 7)), rng.standard_normal((50, 9))
    K, L = A @ A.T, B @ B.T
    perms = perms_for(50, 5, seed=2)
    expected = np.array([np.sum(K * L[np.ix_(p, p)]) for p in perms])
    np.testing.assert_allclose(permuted_traces(K, L, perms), expected, rtol=1e-13)
    # float32 storage, float64 sums: only the rounding of the stored entries remains
    np.testing.assert_allclose(permuted_traces(K.astype(np.float32), L.astype(np.float32), perms), expected, rtol=1e-6)
    torch = pytest.importorskip("torch")
    traces = permuted_traces_torch(torch.as_tensor(K), torch.as_tensor(L), perms, chunk=2)
    np.testing.assert_allclose(traces, expected, rtol=1e-13)


def test_the_cheaper_form_is_chosen_by_size() -> None:
    assert null_form(2000, 576, 576, 100) == "kernel"  # the main job: O(n²) against O(n d²) per permutation
    assert null_form(44000, 576, 576, 100) == "feature"  # whole HGNC: the kernels would not fit
    assert null_form(3000, 8, 8, 100) == "feature"  # few dimensions: the GEMM is tiny
    assert null_form(2000, 576, 576, 0) == "feature"  # no permutations: no kernel worth forming


def test_the_mutual_knn_null_is_the_overlap_of_each_shuffled_pairing() -> None:
    X, Y = related(120, 10, seed=3)
    perms = perms_for(120, 8, seed=4)
    k = 5
    outcome = evaluate_metrics(["mknn"], X, Y, perms, np.empty((0, 120), int), k=k)["mknn"]
    expected = np.array([mutual_knn(X, Y[perm], k=k) for perm in perms])
    np.testing.assert_array_equal(outcome.null, expected)
    NX, NY = knn_indices(X, k), knn_indices(Y, k)
    counts = permuted_overlaps(NX, NY, perms)
    for perm, row in zip(perms, counts):
        np.testing.assert_array_equal(row, _overlap(NX, knn_indices(Y[perm], k)))


def test_half_sample_overlaps_equal_a_fresh_search_within_each_half() -> None:
    X, Y = related(90, 12, seed=5)
    k = 4
    halves = _mknn_halves(X, Y, _knn_ordered(X, k), _knn_ordered(Y, k), k, 6, seed=7)
    rng = np.random.default_rng([7, 0x6D6B6E6E])
    for split in halves:
        order = rng.permutation(90)
        for value, half in zip(split, (np.sort(order[:45]), np.sort(order[45:]))):
            assert value == mutual_knn(X[half], Y[half], k=k)
    # a list too shallow for a half is reported, not guessed
    shallow = half_overlaps(_knn_ordered(X, k)[:, :k], _knn_ordered(Y, k)[:, :k], perms_for(90, 3, seed=1), k)
    assert (shallow == -1).all()


def test_a_field_shared_by_two_pairs_is_prepared_once_and_gives_the_same_numbers() -> None:
    X, Y = related(200, 16, seed=8)
    W = np.random.default_rng(9).standard_normal((200, 16))
    X, Y, W = preprocess(X), preprocess(Y), preprocess(W)
    perms = perms_for(200, 10, seed=10)
    shared = Side(X)
    metrics = ["mknn", "cka", "dcka"]
    for other in (Y, W):
        by_side = evaluate_metrics(metrics, shared, Side(other), perms, np.zeros((1, 200), int))
        by_array = evaluate_metrics(metrics, X, other, perms, np.zeros((1, 200), int))
        for metric in metrics:
            assert by_side[metric].value == by_array[metric].value
            np.testing.assert_array_equal(by_side[metric].null, by_array[metric].null)
            assert by_side[metric].interval == by_array[metric].interval
    assert ("knn", 10) in shared._cache and "sums" in shared._cache  # searched and summed once for two pairs
    acc = _accumulate_sides(shared, Side(Y))
    assert acc.linear() == linear_cka(X, Y) and acc.debiased() == debiased_cka(X, Y)


def test_permuted_cross_forms_agree_on_real_sizes() -> None:
    X, Y = related(1500, 64, seed=11)
    sx, sy = Side(preprocess(X)), Side(preprocess(Y))
    perms = perms_for(1500, 3, seed=12)
    kernel = permuted_cross(sx, sy, perms, form="kernel")
    feature = permuted_cross(sx, sy, perms, form="feature")
    np.testing.assert_allclose(kernel, feature, rtol=1e-8)


@pytest.mark.parametrize("form", ["kernel", "feature"])
def test_the_torch_path_a_gpu_takes_gives_the_numpy_numbers(form: str) -> None:
    pytest.importorskip("torch")
    X, Y = related(120, 10, seed=14)
    sx, sy = Side(preprocess(X)), Side(preprocess(Y))
    perms = perms_for(120, 4, seed=15)
    np.testing.assert_allclose(
        permuted_cross(sx, sy, perms, form=form, device="cpu"),
        permuted_cross(sx, sy, perms, form=form, device="numpy"),
        rtol=1e-12,
    )


def test_approximate_neighbours_are_reproducible_and_their_recall_is_measured() -> None:
    rng = np.random.default_rng(13)
    centres = rng.standard_normal((40, 32))
    X = centres[rng.integers(0, 40, 3000)] + 0.7 * rng.standard_normal((3000, 32))
    lists, recall = _knn_search(X, 10, approximate=True)
    again, recall_again = _knn_search(X, 10, approximate=True)
    exact, none = _knn_search(X, 10, approximate=False)
    assert none is None
    np.testing.assert_array_equal(lists, again)
    assert recall == recall_again
    assert recall >= 0.95
    # the recall it reports is the recall it has (here on every row, not only the probed ones)
    actual = _overlap(lists[:, :10], exact[:, :10]).mean() / 10
    assert abs(actual - recall) < 0.02
    assert lists.shape == exact.shape
