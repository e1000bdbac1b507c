"""Chance levels: the permutation null is calibrated and the layer-max null guards the best-layer choice."""

from __future__ import annotations

import numpy as np
import pytest
from _align_refs import gram_cka, slow_mutual_knn
from scipy.stats import kstest

from lexprobe.align import (
    debiased_cka,
    evaluate_metric,
    evaluate_metrics,
    linear_cka,
    mutual_knn,
    retrieval,
    rsa,
    summarize_null,
)
from lexprobe.exceptions import AlignmentError


def perms_for(n: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([rng.permutation(n) for _ in range(count)])


@pytest.mark.parametrize("metric", ["mknn", "cka", "dcka", "rsa"])
def test_p_values_are_roughly_uniform_for_independent_data(metric: str) -> None:
    p_values = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        X, Y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))
        outcome = evaluate_metric(metric, X, Y, perms_for(40, 39, seed + 1000), np.empty((0, 40), int), k=5)
        p_values.append(summarize_null(outcome.value, outcome.null)["p_value"])
    # discrete p-values on a 1/40 grid: compare with a uniform, allowing for the grid
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert 0.3 < np.mean(p_values) < 0.7


def test_a_planted_relation_stands_far_above_its_null() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 10))
    Y = X @ rng.standard_normal((10, 12)) + 0.5 * rng.standard_normal((150, 12))
    outcomes = evaluate_metrics(
        ["mknn", "cka", "dcka", "retrieval"], X, Y, perms_for(150, 50, 1), np.empty((0, 150), int)
    )
    for metric, outcome in outcomes.items():
        stats = summarize_null(outcome.value, outcome.null)
        assert stats["z"] > 5, metric
        assert stats["p_value"] == pytest.approx(1 / 51), metric


def test_summarize_null_reports_effect_inputs_and_handles_no_permutations() -> None:
    stats = summarize_null(0.5, np.array([0.1, 0.2, 0.3]))
    assert stats["null_mean"] == pytest.approx(0.2)
    assert stats["z"] == pytest.approx(3.0)
    assert stats["p_value"] == pytest.approx(0.25)
    assert np.isnan(summarize_null(0.5, np.array([]))["z"])


def test_retrieval_p_values_are_roughly_uniform_for_independent_data() -> None:
    p_values = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        X, Y = rng.standard_normal((60, 5)), rng.standard_normal((60, 5))
        outcome = evaluate_metric(
            "retrieval", X, Y, perms_for(60, 39, seed + 1000), np.empty((0, 60), int), retrieval_k=5, seed=seed
        )
        p_values.append(summarize_null(outcome.value, outcome.null)["p_value"])
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert 0.3 < np.mean(p_values) < 0.7


@pytest.mark.parametrize("retrieval_map", ["ridge", "procrustes", "none"])
def test_evaluated_values_equal_the_plain_metric_functions(retrieval_map: str) -> None:
    rng = np.random.default_rng(8)
    X = rng.standard_normal((90, 8))
    Y = X @ np.linalg.qr(rng.standard_normal((8, 8)))[0] + rng.standard_normal((90, 8))
    perms, boots = perms_for(90, 3, 1), np.empty((0, 90), int)
    kwargs = {"k": 7, "retrieval_k": 3, "retrieval_map": retrieval_map, "seed": 4}
    outcomes = evaluate_metrics(["mknn", "retrieval", "cka", "dcka", "rsa"], X, Y, perms, boots, **kwargs)
    assert outcomes["mknn"].value == mutual_knn(X, Y, k=7)
    assert outcomes["retrieval"].value == retrieval(X, Y, k=3, method=retrieval_map, seed=4)
    assert outcomes["cka"].value == pytest.approx(linear_cka(X, Y), abs=1e-12)
    assert outcomes["dcka"].value == pytest.approx(debiased_cka(X, Y), abs=1e-12)
    assert outcomes["rsa"].value == rsa(X, Y, seed=4)


