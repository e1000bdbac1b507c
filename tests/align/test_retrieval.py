"""Partner retrieval by rank: the share of items whose partner is among their k nearest of the other field."""

from __future__ import annotations

import numpy as np
import pytest

from lexprobe.align._retrieval import partner_ranks, retrieval_by_rank
from lexprobe.exceptions import AlignmentError


def test_identical_partners_are_found_first_at_every_k() -> None:
    X = np.random.default_rng(0).standard_normal((200, 16))
    table = retrieval_by_rank(X, X.copy(), names=("name", "symbol"), layer=4)
    assert set(table["direction"]) == {"name -> symbol", "symbol -> name"}
    assert (table["share"] == 1.0).all() and table["k"].max() == 100
    assert (table["layer"] == 4).all() and (table["n_items"] == 200).all()


def test_unrelated_partners_are_found_at_chance() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((1000, 32)), rng.standard_normal((1000, 32))
    table = retrieval_by_rank(X, Y, names=("name", "id"), layer=0)
    at = table[table["k"].isin([10, 50, 100])]
    # share of 1000 items at chance k / n: binomial sd sqrt(p(1-p)/n), at most 0.016 here
    assert np.all(np.abs(at["share"] - at["chance"]) < 4 * np.sqrt(at["chance"] * (1 - at["chance"]) / 1000))
    assert np.all(np.diff(table[table["direction"] == "name -> id"]["share"]) >= 0)  # cumulative in k


def test_a_partner_beyond_the_deepest_rank_is_counted_as_not_found() -> None:
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.1]])
    ranks = partner_ranks(X, X[[1, 0, 2, 3]], max_rank=2)
    assert ranks.tolist() == [3, 3, 1, 1]  # the swapped partners are the farthest: not within rank 2


def test_fields_of_different_shapes_are_one_line_errors() -> None:
    with pytest.raises(AlignmentError, match="same shape"):
        partner_ranks(np.ones((4, 3)), np.ones((5, 3)))


def test_the_published_hgnc_retrieval_table_is_its_file() -> None:
    """docs/alignment.md's retrieval-by-rank table on HGNC is the committed run's CSV, row by row."""
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parents[2]
    table = pd.read_csv(root / "docs" / "results" / "align-hgnc-surface" / "retrieval_by_rank.csv")
    text = (root / "docs" / "alignment.md").read_text(encoding="utf-8")
    rows = 0
    for (_, direction), part in table.groupby(["pair", "direction"], sort=False):
        part = part.set_index("k")

        share, surface = (" / ".join(f"{part.loc[k, c]:.3f}" for k in (1, 10, 100)) for c in ("share", "surface_share"))
        layer = int(part["layer"].iloc[0])
        assert f"| {direction} | {layer} | {share} | {surface} |" in text, direction
        rows += 1
    assert rows == 6
    name_to_id = table[(table["direction"] == "name -> id") & (table["k"] == 1)].iloc[0]
    assert round(name_to_id["share"] * name_to_id["n_items"]) == 6  # "6 of the 2,000 names find their id"
