"""The items and tasks tables declared once (`lexprobe.predict.ITEMS`, `TASKS`) and checked where they enter:
`correlate --items/--tasks`, calibration folders, the frames given to the library."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_predict import synthetic
from typer.testing import CliRunner

from lexprobe.exceptions import PredictionError
from lexprobe.predict import (
    ITEMS,
    MEASURED_FEATURES,
    TASKS,
    evaluate_items,
    load_calibration,
    read_calibration_manifest,
    read_correlate_tables,
    read_items_table,
    read_tasks_table,
    shipped_calibration_dir,
    validate_table,
)

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p for p in (ROOT / "docs" / "results").glob("*/correlate") if (p / "tasks.csv").is_file())


def _one_line(output: str) -> str:
    sys.path.insert(0, str(ROOT / "tests" / "cli"))
    from _cli import one_error_line

    return one_error_line(output)


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    items, tasks = synthetic(n_tasks=4, n=20)
    items = items.assign(id=[f"X:{i}" for i in range(len(items))])
    items.to_csv(tmp_path / "items.csv", index=False)
    tasks.to_csv(tmp_path / "tasks.csv", index=False)
    return tmp_path / "items.csv", tmp_path / "tasks.csv"


def test_the_schema_declares_every_measured_feature_and_the_keys_the_code_joins_on() -> None:
    assert set(MEASURED_FEATURES) <= set(ITEMS.required)
    assert {"label", "split", "target", "gain", "gained"} <= set(ITEMS.required)
    assert TASKS.required == ("label",) and TASKS.key == ("label", "model")


def test_the_splits_and_gains_are_declared_once_and_name_the_tasks_columns() -> None:
    from lexprobe.predict._common import _GAIN_NAMES, _SPLITS
    from lexprobe.predict._schema import GAIN_NAMES, INTERVAL, SPLITS, gain_column

    assert ITEMS["split"].allowed == SPLITS == _SPLITS and GAIN_NAMES is _GAIN_NAMES
    assert [gain_column(s, i) for s in SPLITS for i in INTERVAL] == [
        "memorization_gain",
        "memorization_gain_ci_low",
        "memorization_gain_ci_high",
        "generalization_gain",
        "generalization_gain_ci_low",
        "generalization_gain_ci_high",
    ]
    assert {gain_column(s, i) for s in SPLITS for i in INTERVAL} <= set(TASKS.optional)
    assert {f"tuned_{s}" for s in SPLITS} <= set(TASKS.optional)


def test_the_code_asks_the_schema_which_optional_columns_a_table_has() -> None:
    frame = pd.DataFrame({"label": ["a"], "model": ["m"], "alignment_z": [1.0]})
    assert ITEMS.has(frame, "model", "alignment_z") and not ITEMS.has(frame, "model", "bin")
    assert TASKS.has(frame, "alignment_z") and not TASKS.has(frame, "shots")
    with pytest.raises(ValueError, match="not optional columns of the items table"):
        ITEMS.has(frame, "aligment_z")  # a misspelt column is the code's mistake, and says so
    with pytest.raises(ValueError, match=r"\['gain'\] are not optional"):
        ITEMS.has(frame, "gain")  # required: always there once validated, so never asked


#: The names the predict modules give an items or a tasks table (a unit table, ``units``, is another table).
FRAME_SCHEMAS = {"items": ITEMS, "cal_items": ITEMS, "tasks": TASKS, "cal_tasks": TASKS}


def _column_reads(source: str) -> list[tuple[int, str, str, str]]:
    """``(line, how, schema, column)`` for each column named by a string literal where the code reads an items or
    tasks table: ``items["x"]`` / ``tasks[["x", "y"]]`` (how: ``read``), ``ITEMS.has(frame, "x")`` (``has``), and
    ``"x" in items`` (``in``: asked of the frame, not of the schema)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in FRAME_SCHEMAS:
            keys = node.slice.elts if isinstance(node.slice, (ast.List, ast.Tuple)) else [node.slice]
            schema = FRAME_SCHEMAS[node.value.id].what
            found += [(node.lineno, "read", schema, k.value) for k in keys if isinstance(k, ast.Constant)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "has":
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in ("ITEMS", "TASKS"):
                schema = {"ITEMS": ITEMS, "TASKS": TASKS}[owner.id].what
                found += [(node.lineno, "has", schema, a.value) for a in node.args[1:] if isinstance(a, ast.Constant)]
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            frame, left = node.comparators[0], node.left
            if isinstance(frame, ast.Name) and frame.id in FRAME_SCHEMAS and isinstance(left, ast.Constant):
                found.append((node.lineno, "in", FRAME_SCHEMAS[frame.id].what, left.value))
    return found


def _undeclared(source: str) -> list[str]:
    """Each column read that the schema does not declare (``has``: not as optional), or a presence asked ad hoc."""
    schemas = {ITEMS.what: ITEMS, TASKS.what: TASKS}
    wrong = []
    for line, how, what, column in _column_reads(source):
        declared = schemas[what].optional if how == "has" else schemas[what].names
        if how == "in" or not isinstance(column, str) or column not in declared:
            wrong.append(f"line {line}: {how} {column!r} of the {what}")
    return wrong


def test_every_column_the_predict_modules_read_from_items_or_tasks_is_declared() -> None:
    modules = sorted((ROOT / "lexprobe" / "predict").glob("*.py"))
    reads = {m.name: _column_reads(m.read_text()) for m in modules}
    assert sum(map(len, reads.values())) > 50  # the scan sees the code's reads (a scan finding none passes)
    assert {c for r in reads.values() for _, how, _, c in r if how == "has"} >= {"model", "exposures", "alignment_z"}
    wrong = {m.name: w for m in modules if (w := _undeclared(m.read_text()))}
    assert wrong == {}, "columns not declared in lexprobe/predict/_schema.py, or presence asked of the frame"


@pytest.mark.parametrize(
    "line",
    [
        'x = items["aligment_z"]',  # a misspelt column
        'x = tasks[["label", "n_train", "shot"]]',
        'ok = ITEMS.has(items, "gain")',  # required: never asked
        'ok = TASKS.has(tasks, "bin")',  # an items column asked of the tasks table
        'ok = "exposures" in tasks',  # asked of the frame, not the schema
    ],
)
def test_the_column_scan_catches_an_undeclared_or_ad_hoc_read(line) -> None:
    assert len(_undeclared(line)) == 1
    assert _undeclared('x = items["alignment"] if ITEMS.has(items, "bin") else tasks["shots"]') == []


def test_a_calibration_table_requires_the_model_and_flags_after_what_correlate_needs() -> None:
    from lexprobe.predict._schema import CALIBRATION_ITEMS, CALIBRATION_TASKS

    assert CALIBRATION_ITEMS.required == (*ITEMS.required, "model", "lost")
    assert CALIBRATION_TASKS.required == ("label", "model", "memorized", "generalized")
    assert CALIBRATION_ITEMS.columns == ITEMS.columns and "model" not in CALIBRATION_ITEMS.optional
    assert "model" in ITEMS.optional  # the items schema itself is left as it was
    with pytest.raises(ValueError, match="not columns of the tasks table"):
        TASKS.requiring("modle")
    frame = pd.DataFrame({"label": ["a"], "model": ["m"]})
    with pytest.raises(PredictionError, match=r"^t: the tasks table lacks the column\(s\) memorized, generalized \("):
        validate_table(frame, CALIBRATION_TASKS, source="t")


@pytest.mark.parametrize("folder", [shipped_calibration_dir() / "study-v2.2", *PUBLISHED], ids=lambda p: p.parent.name)
def test_the_shipped_calibration_and_the_published_correlate_outputs_are_valid(folder: Path) -> None:
    items, tasks, manifests = load_calibration([folder])
    assert len(items) and len(tasks) and manifests[0]["path"] == str(folder)
    name = "items.csv" if (folder / "items.csv").is_file() else "items.csv.gz"
    pd.testing.assert_frame_equal(read_items_table(folder / name), pd.read_csv(folder / name))  # as it was read


def test_an_items_table_given_twice_is_refused_with_its_count(tables) -> None:
    items, tasks = tables
    n = len(pd.read_csv(items))
    with pytest.raises(PredictionError, match=rf"^{n} duplicate row\(s\) in the items table.*{items} and {items}"):
        read_correlate_tables([items, items], [tasks])
    with pytest.raises(PredictionError, match=r"^4 duplicate row\(s\) in the tasks table: the same task and model"):
        read_correlate_tables([items], [tasks, tasks])
    doubled = items.with_name("doubled.csv")
    frame = pd.read_csv(items)
    pd.concat([frame, frame.head(3)]).to_csv(doubled, index=False)
    with pytest.raises(PredictionError, match=rf"^3 duplicate row\(s\).*{doubled}, row 1 \(line 2\) and row {n + 1}"):
        read_items_table(doubled)
    # without an id or a source column an item is its whole row
    frame.drop(columns="id").pipe(lambda f: pd.concat([f, f.tail(1)])).to_csv(doubled, index=False)
    with pytest.raises(PredictionError, match=r"^1 duplicate row"):
        read_items_table(doubled)
    with pytest.raises(PredictionError, match="duplicate"):  # a frame given to the library is checked too
        evaluate_items(pd.concat([frame, frame]), n_boot=10)


def test_correlate_refuses_a_doubled_items_table_in_one_line(tables, tmp_path) -> None:
    from lexprobe.cli.main import app

    items, tasks = tables
    args = ["correlate", "--items", str(items), "--items", str(items), "--tasks", str(tasks)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert f"{len(pd.read_csv(items))} duplicate row(s) in the items table" in line and str(items) in line
    assert not (tmp_path / "out" / "holdout.csv").exists()


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("alignment", np.nan, "an empty cell"),
        ("alignment", np.inf, r"inf \(an infinite value\)"),
        ("alignment", -np.inf, r"-inf \(an infinite value\)"),
        ("alignment", 1e308, r"1e\+308 \(a value outside \[0, 1\]\)"),
        ("log_popularity", 1e308, "outside"),
        ("alignment", "high", "the text 'high' in a numeric column"),
        ("gain", 0.5, "not a whole number"),
        ("gained", "yes", r"'yes' \(a flag is True/False or 1/0, not text\)"),
        ("split", "test", r"'test' \(allowed: train, withheld\)"),
        ("label", np.nan, "an empty cell"),
    ],
)
def test_a_bad_cell_in_the_items_table_names_the_file_column_and_row(tables, column, value, what) -> None:
    items, _ = tables
    frame = pd.read_csv(items).astype({column: object})
    frame.loc[6, column] = value
    frame.to_csv(items, index=False)
    with pytest.raises(PredictionError, match=rf"^{items}, row 7 \(line 8\): column {column} holds .*{what}"):
        read_items_table(items)


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("generalization_gain", "oops", "the text 'oops'"),
        ("memorization_gain_ci_low", np.inf, r"inf \(an infinite value\)"),
        ("generalization_gain", 1e308, "outside"),
        ("memorized", "maybe", "a flag is"),
    ],
)
def test_a_bad_cell_in_the_tasks_table_names_the_file_column_and_row(tables, column, value, what) -> None:
    _, tasks = tables
    frame = pd.read_csv(tasks).astype({column: object})
    frame.loc[2, column] = value
    frame.to_csv(tasks, index=False)
    with pytest.raises(PredictionError, match=rf"^{tasks}, row 3 \(line 4\): column {column} holds .*{what}"):
        read_tasks_table(tasks)


