"""`--dry-run` makes the checks the run makes before it plans (issue 32, item 10): what the run would refuse
(an `--out` that is a file, a folder holding another run, two ontologies in one folder, an ontology named `..`)
the dry run refuses in the same line, and it changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import one_error_line
from _tiny_lm import make_model_dir
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data"
HPO = str(DATA / "hp_sample.obo")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_model_dir("bytelevel", tmp_path_factory.mktemp("tiny") / "model"))


def _obo(path: Path, header: str) -> Path:
    stanzas = "".join(f"[Term]\nid: TOY:{i:07d}\nname: toy term number {i}\n\n" for i in range(1, 41))
    path.write_text(f"format-version: 1.2\nontology: {header}\n\n{stanzas}", encoding="utf-8")
    return path


def _both(args: list[str]) -> list[str]:
    """The error line of the run and of its dry run (which must be the same)."""
    lines = []
    for extra in ([], ["--dry-run"]):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 1, result.output
        lines.append(one_error_line(result.output))
    assert lines[0] == lines[1]
    return lines


COMMANDS = {
    "study": ["study", "--ontology", HPO, "--size", "tiny"],
    "align": ["align", "--ontology", HPO],
    "lexicalization": ["lexicalization", "--ontology", HPO],
    "embed": ["embed", "--ontology", HPO, "--field", "name"],
    "train": ["train", "--ontology", HPO, "--task", "name-to-id"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_out_that_is_a_file_is_refused_by_the_dry_run_too(command: str, tmp_path: Path, tiny_model: str) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    (line, _) = _both([*COMMANDS[command], "--model", tiny_model, "--out", str(taken)])
    assert "--out" in line and str(taken) in line
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("command", ["align", "lexicalization", "embed", "train"])
def test_a_folder_holding_another_run_is_refused_by_the_dry_run_and_overwrite_removes_nothing(
    command: str, tmp_path: Path, tiny_model: str
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"stage": "report"}))
    (line, _) = _both([*COMMANDS[command], "--model", tiny_model, "--out", str(out)])
    assert "holds a report run; pass --overwrite" in line
    result = runner.invoke(
        app, [*COMMANDS[command], "--model", tiny_model, "--out", str(out), "--dry-run", "--overwrite"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text()) == {"stage": "report"}  # a dry run removes nothing


def test_two_ontologies_whose_headers_map_to_one_folder_are_refused_by_the_dry_run(tmp_path: Path, tiny_model) -> None:
    one, two = _obo(tmp_path / "one.obo", "a/b"), _obo(tmp_path / "two.obo", "a_b")
    args = [
        "study",
        "--ontology",
        f"{one},{two}",
        "--size",
        "tiny",
        "--model",
        tiny_model,
        "--out",
        str(tmp_path / "s"),
    ]
    (line, _) = _both(args)
    assert "would share the folder" in line
    assert not (tmp_path / "s").exists()


def test_an_ontology_named_dot_dot_is_refused_by_the_dry_run(tmp_path: Path, tiny_model: str) -> None:
    dotted = _obo(tmp_path / "dotted.obo", "..")
    args = ["study", "--ontology", str(dotted), "--size", "tiny", "--model", tiny_model, "--out", str(tmp_path / "s")]
    (line, _) = _both(args)
    assert "'..' cannot name a folder" in line
    assert not (tmp_path / "s").exists()


def test_a_dry_run_that_passes_the_checks_plans_and_writes_nothing(tmp_path: Path, tiny_model: str) -> None:
    out = tmp_path / "s"
    args = ["study", "--ontology", HPO, "--size", "tiny", "--stages", "align", "--model", tiny_model, "--out", str(out)]
    result = runner.invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "tokens" in result.output and not out.exists()


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_a_model_id_not_available_offline_is_one_line(tmp_path: Path, dry_run: list[str]) -> None:
    """Tests run with HF_HUB_OFFLINE set (conftest): a hub id that is not cached is refused in one line at once."""
    args = ["embed", "--ontology", HPO, "--field", "name", "-m", "lexprobe-test/absent", "-o", str(tmp_path / "e")]
    line = one_error_line(runner.invoke(app, [*args, *dry_run]).output)
    assert "model 'lexprobe-test/absent' is not available offline" in line
    assert "use a named model or a local model directory" in line
    assert not (tmp_path / "e").exists()
