"""The surface-form control of partner retrieval by rank: the curve of a representation that holds only each
item's token count, digit share and punctuation share, beside the model's in ``retrieval_by_rank.csv``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from lexprobe.align._retrieval import retrieval_by_rank, with_surface_share
from lexprobe.align._run import AlignmentResult, write_alignment
from lexprobe.embed import EmbeddingSet


def _field(texts: list[str]) -> SimpleNamespace:
    return SimpleNamespace(texts=texts, n_tokens=[max(1, len(t) // 3) for t in texts])


def _distinct_surfaces(n: int) -> list[str]:
    """``n`` ids whose surface forms (length, digits, punctuation) all differ."""
    return [f"ID:{'4' * (i % 10 + 1)}{'_' * (i // 10)}x" for i in range(n)]


def _surface_share(first: SimpleNamespace, second: SimpleNamespace, k: int) -> float:
    rng = np.random.default_rng(1)
    n = len(first.texts)
    table = retrieval_by_rank(rng.standard_normal((n, 6)), rng.standard_normal((n, 6)), names=("a", "b"), layer=0)
    shares = with_surface_share(table, first, second)
    return float(shares.loc[(shares["k"] == k) & (shares["direction"] == "a -> b"), "surface_share"].iloc[0])


def test_partners_that_share_their_surface_form_are_retrieved_by_it() -> None:
    texts = _distinct_surfaces(40)
    assert _surface_share(_field(texts), _field(texts), k=1) >= 0.9


def test_partners_whose_surface_forms_differ_are_not() -> None:
    texts = _distinct_surfaces(40)
    shuffled = [texts[i] for i in np.random.default_rng(0).permutation(40)]
    assert _surface_share(_field(texts), _field(shuffled), k=1) <= 0.15


def test_items_of_one_surface_form_are_retrieved_at_chance() -> None:
    texts = ["GO:0001234"] * 300  # every item alike: surface form cannot tell a partner from the others
    share = _surface_share(_field(texts), _field(texts), k=30)
    assert abs(share - 30 / 300) < 0.07


def test_without_token_counts_the_control_is_missing_not_made_up() -> None:
    texts = _distinct_surfaces(20)
    rng = np.random.default_rng(0)
    table = retrieval_by_rank(rng.standard_normal((20, 4)), rng.standard_normal((20, 4)), names=("a", "b"), layer=2)
    shares = with_surface_share(table, SimpleNamespace(texts=texts, n_tokens=None), _field(texts))
    assert shares["surface_share"].isna().all()
    assert shares["share"].equals(table["share"])


def test_write_alignment_writes_the_control_beside_the_model_curve(tmp_path) -> None:
    n, rng = 30, np.random.default_rng(0)
    names, ids = [f"gene name {'x' * (i % 7)}" for i in range(n)], [f"HGNC:{10 ** (i % 5) + i}" for i in range(n)]
    states = rng.standard_normal((1, n, 8)).astype(np.float32)
    embeddings = {
        field: EmbeddingSet(
            states + 0.01 * rng.standard_normal(states.shape),
            [str(i) for i in range(n)],
            texts,
            [4],
            {},
            n_tokens=[len(t) // 3 for t in texts],
        )
        for field, texts in (("name", names), ("id", ids))
    }
    summary = pd.DataFrame({"pair": ["name:id"], "metric": ["mknn"], "best_layer": [4], "value": [0.5]})
    record = {"config": {"preprocess": "standardize"}, "inputs": {"ontology": {"name": "hgnc"}}, "seed": 0}
    result = AlignmentResult(summary, summary, embeddings=embeddings, terms=pd.DataFrame(), manifest=record)
    write_alignment(result, tmp_path / "align", figures=False)
    table = pd.read_csv(tmp_path / "align" / "retrieval_by_rank.csv")
    assert {"share", "chance", "surface_share"} <= set(table.columns)
    at_one = table[table["k"] == 1]
    assert (at_one["share"] > 0.9).all()  # the model's states find the partners
    assert (at_one["surface_share"] < at_one["share"]).all()  # surface form alone does not
