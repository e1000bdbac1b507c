"""The task zoo (issue 19): tasks between any two fields, multi-valued fields, and the zoo's field pairs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from lexprobe.exceptions import TaskError
from lexprobe.ontology import Ontology, load_ontology
from lexprobe.predict import field_pair
from lexprobe.study import PAPER_TASKS, SIZES, ZOO_STUDY_TASKS
from lexprobe.tasks import (
    FIELD_COLUMNS,
    FIELD_KINDS,
    MULTI_VALUED_FIELDS,
    NAMED_TASKS,
    ZOO_KINDS,
    ZOO_TASKS,
    ZOO_V3_TASKS,
    get_task,
    make_split,
    ontology_fields,
    ontology_tasks,
    render_prompts,
    task_pairs,
)
from lexprobe.train import score_reply

ROOT = Path(__file__).resolve().parents[1]
BEFORE = ROOT / "tests" / "data" / "named_tasks_before.json"
SPLIT_COLUMNS = ["source", "target", "id", "popularity", "bin"]


@pytest.fixture(scope="module")
def ontologies() -> dict[str, Ontology]:
    return {name: load_ontology(name) for name in ("hgnc", "hpo", "go")}


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


# --- the paper's tasks are as they were ------------------------------------------------------------------


def test_the_named_tasks_pairs_splits_and_prompts_are_those_made_before_the_zoo(ontologies) -> None:
    """Fingerprints made by the code and snapshots before issue 19 (tests/data/named_tasks_before.json): the
    same pairs, the same split for the same seed, the same prompts."""
    before = json.loads(BEFORE.read_text(encoding="utf-8"))
    assert set(before) == {f"{name} {task}" for name, tasks in NAMED_TASKS.items() for task in tasks}
    for key, recorded in before.items():
        name, task = key.split()
        ont = ontologies[name]
        pairs = task_pairs(ont, task)
        assert len(pairs) == recorded["n_pairs"], key
        assert _digest(pairs[["source", "target", "id", "popularity"]]) == recorded["pairs"], key
        for bins, per_bin, seed in ((20, 5, 0), (20, 5, 1), (20, 30, 0)):
            split = make_split(ont, task, bins=bins, per_bin=per_bin, seed=seed)
            sides = recorded[f"split-{bins}x{per_bin}-seed{seed}"]
            assert _digest(split.train[SPLIT_COLUMNS]) == sides["train"], (key, bins, per_bin, seed)
            assert _digest(split.withheld[SPLIT_COLUMNS]) == sides["withheld"], (key, bins, per_bin, seed)
        assert render_prompts(name, task, pairs["source"].iloc[0]) == recorded["prompts"], key


# --- the zoo -----------------------------------------------------------------------------------------------


def test_a_task_s_kind_follows_from_its_fields() -> None:
    """`task_kind` gives every zoo task the kind the zoo lists it under, and the paper's tasks theirs."""
    from lexprobe.tasks import task_kind

    for name, tasks in ZOO_TASKS.items():
        for task, kind in tasks.items():
            assert task_kind(task) == kind, (name, task)
    assert task_kind("name-to-symbol") == task_kind("symbol-to-name") == "lexicalized -> lexicalized"
    assert task_kind("name-to-id") == task_kind("symbol-to-id") == "lexicalized -> identifier"
    assert task_kind("id-to-name") == "identifier -> lexicalized"
    assert task_kind("locus_type-to-name") == "category -> lexicalized"
    with pytest.raises(TaskError, match="unknown field 'colour'"):
        task_kind("colour-to-name")
    with pytest.raises(TaskError, match="SOURCE-to-TARGET"):
        task_kind("name")


def test_the_zoo_holds_at_least_12_new_field_pairs_of_four_kinds() -> None:
    entries = [(name, task, kind) for name, tasks in ZOO_TASKS.items() for task, kind in tasks.items()]
    assert len(entries) >= 12
    assert {kind for _, _, kind in entries} == set(ZOO_KINDS) and len(ZOO_KINDS) >= 4
    named_pairs = {(name, field_pair(task)) for name, tasks in NAMED_TASKS.items() for task in tasks}
    zoo_pairs = {(name, field_pair(task)) for name, task, _ in entries}
    # 19 tasks (ordered field pairs) on 15 field pairs held out together with their reverse
    assert len(zoo_pairs) >= 15
    assert not zoo_pairs & named_pairs, "the zoo adds field pairs beyond the paper's"


