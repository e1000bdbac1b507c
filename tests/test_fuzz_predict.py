"""Property-based fuzz of what `lexprobe correlate --items/--tasks` and `predict --calibration` read.

Mutations of a small real table (four units of the shipped calibration, 12 items per split): columns dropped,
cells set to NaN, infinities, 1e308, text or nothing, rows given twice, the manifest cut short or of another
JSON type. Each ends in a result or one :class:`~lexprobe.exceptions.LexprobeError`, never another exception.
(The ontology loaders have their own fuzz: ``tests/ontology/test_fuzz_loaders.py``.)

Sized for CI: a fixed example sequence (derandomize, no example database), well under a minute on 2 cores.
``LEXPROBE_FUZZ_EXAMPLES=<n>`` runs a longer random search instead.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lexprobe.exceptions import LexprobeError
from lexprobe.predict import evaluate_items, load_calibration, read_correlate_tables, shipped_calibration_dir

ROOT = Path(__file__).resolve().parents[1]
_EXPLORE = int(os.environ.get("LEXPROBE_FUZZ_EXAMPLES", "0"))


def fuzz(n: int) -> settings:
    return settings(
        max_examples=_EXPLORE or n,
        deadline=None,
        derandomize=not _EXPLORE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def _base() -> tuple[pd.DataFrame, pd.DataFrame]:
    items, tasks, _ = load_calibration([shipped_calibration_dir()])
    tasks = tasks.groupby("group").head(1).head(4).reset_index(drop=True)  # four field pairs, one unit each
    units = lambda f: f["label"] + " | " + f["model"]  # noqa: E731
    items = items[units(items).isin(set(units(tasks)))].groupby(["label", "model", "split"]).head(12)
    return items.reset_index(drop=True), tasks


ITEMS, TASKS = _base()
BAD = [math.nan, math.inf, -math.inf, 1e308, -1e308, "text", "", "True", 0.5, -3]


@st.composite
def mutated(draw, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with some of: columns dropped, cells replaced by bad values, rows repeated."""
    frame = frame.copy()
    columns = list(frame.columns)
    dropped = draw(st.lists(st.sampled_from(columns), max_size=2, unique=True))
    cells = draw(
        st.lists(st.tuples(st.integers(0, len(frame) - 1), st.sampled_from(columns), st.sampled_from(BAD)), max_size=2)
    )
    for row, column, value in cells:
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    repeated = draw(st.lists(st.integers(0, len(frame) - 1), max_size=2))
    frame = pd.concat([frame, frame.iloc[repeated]], ignore_index=True)
    return frame.drop(columns=dropped)


def _result_or_own_error(call) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a warning is a result too; only an exception that is not ours fails
        try:
            call()
        except LexprobeError as exc:
            text = str(exc)
            assert text and "\n" not in text.strip(), text
            return text
    return ""


@fuzz(20)
@given(items=mutated(ITEMS), tasks=st.none() | mutated(TASKS))
def test_correlate_tables_give_a_result_or_one_clear_error(items: pd.DataFrame, tasks: pd.DataFrame | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "items.csv.gz"]
        items.to_csv(paths[0], index=False)
        named = []
        if tasks is not None:
            named = [Path(tmp) / "tasks.csv"]
            tasks.to_csv(named[0], index=False)

        def run() -> None:
            table, given = read_correlate_tables(paths, named)
            evaluate_items(table, given, n_boot=10, seed=0)

        _result_or_own_error(run)


MANIFESTS = st.one_of(
    st.binary(max_size=40),
    st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["config", "features", "inputs", "outputs", "stage"]), inner, max_size=3)
        ),
        max_leaves=6,
    ).map(lambda value: json.dumps(value).encode()),
)


@fuzz(30)
@given(items=mutated(ITEMS), tasks=mutated(TASKS), manifest=st.none() | MANIFESTS)
def test_calibration_folders_load_or_give_one_clear_error(
    items: pd.DataFrame, tasks: pd.DataFrame, manifest: bytes | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        items.to_csv(folder / "items.csv", index=False)
        tasks.to_csv(folder / "tasks.csv", index=False)
        if manifest is not None:
            (folder / "manifest.json").write_bytes(manifest)
        _result_or_own_error(lambda: load_calibration([folder]))


@pytest.mark.parametrize(
    "damage",
    ["items twice", "nan alignment", "text gain", "no label in tasks", "inf in tasks", "no rows"],
)
def test_correlate_on_a_damaged_table_is_one_line_through_the_cli(tmp_path: Path, damage: str) -> None:
    from lexprobe.cli.main import app

    sys.path.insert(0, str(ROOT / "tests" / "cli"))
    from _cli import one_error_line

    items, tasks = ITEMS.copy(), TASKS.copy()
    if damage == "nan alignment":
        items.loc[5, "alignment"] = math.nan
    elif damage == "text gain":
        items["gain"] = items["gain"].astype(object)
        items.loc[3, "gain"] = "one"
    elif damage == "no label in tasks":
        tasks = tasks.drop(columns="label")
    elif damage == "inf in tasks":
        tasks.loc[1, "generalization_gain"] = math.inf
    elif damage == "no rows":
        items = items.head(0)
    items.to_csv(tmp_path / "items.csv", index=False)
    tasks.to_csv(tmp_path / "tasks.csv", index=False)
    args = ["correlate", "--items", str(tmp_path / "items.csv"), "--tasks", str(tmp_path / "tasks.csv")]
    if damage == "items twice":
        args[3:3] = ["--items", str(tmp_path / "items.csv")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out"), "--no-figures"])
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert str(tmp_path) in line
