"""`lexprobe correlate` and `lexprobe predict` through Typer's test runner: bad input, and a real prediction."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from _cli import one_error_line
from lexprobe.cli.main import app
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_predict import synthetic  # noqa: E402

runner = CliRunner()


def test_correlate_names_what_is_wrong_with_a_run(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["correlate", str(tmp_path / "nope"), "--out", str(tmp_path / "c")])
    assert missing.exit_code == 1 and "does not exist" in one_error_line(missing.output)
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["correlate", str(tmp_path / "empty"), "--out", str(tmp_path / "c")])
    assert empty.exit_code == 1 and "train_config.json" in one_error_line(empty.output)
    assert not (tmp_path / "c").exists()  # nothing half-written


def test_predict_needs_a_calibration_and_a_known_task(tmp_path: Path) -> None:
    none = runner.invoke(app, ["predict", "--ontology", "hgnc", "--task", "name-to-symbol", "--no-shipped"])
    assert none.exit_code == 1 and "no calibration" in one_error_line(none.output)
    bad = runner.invoke(
        app, ["predict", "--ontology", "hgnc", "-t", "name-to-symbol", "--no-shipped", "-c", str(tmp_path)]
    )
    assert bad.exit_code == 1 and "holds no `lexprobe correlate` output" in one_error_line(bad.output)
    unknown = runner.invoke(app, ["predict", "--ontology", "nope", "--task", "name-to-id"])
    assert unknown.exit_code == 1 and "nope" in one_error_line(unknown.output)
    task = runner.invoke(app, ["predict", "--ontology", "hpo", "--task", "name-to-symbol"])
    assert task.exit_code == 1 and "symbol" in one_error_line(task.output)


@pytest.mark.slow
def test_predict_a_real_task_against_a_calibration(tmp_path: Path) -> None:
    items, tasks = synthetic(n_tasks=6, n=60)
    cal = tmp_path / "cal"
    cal.mkdir()
    items.to_csv(cal / "items.csv", index=False)
    tasks.to_csv(cal / "tasks.csv", index=False)
    out = tmp_path / "pred"
    args = ["predict", "--ontology", "hgnc", "--task", "name-to-symbol", "--no-shipped", "-c", str(cal)]
    args += ["--bins", "4", "--per-bin", "5", "--bootstrap", "20", "--out", str(out), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert any(
        f"hgnc name-to-symbol (smollm2-135m, - exposures): {v} (p = " in text
        for v in ("will generalize", "memorization only", "unlikely to improve")
    )
    assert "predicted generalization gain" in text and "probabilities: will generalize" in text
    assert (out / "baselines.csv").is_file() and (out / "holdout.csv").is_file()
    assert "no calibration task used model smollm2-135m" in text  # the synthetic calibration is of model "m"
    row = pd.read_csv(out / "prediction.csv").iloc[0]
    assert row["task_n_items"] == 40 and 0 <= row["task_lexicalization"] <= 1
    if row["rule"] == "predictor (kind-anchored)":
        assert row["predicted_generalization_gain_ci_low"] <= row["predicted_generalization_gain_ci_high"]
    else:  # the synthetic calibration's tasks are of no known kind: the task lies outside it, and says so
        assert "no calibration task is of this kind" in row["outside"] and "outside the calibration" in text
    features = pd.read_csv(out / "features.csv")
    assert len(features) == 40 and features["alignment"].between(0, 1).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "predict" and manifest["inputs"]["model"]["name"] == "smollm2-135m"
    assert manifest["inputs"]["thresholds"]["withheld"] == pytest.approx(row["generalization_threshold"], rel=1e-5)
    again = runner.invoke(app, [*args[:-3], "--out", str(tmp_path / "pred2"), "--json"])
    pd.testing.assert_frame_equal(pd.read_csv(out / "features.csv"), pd.read_csv(tmp_path / "pred2" / "features.csv"))
    assert again.exit_code == 0
    record = json.loads(again.stdout)  # --json: one strict JSON object, nothing else on stdout
    assert record["prediction"]["verdict"] == row["verdict"]
    assert record["prediction"]["predicted_generalization_gain"] == pytest.approx(
        row["predicted_generalization_gain"], abs=1e-6
    )
    assert record["features"]["n_items"] == 40 and record["out"] == str(tmp_path / "pred2")
    assert "majority verdict" in {r["rule"] for r in record["holdout"]}


@pytest.mark.slow
def test_predict_works_out_of_the_box_and_leaves_a_calibrated_task_out() -> None:
    result = runner.invoke(app, ["predict", "--ontology", "hgnc", "--task", "name-to-symbol", "-q"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "this task is in the calibration and was left out of the fit" in text
    from lexprobe.predict import shipped_calibration_dir

    tasks = pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "tasks.csv")
    own = tasks[(tasks["label"] == "hgnc name-to-symbol") & (tasks["model"] == "smollm2-135m")].iloc[0]
    measured = f"memorization {own['memorization_gain']:+.3f}, generalization {own['generalization_gain']:+.3f}"
    assert f"measured with smollm2-135m: {measured}" in text
    # the whole field pair (the task and its reverse, on both models) is left out of the fit; the rest of the
    # calibration holds other kinds that generalized, so the verdict can be "will generalize"
    for scheme in ("field pair", "ontology", "model"):  # the shipped calibration's own hold-out evaluations
        assert f"how well it predicts, held out by {scheme} ({len(tasks)} units)" in text
    assert "probabilities: will generalize" in text and "(kind: lexicalized -> lexicalized;" in text
    assert "0 field pair(s) with the verdict 'will generalize'" not in text
    assert "calibration from one model only" not in text
    # the calibration holds learning curves: the prediction is given at each budget it measured
    assert "predicted gain by budget" in text
    assert all(f" {budget} " in text for budget in ("5", "10", "20"))