def test_the_study_v2_task_list_is_the_papers_then_the_zoo() -> None:
    assert set(ZOO_STUDY_TASKS) == set(PAPER_TASKS)
    pairs = set()
    for name, tasks in ZOO_STUDY_TASKS.items():
        zoo = tuple(ZOO_TASKS[name])
        assert tasks[: len(PAPER_TASKS[name]) + len(zoo)] == PAPER_TASKS[name] + zoo
        assert set(tasks[len(PAPER_TASKS[name]) + len(zoo) :]) <= set(NAMED_TASKS[name])  # named, not the paper's
        pairs |= {(name, field_pair(task)) for task in tasks}
    assert len(pairs) >= 20  # the field pairs of calibration v2


@pytest.mark.parametrize(
    ("name", "task"), [(name, task) for name, tasks in ZOO_TASKS.items() for task in tasks], ids="-".join
)
def test_every_zoo_task_builds_the_small_study_split_on_the_bundled_data(ontologies, name: str, task: str) -> None:
    """20 bins x 5 per bin x (train + withheld), popularity-balanced, no term and no source text on both sides."""
    size = SIZES["small"]
    ont = ontologies[name]
    split = make_split(ont, task, bins=size.bins, per_bin=size.per_bin, seed=0)
    for side in (split.train, split.withheld):
        assert len(side) == size.bins * size.per_bin
        assert (side["bin"].value_counts() == size.per_bin).all()
        assert side["source"].str.len().gt(0).all() and side["target"].str.len().gt(0).all()
        assert side["id"].is_unique
    assert not set(split.train["id"]) & set(split.withheld["id"])
    assert not set(split.train["source"].str.casefold()) & set(split.withheld["source"].str.casefold())
    # the target is the term's first value (its primary) of the target field
    source, target = task.split("-to-")
    column = FIELD_COLUMNS[target]
    terms = ont.terms.set_index("id", drop=False)
    for row in split.train.head(20).itertuples():
        value = terms.at[row.id, column]
        assert row.target == (value[0] if target in MULTI_VALUED_FIELDS else value)
    # and the prompt names both fields
    prompt = render_prompts(name, task, split.train["source"].iloc[0], n=1)[0]
    assert split.train["source"].iloc[0] in prompt


def test_a_task_to_the_category_uses_every_category(ontologies) -> None:
    """HGNC tasks default to protein-coding genes; a locus-type task would then be constant."""
    pairs = task_pairs(ontologies["hgnc"], "name-to-locus_type")
    assert pairs["target"].nunique() > 10
    assert (pairs["target"] == "gene with protein product").mean() < 0.5
    assert set(task_pairs(ontologies["hgnc"], "symbol-to-ncbi_gene")["id"]) < set(pairs["id"])


# --- multi-valued fields -----------------------------------------------------------------------------------


def _genes() -> Ontology:
    rows = [
        # id, symbol, aliases, previous, uniprot, popularity
        ("G:1", "AAA1", ("ALPHA", "SHARED", "aaa1"), ("OLD1",), ("P11111", "Q22222"), 5.0),
        ("G:2", "BBB2", ("BETA", "SHARED"), (), ("P33333",), 3.0),
        ("G:3", "CCC3", ("GAMMA", "gamma", "DELTA"), ("OLD3",), (), 1.0),
    ]
    rows += [(f"G:{i}", f"X{i}", (f"XA{i}", f"XB{i}"), (), (f"P9{i:04d}",), float(i % 7)) for i in range(4, 64)]
    n = len(rows)
    terms = pd.DataFrame(
        {
            "id": [r[0] for r in rows],
            "label": [f"gene {r[1]}" for r in rows],
            "symbol": [r[1] for r in rows],
            "synonyms": [()] * n,
            "alt_ids": [()] * n,
            "obsolete": [False] * n,
            "replaced_by": [None] * n,
            "previous_symbols": [r[3] for r in rows],
            "alias_symbols": [r[2] for r in rows],
            "namespace": [None] * n,
            "category": ["gene with protein product"] * n,
            "exact_synonyms": [()] * n,
            "ncbi_gene_id": [str(i) for i in range(n)],
            "uniprot_ids": [r[4] for r in rows],
            "ensembl_gene_id": [None] * n,
            "mgi_ids": [()] * n,
            "pop_toy": [r[5] for r in rows],
        }
    )
    return Ontology("genes", terms, "test", None, "0" * 64, "table", ("pop_toy",), "pop_toy")


def test_each_value_of_a_multi_valued_source_is_an_item_and_shared_values_are_dropped() -> None:
    pairs = task_pairs(_genes(), "alias_symbol-to-symbol")
    by_term = pairs.groupby("id")["source"].apply(list)
    assert by_term["G:1"] == ["ALPHA"]  # SHARED is on two genes; "aaa1" is the gene's own symbol
    assert by_term["G:2"] == ["BETA"]
    assert by_term["G:3"] == ["GAMMA", "DELTA"]  # "gamma" repeats GAMMA
    assert "SHARED" not in set(pairs["source"])
    assert len(pairs) == 1 + 1 + 2 + 2 * 60


