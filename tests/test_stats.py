"""The shared statistics (lexprobe.stats): interval rules, the mean bootstrap, and the rule for constant input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm, rankdata, spearmanr

from lexprobe import stats
from lexprobe.align import _null
from lexprobe.align._metrics import RSA_CONSTANT, _spearman, rsa


def test_jackknife_interval_of_a_mean_is_the_classical_normal_interval():
    x = np.random.default_rng(0).normal(size=40)
    loo = (x.sum() - x) / (len(x) - 1)
    half = norm.ppf(0.975) * x.std(ddof=1) / np.sqrt(len(x))
    assert stats.jackknife_interval(x.mean(), loo) == pytest.approx((x.mean() - half, x.mean() + half))
    assert np.isnan(stats.jackknife_interval(0.5, np.array([0.4]))).all()


def test_recentred_interval_keeps_the_bootstrap_spread_around_the_estimate():
    boot = np.random.default_rng(1).normal(2.0, 0.1, size=500)
    low, high = stats.recentred_interval(1.0, boot)
    plain = np.quantile(boot, [0.025, 0.975])
    assert high - low == pytest.approx(plain[1] - plain[0])
    assert (low + high) / 2 == pytest.approx(1.0 + (plain.mean() - boot.mean()))
    assert np.isnan(stats.recentred_interval(1.0, np.empty(0))).all()


def test_align_still_exports_the_moved_interval_rules():
    assert _null.jackknife_interval is stats.jackknife_interval
    assert _null.recentred_interval is stats.recentred_interval


def test_tails_of_95_percent_are_exactly_the_old_literals():
    assert stats._tails(0.95) == (0.025, 0.975)
    assert stats._tails(0.9) == (0.05, 0.95)


@pytest.mark.parametrize("sizes", [(37, 50, 11), (1, 2, 201)])
def test_bootstrap_mean_interval_draws_what_the_inline_bootstraps_drew(sizes):
    data = [np.random.default_rng(n).random(n) for n in sizes]
    # lexprobe.lexical's field summary: one rng.integers call per resample, 200 resamples, literal quantiles
    old_rng, new_rng = np.random.default_rng(5), np.random.default_rng(5)
    for score in data:
        boots = [score[old_rng.integers(0, len(score), len(score))].mean() for _ in range(200)]
        old = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))
        assert stats.bootstrap_mean_interval(score, rng=new_rng, n_boot=200) == old
    # lexprobe.predict's unit table: one batched call per split
    old_rng, new_rng = np.random.default_rng(2), np.random.default_rng(2)
    for g in data:
        old = tuple(np.quantile(g[old_rng.integers(0, len(g), size=(300, len(g)))].mean(axis=1), [0.025, 0.975]))
        assert stats.bootstrap_mean_interval(g, rng=new_rng, n_boot=300, batched=True) == old


def test_bootstrap_mean_interval_brackets_the_mean_and_widens_with_confidence():
    x = np.random.default_rng(3).normal(size=200)
    narrow = stats.bootstrap_mean_interval(x, rng=np.random.default_rng(0), n_boot=500, confidence=0.5)
    wide = stats.bootstrap_mean_interval(x, rng=np.random.default_rng(0), n_boot=500, confidence=0.99)
    assert wide[0] < narrow[0] < x.mean() < narrow[1] < wide[1]


def test_bootstrap_mean_interval_of_nothing_is_nan_and_draws_nothing():
    rng = np.random.default_rng(4)
    assert np.isnan(stats.bootstrap_mean_interval(np.empty(0), rng=rng, batched=True)).all()
    assert rng.random() == np.random.default_rng(4).random()


def test_rank_correlation_is_spearmans_rho():
    rng = np.random.default_rng(6)
    a, b = rng.random(50), rng.random(50)
    a[:5] = a[5]  # ties
    assert stats.rank_correlation(rankdata(a), rankdata(b)) == pytest.approx(spearmanr(a, b).statistic)


def test_constant_input_is_nan_except_for_rsa():
    flat, ramp = np.full(6, 2.0), np.arange(6.0)
    assert np.isnan(stats.pooled_spearman(flat, ramp))
    assert np.isnan(stats.rank_correlation(rankdata(flat), rankdata(ramp)))
    assert np.isnan(stats.within_spearman([(flat, ramp), (ramp, flat)]))
    out = stats.spearman_ci(ramp, flat, n_boot=10)
    assert np.isnan(out["rho"]) and out["note"] == "y constant"
    # RSA: a constant distance vector is "no alignment"
    assert RSA_CONSTANT == 0.0
    assert _spearman(flat, ramp) == 0.0
    X = np.tile([1.0, 0.0], (8, 1))  # every item the same point: every distance 0
    assert rsa(X, np.random.default_rng(0).normal(size=(8, 3))).value == 0.0


@pytest.mark.parametrize("n_boot", [0, 25])
def test_bootstrap_means_are_the_resample_means_retrieval_drew(n_boot):
    hits = (np.random.default_rng(8).random(31) < 0.4).astype(float)
    old_rng, new_rng = np.random.default_rng(3), np.random.default_rng(3)
    old = np.array([hits[old_rng.integers(0, len(hits), len(hits))].mean() for _ in range(n_boot)])
    new = stats.bootstrap_means(hits, rng=new_rng, n_boot=n_boot)
    assert new.dtype == old.dtype and np.array_equal(new, old)
