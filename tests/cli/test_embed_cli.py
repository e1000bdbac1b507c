"""`lexprobe embed` end to end with the real model, and its bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.slow
def test_embed_writes_arrays_keys_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "emb"
    args = [
        "embed",
        "--ontology",
        "hpo",
        "--field",
        "id",
        "--limit",
        "12",
        "--layers",
        "0,-1",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    array = np.load(out / "embeddings.npy")
    keys = (out / "keys.tsv").read_text().splitlines()
    assert array.shape == (2, 12, 576) and np.isfinite(array).all()
    assert keys[0] == "id\ttext" and len(keys) == 13
    assert all(line.split("\t")[0] == line.split("\t")[1] for line in keys[1:])  # the id field is the id
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["model"]["name"] == "smollm2-135m"
    assert manifest["config"]["layers_resolved"] == [0, 30]
    assert manifest["ontology"]["name"] == "hpo" and len(manifest["ontology"]["checksum"]) == 64
    assert "torch" in manifest["versions"] and manifest["seed"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ontology", "hpo", "--field", "symbol"], "has no terms with a 'symbol' value"),
        (["--ontology", "hpo", "--field", "colour"], "unknown field 'colour'"),
        (["--ontology", "hpo", "--field", "name", "--model", "/no/such/model.gguf"], "GGUF file not found"),
        (["--ontology", "hpo", "--field", "name", "--layers", "0,x"], "--layers must be"),
        (["--ontology", "nosuch", "--field", "name"], "unknown ontology 'nosuch'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "emb"
    result = runner.invoke(app, ["embed", *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (out / "embeddings.npy").exists()


@pytest.mark.slow
def test_a_layer_the_model_lacks_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "embed",
            "--ontology",
            "hgnc",
            "--field",
            "symbol",
            "--limit",
            "3",
            "--layers",
            "99",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert "layer 99 is out of range" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--pool", "max"], "'mean', 'last', 'first'"), (["--batch-size", "-3"], "auto or a positive number")],
)
def test_a_wrong_choice_or_batch_size_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "e"
    result = runner.invoke(
        app, ["embed", "--ontology", "hpo", "--field", "name", *args, "-o", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()
