"""`evaluate --checkpoints all` on hand-made snapshot folders: damaged ones are left out with a warning (as a
damaged checkpoint is), records that are not a finite count are refused, and two snapshots of one count never
replace each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lexprobe.exceptions import LexprobeWarning, TrainingError
from lexprobe.train._curve import _choose, snapshot_points


def make_snapshot(run: Path, name: str, exposures, *, step: int = 1) -> Path:
    """A snapshot folder as `train --snapshots` saves it: the adapter (config and weights) and its record."""
    from safetensors.numpy import save_file

    folder = run / "snapshots" / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
    save_file({"lora_B": np.ones((4, 8), dtype=np.float32)}, str(folder / "adapter_model.safetensors"))
    (folder / "snapshot.json").write_text(json.dumps({"exposures": exposures, "step": step}))
    return folder


def finish(run: Path, exposures: float) -> Path:
    """The finished adapter and its training manifest."""
    adapter = make_snapshot(run, "final", exposures)
    (adapter / "snapshot.json").unlink()
    adapter.rename(run / "adapter")
    (run / "manifest.json").write_text(json.dumps({"stage": "train", "outputs": {"exposures": exposures}}))
    return run / "adapter"


def test_good_snapshots_and_the_finished_adapter_are_listed_by_exposures(tmp_path: Path) -> None:
    make_snapshot(tmp_path, "exposures-20", 20, step=8)
    make_snapshot(tmp_path, "exposures-10", 10, step=4)
    (tmp_path / "snapshots" / ".exposures-30.tmp1234").mkdir()  # a save under way: passed over, no warning
    finish(tmp_path, 30.0)
    points = snapshot_points(tmp_path)
    assert [(p.exposures, p.label, p.step) for p in points] == [
        (10.0, "snapshots/exposures-10", 4),
        (20.0, "snapshots/exposures-20", 8),
        (30.0, "adapter", None),
    ]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ("NaN", "records nan exposures, not a finite count above 0"),
        ("Infinity", "records inf exposures"),
        ("-Infinity", "records -inf exposures"),
        ("-5", "records -5.0 exposures"),
        ('"ten"', "unreadable or records no exposures"),
        ("null", "unreadable or records no exposures"),
    ],
)
def test_a_snapshot_whose_exposures_are_not_a_finite_count_is_left_out_with_a_warning(
    tmp_path: Path, record: str, problem: str
) -> None:
    make_snapshot(tmp_path, "exposures-10", 10)
    bad = make_snapshot(tmp_path, "exposures-20", 20)
    (bad / "snapshot.json").write_text('{"exposures": ' + record + ', "step": 3}')
    with pytest.warns(
        LexprobeWarning, match=rf"adapter {bad} is left out of the learning curve \(snapshot.json .*{problem}"
    ):
        points = snapshot_points(tmp_path)
    assert [p.exposures for p in points] == [10.0]


def test_two_snapshots_of_one_count_are_refused_not_merged(tmp_path: Path) -> None:
    first = make_snapshot(tmp_path, "exposures-10", 10)
    copy = make_snapshot(tmp_path, "exposures-10-copy", 10.0)
    with pytest.raises(TrainingError, match=f"{first} and {copy} both record 10 exposures; remove the one"):
        snapshot_points(tmp_path)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("no-record", "snapshot.json is missing"),
        ("bad-record", "snapshot.json is unreadable"),
        ("no-weights", "the adapter weights are missing"),
        ("truncated-weights", "adapter_model.safetensors has"),
        ("no-config", "adapter_config.json is missing"),
        ("bad-config", "adapter_config.json is unreadable"),
    ],
)
def test_a_damaged_snapshot_folder_is_left_out_with_a_warning(tmp_path: Path, damage: str, problem: str) -> None:
    make_snapshot(tmp_path, "exposures-10", 10)
    bad = make_snapshot(tmp_path, "exposures-20", 20)
    if damage == "no-record":
        (bad / "snapshot.json").unlink()
    elif damage == "bad-record":
        (bad / "snapshot.json").write_text('{"exposures": 2')
    elif damage == "no-weights":
        (bad / "adapter_model.safetensors").unlink()
    elif damage == "truncated-weights":
        weights = bad / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-20])
    elif damage == "no-config":
        (bad / "adapter_config.json").unlink()
    else:
        (bad / "adapter_config.json").write_text("{")
    with pytest.warns(LexprobeWarning, match=f"{bad} is left out of the learning curve \\({problem}"):
        points = snapshot_points(tmp_path)
    assert [p.label for p in points] == ["snapshots/exposures-10"]


def test_a_damaged_finished_adapter_is_left_out_and_nothing_left_is_one_clear_error(tmp_path: Path) -> None:
    adapter = finish(tmp_path, 30.0)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00")
    with pytest.warns(LexprobeWarning, match=f"{adapter} is left out"):
        points = snapshot_points(tmp_path)
    assert points == []
    with pytest.raises(TrainingError, match="has no adapter snapshots and no finished adapter"):
        _choose(points, "all", tmp_path)


@pytest.mark.parametrize("asked", [float("nan"), float("inf"), 0.0, -10.0])
def test_asking_for_a_count_that_is_not_finite_and_positive_is_refused(tmp_path: Path, asked: float) -> None:
    points = [*snapshot_points(make_snapshot(tmp_path, "exposures-10", 10).parents[1])]
    with pytest.raises(TrainingError, match="--checkpoints takes exposure counts above 0"):
        _choose(points, [asked], tmp_path)