def test_a_split_of_a_multi_valued_source_never_puts_one_term_on_both_sides() -> None:
    genes = _genes()
    for seed in range(5):
        split = make_split(genes, "alias_symbol-to-symbol", bins=4, per_bin=6, seed=seed)
        assert split.train["id"].is_unique and split.withheld["id"].is_unique
        assert not set(split.train["id"]) & set(split.withheld["id"])
        assert (split.train["bin"].value_counts() == 6).all() and (split.withheld["bin"].value_counts() == 6).all()
    again = make_split(genes, "alias_symbol-to-symbol", bins=4, per_bin=6, seed=3)
    pd.testing.assert_frame_equal(
        again.train, make_split(genes, "alias_symbol-to-symbol", bins=4, per_bin=6, seed=3).train
    )


def test_a_split_counts_terms_not_values() -> None:
    with pytest.raises(TaskError, match=r"has 63 terms \(124 pairs\)"):
        make_split(_genes(), "alias_symbol-to-symbol", bins=4, per_bin=8)


def test_a_multi_valued_target_trains_on_the_first_value_and_scores_any_value() -> None:
    genes = _genes()
    pairs = task_pairs(genes, "symbol-to-uniprot").set_index("id")
    assert pairs.at["G:1", "target"] == "P11111"
    assert "G:3" not in pairs.index  # no UniProt accession
    second = score_reply("It is q22222.", "P11111", field="uniprot", ontology=genes, term_id="G:1")
    assert second.match_kind == "exact" and second.parsed == "Q22222"
    other_gene = score_reply("P33333", "P11111", field="uniprot", ontology=genes, term_id="G:1")
    assert other_gene.match_kind == "none" and other_gene.well_formed


@pytest.mark.parametrize(
    ("reply", "target", "field", "parsed", "correct"),
    [
        ("The NCBI Gene ID of BRCA1 is 672.", "672", "ncbi_gene", "672", True),
        ("NCBIGene:673", "672", "ncbi_gene", "673", False),
        ("ENSG00000012048.23", "ENSG00000012048", "ensembl", "ENSG00000012048", True),
        ("mgi_104537", "MGI:104537", "mgi", "MGI:104537", True),
        ("no idea", "MGI:104537", "mgi", None, False),
        ("Cellular component", "cellular_component", "namespace", "Cellular component", True),
        ("molecular_function", "cellular_component", "namespace", "molecular_function", False),
        ("gene with protein product.", "gene with protein product", "locus_type", "gene with protein product", True),
    ],
)
def test_identifiers_are_exact_after_normalization_and_categories_exact(
    reply: str, target: str, field: str, parsed: str | None, correct: bool
) -> None:
    score = score_reply(reply, target, field=field)
    assert score.parsed == parsed and score.correct is correct


def test_an_exact_synonym_target_accepts_any_exact_synonym(ontologies) -> None:
    go = ontologies["go"]
    term = go.terms[go.terms["exact_synonyms"].map(len) >= 2].iloc[0]
    first, second = term["exact_synonyms"][:2]
    assert score_reply(second, first, field="synonym", ontology=go, term_id=term["id"]).match_kind == "exact"
    assert score_reply(term["label"], first, field="synonym", ontology=go, term_id=term["id"]).correct is False


# --- fields, errors and prompts ----------------------------------------------------------------------------


def test_each_builtin_lists_the_fields_its_sources_hold(ontologies) -> None:
    assert ontology_fields(ontologies["hgnc"]) == (
        "name",
        "symbol",
        "id",
        "alias_symbol",
        "previous_symbol",
        "ncbi_gene",
        "uniprot",
        "ensembl",
        "mgi",
        "locus_type",
        "enzyme_id",
        "rgd",
    )
    assert ontology_fields(ontologies["hpo"]) == (
        "name",
        "id",
        "synonym",
        "category",
        "definition",
        "parent",
        "umls",
        "snomed",
    )
    assert ontology_fields(ontologies["go"]) == ("name", "id", "synonym", "namespace", "parent")
    assert set(FIELD_KINDS) == set(FIELD_COLUMNS)


def test_the_builtin_columns_keep_the_upstream_identifier_forms(ontologies) -> None:
    brca1 = ontologies["hgnc"].terms.set_index("symbol").loc["BRCA1"]
    assert brca1["ncbi_gene_id"] == "672" and brca1["uniprot_ids"] == ("P38398",)
    assert brca1["ensembl_gene_id"] == "ENSG00000012048" and brca1["mgi_ids"] == ("MGI:104537",)
    assert "RNF53" in brca1["alias_symbols"]
    hpo = ontologies["hpo"].terms.set_index("id")
    exact, every = hpo.at["HP:0000006", "exact_synonyms"], hpo.at["HP:0000006", "synonyms"]
    assert exact and set(exact) < set(every)  # the related and broad ones are only in `synonyms`


