"""Progress and logs (issue 18, point 2): timestamped, rate-limited lines when piped, bars on a terminal,
silence with -q or --json, the same -v/-q levels everywhere, and stdout left to results."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
import typer
from lexprobe.cli import _progress
from lexprobe.cli._progress import progress_display, setup_logging
from rich.console import Console
from typer.testing import CliRunner

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO lexprobe\.progress: ")


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch):
    """Leave the logging configuration as it was (other tests read lexprobe's INFO records with caplog)."""
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "warning")  # setup_logging sets it; restored afterwards
    root, ours = logging.getLogger(), logging.getLogger("lexprobe")
    handlers, levels = list(root.handlers), (root.level, ours.level)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(_progress, "_now", fake)
    return fake


def fake_stage(progress, clock: FakeClock, *, name: str, total: int, seconds: float, calls: int) -> None:
    """A stage that reports ``calls`` evenly spaced updates over ``seconds`` (of the fake clock)."""
    progress(name, 0, total)
    for i in range(1, calls + 1):
        clock.t += seconds / calls
        progress(name, total * i // calls, total)


def progress_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "lexprobe.progress" in line]


def test_piped_progress_is_timestamped_lines_with_counts_and_time_left(capsys, clock) -> None:
    setup_logging(0, False)
    with progress_display(False) as progress:
        fake_stage(progress, clock, name="embedding name", total=2000, seconds=300, calls=100)
    out, err = capsys.readouterr()
    assert out == ""
    lines = progress_lines(err)
    assert all(STAMP.match(line) for line in lines), lines
    assert lines[0].endswith("embedding name: started, 0/2000")  # life at once, not after the first batch
    assert lines[-1].endswith("embedding name: done, 2000/2000 in 5 min 00 s")
    middle = lines[1:-1]
    # a line about every 10 s (every 4th call of 3 s here): 300 s give about 25, never one per call
    assert 20 <= len(middle) <= 35, len(middle)
    # 3 s per 20 items: after 80 items in 12 s, 1,920 items take 288 s more
    assert middle[0].endswith("embedding name: 80/2000 (4%), 12 s so far, about 4 min 48 s left")


def test_a_fast_stage_writes_few_lines_and_every_stage_its_own(capsys, clock) -> None:
    setup_logging(0, False)
    with progress_display(False) as progress:
        fake_stage(progress, clock, name="measuring", total=62, seconds=4, calls=62)
        fake_stage(progress, clock, name="intervals at the best layer", total=2, seconds=1, calls=2)
    lines = progress_lines(capsys.readouterr().err)
    measuring = [line for line in lines if "measuring:" in line]
    # start, end and at most one line a second (on a further tenth) in 4 s
    assert 2 <= len(measuring) <= 6, measuring
    assert measuring[0].endswith("started, 0/62") and measuring[-1].endswith("done, 62/62 in 4 s")
    assert [line.split(": ", 1)[1] for line in lines if "intervals" in line] == [
        "intervals at the best layer: started, 0/2",
        "intervals at the best layer: done, 2/2 in 1 s",
    ]


def test_a_cached_stage_is_told_done_and_a_restarted_one_starts_again(capsys, clock) -> None:
    setup_logging(0, False)
    with progress_display(False) as progress:
        progress("embedding id", 500, 500)
        progress("loading model", 0, 1)
        clock.t += 40
        progress("loading model", 1, 1)
        progress("loading model", 0, 1)
        progress("loading model", 1, 1)
    messages = [line.split("lexprobe.progress: ", 1)[1] for line in progress_lines(capsys.readouterr().err)]
    assert messages == [
        "embedding id: 500/500 already done",
        "loading model: started, 0/1",
        "loading model: done, 1/1 in 40 s",
        "loading model: started, 0/1",
        "loading model: done, 1/1 in 0 s",
    ]


@pytest.mark.parametrize("quiet, as_json", [(True, False), (False, True), (True, True)])
def test_quiet_and_json_show_no_progress(capsys, clock, quiet: bool, as_json: bool) -> None:
    setup_logging(0, quiet)
    with progress_display(quiet, json=as_json) as progress:
        fake_stage(progress, clock, name="embedding name", total=100, seconds=100, calls=50)
    assert capsys.readouterr() == ("", "")


