"""Property-based fuzz of the numeric CLI options of two cheap commands, ``split`` and ``data show``.

Whatever is typed for ``--bins``, ``--per-bin``, ``--seed`` or ``--limit`` (ints of any size and sign,
floats, words, empty strings), the command ends with exit code 0, 1 (one ``error:`` line) or 2 (a usage
error), never a traceback. Small and reproducible for CI: derandomized, no example database.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from _cli import one_error_line
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()

CLI_FUZZ = settings(
    max_examples=int(os.environ.get("LEXPROBE_FUZZ_EXAMPLES", "0")) or 60,
    deadline=None,
    derandomize=not os.environ.get("LEXPROBE_FUZZ_EXAMPLES"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: what a user might type for a number
option_value = st.one_of(
    st.integers(min_value=1, max_value=6).map(str),  # mostly valid, so the commands also run to the end
    st.integers(min_value=-5, max_value=50).map(str),
    st.integers().map(str),
    st.sampled_from(["0", "-1", "2147483648", "4294967296", "18446744073709551616", "9" * 40, "-" + "9" * 40]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "1.5", "1e3", "nan", "inf", "-inf", "0x10", "1_000", " 3", "three", "--", "-"]),
    st.text(max_size=8),
)


@pytest.fixture(scope="module")
def small_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,300-term table with a popularity column: enough for the default 20 bins x 30, quick to load."""
    path = tmp_path_factory.mktemp("fuzz-cli") / "terms.csv"
    rows = [f"T:{i},term number {i},S{i},{i % 17}" for i in range(1300)]
    path.write_text("id,name,symbol,pop_mentions\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 terms: ``data show`` prints at most these, whatever --limit says (a rich table of 1,300 is slow)."""
    path = tmp_path_factory.mktemp("fuzz-cli") / "tiny.csv"
    rows = [f"T:{i},term number {i},{i % 5}" for i in range(40)]
    path.write_text("id,name,pop_mentions\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture()
def fuzz_cache(monkeypatch: pytest.MonkeyPatch):
    with tempfile.TemporaryDirectory(prefix="lexprobe-cli-fuzz-") as tmp:
        monkeypatch.setenv("LEXPROBE_CACHE", os.path.join(tmp, "cache"))
        yield Path(tmp)


def check_outcome(result) -> None:
    """Exit 0, 1 (one error line) or 2 (usage), and no traceback."""
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output[-2000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output[-2000:]
    if result.exit_code == 1:
        one_error_line(result.output)


@CLI_FUZZ
@example(options={"--seed": "-1"}, task="name-to-symbol")  # numpy refused it with a traceback
@given(
    options=st.fixed_dictionaries(
        {},
        optional={"--bins": option_value, "--per-bin": option_value, "--seed": option_value},
    ),
    task=st.sampled_from(["name-to-symbol", "name-to-id", "symbol-to-name"]),
)
def test_split_options_never_crash(small_table: Path, fuzz_cache: Path, options: dict[str, str], task: str) -> None:
    out = Path(tempfile.mkdtemp(dir=fuzz_cache)) / "split"
    args = ["split", "--ontology", str(small_table), "--task", task, "--out", str(out)]
    for name, value in options.items():
        args += [f"{name}={value}"]  # --seed=-1: a negative number is a value, not an option
    check_outcome(runner.invoke(app, args))


@CLI_FUZZ
@given(limit=option_value, popular=st.booleans())
def test_data_show_limit_never_crashes(tiny_table: Path, fuzz_cache: Path, limit: str, popular: bool) -> None:
    args = ["data", "show", str(tiny_table), f"--limit={limit}"] + (["--popular"] if popular else [])
    check_outcome(runner.invoke(app, args))
