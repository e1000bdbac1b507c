"""Text from data files reaches the terminal with its control characters escaped and its brackets as they are
(issue 32, item 9): a hostile ontology cannot clear the screen, set the window title or crash a table."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from _cli import one_error_line
from lexprobe.cli._common import escape_control
from lexprobe.cli._progress import _terminal_display, setup_logging
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()

TITLE = "\x1b]0;pwned\x07"  # sets the terminal window's title
CLEAR = "\x1b[2J"  # clears the screen


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch):
    """Leave the logging configuration as it was (other tests read lexprobe's INFO records with caplog)."""
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "warning")  # setup_logging sets it; restored afterwards
    root, ours = logging.getLogger(), logging.getLogger("lexprobe")
    handlers, levels = list(root.handlers), (root.level, ours.level)
    yield
    logging.captureWarnings(False)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"evil {TITLE} title", r"evil \x1b]0;pwned\x07 title"),
        (f"clear {CLEAR} me", r"clear \x1b[2J me"),
        ("nul\x00 del\x7f csi\x9b", r"nul\x00 del\x7f csi\x9b"),
        ("right-to-left \u202e override", r"right-to-left \u202e override"),
        ("two\nlines\tand a tab, é, 基因", "two\nlines\tand a tab, é, 基因"),
    ],
)
def test_escape_control_shows_control_characters_as_their_escapes(text: str, shown: str) -> None:
    assert escape_control(text) == shown


def _hostile_ontology(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.tsv"
    labels = [f"evil {TITLE} title", f"clear {CLEAR} me", "[bold]markup[/] and [/nope]", "plain four", "plain five"]
    rows = [f"X:{i}\t{label}" for i, label in enumerate(labels, 1)]
    path.write_text("id\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_data_show_prints_hostile_term_names_escaped_and_as_written(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "show", str(_hostile_ontology(tmp_path)), "-q"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert r"evil \x1b]0;pwned\x07 title" in result.output and r"clear \x1b[2J me" in result.output
    assert "[bold]markup[/] and [/nope]" in result.output  # a name is not markup (an unmatched tag crashed)


def test_an_error_line_shows_the_value_escaped_and_as_written(tmp_path: Path) -> None:
    missing = tmp_path / f"[/x]{CLEAR}.tsv"
    result = runner.invoke(app, ["data", "show", str(missing)])
    line = one_error_line(result.output)
    assert result.exit_code != 0 and "\x1b" not in result.output
    assert r"[/x]\x1b[2J.tsv" in line


def test_log_lines_and_warnings_show_control_characters_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(0, False)  # stderr is not a terminal here: timestamped lines
    logging.getLogger("lexprobe.test").info("term %s", f"evil {TITLE} title")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(False)  # as a fresh process has it
        setup_logging(0, False)
        warnings.warn(f"duplicate name {CLEAR}", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert r"term evil \x1b]0;pwned\x07 title" in err and r"duplicate name \x1b[2J" in err


def test_a_progress_bar_shows_a_stage_named_from_data_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    with _terminal_display() as update:
        update(f"embed {CLEAR} [/x]", 1, 2)
        update(f"embed {CLEAR} [/x]", 2, 2)
    err = capsys.readouterr().err
    assert "\x1b[2J" not in err and r"embed \x1b[2J [/x]" in err
