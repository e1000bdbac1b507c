"""The metrics' public face: an AlignmentScore (a float with its chance level), EmbeddingSet inputs, and errors
that say what to pass."""

from __future__ import annotations

import copy
import itertools
import json
import pickle

import numpy as np
import pytest

from lexprobe.align import (
    METRICS,
    AlignmentScore,
    cka_null_moments,
    debiased_cka,
    linear_cka,
    mutual_knn,
    mutual_knn_per_item,
    retrieval,
    rsa,
    validate_embeddings,
)
from lexprobe.embed import EmbeddingSet
from lexprobe.exceptions import AlignmentError


@pytest.fixture
def rng():
    return np.random.default_rng(20261207)


def _set(array: np.ndarray, keys: list[str], layers: list[int]) -> EmbeddingSet:
    return EmbeddingSet(array=array, keys=keys, texts=list(keys), layers=layers, manifest={})


def test_a_score_is_the_float_it_was_with_its_chance_beside_it(rng) -> None:
    X, Y = rng.standard_normal((40, 5)), rng.standard_normal((40, 5))
    for name, fn in METRICS.items():
        score = fn(X, Y)
        assert isinstance(score, AlignmentScore) and isinstance(score, float)
        assert score.metric == name and type(score.value) is float and score.value == float(score)
        assert score.above_chance == pytest.approx(score.value - score.chance)
        # what callers do with a float still works: arithmetic, numpy, JSON, formatting, comparisons
        assert np.array([score, score]).dtype == np.float64
        assert json.loads(json.dumps({"v": score}))["v"] == score.value
        assert f"{score}" == repr(score.value) and f"{score:.3f}" == f"{score.value:.3f}"
        assert score == score.value and score + 0 == score.value
    score = mutual_knn(X, Y, k=3)
    assert pickle.loads(pickle.dumps(score)) == score and pickle.loads(pickle.dumps(score)).chance == score.chance
    assert copy.deepcopy(score).chance == score.chance
    with pytest.raises(AttributeError, match="immutable"):
        score.chance = 0.5  # type: ignore[misc]
    assert repr(AlignmentScore(0.5, 0.25, "mknn")) == "AlignmentScore(value=0.5, chance=0.25, metric='mknn')"


def test_mknn_and_retrieval_chance_is_what_shuffled_pairings_score(rng) -> None:
    n, k = 60, 4
    X, Y = rng.standard_normal((n, 6)), rng.standard_normal((n, 6))
    assert mutual_knn(X, Y, k=k).chance == k / (n - 1)
    shuffled = [mutual_knn(X, Y[rng.permutation(n)], k=k).value for _ in range(400)]
    assert np.mean(shuffled) == pytest.approx(k / (n - 1), abs=4 * np.std(shuffled) / np.sqrt(400))
    score = retrieval(X, Y, k=2, test_size=0.5)
    assert score.chance == 2 / 30
    hits = [retrieval(X, Y[rng.permutation(n)], k=2).value for _ in range(1000)]
    assert np.mean(hits) == pytest.approx(2 / 30, abs=5 * np.std(hits) / np.sqrt(1000))


def test_cka_chance_is_the_exact_mean_over_all_pairings(rng) -> None:
    X, Y = rng.standard_normal((30, 7)), rng.standard_normal((30, 4)) ** 2
    moments = cka_null_moments(X, Y)
    assert linear_cka(X, Y).chance == pytest.approx(moments["cka"][0], rel=1e-10)
    assert debiased_cka(X, Y).chance == 0.0 and abs(moments["dcka"][0]) < 1e-12
    # by enumeration on a small set: every one of the 6! pairings
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    values = [linear_cka(X, Y[list(p)]).value for p in itertools.permutations(range(6))]
    assert linear_cka(X, Y).chance == pytest.approx(np.mean(values), rel=1e-10)
    deb = [debiased_cka(X, Y[list(p)]).value for p in itertools.permutations(range(6))]
    assert np.mean(deb) == pytest.approx(0.0, abs=1e-12)


def test_rsa_chance_is_the_exact_mean_when_every_pair_is_used(rng) -> None:
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    values = [rsa(X, Y[list(p)]).value for p in itertools.permutations(range(6))]
    assert rsa(X, Y).chance == 0.0 and np.mean(values) == pytest.approx(0.0, abs=1e-12)


def test_metrics_take_embedding_sets_at_a_layer(rng) -> None:
    keys = [f"HP:{i:07d}" for i in range(40)]
    A, B = rng.standard_normal((3, 40, 6)).astype(np.float32), rng.standard_normal((3, 40, 5)).astype(np.float32)
    names, symbols = _set(A, keys, [0, 4, 8]), _set(B, keys, [0, 4, 8])
    for name, fn in METRICS.items():
        assert fn(names, symbols, layer=4) == fn(A[1], B[1]), name
    assert (mutual_knn_per_item(names, symbols, layer=8, k=3) == mutual_knn_per_item(A[2], B[2], k=3)).all()
    one = _set(A[2:], keys, [8])
    assert linear_cka(one, _set(B[2:], keys, [8])) == linear_cka(A[2], B[2])  # one layer: no layer= needed
    assert linear_cka(names.layer(4), symbols.layer(4)) == linear_cka(names, symbols, layer=4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a, b, X: mutual_knn(a, b), r"`X` is an EmbeddingSet of 3 layers \(0, 4, 8\); say which with layer="),
        (lambda a, b, X: linear_cka(a, b, layer=5), r"layer 5 was not extracted for `X`; its layers are 0, 4, 8"),
        (lambda a, b, X: rsa(X, X, layer=4), "layer= applies to EmbeddingSets; `X` is a ndarray"),
        (
            lambda a, b, X: validate_embeddings(a),
            r"`X` is an EmbeddingSet; pass one layer's \(n_items, n_features\) matrix, EmbeddingSet.layer\(i\)",
        ),
        (lambda a, b, X: retrieval(a.array, b.array), r"got shape \(3, 40, 6\): a \(layers, items, dim\) stack"),
        (lambda a, b, X: debiased_cka({"x": X}, X), "`X` must be an embedding matrix, got a dict; pass a"),
        (lambda a, b, X: mutual_knn(X, None), "`Y` must be an embedding matrix, got a NoneType; .*EmbeddingSet"),
        (lambda a, b, X: mutual_knn([[1.0, 2.0], [1.0]], X), "`X` must be an embedding matrix, got a list"),
        (
            lambda a, b, X: mutual_knn(a, _set(b.array, b.keys[::-1], b.layers), layer=0),
            r"not paired item by item: their keys differ from row 0 on \(40 and 40 items\)",
        ),
    ],
)
def test_wrong_inputs_say_what_to_pass(rng, call, match: str) -> None:
    keys = [f"k{i}" for i in range(40)]
    a = _set(rng.standard_normal((3, 40, 6)).astype(np.float32), keys, [0, 4, 8])
    b = _set(rng.standard_normal((3, 40, 6)).astype(np.float32), keys, [0, 4, 8])
    with pytest.raises(AlignmentError, match=match):
        call(a, b, rng.standard_normal((40, 6)))


def test_nested_lists_of_floats_still_count_as_matrices(rng) -> None:
    X = rng.standard_normal((12, 3))
    assert mutual_knn(X.tolist(), X, k=2) == 1.0
