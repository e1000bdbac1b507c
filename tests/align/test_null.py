"""Chance levels: the permutation null is calibrated and the layer-max null guards the best-layer choice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest

from lexprobe.align import evaluate_metric, evaluate_metrics, summarize_null


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


def test_shared_cka_computation_equals_the_separate_ones() -> None:
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((80, 7)), rng.standard_normal((80, 9))
    perms, boots = perms_for(80, 10, 3), np.random.default_rng(4).integers(0, 80, (5, 80))
    both = evaluate_metrics(["cka", "dcka"], X, Y, perms, boots)
    for metric in ("cka", "dcka"):
        alone = evaluate_metric(metric, X, Y, perms, boots)
        assert both[metric].value == alone.value
        np.testing.assert_allclose(both[metric].null, alone.null)
        np.testing.assert_allclose(both[metric].boot, alone.boot)


def test_summarize_null_reports_effect_inputs_and_handles_no_permutations() -> None:
    stats = summarize_null(0.5, np.array([0.1, 0.2, 0.3]))
    assert stats["null_mean"] == pytest.approx(0.2)
    assert stats["z"] == pytest.approx(3.0)
    assert stats["p_value"] == pytest.approx(0.25)
    assert np.isnan(summarize_null(0.5, np.array([]))["z"])


def test_bootstrap_interval_covers_the_estimate_despite_the_duplicate_bias() -> None:
    from lexprobe.align._run import bootstrap_interval

    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 40))
    Y = X[:, :5] @ rng.standard_normal((5, 40)) * 0.3 + rng.standard_normal((300, 40))
    boots = rng.integers(0, 300, size=(60, 300))
    outcome = evaluate_metric("cka", X, Y, np.empty((0, 300), int), boots)
    assert np.median(outcome.boot) > outcome.value  # the upward shift resampling gives CKA
    low, high = bootstrap_interval(outcome.value, outcome.boot)
    assert low < outcome.value < high
