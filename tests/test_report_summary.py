"""The report's opening summary and its readable tables, over the recorded study and synthetic runs."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lexprobe.predict._holdout import PREDICTOR_RULE
from lexprobe.report import build_report
from lexprobe.report._tables import MISSING, format_gain, format_value, make_table
from lexprobe.runs import write_result_dir

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "results" / "study-smollm2"
ALIGN = ROOT / "docs" / "results" / "align-hgnc"


def summary_of(page: str) -> str:
    """The summary section's HTML: from its start to the table of contents."""
    assert page.index('<section id="summary">') < page.index("<nav>") < page.index('<section id="run-1">')
    return page.split('<section id="summary">')[1].split("<nav>")[0]


def cells(fragment: str) -> list[str]:
    """Every table cell's text in ``fragment``, tags stripped and unescaped."""
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", fragment, re.S)]


@pytest.fixture(scope="module")
def study_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_report([STUDY], tmp_path_factory.mktemp("study") / "report.html").read_text(encoding="utf-8")


# --- the summary of a recorded study ---


def test_a_study_report_opens_with_each_tasks_verdict_and_its_numbers(study_page: str) -> None:
    summary = summary_of(study_page)
    shown = cells(summary)
    holdout = pd.read_csv(STUDY / "correlate" / "holdout.csv")
    assert len(holdout) == 6
    for _, unit in holdout.iterrows():  # each task: its verdict held out, the measured one, and the gains
        row = shown.index(unit["label"])
        assert shown[row + 1] == unit["model"]
        assert shown[row + 2] == unit["stated_verdict"] and shown[row + 3] == unit["measured_verdict"]
        measured = f"{unit['generalization_gain']:+.3f} [{unit['generalization_gain_ci_low']:+.3f},"
        assert shown[row + 5].startswith(measured.replace("-", "−"))
    # the trivial baselines beside them, and the sentence that compares them
    baselines = pd.read_csv(STUDY / "correlate" / "baselines.csv")
    for _, rule in baselines.iterrows():
        assert rule["rule"] in shown and f"{rule['gain_mae_points']:.2f}" in shown
    mine = baselines["rule"].str.startswith("predictor")  # a recorded run names the predictor of its day
    best = baselines[~mine].sort_values("gain_mae_points").iloc[0]
    own = baselines[mine].iloc[0]
    skill = "shows skill" if own["gain_mae_points"] < best["gain_mae_points"] else "shows no skill"
    assert f"the predictor {skill} over the best trivial baseline ({best['rule']})" in summary


def test_a_study_report_gives_every_stages_headline_numbers(study_page: str) -> None:
    shown = cells(summary_of(study_page))
    summary = pd.read_csv(STUDY / "hgnc" / "align" / "alignment_summary.csv")
    best = summary[(summary["pair"] == "name:symbol") & (summary["metric"] == "mknn")].iloc[0]
    row = shown.index("mutual kNN", shown.index("name:symbol"))  # hgnc's name:symbol, by mutual kNN
    assert shown[row + 1] == str(best["best_layer"])
    assert shown[row + 2] == f"{best['value']:.3f} [{best['ci_low']:.3f},\u00a0{best['ci_high']:.3f}]"
    assert shown[row + 4] == format_value(best["z"])[0] and shown[row + 5] == format_value(best["p_value"])[0]
    fields = pd.read_csv(STUDY / "hgnc" / "lexicalization" / "lexicalization_fields.csv").set_index("field")
    assert f"{fields.loc['symbol', 'score']:.3f} [{fields.loc['symbol', 'score_ci_low']:.3f},\u00a0" in " ".join(shown)
    gains = json.loads((STUDY / "hgnc" / "symbol-to-name" / "evaluation.json").read_text())["gains"]
    row = shown.index("hgnc · symbol-to-name · smollm2-135m")
    assert shown[row + 2] == f"{gains['train']['tuned']:.3f}"  # accuracy after fine-tuning, trained pairs
    assert shown[row + 6].startswith(f"{gains['withheld']['gain']:+.3f} [")  # and the gain on withheld pairs
    few_shot = shown.index("hgnc · symbol-to-name · smollm2-135m · 5-shot")  # a K-shot run: no tuned model
    assert shown[few_shot + 2] == MISSING and shown[few_shot + 1] != MISSING
    assert "No run recorded a warning." in summary_of(study_page)


def test_headline_cells_link_to_their_run_section(study_page: str) -> None:
    links = re.findall(r'<a href="#(run-\d+)">', summary_of(study_page))
    assert len(links) > 20 and all(f'<section id="{a}">' in study_page for a in links)


# --- warnings and predictions ---


def _predict_run(directory: Path, *, warnings: str, baselines: bool) -> Path:
    prediction = {
        "label": "hpo name-to-id",
        "model": "smollm2-135m",
        "verdict": "unlikely to improve",
        "stated_verdict": "uncertain: memorization only or unlikely to improve",
        "predicted_memorization_gain": 0.031,
        "predicted_memorization_gain_ci_low": -0.02,
        "predicted_memorization_gain_ci_high": 0.09,
        "predicted_generalization_gain": 0.004,
        "predicted_generalization_gain_ci_low": float("nan"),
        "predicted_generalization_gain_ci_high": float("nan"),
        "warnings": warnings,
    }
    tables = {"prediction.csv": pd.DataFrame([prediction])}
    if baselines:
        tables["baselines.csv"] = pd.DataFrame(
            {
                "rule": [PREDICTOR_RULE, "majority verdict", "gain 0 everywhere"],
                "verdicts_right": [7, 6, 5],
                "n_units": [8, 8, 8],
                "gain_mae_points": [1.5, 2.0, 3.0],
                "relative_error": [0.75, 1.0, 1.5],
            }
        )
    record = {"config": {"ontology": "hpo", "task": "name-to-id", "model": "smollm2-135m"}, "inputs": {}, "seed": 0}
    write_result_dir(directory, tables, stage="predict", record=record)
    return directory


