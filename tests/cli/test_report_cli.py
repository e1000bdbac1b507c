"""`lexprobe report` on recorded run directories, and its one-line failures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"

runner = CliRunner()


def test_report_command_writes_the_page_and_says_so_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "r" / "report.html"
    runs = [str(RESULTS / "align-hgnc"), str(RESULTS / "train-hgnc-name-to-symbol")]
    result = runner.invoke(app, ["report", *runs, "-o", str(out.parent), "--title", "T"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    n = 2 + sum(1 for r in runs for _ in Path(r).glob("shots-*"))  # a run's K-shot evaluations show after it
    assert len(lines) == 1 and re.fullmatch(rf"wrote {re.escape(str(out))} \({n} runs, \d+ KiB\)", lines[0]), lines
    page = out.read_text()
    assert "<title>T</title>" in page and page.count('<section id="run-') == n


@pytest.mark.parametrize(("bad", "message"), [("missing", "does not exist"), ("empty", "is not a lexprobe run")])
def test_report_command_fails_in_one_error_line_and_writes_nothing(tmp_path: Path, bad: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", str(RESULTS / "align-hgnc"), str(tmp_path / bad), "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not out.exists()


def test_report_command_needs_a_run_directory() -> None:
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 2 and "Missing argument" in result.output
