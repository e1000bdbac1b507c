"""`lexprobe cache list|clear|path`: tables, JSON, confirmation, and refusing to clear unasked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _cli import one_error_line
from lexprobe.cli import cache as cache_cli
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
DATA = Path(__file__).parents[1] / "data"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from lexprobe.embed import _write_shard
    from lexprobe.ontology import load_ontology

    root = tmp_path / "cache"
    monkeypatch.setenv("LEXPROBE_CACHE", str(root))
    load_ontology(str(DATA / "hp_sample.obo"))
    work = root / "embeddings" / ("b" * 20 + ".partial")
    work.mkdir(parents=True)
    _write_shard(work, [0, 1, 2], np.zeros((2, 3, 8), dtype=np.float32), np.zeros((2, 3)))
    return root


def test_list_prints_a_table_with_sizes_and_a_total(cache: Path) -> None:
    result = runner.invoke(app, ["cache", "list"])
    assert result.exit_code == 0, result.output
    assert "ontology" in result.output and "embeddings" in result.output
    assert "2 entries" in result.output and "1 unfinished" in result.output
    assert " kB" in result.output or " B" in result.output


def test_list_json_is_strict_and_filtered_by_kind(cache: Path) -> None:
    result = runner.invoke(app, ["cache", "list", "--kind", "ontology", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["root"] == str(cache)
    assert [e["kind"] for e in record["entries"]] == ["ontology"]
    assert record["total_bytes"] == record["entries"][0]["size"] > 0
    assert record["entries"][0]["details"]["ontology"] == "hpo"


def test_path_prints_the_cache_root(cache: Path) -> None:
    result = runner.invoke(app, ["cache", "path"])
    assert result.exit_code == 0 and result.output.strip() == str(cache)


def test_clear_refuses_without_yes_when_nobody_can_answer(cache: Path) -> None:
    result = runner.invoke(app, ["cache", "clear"])  # CliRunner's stdin is not a terminal
    assert result.exit_code == 2
    assert "pass --yes" in one_error_line(result.output)
    assert len(list(cache.rglob("*.json.gz"))) == 1  # nothing removed


def test_clear_asks_on_a_terminal_and_keeps_everything_on_no(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_cli, "_stdin_is_terminal", lambda: True)
    result = runner.invoke(app, ["cache", "clear", "--kind", "ontology"], input="n\n")
    assert result.exit_code == 1 and "Remove 1 entries" in result.output
    assert len(list(cache.rglob("*.json.gz"))) == 1
    result = runner.invoke(app, ["cache", "clear", "--kind", "ontology"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "freed" in result.output and not list(cache.rglob("*.json.gz"))


def test_clear_dry_run_and_yes(cache: Path) -> None:
    result = runner.invoke(app, ["cache", "clear", "--incomplete", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would remove embeddings" in result.output and "would free" in result.output
    assert (cache / "embeddings" / ("b" * 20 + ".partial")).is_dir()
    result = runner.invoke(app, ["cache", "clear", "--incomplete", "--yes", "--json"])
    record = json.loads(result.output)
    assert [Path(e["path"]).name for e in record["removed"]] == ["b" * 20 + ".partial"]
    assert record["bytes_freed"] > 0 and not record["dry_run"]
    assert not (cache / "embeddings" / ("b" * 20 + ".partial")).exists()
    assert len(list(cache.rglob("*.json.gz"))) == 1  # complete entries stay


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "--older-than must be a number and a unit"),
        (["--kind", "models"], "(comma-separated), got 'models'"),
    ],
)
def test_bad_filters_are_rejected_before_anything_goes(cache: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["cache", "clear", "--yes", *args])
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert len(list(cache.rglob("*.json.gz"))) == 1


def test_clear_refuses_a_folder_of_the_users_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "main.py").write_text("mine")
    (tmp_path / "thesis.pdf").write_text("mine")
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path))
    for args in (["--yes"], ["--dry-run"], ["--kind", "other", "--yes"]):
        result = runner.invoke(app, ["cache", "clear", *args])
        assert result.exit_code == 1
        assert "does not look like lexprobe's cache" in one_error_line(result.output)
    assert (tmp_path / "thesis.pdf").is_file() and (tmp_path / "project" / "main.py").is_file()


def test_clear_keeps_and_names_what_lexprobe_did_not_write(cache: Path) -> None:
    (cache / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["cache", "clear", "--yes"])
    assert result.exit_code == 0, result.output
    assert "kept notes.txt (other): not written by lexprobe" in result.output
    assert (cache / "notes.txt").read_text() == "mine" and not list(cache.rglob("*.json.gz"))


@pytest.mark.parametrize("age", ["99999999999d", "9" * 400 + "w"])
def test_clear_with_an_age_too_long_is_one_line(cache: Path, age: str) -> None:
    result = runner.invoke(app, ["cache", "clear", "--yes", "--older-than", age])
    assert result.exit_code == 1 and "must be at most 999999999d" in one_error_line(result.output)
    assert len(list(cache.rglob("*.json.gz"))) == 1