def test_every_warning_of_every_run_is_in_the_summary_with_its_run(tmp_path: Path) -> None:
    align = tmp_path / "align-run"
    shutil.copytree(ALIGN, align)
    manifest = json.loads((align / "manifest.json").read_text())
    manifest["warnings"] = ["with 20 permutations no p-value can be below 1/21", "recall@k 0.71 < 0.9 <at name@3>"]
    (align / "manifest.json").write_text(json.dumps(manifest))
    predict = _predict_run(
        tmp_path / "predict-run", warnings="thin calibration | calibration from one model only", baselines=False
    )
    summary = summary_of(build_report([align, predict], tmp_path / "report.html").read_text())
    items = [html.unescape(re.sub(r"<[^>]+>", "", li)) for li in re.findall(r"<li>(.*?)</li>", summary, re.S)]
    aligned = "align · hgnc · name:symbol, name:id, symbol:id · smollm2-135m"
    assert items == [
        f"{aligned}: with 20 permutations no p-value can be below 1/21",
        f"{aligned}: recall@k 0.71 < 0.9 <at name@3>",
        "predict · hpo · name-to-id · smollm2-135m: thin calibration",
        "predict · hpo · name-to-id · smollm2-135m: calibration from one model only",
    ]
    assert "No run recorded a warning" not in summary


def test_a_prediction_leads_with_its_verdict_gains_and_the_baselines_of_its_calibration(tmp_path: Path) -> None:
    run = _predict_run(tmp_path / "predict-run", warnings="", baselines=True)
    summary = summary_of(build_report([run], tmp_path / "report.html").read_text())
    shown = cells(summary)
    row = shown.index("hpo name-to-id")
    assert shown[row + 1 : row + 5] == [
        "smollm2-135m",
        "uncertain: memorization only or unlikely to improve",
        "+0.004",  # an interval that is NaN is left out, never "nan"
        "+0.031 [−0.020,\u00a0+0.090]",
    ]
    assert "the predictor shows skill over the best trivial baseline (majority verdict)" in summary
    assert "7/8 verdicts right against 6/8" in summary and "No run recorded a warning." in summary


def test_runs_the_summary_does_not_know_say_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_result_dir(
        run, {"n.csv": pd.DataFrame({"a": [1]})}, stage="mystery", record={"config": {}, "inputs": {}, "seed": 0}
    )
    summary = summary_of(build_report([run], tmp_path / "report.html").read_text())
    assert "No verdict or headline number" in summary and "<table>" not in summary


# --- readable tables ---


@pytest.mark.parametrize("missing", [float("nan"), np.float32("nan"), None, pd.NA, pd.NaT, "", "  "])
def test_a_missing_value_shows_as_an_em_dash(missing) -> None:
    assert format_value(missing) == (MISSING, False) == ("—", False)
    assert format_gain(missing) == "—" and format_gain(0.25, missing, 0.5) == "+0.250"


def test_gains_show_three_decimals_with_a_true_minus_and_no_negative_zero() -> None:
    assert format_gain(-0.0002, -0.1234, 0.0004) == "+0.000 [−0.123,\u00a0+0.000]"
    assert format_gain(0.87, signed=False) == "0.870"


def test_nan_never_shows_as_nan_in_a_report(study_page: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    frame = pd.DataFrame({"agreement": [np.nan, 0.39], "note": ["", "x"], "zz_custom": [1.0, None]})
    write_result_dir(run, {"numbers.csv": frame}, stage="mystery", record={"config": {}, "inputs": {}, "seed": 0})
    page = build_report([run], tmp_path / "report.html").read_text()
    numbers = page.split("<caption>numbers.csv")[1].split("</table>")[0]
    assert cells(numbers) == ["—", "—", "1", "0.39", "x", "—"]
    assert '<th title="agreement">agreement with names</th>' in numbers and "<th>zz_custom</th>" in numbers
    for text in (page, study_page):  # the recorded study holds NaN intervals and empty AUCs
        assert not [c for c in cells(text) if re.search(r"\bnan\b", c, re.IGNORECASE)]


def test_tables_show_human_headers_words_for_codes_and_thousands() -> None:
    frame = pd.DataFrame(
        {"pair": ["name:id"], "metric": ["dcka"], "best_layer": [11], "n": [43837], "z": [29.81], "mystery_col": [0.5]}
    )
    table = make_table(frame, "caption")
    assert table.headers == [
        ("field pair", "pair"),
        ("metric", "metric"),
        ("best layer", "best_layer"),
        ("n", "n"),
        ("z", "z"),
        ("mystery_col", "mystery_col"),
    ]
    assert [c.text for c in table.rows[0]] == ["name:id", "debiased CKA", "11", "43,837", "29.8", "0.5"]
    checksum = make_table(pd.DataFrame({"ontology_checksum": ["194dff62dc23464b47884921dde5830a658831280a2531b6"]}), "")
    assert checksum.rows[0][0].text == "194dff62dc23…" and checksum.rows[0][0].title.startswith("194dff62dc23464b")
