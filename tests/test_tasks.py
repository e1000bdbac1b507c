"""Mapping tasks, popularity-balanced splits and prompts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexprobe.exceptions import TaskError
from lexprobe.ontology import Ontology, load_ontology
from lexprobe.tasks import (
    NAMED_TASKS,
    assign_popularity_bins,
    field_values,
    get_task,
    make_split,
    prompt_templates,
    render_prompts,
    sample_terms,
    select_terms,
    task_pairs,
)


def make_ontology(n: int, popularity: list[float] | None = None, name: str = "toy") -> Ontology:
    """A small hand-made term table with every column of the convention."""
    pop = popularity if popularity is not None else list(range(n))
    terms = pd.DataFrame(
        {
            "id": [f"TOY:{i:05d}" for i in range(n)],
            "label": [f"toy term {i}" for i in range(n)],
            "symbol": [f"T{i}" for i in range(n)],
            "synonyms": [()] * n,
            "alt_ids": [()] * n,
            "obsolete": [False] * n,
            "replaced_by": [None] * n,
            "previous_symbols": [()] * n,
            "alias_symbols": [()] * n,
            "namespace": [None] * n,
            "category": ["a" if i % 2 else "b" for i in range(n)],
            "pop_toy": pop,
        }
    )
    return Ontology(
        name=name,
        terms=terms,
        source="test",
        release=None,
        checksum="0" * 64,
        kind="table",
        popularity_columns=("pop_toy",),
        default_popularity="pop_toy",
    )


@pytest.fixture(scope="module")
def hgnc() -> Ontology:
    return load_ontology("hgnc")


# --- tasks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ontology", sorted(NAMED_TASKS))
def test_every_named_task_has_pairs_on_its_builtin_ontology(ontology: str) -> None:
    ont = load_ontology(ontology)
    for name in NAMED_TASKS[ontology]:
        pairs = task_pairs(ont, name)
        assert len(pairs) > 1000
        assert list(pairs.columns) == ["source", "target", "id", "popularity"]
        assert pairs["id"].is_unique


def test_name_to_symbol_pairs_are_the_hgnc_approved_names_and_symbols(hgnc: Ontology) -> None:
    pairs = task_pairs(hgnc, "name-to-symbol").set_index("id")
    assert pairs.loc["HGNC:1100", "target"] == "BRCA1"
    assert pairs.loc["HGNC:1100", "source"] == "BRCA1 DNA repair associated"
    reverse = task_pairs(hgnc, "id-to-symbol").set_index("id")
    assert reverse.loc["HGNC:11998", "source"] == "HGNC:11998"
    assert reverse.loc["HGNC:11998", "target"] == "TP53"


def test_pairs_with_an_ambiguous_source_text_are_dropped() -> None:
    ont = make_ontology(6)
    ont.terms.loc[1, "label"] = "toy term 0"  # two terms share one name but have different symbols
    pairs = task_pairs(ont, "name-to-symbol")
    assert "toy term 0" not in set(pairs["source"])
    assert len(pairs) == 4


@pytest.mark.parametrize(
    ("task", "match"),
    [
        ("name2id", "must look like"),
        ("name-to-colour", "unknown field 'colour'"),
        ("name_to_symbol", r"got 'name_to_symbol' \(did you mean 'name-to-symbol'\?\)"),
        ("name-to-symbl", r"unknown field 'symbl' \(did you mean 'symbol'\?\); fields are"),
        ("alias-to-symbol", r"unknown field 'alias' \(did you mean 'alias_symbol'\?\)"),
        ("name-to-name", "maps a field to itself"),
    ],
)
def test_bad_task_names_are_rejected(task: str, match: str) -> None:
    with pytest.raises(TaskError, match=match):
        get_task("hgnc", task)


def test_a_task_on_a_field_the_ontology_lacks_is_rejected() -> None:
    hpo = load_ontology("hpo")
    with pytest.raises(TaskError, match="has no 'symbol' values"):
        get_task(hpo, "symbol-to-id")


def test_field_values_normalises_whitespace_and_refuses_missing_values() -> None:
    ont = make_ontology(3)
    ont.terms.loc[0, "label"] = "  toy   term\t0 "
    assert field_values(ont.terms, "name")[0] == "toy term 0"
    ont.terms.loc[1, "symbol"] = None
    with pytest.raises(TaskError, match="1 rows have no 'symbol'"):
        field_values(ont.terms, "symbol")
    with pytest.raises(TaskError, match="unknown field 'colour'"):
        field_values(ont.terms, "colour")


def test_hgnc_tasks_default_to_protein_coding_genes(hgnc: Ontology) -> None:
    default = select_terms(hgnc, fields=("name", "symbol"))
    assert set(default["category"]) == {"gene with protein product"}
    everything = select_terms(hgnc, fields=("name", "symbol"), categories=())
    assert len(everything) > len(default)
    with pytest.raises(TaskError, match="no terms of 'hgnc' are in categories"):
        select_terms(hgnc, categories=("no such locus type",))


def test_obsolete_terms_are_out_of_tasks_by_default() -> None:
    hpo = load_ontology("hpo")
    obsolete_ids = set(hpo.terms.loc[hpo.terms["obsolete"], "id"])
    assert obsolete_ids, "the HPO snapshot has obsolete terms"
    assert not obsolete_ids & set(task_pairs(hpo, "name-to-id")["id"])


# --- splits -----------------------------------------------------------------------------------------------


def test_split_has_the_requested_size_balance_and_no_shared_term(hgnc: Ontology) -> None:
    split = make_split(hgnc, "name-to-symbol", bins=20, per_bin=30, seed=0)
    assert len(split.train) == len(split.withheld) == 600
    assert not set(split.train["id"]) & set(split.withheld["id"])
    assert not set(split.train["source"]) & set(split.withheld["source"])
    assert (split.train["bin"].value_counts() == 30).all()
    assert (split.withheld["bin"].value_counts() == 30).all()
    assert split.train["bin"].nunique() == 20
    assert list(split.train.columns) == ["source", "target", "id", "popularity", "bin"]


def test_split_bins_follow_popularity(hgnc: Ontology) -> None:
    split = make_split(hgnc, "name-to-symbol", bins=5, per_bin=40, seed=1)
    means = split.train.groupby("bin")["popularity"].mean()
    assert means.is_monotonic_increasing
    assert means.iloc[-1] > means.iloc[0]


def test_split_is_deterministic_for_a_seed_and_changes_with_it(hgnc: Ontology) -> None:
    a = make_split(hgnc, "name-to-id", bins=10, per_bin=10, seed=7)
    b = make_split(hgnc, "name-to-id", bins=10, per_bin=10, seed=7)
    c = make_split(hgnc, "name-to-id", bins=10, per_bin=10, seed=8)
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.withheld, b.withheld)
    assert set(a.train["id"]) != set(c.train["id"])


def test_a_split_larger_than_the_task_is_an_error_not_a_short_file() -> None:
    ont = make_ontology(100)
    with pytest.raises(TaskError, match=r"has 100 pairs, but --bins 20 x --per-bin 3 needs 120"):
        make_split(ont, "name-to-symbol", bins=20, per_bin=3)


def test_an_unknown_popularity_column_is_rejected() -> None:
    with pytest.raises(TaskError, match="popularity column 'pop_nope' is not in 'toy'; columns are pop_toy"):
        make_split(make_ontology(100), "name-to-id", bins=2, per_bin=3, popularity="pop_nope")


@settings(max_examples=40, deadline=None)
@given(
    pops=st.lists(st.integers(min_value=0, max_value=5), min_size=40, max_size=200),
    bins=st.integers(min_value=1, max_value=8),
    per_bin=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_split_properties_hold_for_any_popularity_with_ties(
    pops: list[int], bins: int, per_bin: int, seed: int
) -> None:
    ont = make_ontology(len(pops), popularity=[float(p) for p in pops])
    if 2 * bins * per_bin > len(pops):
        with pytest.raises(TaskError):
            make_split(ont, "name-to-symbol", bins=bins, per_bin=per_bin, seed=seed)
        return
    split = make_split(ont, "name-to-symbol", bins=bins, per_bin=per_bin, seed=seed)
    assert len(split.train) == len(split.withheld) == bins * per_bin
    assert not set(split.train["id"]) & set(split.withheld["id"])
    for frame in (split.train, split.withheld):
        assert frame["bin"].value_counts().to_dict() == {b: per_bin for b in range(bins)}
    # every term in a higher bin is at least as popular as every term in a lower bin
    both = pd.concat([split.train, split.withheld])
    by_bin = both.groupby("bin")["popularity"]
    assert (by_bin.min().to_numpy()[1:] >= by_bin.max().to_numpy()[:-1]).all()


def test_popularity_bins_have_equal_counts_despite_ties() -> None:
    bins = assign_popularity_bins(np.zeros(103), bins=10, seed=0)
    counts = np.bincount(bins)
    assert counts.max() - counts.min() <= 1
    with pytest.raises(TaskError, match="cannot cut 3 items into 10"):
        assign_popularity_bins(np.zeros(3), bins=10, seed=0)


# --- balanced samples -------------------------------------------------------------------------------------


def test_sample_terms_is_balanced_deterministic_and_has_the_fields(hgnc: Ontology) -> None:
    a = sample_terms(hgnc, 200, seed=0, fields=("name", "symbol"))
    b = sample_terms(hgnc, 200, seed=0, fields=("name", "symbol"))
    assert len(a) == 200 and a["id"].is_unique
    pd.testing.assert_frame_equal(a, b)
    assert (a["bin"].value_counts() == 10).all()
    assert a["symbol"].notna().all()
    assert set(a["id"]) != set(sample_terms(hgnc, 200, seed=1, fields=("name", "symbol"))["id"])


def test_sample_terms_returns_everything_when_asked_for_more_than_there_is() -> None:
    ont = make_ontology(30)
    assert len(sample_terms(ont, None)) == 30
    assert len(sample_terms(ont, 1000)) == 30
    assert len(sample_terms(ont, 29, bins=20)) == 29
    with pytest.raises(TaskError, match=r"`n` \(--limit\) must be >= 1, got 0"):
        sample_terms(ont, 0)


# --- prompts ----------------------------------------------------------------------------------------------


def test_five_distinct_prompt_paraphrases_mention_the_source_and_the_target_kind() -> None:
    prompts = render_prompts("hgnc", "name-to-symbol", "tumor protein p53")
    assert len(prompts) == len(set(prompts)) == 5
    assert all("tumor protein p53" in p for p in prompts)
    assert all("symbol" in p.lower() for p in prompts)
    assert "GO identifier" in render_prompts("go", "name-to-id", "mitochondrion", n=1)[0]
    with pytest.raises(TaskError, match=r"must be in \[1, 5\], got 6"):
        prompt_templates("hgnc", "name-to-symbol", n=6)


@pytest.mark.parametrize(
    ("template", "text", "filled"),
    [
        ("{text}", "TP53", "TP53"),
        ("{text} {other}", "TP53", "TP53 {other}"),
        ("{text} }", "TP53", "TP53 }"),
        ('{"gene": "{text}"}', "TP53", '{"gene": "TP53"}'),
        ("{{text}} and {text}", "x", "{x} and x"),
        ("Gene: {text}. Again: {text}", "a{b}c", "Gene: a{b}c. Again: a{b}c"),
        ("{text}", "{text} {0} {x!r}", "{text} {0} {x!r}"),
    ],
)
def test_fill_template_replaces_only_the_literal_text_placeholder(template: str, text: str, filled: str) -> None:
    from lexprobe.tasks import fill_template

    assert fill_template(template, text) == filled
