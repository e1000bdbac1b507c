"""Exact permutation moments of linear and debiased CKA: against every pairing, against Monte Carlo, and in a run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lexprobe.align import cantelli_bound, cka_null_moments, debiased_cka, evaluate_metrics, linear_cka
from lexprobe.exceptions import AlignmentError


def _every_pairing(X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    """The whole null, by brute force: the plain metrics on every one of the n! pairings."""
    values = {"cka": [], "dcka": []}
    for p in itertools.permutations(range(len(X))):
        values["cka"].append(linear_cka(X, Y[list(p)]))
        values["dcka"].append(debiased_cka(X, Y[list(p)]))
    return {k: np.array(v) for k, v in values.items()}


@pytest.mark.parametrize(("n", "d1", "d2", "seed"), [(6, 3, 2, 0), (7, 4, 5, 1), (7, 9, 2, 2), (8, 3, 3, 3)])
def test_moments_equal_the_mean_and_sd_over_every_pairing(n: int, d1: int, d2: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d1)) * rng.uniform(0.2, 3.0, d1) + 2.0  # uncentred, unequal scales
    Y = rng.standard_normal((n, d2)) + X[:, :1] ** 2  # dependent on X, not linearly
    whole = _every_pairing(X, Y)
    moments = cka_null_moments(X, Y)
    for metric in ("cka", "dcka"):
        mean, sd = moments[metric]
        assert mean == pytest.approx(whole[metric].mean(), abs=1e-12)
        assert sd == pytest.approx(whole[metric].std(), rel=1e-10)  # population sd over all n! pairings


def test_cantellis_bound_holds_on_the_whole_null_and_is_what_it_says() -> None:
    assert cantelli_bound(3.0) == pytest.approx(0.1)
    assert cantelli_bound(0.0) == 1.0 and cantelli_bound(-2.0) == 1.0
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 3))
    Y = X @ rng.standard_normal((3, 2)) + 0.3 * rng.standard_normal((8, 2))
    whole = _every_pairing(X, Y)
    mean, sd = cka_null_moments(X, Y)["dcka"]
    observed = debiased_cka(X, Y)
    exact_p = float(np.mean(whole["dcka"] >= observed - 1e-12))
    assert exact_p <= cantelli_bound((observed - mean) / sd)


def test_moments_agree_with_a_large_monte_carlo_null_within_its_error() -> None:
    n, draws = 400, 4000
    rng = np.random.default_rng(11)
    Z = rng.standard_normal((n, 4))
    X = np.hstack([Z, rng.standard_normal((n, 28))]) * rng.uniform(0.5, 2.0, 32)
    Y = np.hstack([Z @ rng.standard_normal((4, 4)), rng.standard_normal((n, 20))])
    perms = np.array([rng.permutation(n) for _ in range(draws)])
    outcomes = evaluate_metrics(("cka", "dcka"), X, Y, perms, np.zeros((0, n), dtype=np.int64))
    for metric, outcome in outcomes.items():
        mean, sd = outcome.moments
        assert (mean, sd) == pytest.approx(cka_null_moments(X, Y)[metric], rel=1e-9)
        mc_mean, mc_sd = outcome.null.mean(), outcome.null.std(ddof=1)
        assert abs(mc_mean - mean) < 4 * sd / np.sqrt(draws)  # the Monte Carlo mean's standard error
        assert abs(mc_sd / sd - 1) < 4 / np.sqrt(2 * (draws - 1))  # and its sd's (relative)
        assert outcome.value > mean + 10 * sd  # the planted shared part is far out in the null


def test_moments_need_four_rows() -> None:
    with pytest.raises(AlignmentError, match="at least 4"):
        cka_null_moments(np.ones((3, 2)), np.ones((3, 2)))


@pytest.mark.parametrize(("n", "d1", "d2"), [(10, 2, 3), (50, 40, 5), (300, 3, 300)])
def test_debiased_ckas_null_is_centred_with_the_u_centred_spaces_variance(n: int, d1: int, d2: int) -> None:
    """An independent reference: with U-centred kernels the unbiased HSIC is an inner product in a space of
    dimension n(n - 3) / 2 (Székely & Rizzo 2014, Ann. Statist. 42: 2382), and over all pairings debiased CKA
    has mean 0 and variance 1 / (n(n - 3) / 2), whatever the data."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, d1)) ** 3
    Y = rng.exponential(size=(n, d2))
    mean, sd = cka_null_moments(X, Y)["dcka"]
    assert abs(mean) < 1e-12
    assert sd == pytest.approx(np.sqrt(2 / (n * (n - 3))), rel=1e-9)