@pytest.mark.parametrize("metric", ["mknn", "retrieval", "cka", "dcka", "rsa"])
def test_each_null_value_is_the_metric_of_the_shuffled_pairing(metric: str) -> None:
    """The fast null paths (reused neighbour lists, permuted X rows, fixed ridge operators) are exact."""
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((80, 6)), rng.standard_normal((80, 6))
    perms = perms_for(80, 3, 2)
    outcome = evaluate_metric(metric, X, Y, perms, np.empty((0, 80), int), k=5, retrieval_k=4, seed=3)
    for perm, null_value in zip(perms, outcome.null):
        if metric == "retrieval":
            # the retrieval null shuffles within the train half and within the held-out half
            from lexprobe.align._metrics import _split

            train, test = _split(80, 0.5, 3)
            order = np.empty(80, int)
            order[train], order[test] = train[np.argsort(perm[train])], test[np.argsort(perm[test])]
            expected = retrieval(X, Y[order], k=4, seed=3)
        else:
            plain = {
                "mknn": lambda A, B: mutual_knn(A, B, k=5),
                "cka": linear_cka,
                "dcka": debiased_cka,
                "rsa": lambda A, B: rsa(A, B, seed=3),
            }[metric]
            expected = plain(X, Y[perm])
        assert null_value == pytest.approx(expected, abs=1e-5)


def test_rsa_bootstrap_resamples_items_and_covers_the_estimate() -> None:
    from lexprobe.align._run import bootstrap_interval

    rng = np.random.default_rng(6)
    X = rng.standard_normal((200, 10))
    Y = X + rng.standard_normal((200, 10))
    boots = rng.integers(0, 200, size=(50, 200))
    outcome = evaluate_metric("rsa", X, Y, np.empty((0, 200), int), boots)
    low, high = bootstrap_interval(outcome.value, outcome.boot)
    assert 0 < low < outcome.value < high < 1
    assert outcome.boot.std() > 0.005  # resampling items moves the value (it is not a constant)


@pytest.mark.parametrize(
    ("perms", "boots", "metric", "match"),
    [
        (np.zeros((2, 30), int), np.empty((0, 30), int), "mknn", "every row of `perms` must be a permutation"),
        (np.arange(20)[None, :], np.empty((0, 30), int), "cka", r"`perms` must be an integer array of shape"),
        (np.arange(30.0)[None, :], np.empty((0, 30), int), "dcka", "`perms` must be an integer array"),
        (np.arange(30)[None, :], np.full((1, 30), 30), "rsa", r"`boots` must hold item indices in \[0, 29\]"),
        (np.arange(30)[None, :], np.empty((0, 30), int), "cosine", "unknown metric 'cosine'"),
    ],
)
def test_malformed_permutations_and_resamples_are_refused(perms, boots, metric: str, match: str) -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    with pytest.raises(AlignmentError, match=match):
        evaluate_metric(metric, X, Y, perms, boots, k=3)
    with pytest.raises(AlignmentError, match=match):
        evaluate_metrics([metric], X, Y, perms, boots, k=3)


def test_evaluation_validates_the_embeddings_too() -> None:
    X = np.ones((30, 4))
    with pytest.raises(AlignmentError, match="paired row by row; got 30 and 29 rows"):
        evaluate_metric("cka", X, X[:29], np.empty((0, 30), int), np.empty((0, 30), int))
    with pytest.raises(AlignmentError, match="non-finite"):
        evaluate_metrics(["mknn"], X * np.nan, X, np.empty((0, 30), int), np.empty((0, 30), int))


@pytest.mark.parametrize("metric", ["mknn", "cka", "dcka"])
def test_the_fast_null_equals_a_null_computed_the_slow_way(metric: str) -> None:
    """Independent reference: shuffle Y's rows, recompute the metric from n x n matrices, in a plain loop."""
    rng = np.random.default_rng(21)
    X = rng.standard_normal((70, 6)) + 1.0
    Y = X[:, :2] @ rng.standard_normal((2, 9)) + rng.standard_normal((70, 9))
    perms = perms_for(70, 25, 22)
    outcome = evaluate_metric(metric, X, Y, perms, np.empty((0, 70), int), k=5)
    slow = {
        "mknn": lambda A, B: slow_mutual_knn(A, B, 5),
        "cka": lambda A, B: gram_cka(A, B, unbiased=False),
        "dcka": lambda A, B: gram_cka(A, B, unbiased=True),
    }[metric]
    expected = np.array([slow(X, Y[perm]) for perm in perms])
    np.testing.assert_allclose(outcome.null, expected, atol=1e-5)  # the fast path multiplies in float32
    assert outcome.value == pytest.approx(slow(X, Y), abs=1e-10)
    assert np.std(expected) > 0  # the shuffles do move the metric