def test_a_task_naming_a_field_the_ontology_lacks_is_one_line_listing_its_fields(ontologies) -> None:
    with pytest.raises(TaskError, match=r"no 'symbol' values.*fields of 'hpo' are name, id, synonym, category"):
        get_task(ontologies["hpo"], "name-to-symbol")
    with pytest.raises(TaskError, match=r"unknown field 'colour'; fields of 'go' are name, id, synonym, namespace"):
        get_task(ontologies["go"], "colour-to-name")
    with pytest.raises(TaskError, match=r"'locus_type' is hgnc's name for its category; for 'go' use 'category'"):
        get_task(ontologies["go"], "name-to-locus_type")
    with pytest.raises(TaskError, match="SOURCE-to-TARGET"):
        get_task(ontologies["go"], "name_to_id")
    assert get_task(ontologies["hgnc"], "ensembl-to-uniprot").target == "uniprot"  # any two fields


def test_prompts_name_the_fields() -> None:
    assert render_prompts("hgnc", "symbol-to-ncbi_gene", "BRCA1", n=1) == [
        "What is the NCBI Gene ID of the HGNC gene symbol BRCA1?"
    ]
    assert render_prompts("hgnc", "alias_symbol-to-symbol", "RNF53", n=3)[2] == (
        "Alias gene symbol: RNF53\nHGNC gene symbol:"
    )
    assert render_prompts("go", "name-to-namespace", "mitochondrion", n=1) == [
        "What is the GO namespace of the GO term mitochondrion?"
    ]


def test_ontology_tasks_lists_the_papers_and_the_zoos(ontologies) -> None:
    listed = {entry["task"]: entry for entry in ontology_tasks(ontologies["hgnc"])}
    assert set(listed) == set(NAMED_TASKS["hgnc"]) | set(ZOO_TASKS["hgnc"]) | set(ZOO_V3_TASKS["hgnc"])
    assert listed["name-to-id"]["group"] == "paper" and listed["name-to-id"]["kind"] is None
    assert listed["symbol-to-rgd"]["group"] == "zoo-v3"
    assert listed["symbol-to-rgd"]["kind"] == "lexicalized -> identifier"
    assert listed["symbol-to-uniprot"]["kind"] == "lexicalized -> identifier"


def test_data_show_lists_the_fields_and_tasks() -> None:
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(app, ["data", "show", "go", "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "fields: name, id, synonym, namespace, parent (several values per term: synonym, parent)" in result.output
    assert "name-to-namespace  (zoo, text -> category)" in result.output
    result = runner.invoke(app, ["data", "show", "hgnc", "--limit", "1", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert {"field": "uniprot", "kind": "identifier", "multi_valued": True} in shown["fields"]
    assert {"field": "enzyme_id", "kind": "identifier", "multi_valued": True} in shown["fields"]
    assert {"field": "rgd", "kind": "identifier", "multi_valued": True} in shown["fields"]
    assert {t["task"] for t in shown["tasks"]} == (
        set(NAMED_TASKS["hgnc"]) | set(ZOO_TASKS["hgnc"]) | set(ZOO_V3_TASKS["hgnc"])
    )


def test_train_help_says_how_to_name_a_task() -> None:
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "SOURCE-to-TARGET" in result.output and "lexprobe data show ONTOLOGY" in result.output


def test_the_source_repeated_is_no_answer_even_where_it_is_an_alternative_of_the_target(ontologies) -> None:
    """previous_symbol-to-symbol: a model that repeats the previous symbol it was given is not right, although
    a previous symbol counts as an alternative of the approved one (study v2's first runs counted such echoes)."""
    from lexprobe.train import score_reply

    hgnc = ontologies["hgnc"]
    row = task_pairs(hgnc, "previous_symbol-to-symbol").iloc[0]
    echo = score_reply(str(row["source"]), str(row["target"]), field="symbol", ontology=hgnc, term_id=str(row["id"]))
    assert echo.match_kind == "alt" and echo.correct  # without the source: an alternative symbol of the target
    given = score_reply(
        str(row["source"]),
        str(row["target"]),
        field="symbol",
        ontology=hgnc,
        term_id=str(row["id"]),
        source=str(row["source"]),
    )
    assert given.match_kind == "none" and not given.correct
    right = score_reply(
        str(row["target"]), str(row["target"]), field="symbol", ontology=hgnc, source=str(row["source"])
    )
    assert right.match_kind == "exact" and right.correct
