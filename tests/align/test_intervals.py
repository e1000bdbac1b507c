"""Intervals of mutual kNN and CKA: their pieces against slow references, and their coverage by simulation.

A paired population with a known truth: a shared latent Z (rank 4) seen through fixed loadings plus noise,
X = Z Wx + Ex, Y = Z Wy + Ey. Debiased CKA's target is the population CKA ||Σxy||² / (||Σxx|| ||Σyy||);
mutual kNN's target is its expectation at the sample size (it depends on n), estimated by the mean over the
replicates. The width ratio (mean width / (2 · 1.96 · sd of the estimates)) is 1 for an interval of the
right width. ``benchmarks/coverage_intervals.py`` runs the larger simulation recorded in docs/alignment.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from _align_refs import gram_cka, slow_mutual_knn

from lexprobe.align import evaluate_metric, evaluate_metrics
from lexprobe.align._metrics import _knn_ordered, _overlap, knn_indices
from lexprobe.align._null import _mknn_halves, jackknife_interval


def test_cka_leave_one_out_values_equal_gram_form_cka_without_the_item() -> None:
    rng = np.random.default_rng(31)
    X = rng.standard_normal((40, 5)) + 2.0  # not centred: centring is part of the metric
    Y = X[:, :2] @ rng.standard_normal((2, 7)) + rng.standard_normal((40, 7))
    one = np.zeros((1, 40), int)
    for metric, unbiased in (("cka", False), ("dcka", True)):
        outcome = evaluate_metric(metric, X, Y, np.empty((0, 40), int), one)
        slow = np.array([gram_cka(np.delete(X, j, 0), np.delete(Y, j, 0), unbiased) for j in range(40)])
        np.testing.assert_allclose(outcome.boot, slow, atol=1e-10)
        assert outcome.interval == pytest.approx(jackknife_interval(outcome.value, slow), abs=1e-9)
        se = np.sqrt(39 / 40 * np.sum((slow - slow.mean()) ** 2))
        assert outcome.interval[1] - outcome.interval[0] == pytest.approx(2 * 1.959964 * se, rel=1e-5)


def test_mutual_knn_half_samples_equal_mutual_knn_recomputed_in_each_half() -> None:
    rng = np.random.default_rng(32)
    X = rng.standard_normal((90, 4))
    Y = X + rng.standard_normal((90, 4))
    X[5] = X[6]  # a duplicate: ties must resolve as a fresh search of the half would
    halves = _mknn_halves(X, Y, _knn_ordered(X, 4), _knn_ordered(Y, 4), 4, 6, seed=3)
    order_rng = np.random.default_rng([3, 0x6D6B6E6E])
    for split in halves:
        order = order_rng.permutation(90)
        for value, half in zip(split, (np.sort(order[:45]), np.sort(order[45:]))):
            assert value == pytest.approx(slow_mutual_knn(X[half], Y[half], 4), abs=1e-12)


def test_no_interval_without_resamples_and_mknn_interval_needs_room_for_k_in_a_half() -> None:
    rng = np.random.default_rng(33)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    none, one = np.empty((0, 30), int), np.zeros((1, 30), int)
    for metric in ("mknn", "cka", "dcka"):
        assert np.isnan(evaluate_metric(metric, X, Y, none, none, k=5).interval).all()
    assert np.isnan(evaluate_metric("mknn", X, Y, none, one, k=15).interval).all()  # halves of 15 items
    assert np.isfinite(evaluate_metric("mknn", X, Y, none, one, k=14).interval).all()


def _population(d: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    Wx, Wy = rng.standard_normal((4, d)), rng.standard_normal((4, d))
    sxx, syy = Wx.T @ Wx + noise**2 * np.eye(d), Wy.T @ Wy + noise**2 * np.eye(d)
    cka = float(np.sum((Wx.T @ Wy) ** 2) / (np.linalg.norm(sxx) * np.linalg.norm(syy)))
    return Wx, Wy, cka


def _simulate(n: int, d: int, noise: float, reps: int, k: int, seed: int) -> dict[str, dict[str, float]]:
    Wx, Wy, population_cka = _population(d, noise)
    rng = np.random.default_rng(seed)
    values, intervals, old = {"mknn": [], "dcka": []}, {"mknn": [], "dcka": []}, []
    for _ in range(reps):
        Z = rng.standard_normal((n, 4))
        X, Y = Z @ Wx + noise * rng.standard_normal((n, d)), Z @ Wy + noise * rng.standard_normal((n, d))
        outcomes = evaluate_metrics(["mknn", "dcka"], X, Y, np.empty((0, n), int), np.zeros((1, n), int), k=k)
        for m, outcome in outcomes.items():
            values[m].append(outcome.value)
            intervals[m].append(outcome.interval)
        # the old mknn interval: items resampled with their neighbour lists kept fixed, percentile
        per_item = _overlap(knn_indices(X, k), knn_indices(Y, k)) / k
        boot = [per_item[b].mean() for b in rng.integers(0, n, (100, n))]
        old.append(np.quantile(boot, [0.025, 0.975]))
    targets = {"mknn": float(np.mean(values["mknn"])), "dcka": population_cka}
    out = {}
    for m, target in targets.items():
        iv, sd = np.array(intervals[m]), float(np.std(values[m], ddof=1))
        out[m] = {
            "coverage": float(np.mean((iv[:, 0] <= target) & (target <= iv[:, 1]))),
            "width_ratio": float(np.mean(iv[:, 1] - iv[:, 0]) / (2 * 1.96 * sd)),
        }
    iv = np.array(old)
    out["old_mknn"] = {
        "coverage": float(np.mean((iv[:, 0] <= targets["mknn"]) & (targets["mknn"] <= iv[:, 1]))),
        "width_ratio": float(np.mean(iv[:, 1] - iv[:, 0]) / (2 * 1.96 * np.std(values["mknn"], ddof=1))),
    }
    return out


def test_intervals_cover_in_a_small_simulation() -> None:
    """Fast: 60 replicates of 150 items. The bound on the width ratio fails the old fixed-neighbour bootstrap."""
    result = _simulate(n=150, d=12, noise=1.5, reps=60, k=10, seed=2)
    for m in ("mknn", "dcka"):
        assert result[m]["coverage"] >= 0.88, (m, result)
        assert 0.9 <= result[m]["width_ratio"] <= 1.3, (m, result)
    assert result["old_mknn"]["width_ratio"] < 0.9, result  # the old interval (0.71 here) would fail this test


@pytest.mark.slow
@pytest.mark.parametrize("d", [20, 320])  # d/n = 0.05 and 0.8
def test_intervals_cover_near_nominal_in_a_larger_simulation(d: int) -> None:
    result = _simulate(n=400, d=d, noise=1.5 * (d / 12) ** 0.25, reps=300, k=10, seed=2)
    # measured (300 replicates): d = 20 within 0.91-0.99 and 0.85-1.15; d = 320: dcka 0.94 (width 0.99), mknn 0.90
    # (width 0.88): at high d/n the mknn interval is slightly narrow (docs/alignment.md); old mknn 0.77 (0.66) at
    # d = 320 and 0.85 (0.75) at d = 20
    for m in ("mknn", "dcka"):
        assert 0.89 <= result[m]["coverage"] <= 0.99, (m, result)
        assert 0.85 <= result[m]["width_ratio"] <= 1.15, (m, result)
    assert result["old_mknn"]["coverage"] < 0.88 and result["old_mknn"]["width_ratio"] < 0.8, result