def test_an_empty_cell_in_the_tasks_table_means_computed_from_the_items(tables) -> None:
    _, tasks = tables
    frame = pd.read_csv(tasks)
    frame.loc[0, "generalization_gain_ci_low"] = np.nan
    frame.to_csv(tasks, index=False)
    assert read_tasks_table(tasks)["generalization_gain_ci_low"].isna().sum() == 1


def test_a_missing_column_names_the_file_and_the_column(tables, tmp_path) -> None:
    from lexprobe.cli.main import app

    items, tasks = tables
    pd.read_csv(tasks).drop(columns="label").to_csv(tasks, index=False)
    args = ["correlate", "--items", str(items), "--tasks", str(tasks), "--out", str(tmp_path / "o"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert str(tasks) in line and "lacks the column(s) label" in line
    pd.read_csv(items).drop(columns=["alignment", "gain"]).to_csv(items, index=False)
    with pytest.raises(PredictionError, match=rf"^{items}: the items table lacks the column\(s\) alignment, gain"):
        read_items_table(items)
    items.write_text("label,split\n")
    with pytest.raises(PredictionError, match="holds no rows"):
        read_items_table(items)


# --- calibration folders ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('{"stage": "correlate", "config": {', "is not valid JSON"),
        ("\xff\xfe not text", "is not valid JSON"),
        ("[1, 2]", "holds a JSON list, not an object"),
        ('{"config": [1]}', "`config` is a list, not a JSON object"),
        ('{"config": {"features": "k=10"}}', "`config.features` is a str, not a JSON object"),
        ('{"inputs": 3}', "`inputs` is a int"),
    ],
)
def test_a_damaged_calibration_manifest_is_one_clear_line(tables, text, what) -> None:
    items, _ = tables
    (items.parent / "manifest.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(PredictionError, match=f"^calibration manifest {items.parent / 'manifest.json'}.*{what}"):
        read_calibration_manifest(items.parent)
    with pytest.raises(PredictionError, match=what):
        load_calibration([items.parent])


def test_a_calibration_folder_needs_its_model_column(tables) -> None:
    items, _ = tables
    pd.read_csv(items).drop(columns="model").to_csv(items, index=False)
    with pytest.raises(PredictionError, match=r"lacks the column\(s\) model"):
        load_calibration([items.parent])


@pytest.mark.parametrize("damage", ["manifest", "tasks", "no-items"])
def test_predict_checks_the_calibration_before_it_loads_a_model(tables, monkeypatch, damage) -> None:
    """`predict --calibration DIR`: a damaged folder is one line, and no model was loaded for it."""
    from lexprobe.cli.main import app

    import lexprobe.models

    items, tasks = tables
    if damage == "manifest":
        (items.parent / "manifest.json").write_text(json.dumps({"config": {"features": [1]}})[:-3])
    elif damage == "tasks":
        tasks.write_text("label,model,memorized,generalized\nx,m,perhaps,False\n")
    else:
        items.unlink()
    loaded = []
    monkeypatch.setattr(lexprobe.models, "load_model", lambda *a, **k: loaded.append(a) or 1 / 0)
    args = ["predict", "--ontology", "hgnc", "--task", "name-to-symbol", "--no-shipped", "-c", str(items.parent)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and not loaded
    line = _one_line(result.output)
    assert str(items.parent) in line
