"""The Markdown of a correlate output is rendered by `lexprobe.report` (`CorrelationMarkdown`) in the
predictor's words, and `lexprobe.predict` keeps its renderers under their old names."""

from __future__ import annotations

import dataclasses

import pandas as pd
from test_import_graph import import_graph

import lexprobe.predict as predict
import lexprobe.report as report
from lexprobe.predict._correlate import MARKDOWN
from lexprobe.tasks import ZOO_KINDS, task_kind


def test_the_renderers_are_given_the_predictor_s_vocabulary() -> None:
    assert (MARKDOWN.predictor_rule, MARKDOWN.papers_rule, MARKDOWN.kind_mean) == (
        predict.PREDICTOR_RULE,
        predict.PAPERS_RULE,
        predict.KIND_MEAN,
    )
    assert MARKDOWN.verdicts == predict.VERDICTS and MARKDOWN.commit == predict.COMMIT
    assert MARKDOWN.surfaces == predict.SURFACES and MARKDOWN.min_class_pairs == predict.MIN_CLASS_PAIRS
    assert MARKDOWN.kind_of is task_kind and MARKDOWN.kind_order == ZOO_KINDS
    assert MARKDOWN.at_recorded_budget is predict.at_recorded_budget


def test_lexprobe_predict_keeps_its_markdown_names() -> None:
    for name in (
        "kind_markdown",
        "few_shot_markdown",
        "rule_table_markdown",
        "summary_markdown",
        "evaluation_markdown",
    ):
        assert getattr(predict, name) == getattr(MARKDOWN, name), name
        assert name in predict.__all__
    assert predict.SUMMARY_HEADER is report.SUMMARY_HEADER


def test_the_markdown_imports_no_stage() -> None:
    """Rendering depends on nothing of the stages it renders, so `lexprobe.predict` can import it."""
    graph = import_graph()
    assert set(graph.successors("lexprobe.report._markdown")) <= {"lexprobe.exceptions"}
    assert not any(m.startswith("lexprobe.predict") for m in graph.successors("lexprobe.report"))


def test_a_renderer_uses_the_vocabulary_it_was_given() -> None:
    """The same table in other words: the rule names come from the instance, not from the module."""
    table = pd.DataFrame(
        [
            {"kind": "k", "rule": rule, "n_units": 4, "verdicts_right": 3, "brier": 0.25}
            for rule in ("mine", "theirs", "mean", "other")
        ]
    )
    other = dataclasses.replace(MARKDOWN, predictor_rule="mine", papers_rule="theirs", kind_mean="mean")
    lines = other.rule_table_markdown(table, "kind", cells=["units", "brier"]).splitlines()
    assert lines[0] == "| kind | rule | units | Brier |" and [line.split(" | ")[1] for line in lines[2:]] == [
        "mine",
        "theirs",
        "mean",
    ]
