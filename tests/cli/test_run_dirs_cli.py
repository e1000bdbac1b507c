"""An `--out` that holds another run is refused, not silently reused; `--overwrite` clears it first.

Every command that writes a run directory checks it before any slow work, so these run without a model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _cli import one_error_line
from lexprobe.cli.main import app
from typer.testing import CliRunner

from lexprobe.exceptions import OutputError
from lexprobe.runs import existing_run, prepare_run_dir, write_result_dir

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
runner = CliRunner()


@pytest.fixture()
def train_run(tmp_path: Path) -> Path:
    """A finished, evaluated training run (the recorded one, with an adapter and a checkpoint added)."""
    run = tmp_path / "train"
    shutil.copytree(RESULTS / "train-hgnc-name-to-symbol", run)
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-5" / "trainer_state.json").write_text("{}")
    (run / "notes.txt").write_text("mine")  # not lexprobe's: never removed
    return run


def _commands(out: Path) -> dict[str, list[str]]:
    calibration = RESULTS / "study-smollm2"
    return {
        "align": ["align", "--ontology", "hgnc", "--limit", "20", "--out", str(out)],
        "lexicalization": ["lexicalization", "--ontology", "hgnc", "--limit", "20", "--out", str(out)],
        "split": [
            "split",
            "--ontology",
            "hgnc",
            "-t",
            "name-to-symbol",
            "--bins",
            "2",
            "--per-bin",
            "3",
            "--out",
            str(out),
        ],
        "correlate": ["correlate", str(RESULTS / "train-hgnc-name-to-symbol"), "--out", str(out)],
        "predict": ["predict", "--ontology", "hgnc", "-t", "name-to-id", "-c", str(calibration), "--out", str(out)],
    }


@pytest.mark.parametrize("command", ["align", "lexicalization", "split", "correlate", "predict"])
def test_a_finished_train_run_is_never_taken_over_by_another_stage(train_run: Path, command: str) -> None:
    before = (train_run / "manifest.json").read_bytes()
    result = runner.invoke(app, _commands(train_run)[command])
    assert result.exit_code == 1, result.output
    line = one_error_line(result.output)
    assert "holds a train run" in line and "--overwrite" in line and "another --out" in line
    assert (train_run / "manifest.json").read_bytes() == before
    assert (train_run / "adapter" / "adapter_config.json").is_file()
    assert existing_run(train_run)[0] == "train"


def test_train_refuses_a_folder_of_another_stage(tmp_path: Path) -> None:
    out = tmp_path / "split"
    assert runner.invoke(app, _commands(out)["split"]).exit_code == 0
    result = runner.invoke(
        app, ["train", "--ontology", "hgnc", "-t", "name-to-symbol", "--max-steps", "1", "--out", str(out)]
    )
    assert result.exit_code == 1 and "holds a split run" in one_error_line(result.output)
    assert json.loads((out / "manifest.json").read_text())["stage"] == "split"


def test_split_reuses_its_own_folder_refuses_other_settings_and_overwrite_replaces(tmp_path: Path) -> None:
    out = tmp_path / "split"
    args = _commands(out)["split"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0  # same settings: written again
    first = pd.read_csv(out / "train.csv")
    result = runner.invoke(app, [*args, "--seed", "7"])
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert "holds a split run with other settings (seed: 0 -> 7" in line and "--overwrite" in line
    pd.testing.assert_frame_equal(pd.read_csv(out / "train.csv"), first)
    assert runner.invoke(app, [*args, "--seed", "7", "--overwrite"]).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 7


def test_overwrite_clears_what_the_old_run_owned_and_keeps_other_files(train_run: Path) -> None:
    result = runner.invoke(app, [*_commands(train_run)["split"], "--overwrite"])
    assert result.exit_code == 0, result.output
    left = sorted(p.name for p in train_run.iterdir() if not p.name.startswith("."))
    assert left == ["manifest.json", "notes.txt", "train.csv", "withheld.csv"], left
    assert existing_run(train_run)[0] == "split"


def test_an_unreadable_manifest_is_a_run_not_an_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    (out / "manifest.json").write_text("{half")
    result = runner.invoke(app, _commands(out)["split"])
    assert result.exit_code == 1 and "manifest.json is unreadable" in one_error_line(result.output)


def test_an_interrupted_training_is_a_train_run(tmp_path: Path) -> None:
    out = tmp_path / "t"
    out.mkdir()
    (out / "train_config.json").write_text(json.dumps({"config": {"task": "name-to-symbol"}}))
    with pytest.raises(OutputError, match="holds a train run"):
        prepare_run_dir(out, "align", {})
    assert prepare_run_dir(out, "train", None) == out  # train resumes it itself


def test_a_stage_rewriting_its_folder_drops_its_old_figures_and_tables(tmp_path: Path) -> None:
    record = {"config": {"k": 1}, "inputs": {}, "seed": 0}

    def draw(directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "umap_pairs.png").write_bytes(b"png")
        return [directory / "umap_pairs.png"]

    tables = {"alignment.csv": pd.DataFrame({"a": [1]}), "extra.csv": pd.DataFrame({"b": [2]})}
    write_result_dir(tmp_path, tables, stage="align", record=record, figures=draw)
    (tmp_path / "mine.csv").write_text("kept\n")
    write_result_dir(tmp_path, {"alignment.csv": pd.DataFrame({"a": [3]})}, stage="align", record=record)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alignment.csv", "manifest.json", "mine.csv"]


def test_report_replaces_its_own_page_but_not_another_file(tmp_path: Path) -> None:
    run = str(RESULTS / "align-hgnc")
    assert runner.invoke(app, ["report", run, "--out", str(tmp_path / "r")]).exit_code == 0
    assert runner.invoke(app, ["report", run, "--out", str(tmp_path / "r")]).exit_code == 0  # its own page: replaced
    other = tmp_path / "o" / "report.html"
    other.parent.mkdir()
    other.write_text('{"stage": "align"}')
    result = runner.invoke(app, ["report", run, "--out", str(other.parent)])
    assert result.exit_code == 1 and "is not a lexprobe report" in one_error_line(result.output)
    assert other.read_text() == '{"stage": "align"}'
    assert runner.invoke(app, ["report", run, "--out", str(other.parent), "--overwrite"]).exit_code == 0
    assert other.read_text().startswith("<!DOCTYPE html>")
