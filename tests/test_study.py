"""``lexprobe study`` end to end on a tiny configuration with the real model, and its resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

from lexprobe.exceptions import StudyError
from lexprobe.predict import VERDICTS
from lexprobe.study import run_study

runner = CliRunner()
TASKS = "name-to-symbol,symbol-to-name,name-to-id"


def test_bad_study_requests_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="--size"):
        run_study(["hgnc"], tmp_path, size="huge")
    with pytest.raises(StudyError, match="--stages"):
        run_study(["hgnc"], tmp_path, stages=["align", "dance"])
    with pytest.raises(StudyError, match="--shots"):
        run_study(["hgnc"], tmp_path, shots=-1)
    result = runner.invoke(app, ["study", "--ontology", "nope", "--out", str(tmp_path / "s"), "--size", "tiny"])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "error:" in result.output
    result = runner.invoke(app, ["study", "--ontology", "hpo", "--tasks", "name-to-symbol", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "has none of the tasks" in result.output


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "hgnc-tiny"
    result = runner.invoke(app, ["study", "--ontology", "hgnc", "--tasks", TASKS, "--size", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow
def test_study_runs_every_stage_and_reports(study) -> None:
    out, output = study
    for stage_dir in ("hgnc/align", "hgnc/lexicalization", "correlate"):
        assert (out / stage_dir / "manifest.json").is_file(), stage_dir
    for task in TASKS.split(","):
        assert (out / "hgnc" / task / "outcomes.csv").is_file()
        assert (out / "hgnc" / task / "adapter" / "adapter_config.json").is_file()
    tasks = pd.read_csv(out / "correlate" / "tasks.csv")
    assert sorted(tasks["task"]) == sorted(TASKS.split(","))
    # features of the paper's kind: symbols are more lexicalized than ids, on the same model and split size
    by_task = tasks.set_index("task")
    assert by_task.loc["name-to-symbol", "lexicalization"] > by_task.loc["name-to-id", "lexicalization"]
    loto = pd.read_csv(out / "correlate" / "loto.csv")
    assert set(loto["verdict"]) <= set(VERDICTS) and len(loto) == 2 * len(TASKS.split(","))
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "hgnc" in html and "name-to-symbol" in html and "data:image/png;base64," in html
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "study" and manifest["config"]["size"] == "tiny"
    assert {s["stage"] for s in manifest["outputs"]["stages"]} == {
        "align",
        "lexicalization",
        "train",
        "evaluate",
        "fewshot",
        "correlate",
        "report",
    }
    assert manifest["config"]["shots"] == 5
    assert "report:" in output


@pytest.mark.slow
def test_every_task_gets_a_few_shot_baseline_of_the_base_model(study) -> None:
    out, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    for task in TASKS.split(","):
        shown = out / "hgnc" / task / "shots-5"
        recorded = json.loads((shown / "evaluation_manifest.json").read_text())
        assert recorded["config"]["shots"] == 5 and recorded["config"]["baseline_only"] is True
        predictions = pd.read_csv(shown / "predictions.csv")
        zero_shot = pd.read_csv(out / "hgnc" / task / "predictions.csv")
        assert set(predictions["model"]) == {"baseline"}  # the base model only: no adapter is scored
        # the same queries as the zero-shot evaluation, each shown 5 train pairs that are not itself
        assert sorted(predictions["source"]) == sorted(zero_shot.loc[zero_shot["model"] == "baseline", "source"])
        assert all(len(ids.split(";")) == 5 for ids in predictions["shot_ids"])
        train_ids = set(pd.read_csv(out / "hgnc" / task / "split" / "train.csv", dtype=str)["id"])
        assert all(set(ids.split(";")) <= train_ids for ids in predictions["shot_ids"])
        assert all(row.id not in row.shot_ids.split(";") for row in predictions.itertuples())
    assert "5-shot" in html
    # the correlation puts fine-tuning beside the few-shot baseline, task by task
    tasks = pd.read_csv(out / "correlate" / "tasks.csv")
    assert (tasks["shots"] == 5).all() and tasks["fewshot_withheld"].between(0, 1).all()
    assert tasks["majority_withheld"].between(0, 1).all() and tasks["majority_target"].notna().all()
    assert "## Fine-tuning against the few-shot baseline" in (out / "correlate" / "summary.md").read_text()


@pytest.mark.slow
def test_a_finished_study_resumes_without_redoing_work(study) -> None:
    out, _ = study
    before = (out / "correlate" / "items.csv").read_bytes()
    result = runner.invoke(app, ["study", "--ontology", "hgnc", "--tasks", TASKS, "--size", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    statuses = {(s["stage"], s["dir"]): s["status"] for s in manifest["outputs"]["stages"]}
    assert all(v == "resumed" for k, v in statuses.items() if k[0] != "report")
    # the time each stage took when it ran is kept across resumptions
    assert all(s["seconds"] > 0 for s in manifest["outputs"]["stages"] if s["stage"] in ("align", "train"))
    assert (out / "correlate" / "items.csv").read_bytes() == before
    # a part of the study resumed on its own keeps what the other parts recorded
    result = runner.invoke(
        app,
        [
            "study",
            "--ontology",
            "hgnc",
            "--tasks",
            "name-to-symbol",
            "--stages",
            "train",
            "--size",
            "tiny",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    again = json.loads((out / "manifest.json").read_text())
    assert {(s["stage"], s["dir"]): s["seconds"] for s in again["outputs"]["stages"]} == {
        (s["stage"], s["dir"]): s["seconds"] for s in manifest["outputs"]["stages"]
    }
    # without the study's manifest, training and evaluation times come back from the runs' own manifests
    (out / "manifest.json").unlink()
    result = runner.invoke(app, ["study", "--ontology", "hgnc", "--tasks", TASKS, "--size", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lost = json.loads((out / "manifest.json").read_text())["outputs"]["stages"]
    for task in TASKS.split(","):
        for stage, name in (("train", "manifest.json"), ("evaluate", "evaluation_manifest.json")):
            recorded = json.loads((out / "hgnc" / task / name).read_text())["outputs"]["seconds"]
            assert next(s["seconds"] for s in lost if s == s | {"stage": stage, "dir": f"hgnc/{task}"}) == recorded
    # ...and so do alignment's and lexicalization's (a study stopped before writing its manifest loses none)
    for stage in ("align", "lexicalization"):
        entry = next(s for s in lost if s["stage"] == stage)
        assert entry["status"] == "resumed" and entry["seconds"] > 0, entry


@pytest.mark.slow
def test_a_finished_study_refuses_other_settings(study, tmp_path: Path) -> None:
    import shutil

    out, _ = study
    result = runner.invoke(
        app, ["study", "--ontology", "hgnc", "--tasks", TASKS, "--size", "tiny", "--seed", "1", "--out", str(out)]
    )
    assert result.exit_code == 1 and "seed: 0 -> 1" in result.output and "--rerun-mismatched" in result.output
    # each stage's own manifest, as the real stage wrote it, is compared too
    copy = tmp_path / "copy"
    shutil.copytree(out / "hgnc", copy / "hgnc")
    for stages in (["align"], ["lexicalization"], ["train", "evaluate"], ["evaluate"]):
        with pytest.raises(StudyError, match=r"made with other settings \(.*seed: 0 -> 1"):
            run_study(["hgnc"], copy, size="tiny", tasks=TASKS.split(","), stages=stages, seed=1)
        run_study(["hgnc"], copy, size="tiny", tasks=TASKS.split(","), stages=stages)  # same settings: resumed
