"""The surface-form control: covariates, residualisation, and alignment that is pure length against real alignment."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import lexprobe.embed
from lexprobe.align import (
    AlignmentConfig,
    evaluate_metrics,
    preprocess,
    residualize,
    run_alignment,
    surface_covariates,
    surface_warnings,
)
from lexprobe.embed import EmbeddingSet
from lexprobe.exceptions import AlignmentError, LexprobeWarning

N, DIM = 400, 24
METRICS = ("mknn", "cka", "dcka")


def test_surface_covariates_count_tokens_digits_and_punctuation_per_character() -> None:
    table = surface_covariates(["HGNC:1100", "tumor protein p53", "", "a-b_c"], [5, 3, 1, 4])
    assert list(table.columns) == ["n_tokens", "digit_share", "punct_share"]
    np.testing.assert_allclose(table["n_tokens"], [5, 3, 1, 4])
    np.testing.assert_allclose(table["digit_share"], [4 / 9, 2 / 17, 0, 0])
    np.testing.assert_allclose(table["punct_share"], [1 / 9, 0, 0, 2 / 5])  # spaces are not punctuation
    with pytest.raises(AlignmentError, match="one count per text: got 1 for 2 texts"):
        surface_covariates(["a", "b"], [1])


def test_residualize_gives_the_residuals_of_an_ordinary_least_squares_fit_with_intercept() -> None:
    rng = np.random.default_rng(0)
    C = np.column_stack([rng.integers(1, 20, N), rng.random(N), np.full(N, 0.25), np.zeros(N)])  # constant columns
    C[:, 3] = 2 * C[:, 0]  # and a collinear one
    X = (rng.standard_normal((N, DIM)) + C[:, :1] * rng.standard_normal(DIM)).astype(np.float32)
    R = residualize(X, C)
    expected = X - LinearRegression().fit(C, X.astype(np.float64)).predict(C)
    assert R.dtype == np.float32 and R.shape == X.shape
    np.testing.assert_allclose(R, expected, atol=1e-5 * np.abs(X).max())
    # nothing of the covariates' span is left: orthogonal to the intercept and to every covariate
    np.testing.assert_allclose(np.column_stack([np.ones(N), C]).T @ R.astype(np.float64), 0, atol=1e-2)
    with pytest.raises(AlignmentError, match=r"covariates of shape \(n, c\); got \(400, 24\) and \(3, 1\)"):
        residualize(X, np.ones(3))


def _length_world(seed: int = 0):
    """Two fields whose states are (nonlinear-free) functions of their own lengths, the lengths correlated."""
    rng = np.random.default_rng(seed)
    len_x = rng.uniform(1, 30, N)
    len_y = len_x + rng.normal(0, 0.3, N)  # longer names go with longer ids
    cov_x = np.column_stack([len_x, rng.random(N), rng.random(N)])
    cov_y = np.column_stack([len_y, rng.random(N), rng.random(N)])
    X = np.outer(len_x, rng.standard_normal(DIM)) + np.outer(cov_x[:, 1], rng.standard_normal(DIM))
    Y = np.outer(len_y, rng.standard_normal(DIM)) + np.outer(cov_y[:, 2], rng.standard_normal(DIM))
    X += 0.5 * rng.standard_normal((N, DIM))
    Y += 0.5 * rng.standard_normal((N, DIM))
    return X.astype(np.float32), Y.astype(np.float32), cov_x, cov_y


def _measure(X, Y, perms):
    out = evaluate_metrics(METRICS, X, Y, perms, np.empty((0, len(X)), dtype=np.int64), k=10)
    return {m: (o.value, float(o.value - o.null.mean())) for m, o in out.items()}


def test_alignment_that_is_pure_length_is_high_raw_and_near_zero_once_controlled() -> None:
    X, Y, cov_x, cov_y = _length_world()
    perms = np.array([np.random.default_rng(p).permutation(N) for p in range(30)])
    X, Y = preprocess(X, "standardize"), preprocess(Y, "standardize")
    raw = _measure(X, Y, perms)
    controlled = _measure(residualize(X, cov_x), residualize(Y, cov_y), perms)
    assert raw["cka"][0] > 0.5 and raw["dcka"][0] > 0.5 and raw["mknn"][1] > 0.04
    assert abs(controlled["cka"][1]) < 0.02 and abs(controlled["dcka"][0]) < 0.02
    assert abs(controlled["mknn"][1]) < 0.01  # at chance: k / (n - 1) and its null alike


def test_alignment_independent_of_length_survives_the_control() -> None:
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((N, 6))  # what the two fields share, unrelated to their lengths
    X = Z @ rng.standard_normal((6, DIM)) + 0.7 * rng.standard_normal((N, DIM))
    Y = Z @ rng.standard_normal((6, DIM)) + 0.7 * rng.standard_normal((N, DIM))
    cov_x = np.column_stack([rng.integers(1, 30, N), rng.random(N), rng.random(N)])
    cov_y = np.column_stack([cov_x[:, 0] + rng.integers(0, 3, N), rng.random(N), rng.random(N)])
    perms = np.array([np.random.default_rng(p).permutation(N) for p in range(30)])
    X, Y = preprocess(X.astype(np.float32), "standardize"), preprocess(Y.astype(np.float32), "standardize")
    raw = _measure(X, Y, perms)
    controlled = _measure(residualize(X, cov_x), residualize(Y, cov_y), perms)
    for metric in METRICS:
        assert raw[metric][1] > 0.1
        assert controlled[metric][1] == pytest.approx(raw[metric][1], rel=0.1), metric


# --- the run --------------------------------------------------------------------------------------------------


class FakeModel:
    def describe(self) -> dict:
        return {"name": "fake", "source": "test", "checksum": "0" * 64}


def length_extract(texts, *, keys, model, config, cache_dir=None, **_):
    """States that are a function of the item's token count, plus noise; the counts are the term's own in every
    field (as if long names went with long ids)."""
    n_tokens = [1 + zlib.crc32(key.encode()) % 12 for key in keys]
    direction = np.random.default_rng(zlib.crc32(texts[0][:4].encode())).standard_normal(DIM)
    rng = np.random.default_rng(zlib.crc32("|".join(texts).encode()))
    layers = [0, 1]
    array = np.stack([np.outer(n_tokens, direction) + rng.standard_normal((len(texts), DIM)) for _ in layers])
    return EmbeddingSet(
        array=array.astype(np.float32),
        keys=list(keys),
        texts=list(texts),
        layers=layers,
        manifest={"inputs": {}},
        n_tokens=n_tokens,
    )


def _config(**overrides) -> AlignmentConfig:
    base = dict(ontology="hgnc", limit=150, pairs=("name:id",), permutations=30, bootstrap=0)
    return AlignmentConfig(**(base | overrides))


def test_the_run_reports_the_controlled_metric_beside_the_raw_and_warns_when_length_is_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lexprobe.embed, "extract_hidden_states", length_extract)
    with pytest.warns(LexprobeWarning, match="name:id: the surface-form control"):
        result = run_alignment(_config(), model=FakeModel())
    plain = run_alignment(_config(surface_control=False), model=FakeModel())
    # the raw columns are those of a run without the control, to the bit
    pd.testing.assert_frame_equal(result.table[plain.table.columns], plain.table)
    pd.testing.assert_frame_equal(result.summary[plain.summary.columns], plain.summary)
    ctl = ["value_ctl", "null_mean_ctl", "null_sd_ctl", "z_ctl", "p_value_ctl", "effect_ctl"]
    assert result.table[ctl].notna().all().all() and not set(ctl) & set(plain.table)
    summary = result.summary.set_index("metric")
    assert (summary["p_value"] < 0.05).all() and (summary["value"] > 0.2).all()
    assert (summary["effect_ctl"].abs() < 0.1).all() and (summary["effect_kept"] < 0.5).all()
    warning = next(w for w in result.manifest["warnings"] if "surface-form control" in w)
    assert warning.startswith("name:id: the surface-form control") and "dcka" in warning
    record = result.manifest["surface_control"]
    assert record["covariates"] == ["n_tokens", "digit_share", "punct_share"]
    assert "30 permutations" in record["null"] and min(record["explained_share"]["id"].values()) > 0.5
    assert result.manifest["config"]["surface_control"] is True
    assert plain.manifest["surface_control"] is None and not surface_warnings(plain.summary)


def test_the_warning_rule_flags_a_lost_significance_or_half_the_effect_and_nothing_else() -> None:
    rows = [
        ("a:b", "cka", 0.2, 0.01, 0.15, 0.01),  # keeps 75% and its significance
        ("a:b", "dcka", 0.2, 0.01, 0.15, 0.2),  # keeps 75% but not its significance
        ("c:d", "mknn", 0.2, 0.01, 0.09, 0.01),  # keeps 45%
        ("e:f", "mknn", 0.2, 0.3, 0.0, 0.9),  # never significant: nothing to lose
        ("g:h", "mknn", 0.2, float("nan"), float("nan"), float("nan")),  # no null
    ]
    summary = pd.DataFrame(rows, columns=["pair", "metric", "effect", "p_value", "effect_ctl", "p_value_ctl"])
    lines = surface_warnings(summary)
    assert len(lines) == 2
    assert lines[0].startswith("a:b:") and "dcka +0.200 -> +0.150 (p 0.2)" in lines[0] and lines[0].count("->") == 1
    assert lines[1].startswith("c:d:") and "mknn +0.200 -> +0.090" in lines[1]


def test_the_by_layer_figure_draws_the_controlled_curve_dashed_beside_each_raw_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import lexprobe.figures._align as figures

    monkeypatch.setattr(lexprobe.embed, "extract_hidden_states", length_extract)
    with pytest.warns(LexprobeWarning):
        table = run_alignment(_config(pairs=("name:id", "name:symbol")), model=FakeModel()).table
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, directory, name: drawn.append(fig) or [])
    figures.plot_alignment_by_layer(table, tmp_path)
    for ax in drawn[0].axes:
        styles = [line.get_linestyle() for line in ax.get_lines()]
        assert styles.count("--") == 2 and styles.count("-") == 2  # two pairs, raw and controlled
    figures.plot_alignment_by_layer(table.drop(columns="value_ctl"), tmp_path)  # an older run: raw only
    assert all("--" not in [line.get_linestyle() for line in ax.get_lines()] for ax in drawn[1].axes)