def test_verbose_and_quiet_mean_the_same_levels_everywhere(capsys) -> None:
    ours, faiss, hub = (logging.getLogger(n) for n in ("lexprobe.align._run", "faiss.loader", "urllib3"))
    setup_logging(0, False)
    assert ours.isEnabledFor(logging.INFO) and not ours.isEnabledFor(logging.DEBUG)
    assert not faiss.isEnabledFor(logging.INFO) and faiss.isEnabledFor(logging.WARNING)
    setup_logging(1, False)
    assert ours.isEnabledFor(logging.DEBUG)
    assert faiss.isEnabledFor(logging.INFO) and not hub.isEnabledFor(logging.DEBUG)
    setup_logging(2, False)
    assert hub.isEnabledFor(logging.DEBUG)
    setup_logging(2, True)  # -q wins
    assert not ours.isEnabledFor(logging.INFO) and ours.isEnabledFor(logging.WARNING)
    assert not faiss.isEnabledFor(logging.INFO)
    # one handler however often it is set up, and what it writes is one timestamped line on stderr
    assert sum(h.get_name() == "lexprobe-cli" for h in logging.getLogger().handlers) == 1
    capsys.readouterr()
    ours.warning("a warning")
    out, err = capsys.readouterr()
    assert out == "" and re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING lexprobe\.align\._run: a warning$", err
    )


def test_on_a_terminal_each_stage_is_a_bar_with_its_count(monkeypatch, clock) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(_progress, "is_terminal", lambda: True)
    monkeypatch.setattr(_progress, "err_console", console)
    with progress_display(False) as progress:
        fake_stage(progress, clock, name="embedding name", total=300, seconds=30, calls=5)
        fake_stage(progress, clock, name="measuring", total=62, seconds=10, calls=2)
    text = screen.getvalue()
    assert "embedding name" in text and "300/300" in text
    assert "measuring" in text and "62/62" in text


def _piped_app() -> typer.Typer:
    """A command wired as every lexprobe command is: logging set up, progress to stderr, the result to stdout."""
    app = typer.Typer()

    @app.command()
    def run(quiet: bool = typer.Option(False, "-q"), as_json: bool = typer.Option(False, "--json")) -> None:
        setup_logging(0, quiet)
        with progress_display(quiet, json=as_json) as progress:
            for layer in range(31):
                progress("measuring", layer, 31)
            progress("measuring", 31, 31)
        print(json.dumps({"best_layer": 4}) if as_json else "best layer 4")

    return app


def test_a_command_s_stdout_holds_its_result_only() -> None:
    runner = CliRunner()
    plain = runner.invoke(_piped_app(), [])
    assert plain.exit_code == 0 and plain.stdout == "best layer 4\n"
    assert "measuring: started, 0/31" in plain.stderr and "measuring: done, 31/31" in plain.stderr
    as_json = runner.invoke(_piped_app(), ["--json"])
    assert json.loads(as_json.stdout) == {"best_layer": 4} and as_json.stderr == ""


@pytest.mark.slow
def test_alignment_reports_embedding_batches_within_a_field_and_every_layer(tmp_path: Path) -> None:
    from lexprobe.align import AlignmentConfig, run_alignment
    from lexprobe.models import load_model

    calls: list[tuple[str, int, int]] = []
    config = AlignmentConfig(
        ontology="hgnc", pairs=("name:symbol",), limit=150, layers=(0, 6), permutations=5, bootstrap=0
    )
    lm = load_model(config.model, device="cpu", dtype=config.dtype)  # batches of 64 on a CPU
    result = run_alignment(config, model=lm, progress=lambda *a: calls.append(a), cache_dir=tmp_path)
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages == ["embedding name", "embedding symbol", "measuring"]
    for field in ("name", "symbol"):
        done = [d for s, d, t in calls if s == f"embedding {field}"]
        # 150 items in batches of 64: a call at the start and after each of the three batches
        assert done == [0, 64, 128, 150]
        assert {t for s, _, t in calls if s == f"embedding {field}"} == {150}
    assert [d for s, d, _ in calls if s == "measuring"] == [0, 1, 2]  # one pair, two layers
    assert len(result.table)  # and the run itself finished
    # a second run finds the embeddings cached: each field is reported done at once
    again: list[tuple[str, int, int]] = []
    run_alignment(config, model=lm, progress=lambda *a: again.append(a), cache_dir=tmp_path)
    assert [(s, d) for s, d, _ in again if s.startswith("embedding")] == [
        ("embedding name", 150),
        ("embedding symbol", 150),
    ]


@pytest.mark.slow
def test_align_command_keeps_progress_out_of_stdout(tmp_path: Path) -> None:
    from lexprobe.cli.main import app

    args = ["align", "--ontology", "hgnc", "--pairs", "name:symbol", "--limit", "20", "--layers", "0,1"]
    args += ["--permutations", "5", "--bootstrap", "0", "--no-figures", "--k", "3"]
    result = CliRunner().invoke(app, [*args, "--json", "--out", str(tmp_path / "json")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)  # nothing but the JSON object
    table = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "table")])
    assert table.exit_code == 0, table.output
    for word in ("embedding name", "measuring", "loading model", "/20"):
        assert word not in table.stdout
