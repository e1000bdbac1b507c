"""Calibration v3's field pairs (``ZOO_V3_TASKS``, ``--tasks zoo-v3``) on the fields added for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lexprobe.exceptions import TaskError
from lexprobe.ontology import Ontology, earlier_checksums, load_ontology
from lexprobe.plan import PAPER_TASKS, SIZES, ZOO_STUDY_TASKS, study_tasks
from lexprobe.tasks import (
    FIELD_COLUMNS,
    FIELD_KINDS,
    MULTI_VALUED_FIELDS,
    ZOO_TASKS,
    ZOO_V3_TASKS,
    get_task,
    make_split,
    render_prompts,
    task_kind,
    task_pairs,
)
from lexprobe.train import score_reply

V3 = [(name, task) for name, tasks in ZOO_V3_TASKS.items() for task in tasks]


@pytest.fixture(scope="module")
def ontologies() -> dict[str, Ontology]:
    return {name: load_ontology(name) for name in ("hgnc", "hpo", "go")}


def test_zoo_v3_is_the_eight_field_pairs_with_the_kinds_their_fields_give() -> None:
    assert sorted(V3) == sorted(
        [
            ("hpo", "definition-to-name"),
            ("hpo", "name-to-parent"),
            ("go", "name-to-parent"),
            ("hgnc", "name-to-enzyme_id"),
            ("hgnc", "symbol-to-rgd"),
            ("hpo", "name-to-umls"),
            ("hpo", "name-to-snomed"),
            ("hgnc", "enzyme_id-to-name"),
        ]
    )
    for name, tasks in ZOO_V3_TASKS.items():
        for task, kind in tasks.items():
            assert task_kind(task) == kind, (name, task)
    assert not {(n, t) for n, ts in ZOO_TASKS.items() for t in ts} & set(V3), "apart from study v2's zoo"


def test_the_new_fields_kinds_and_values() -> None:
    expected = {
        "definition": ("definition", "text", False),
        "parent": ("parents", "text", True),
        "umls": ("umls_ids", "identifier", True),
        "snomed": ("snomed_ids", "identifier", True),
        "enzyme_id": ("enzyme_ids", "identifier", True),
        "rgd": ("rgd_ids", "identifier", True),
    }
    for field, (column, kind, multi) in expected.items():
        assert (FIELD_COLUMNS[field], FIELD_KINDS[field], field in MULTI_VALUED_FIELDS) == (column, kind, multi)


def test_tasks_zoo_is_study_v2_s_list_and_zoo_v3_the_new_eight() -> None:
    for name in ("hgnc", "hpo", "go"):
        assert study_tasks(name, ["zoo"]) == ZOO_STUDY_TASKS[name]
        assert study_tasks(name, ["zoo-v3"]) == tuple(ZOO_V3_TASKS[name])
        assert not set(study_tasks(name, ["zoo"])) & set(ZOO_V3_TASKS[name])
    assert study_tasks("hpo", ["zoo", "zoo-v3"]) == ZOO_STUDY_TASKS["hpo"] + tuple(ZOO_V3_TASKS["hpo"])
    assert study_tasks("go", ["hpo:zoo-v3"]) == ()
    assert study_tasks("mine", ["zoo-v3"]) == () and study_tasks("mine", ["zoo"]) == PAPER_TASKS["hpo"]
    assert sum(len(study_tasks(name, ["zoo-v3"])) for name in ("hgnc", "hpo", "go")) == 8


@pytest.mark.parametrize(("name", "task"), V3, ids="-".join)
def test_every_zoo_v3_task_builds_the_small_study_split_on_the_bundled_data(ontologies, name: str, task: str) -> None:
    """20 bins x 5 per bin x (train + withheld), popularity-balanced, no term and no source text on both sides."""
    size = SIZES["small"]
    ont = ontologies[name]
    split = make_split(ont, task, bins=size.bins, per_bin=size.per_bin, seed=0)
    for side in (split.train, split.withheld):
        assert len(side) == size.bins * size.per_bin == 100
        assert (side["bin"].value_counts() == size.per_bin).all()
        assert side["source"].str.len().gt(0).all() and side["target"].str.len().gt(0).all()
        assert side["id"].is_unique
    assert not set(split.train["id"]) & set(split.withheld["id"])
    assert not set(split.train["source"].str.casefold()) & set(split.withheld["source"].str.casefold())
    source, target = task.split("-to-")
    terms = ont.terms.set_index("id", drop=False)
    for row in split.train.head(20).itertuples():
        value = terms.at[row.id, FIELD_COLUMNS[target]]
        assert row.target == (value[0] if target in MULTI_VALUED_FIELDS else value)
    prompt = render_prompts(name, task, split.train["source"].iloc[0], n=1)[0]
    assert split.train["source"].iloc[0] in prompt


def test_a_go_definition_task_is_one_line_listing_go_s_fields(ontologies) -> None:
    with pytest.raises(TaskError) as info:
        get_task(ontologies["go"], "definition-to-name")
    message = str(info.value)
    assert "\n" not in message and "no 'definition' values" in message
    assert message.endswith("fields of 'go' are name, id, synonym, namespace, parent")


def test_multi_valued_targets_score_any_of_the_term_s_values(ontologies) -> None:
    hpo, hgnc, go = ontologies["hpo"], ontologies["hgnc"], ontologies["go"]
    seizure = "HP:0001250"  # UMLS:C0014544, UMLS:C0036572; five SNOMED CT codes
    umls = score_reply("UMLS:C0036572", "UMLS:C0014544", field="umls", ontology=hpo, term_id=seizure)
    assert umls.match_kind == "exact"
    assert score_reply("c0036572", "UMLS:C0014544", field="umls", ontology=hpo, term_id=seizure).correct
    assert not score_reply("UMLS:C0000001", "UMLS:C0014544", field="umls", ontology=hpo, term_id=seizure).correct
    snomed = score_reply("SNOMEDCT_US:91175000", "SNOMEDCT_US:128613002", field="snomed", ontology=hpo, term_id=seizure)
    assert snomed.correct and snomed.parsed == "SNOMEDCT_US:91175000"
    aadat = hgnc.terms.set_index("symbol").at["AADAT", "id"]  # 2.6.1.39, 2.6.1.7
    assert score_reply("EC 2.6.1.7", "2.6.1.39", field="enzyme_id", ontology=hgnc, term_id=aadat).correct
    assert not score_reply("2.6.1.8", "2.6.1.39", field="enzyme_id", ontology=hgnc, term_id=aadat).correct
    aldh = hgnc.terms.set_index("symbol").at["ALDH3B2", "id"]  # RGD:1584166, RGD:1585230
    assert score_reply("rgd:1585230", "RGD:1584166", field="rgd", ontology=hgnc, term_id=aldh).correct
    # a term with two is_a parents: either name is right
    terms = go.terms[go.terms["parents"].map(len) >= 2].iloc[0]
    first, second = terms["parents"][:2]
    assert score_reply(second, first, field="parent", ontology=go, term_id=terms["id"]).match_kind == "exact"
    assert not score_reply(terms["label"], first, field="parent", ontology=go, term_id=terms["id"]).correct


@pytest.mark.parametrize(
    ("reply", "field", "parsed"),
    [
        ("The UMLS CUI is C0014544.", "umls", "UMLS:C0014544"),
        ("umls_c0014544", "umls", "UMLS:C0014544"),
        ("SNOMED CT: 91175000", "snomed", "SNOMEDCT_US:91175000"),
        ("91175000", "snomed", None),  # digits alone are any number
        ("EC 3.4.-.-", "enzyme_id", "3.4.-.-"),
        ("2.6.1.39.5", "enzyme_id", None),
        ("RGD_2948", "rgd", "RGD:2948"),
        ("2948", "rgd", None),
    ],
)
def test_the_new_identifiers_are_parsed_into_their_upstream_form(reply: str, field: str, parsed: str | None) -> None:
    score = score_reply(reply, "X", field=field)
    assert score.parsed == parsed


def test_a_multi_valued_source_enzyme_id_gives_one_item_per_unshared_ec_number(ontologies) -> None:
    pairs = task_pairs(ontologies["hgnc"], "enzyme_id-to-name")
    aadat = pairs[pairs["target"] == "aminoadipate aminotransferase"]
    assert set(aadat["source"]) <= {"2.6.1.39", "2.6.1.7"} and len(aadat) >= 1
    assert pairs.groupby(pairs["source"].str.casefold())["id"].nunique().max() == 1  # shared EC numbers dropped


def test_the_rebuilt_snapshots_know_the_checksums_they_only_add_columns_to(ontologies) -> None:
    recorded = {
        "hgnc": "ca722b81dc198895ab56d9c76796813c885431db73a2cd71f1ce9874180e6f7c",
        "hpo": "4a6264e1334fc9b3774cd01101d34abc820e5364fefcba474d1b9c6a8f6dcdbf",
        "go": "594ae6674947b4b626ec37f50d0f2cefc0f2a9f6043ed88d40701983fc884506",
    }  # study v2's and calibration v2's snapshots (docs/results/)
    for name, checksum in recorded.items():
        assert checksum in earlier_checksums(ontologies[name].checksum), name


def test_data_show_lists_the_new_fields_and_the_zoo_v3_tasks() -> None:
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(app, ["data", "show", "hpo", "--limit", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert (
        "fields: name, id, synonym, category, definition, parent, umls, snomed "
        "(several values per term: synonym, parent, umls, snomed)"
    ) in result.output
    assert "definition-to-name  (zoo-v3, lexicalized -> lexicalized)" in result.output
    assert "name-to-umls  (zoo-v3, lexicalized -> identifier)" in result.output
    result = runner.invoke(app, ["data", "show", "hgnc", "--limit", "1", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    groups = {t["task"]: t["group"] for t in shown["tasks"]}
    assert {t for t, g in groups.items() if g == "zoo-v3"} == set(ZOO_V3_TASKS["hgnc"])
    assert {t for t, g in groups.items() if g == "zoo"} == set(ZOO_TASKS["hgnc"])


def test_a_zoo_v3_study_plans_the_eight_trainings() -> None:
    from lexprobe.plan import study_plan

    trained = [
        where for stage, where, _config in study_plan(["hgnc", "hpo", "go"], tasks=["zoo-v3"]) if stage == "train"
    ]
    assert sorted(trained) == sorted(f"{name}/{task}" for name, task in V3)


def test_the_measured_zoo_v3_table_matches_its_learning_curves() -> None:
    """docs/zoo.md's measured rows are the committed learning curves' accuracies, budget by budget."""
    import re

    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "zoo.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| (hpo|go|hgnc) (\S+) \| ([\d. /]+) \| ([\d. /]+) \[([\d.]+), ([\d.]+)\] \| ([\d.]+) \|$", text, re.M
    )
    assert len(rows) >= 3
    for ontology, task, train, withheld, low, high, fewshot in rows:
        run = root / "docs" / "results" / "study-v3-zoo-smollm2" / ontology / task
        curve = pd.read_csv(run / "learning_curve.csv")
        for split, quoted in (("train", train), ("withheld", withheld)):
            points = curve[(curve["split"] == split) & (curve["exposures"] > 0)].sort_values("exposures")
            assert list(points["exposures"]) == [5.0, 10.0, 20.0]
            assert quoted == " / ".join(f"{a:.2f}" for a in points["accuracy"]), (task, split)
        last = curve[(curve["split"] == "withheld") & (curve["exposures"] == 20.0)].iloc[0]
        assert (low, high) == (f"{last['ci_low']:.2f}", f"{last['ci_high']:.2f}")
        summary = pd.read_csv(run / "shots-5" / "evaluation_summary.csv")
        shown = summary[(summary["split"] == "withheld") & (summary["bin"] == "all")].iloc[0]
        assert fewshot == f"{shown['accuracy']:.2f}"


@pytest.mark.parametrize("ontology", ["hpo", "go"])
def test_the_measured_gemma3_sentence_matches_its_learning_curve(ontology: str) -> None:
    """docs/zoo.md's gemma3-270m name-to-parent numbers are that run's learning curve and 5-shot baseline."""
    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    text = " ".join((root / "docs" / "zoo.md").read_text(encoding="utf-8").split())
    run = root / "docs" / "results" / "study-v3-zoo-gemma3" / ontology / "name-to-parent"
    curve = pd.read_csv(run / "learning_curve.csv")
    quoted = {}
    for split in ("train", "withheld"):
        points = curve[(curve["split"] == split) & (curve["exposures"] > 0)].sort_values("exposures")
        assert list(points["exposures"]) == [5.0, 10.0, 20.0]
        quoted[split] = " / ".join(f"{a:.2f}" for a in points["accuracy"])
    last = curve[(curve["split"] == "withheld") & (curve["exposures"] == 20.0)].iloc[0]
    interval = f"[{last['ci_low']:.2f}, {last['ci_high']:.2f}]"
    summary = pd.read_csv(run / "shots-5" / "evaluation_summary.csv")
    fewshot = summary[(summary["split"] == "withheld") & (summary["bin"] == "all")].iloc[0]["accuracy"]
    assert (
        f"{ontology} name-to-parent reached train accuracy {quoted['train']} and withheld accuracy "
        f"{quoted['withheld']} {interval} at 5 / 10 / 20 exposures, 5-shot base model {fewshot:.2f} withheld" in text
    )
