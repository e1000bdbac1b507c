"""``make bench`` (benchmarks/run_all.py): every script in benchmarks/ is either run or listed with the reason it is
not, and a benchmark that times the second model is skipped, not failed, where that model is not installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_every_benchmark_script_is_run_or_listed_with_why_not(run_all) -> None:
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")}
    run = {b.script for b in run_all.BENCHMARKS.values()}
    assert run | set(run_all.NOT_RUN) == scripts and not run & set(run_all.NOT_RUN)


def test_the_makefile_bench_target_runs_this_script() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "benchmarks/run_all.py" in makefile.split("\nbench:")[1].split("\n\n")[0]


def test_list_says_what_runs_and_runs_nothing(run_all, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setattr(run_all.subprocess, "call", lambda *a, **k: pytest.fail("--list ran something"))
    monkeypatch.setattr(run_all, "installed_models", lambda: ["smollm2-135m"])
    assert run_all.main(["--list", "--skip", "align"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if not line.startswith("-")}
    assert set(lines) == set(run_all.BENCHMARKS)
    assert lines["align"].endswith("[left out]") and lines["embed"].endswith("[runs]")
    assert "skipped: needs gemma3-270m" in lines["train_logits"]


def test_each_runs_in_its_own_process_on_the_installed_models_and_a_failure_is_the_exit_status(
    run_all, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    calls = []
    monkeypatch.setattr(
        run_all.subprocess, "call", lambda line, **kw: calls.append((line, kw["env"])) or len(calls) - 1
    )
    monkeypatch.setattr(run_all, "installed_models", lambda: ["smollm2-135m"])
    assert run_all.main(["--only", "coverage,generation,train_logits"]) == 1  # the second call "fails"
    assert [Path(line[1]).name for line, _ in calls] == ["coverage_intervals.py", "bench_generation.py"]
    assert calls[1][0][2:] == ["--models", "smollm2-135m"] and calls[0][1]["OMP_NUM_THREADS"] == "1"
    out = capsys.readouterr()
    assert "train_logits skipped: needs gemma3-270m" in out.out and "failed: generation" in out.err
    with pytest.raises(SystemExit, match="unknown benchmark nope"):
        run_all.main(["--only", "nope"])
