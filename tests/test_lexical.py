"""Lexicalization measures: tokenization by hand for two tokenizer types, the probe, the score, the geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lexprobe.exceptions import LexicalizationError
from lexprobe.lexical import (
    LexicalConfig,
    anisotropy,
    effective_rank,
    item_crowding,
    lexicalization_score,
    semantic_probe,
    token_ranks,
    tokenization_measures,
    tokenizer_kind,
)

# --- a WordPiece tokenizer built here from a small vocabulary ---------------------------------------------

WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "gene", "##s", "hgnc", ":", "1", "##9", "##8", "tp", "##53", "protein"]


@pytest.fixture(scope="module")
def wordpiece():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(WORDPIECE_VOCAB)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")


def test_wordpiece_measures_by_hand(wordpiece) -> None:
    assert tokenizer_kind(wordpiece) == "wordpiece"
    ranks, method = token_ranks(wordpiece)
    assert list(ranks) == list(range(len(WORDPIECE_VOCAB))) and "vocabulary index" in method
    m = tokenization_measures(["genes", "HGNC:198", "TP53", "protein"], wordpiece).set_index(
        pd.Index(["genes", "HGNC:198", "TP53", "protein"])
    )
    # genes -> gene ##s ; HGNC:198 -> hgnc : 1 ##9 ##8 ; TP53 -> tp ##53 ; protein -> protein
    assert m["n_tokens"].tolist() == [2, 5, 2, 1]
    assert m["single_token"].tolist() == [False, False, False, True]
    assert m["single_token_spaced"].tolist() == [False, False, False, True]  # WordPiece ignores the space
    assert m.loc["HGNC:198", "digit_punct_share"] == pytest.approx(4 / 5)  # ':', '1', '9', '8'
    assert m.loc["HGNC:198", "wordlike_share"] == pytest.approx(1 / 5)  # 'hgnc'
    assert m.loc["genes", "wordlike_share"] == pytest.approx(1 / 2)  # 'gene' (a one-letter piece is not)
    assert m.loc["TP53", "digit_punct_share"] == pytest.approx(1 / 2)  # '53' (after '##')
    assert m.loc["HGNC:198", "chars_per_token"] == pytest.approx(8 / 5)
    top = np.log1p(len(WORDPIECE_VOCAB) - 1)
    assert m.loc["genes", "log_rank"] == pytest.approx((np.log1p(2) + np.log1p(3)) / 2 / top)
    assert m.loc["protein", "log_rank"] == pytest.approx(1.0)


def test_empty_input_is_an_error(wordpiece) -> None:
    with pytest.raises(LexicalizationError, match="no texts"):
        tokenization_measures([], wordpiece)


@pytest.mark.slow
def test_bpe_measures_of_the_default_model_by_hand() -> None:
    from lexprobe.models import load_model

    tokenizer = load_model().tokenizer
    assert tokenizer_kind(tokenizer) == "bpe"
    ranks, method = token_ranks(tokenizer)
    vocab = tokenizer.get_vocab()
    assert "merge" in method
    assert ranks[vocab["Ġt"]] == 1  # the first merge learned: 'Ġ' + 't'
    assert ranks[vocab["H"]] == 0 and ranks[vocab["1"]] == 0  # base alphabet
    assert ranks[vocab["Ġprotein"]] > ranks[vocab["Ġt"]]
    texts = ["HGNC:11998", "TP53", "HP:0001250", "protein"]
    m = tokenization_measures(texts, tokenizer).set_index(pd.Index(texts))
    # HGNC:11998 -> H G NC : 1 1 9 9 8 (SmolLM2 splits digits one by one)
    assert m.loc["HGNC:11998", "n_tokens"] == 9
    assert m.loc["HGNC:11998", "digit_punct_share"] == pytest.approx(6 / 9)
    assert m.loc["HGNC:11998", "wordlike_share"] == pytest.approx(1 / 9)
    assert m.loc["TP53", "n_tokens"] == 3  # TP 5 3
    assert m.loc["TP53", "wordlike_share"] == pytest.approx(1 / 3)
    assert m.loc["HP:0001250", "n_tokens"] == 9
    assert not m.loc["TP53", "single_token_spaced"]  # ' TP53' -> ĠTP 5 3
    assert m.loc["protein", "single_token_spaced"]  # ' protein' is one learned token
    # identifiers fall apart into base characters; symbols and names reach into the learned vocabulary
    assert m.loc["HGNC:11998", "log_rank"] < m.loc["TP53", "log_rank"] < m.loc["protein", "log_rank"]


# --- the probe ------------------------------------------------------------------------------------------------


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array(["a", "b", "c"]), size=n, p=[0.5, 0.3, 0.2])


def test_probe_recovers_a_planted_category_signal() -> None:
    rng = np.random.default_rng(0)
    labels = _labels(600, rng)
    X = rng.normal(size=(600, 40))
    X[:, 3] += 4.0 * (labels == "b")
    X[:, 7] += 4.0 * (labels == "c")
    result = semantic_probe(X, labels, seed=0)
    assert result.n_classes == 3 and result.n_items == 600
    assert result.baseline == pytest.approx(np.mean(labels == "a"))
    assert result.accuracy > 0.9
    assert np.nanmean(result.correct) == pytest.approx(result.accuracy)
    assert set(np.unique(result.correct)) <= {0.0, 1.0}


def test_probe_on_pure_noise_stays_at_the_majority_baseline() -> None:
    rng = np.random.default_rng(1)
    labels = _labels(600, rng)
    for dim in (40, 576):  # fewer and more dimensions than a fixed-penalty probe tolerates
        result = semantic_probe(rng.normal(size=(600, dim)), labels, seed=0)
        assert abs(result.accuracy - result.baseline) < 0.03


def test_probe_leaves_out_rare_categories_and_needs_two() -> None:
    rng = np.random.default_rng(2)
    labels = np.array(["a"] * 60 + ["b"] * 60 + ["rare"] * 4)
    X = rng.normal(size=(len(labels), 10))
    result = semantic_probe(X, labels, min_class=10, seed=0)
    assert result.n_classes == 2 and result.n_items == 120
    assert np.isnan(result.correct[-4:]).all() and not np.isnan(result.correct[:120]).any()
    with pytest.raises(LexicalizationError, match="at least 2 categories"):
        semantic_probe(X[:64], ["a"] * 60 + ["rare"] * 4, min_class=10)
    with pytest.raises(LexicalizationError, match="labels"):
        semantic_probe(X, labels[:10])


def test_probe_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(3)
    labels = _labels(200, rng)
    X = rng.normal(size=(200, 20))
    a, b = semantic_probe(X, labels, seed=5), semantic_probe(X, labels, seed=5)
    assert a.accuracy == b.accuracy and np.array_equal(a.correct, b.correct)


# --- geometry -------------------------------------------------------------------------------------------------


def test_crowding_anisotropy_and_effective_rank() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 8))
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = U @ U.T
    brute = (sims.sum(axis=1) - 1) / 49
    assert np.allclose(item_crowding(X), brute)
    same = np.tile(rng.normal(size=(1, 8)), (20, 1)) * rng.uniform(1, 2, size=(20, 1))
    assert anisotropy(same) == pytest.approx(1.0)
    line = rng.normal(size=(100, 1)) @ rng.normal(size=(1, 30))
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-6)
    spread = rng.normal(size=(5000, 10))
    assert 9.5 < effective_rank(spread) <= 10.0


# --- the score ------------------------------------------------------------------------------------------------


def _components(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n_tokens": rng.integers(1, 12, n),
            "wordlike_share": rng.uniform(0, 1, n),
            "digit_punct_share": rng.uniform(0, 1, n),
            "log_rank": rng.uniform(0, 1, n),
            "agreement": rng.uniform(0, 1, n),
            "probe_correct": rng.uniform(0, 1, n),
        }
    )


def test_score_is_in_the_unit_interval_and_at_its_ends_for_extreme_items() -> None:
    scored = lexicalization_score(_components(np.random.default_rng(5), 500))
    for column in ("tokenization_score", "embedding_score", "score"):
        assert scored[column].between(0, 1).all()
    best = pd.DataFrame(
        [dict(n_tokens=1, wordlike_share=1, digit_punct_share=0, log_rank=1, agreement=1, probe_correct=1)]
    )
    worst = pd.DataFrame(
        [dict(n_tokens=10**6, wordlike_share=0, digit_punct_share=1, log_rank=0, agreement=0, probe_correct=0)]
    )
    assert lexicalization_score(best)["score"].iloc[0] == pytest.approx(1.0)
    assert lexicalization_score(worst)["score"].iloc[0] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    ("column", "step"),
    [
        ("n_tokens", -1),
        ("wordlike_share", 0.1),
        ("digit_punct_share", -0.1),
        ("log_rank", 0.1),
        ("agreement", 0.1),
        ("probe_correct", 0.1),
    ],
)
def test_score_never_falls_when_a_component_moves_towards_a_meaningful_token(column: str, step: float) -> None:
    rng = np.random.default_rng(6)
    base = _components(rng, 400)
    base["n_tokens"] = base["n_tokens"].clip(lower=2)
    moved = base.copy()
    moved[column] = (moved[column] + step).clip(lower=1 if column == "n_tokens" else 0, upper=None)
    if column != "n_tokens":
        moved[column] = moved[column].clip(upper=1)
    before, after = lexicalization_score(base)["score"], lexicalization_score(moved)["score"]
    assert (after >= before - 1e-12).all()
    assert (after > before).mean() > 0.5  # and rises for most items


def test_score_without_embedding_components_is_the_tokenization_score() -> None:
    items = _components(np.random.default_rng(7), 20).drop(columns=["agreement", "probe_correct"])
    scored = lexicalization_score(items)
    assert scored["embedding_score"].isna().all()
    assert np.allclose(scored["score"], scored["tokenization_score"])
    with pytest.raises(LexicalizationError, match="needs columns"):
        lexicalization_score(items.drop(columns=["log_rank"]))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(LexicalizationError, match="unknown field|field"):
        LexicalConfig(ontology="hgnc", fields=("name", "colour"))
    with pytest.raises(LexicalizationError, match="--limit"):
        LexicalConfig(ontology="hgnc", limit=3)
    with pytest.raises(LexicalizationError, match="--probe-folds"):
        LexicalConfig(ontology="hgnc", probe_folds=1)
    with pytest.raises(LexicalizationError, match="--preprocess"):
        LexicalConfig(ontology="hgnc", preprocess="whiten")
