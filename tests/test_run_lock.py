"""One writer per run folder: a second command refuses naming the holder, or waits; a dead holder never blocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lexprobe.exceptions import OutputError
from lexprobe.runs import RUN_LOCK, run_lock

HOLDER = Path(__file__).with_name("_hold_run_lock.py")


def hold(directory: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds ``directory``'s lock for ``seconds`` (returned once it holds it)."""
    proc = subprocess.Popen(
        [sys.executable, str(HOLDER), str(directory), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_process_that_holds_the_folder(tmp_path: Path) -> None:
    proc = hold(tmp_path / "run", 30)
    try:
        with pytest.raises(OutputError, match=rf"--out .*run is being written by process {proc.pid} \(lexprobe align"):
            with run_lock(tmp_path / "run"):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_with_wait_the_second_writer_starts_when_the_first_ends(tmp_path: Path) -> None:
    proc = hold(tmp_path / "run", 1.5)
    started = time.monotonic()
    with run_lock(tmp_path / "run", wait=True):
        waited = time.monotonic() - started
        record = json.loads((tmp_path / "run" / RUN_LOCK).read_text())
    assert waited > 1.0 and record["pid"] == os.getpid()  # it waited out the holder's 1.5 s, then took the folder
    assert proc.wait() == 0


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    proc = hold(tmp_path / "run", 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / "run" / RUN_LOCK).read_text())["pid"] == proc.pid  # the file stays behind
    started = time.monotonic()
    with run_lock(tmp_path / "run"):
        pass
    assert time.monotonic() - started < 1


def test_two_threads_one_folder_the_second_refuses_and_a_nested_lock_does_not_wait_on_itself(tmp_path: Path) -> None:
    refused: list[BaseException] = []

    def second() -> None:
        try:
            with run_lock(tmp_path / "run"):
                pass
        except OutputError as exc:
            refused.append(exc)

    with run_lock(tmp_path / "run"):
        with run_lock(tmp_path / "run"):  # the same process again: no deadlock
            pass
        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
    assert refused and f"process {os.getpid()}" in str(refused[0])
