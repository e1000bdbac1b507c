"""`lexprobe train` and `lexprobe evaluate` through Typer's test runner: a tiny real run and the bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _cli import one_error_line
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.slow
def test_train_then_evaluate_a_tiny_run(tmp_path: Path) -> None:
    split = tmp_path / "split"
    args = ["split", "--ontology", "hgnc", "--task", "name-to-symbol", "--bins", "2", "--per-bin", "1"]
    assert runner.invoke(app, [*args, "--out", str(split)]).exit_code == 0
    wrong = [
        "train",
        "--ontology",
        "hgnc",
        "--task",
        "name-to-id",
        "--from-split",
        str(split),
        "--out",
        str(tmp_path / "x"),
    ]
    assert "holds a 'name-to-symbol' split" in one_error_line(runner.invoke(app, wrong).output)
    run = tmp_path / "run"
    train = ["train", "--ontology", "hgnc", "--task", "name-to-symbol", "--from-split", str(split), "--out", str(run)]
    train += ["--templates", "2", "--max-steps", "3", "--batch-size", "4", "--lr", "1e-3", "--lora-r", "4", "-q"]
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    assert "2 pairs x 2 templates = 4 examples, 3 steps" in " ".join(result.output.split())
    assert (run / "split" / "train.csv").read_text() == (split / "train.csv").read_text()
    assert json.loads((run / "train_config.json").read_text())["config"]["lora_r"] == 4
    again = runner.invoke(app, train)
    assert again.exit_code == 0 and "nothing to do" in again.output

    result = runner.invoke(app, ["evaluate", str(run), "-q"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long paths at the runner's 80 columns
    assert "memorization gain" in text and "generalization gain" in text
    outcomes = pd.read_csv(run / "outcomes.csv")
    assert len(outcomes) == 4 and "category" in outcomes.columns

    result = runner.invoke(app, ["evaluate", str(run), "--split", "withheld", "--baseline", "-q"])
    assert result.exit_code == 0, result.output
    assert "memorization gain" not in " ".join(result.output.split())
    assert set(pd.read_csv(run / "outcomes.csv")["split"]) == {"withheld"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--ontology", "hgnc", "--task", "name-to-colour"], "unknown field 'colour'"),
        (["train", "--ontology", "hgnc", "--task", "name-to-symbl"], "unknown field 'symbl' (did you mean 'symbol'?)"),
        (["train", "--ontology", "hgnc", "--task", "name-to-symbol", "--per-bin", "5000"], "lower --per-bin"),
        (["train", "--ontology", "hgnc", "--task", "name-to-symbol", "--from-split", "/no/such/split"], "no train.csv"),
        (["train", "--ontology", "hgnc", "--task", "name-to-symbol", "--lr", "0"], "`lr` must be > 0"),
        (["evaluate", "/no/such/run"], "does not exist"),
        (["evaluate", "{tmp}"], "no train_config.json"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in one_error_line(result.output)
    assert not (tmp_path / "run" / "adapter").exists()


def test_evaluating_a_run_without_an_adapter_says_so(tmp_path: Path) -> None:
    from lexprobe.runs import atomic_write_json
    from lexprobe.train import TrainConfig

    (tmp_path / "split").mkdir()
    atomic_write_json(
        tmp_path / "train_config.json", {"config": TrainConfig(ontology="hgnc", task="name-to-symbol").to_dict()}
    )
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1
    assert "no finished adapter" in one_error_line(result.output)
    assert "--baseline" in result.output


def test_train_cli_takes_epochs_or_exposures_not_both(tmp_path: Path) -> None:
    base = ["train", "--ontology", "hpo", "-t", "name-to-id", "--out", str(tmp_path / "r")]
    both = runner.invoke(app, [*base, "--epochs", "2", "--exposures", "30"])
    assert both.exit_code != 0 and "not both" in one_error_line(both.output)
    bad = runner.invoke(app, [*base, "--snapshots", "10,ten"])
    assert bad.exit_code != 0 and "--snapshots" in one_error_line(bad.output)
    assert not (tmp_path / "r").exists()


def test_a_learning_curve_goes_without_baseline_or_shots_and_needs_snapshots(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "split").mkdir(parents=True)
    config = {"ontology": "hpo", "task": "name-to-id", "dtype": "float32"}
    (run / "train_config.json").write_text(json.dumps({"config": config}))
    for split in ("train", "withheld"):
        (run / "split" / f"{split}.csv").write_text(
            "source,target,id,popularity,bin\nSeizure,HP:0001250,HP:0001250,1,0\n"
        )
    mixed = runner.invoke(app, ["evaluate", str(run), "--checkpoints", "all", "--baseline"])
    assert mixed.exit_code == 1 and "goes without --baseline" in one_error_line(mixed.output)
    bad = runner.invoke(app, ["evaluate", str(run), "--checkpoints", "ten"])
    assert bad.exit_code == 1 and "exposure counts like 10,30" in one_error_line(bad.output)
    none = runner.invoke(app, ["evaluate", str(run), "--checkpoints", "all", "-q"])
    assert none.exit_code == 1 and "no adapter snapshots" in one_error_line(none.output)


def test_evaluate_split_is_a_choice(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--split", "test"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "'train', 'withheld', 'both'" in result.output
