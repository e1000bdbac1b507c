"""`lexprobe split` through Typer's test runner: success and every bad-input path."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


def split_args(out: Path) -> list[str]:
    options = {"--ontology": "hpo", "--task": "name-to-id", "--bins": "4", "--per-bin": "5", "--seed": "3"}
    return ["split", *(x for pair in options.items() for x in pair), "--out", str(out)]


def test_split_writes_train_withheld_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "split"
    result = runner.invoke(app, split_args(out))
    assert result.exit_code == 0, result.output
    train = pd.read_csv(out / "train.csv")
    withheld = pd.read_csv(out / "withheld.csv")
    assert len(train) == len(withheld) == 20
    assert list(train.columns) == ["source", "target", "id", "popularity", "bin"]
    assert train["target"].str.match(r"^HP:\d{7}$").all()
    assert not set(train["id"]) & set(withheld["id"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 3
    assert manifest["config"]["popularity"] == "pop_hpoa_diseases"
    assert len(manifest["inputs"]["data_checksum"]) == 64
    assert "pandas" in manifest["versions"]
    # same seed, same files
    again = tmp_path / "again"
    assert runner.invoke(app, split_args(again)).exit_code == 0
    assert (again / "train.csv").read_text() == (out / "train.csv").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ontology", "nosuch", "--task", "name-to-id"], "nosuch"),
        (["--ontology", "hgnc", "--task", "name-to-colour"], "unknown field 'colour'"),
        (["--ontology", "hpo", "--task", "symbol-to-id"], "has no 'symbol' values"),
        (["--ontology", "go", "--task", "name-to-id", "--per-bin", "5000"], "lower --per-bin or --bins"),
        (["--ontology", "hgnc", "--task", "name-to-id", "--popularity", "pop_nope"], "pop_nope"),
        (["--ontology", "hgnc", "--task", "name-to-id", "--category", "no such locus"], "categories"),
        (["--ontology", "/no/such/file.obo", "--task", "name-to-id"], "/no/such/file.obo"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "split"
    result = runner.invoke(app, ["split", *args, "--out", str(out)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output
    assert not (out / "train.csv").exists()
