"""A second command into a run folder another command is writing: one line naming it, or ``--wait``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _cli import one_error_line
from lexprobe.cli.main import app
from typer.testing import CliRunner

HOLDER = Path(__file__).parents[1] / "_hold_run_lock.py"


def hold(directory: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds ``directory``'s lock for ``seconds`` (returned once it holds it)."""
    proc = subprocess.Popen(
        [sys.executable, str(HOLDER), str(directory), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_cli_a_second_command_into_a_held_folder_is_one_line_and_waits_with_wait(tmp_path: Path) -> None:
    out = tmp_path / "split"
    args = ["split", "--ontology", "hgnc", "-t", "name-to-symbol", "--bins", "2", "--per-bin", "2", "-o", str(out)]
    proc = hold(out, 30)
    try:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1
        line = one_error_line(result.output)
        assert f"process {proc.pid}" in line and "--wait" in line
        assert not (out / "train.csv").exists()
    finally:
        proc.kill()
        proc.wait()
    proc = hold(out, 1)
    result = CliRunner().invoke(app, [*args, "--wait"])
    assert result.exit_code == 0, result.output
    assert proc.wait() == 0 and (out / "train.csv").is_file()
