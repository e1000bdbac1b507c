"""Calibration sets on disk: the shipped one and `lexprobe correlate` outputs."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lexprobe.exceptions import PredictionError
from lexprobe.predict._common import _units
from lexprobe.predict._schema import CALIBRATION_ITEMS, CALIBRATION_TASKS, _short, read_table


def shipped_calibration_dir() -> Path:
    """The calibration set the project ships (``data/calibration``; ``lexprobe/data/calibration`` installed).

    Examples
    --------
    >>> sorted(p.name for p in shipped_calibration_dir().iterdir())  # one calibration set
    ['study-v2.2']
    """
    from importlib import resources

    return Path(str(resources.files("lexprobe.data"))) / "calibration"


def _find_correlation_dirs(path: Path) -> list[Path]:
    if (path / "tasks.csv").is_file() and ((path / "items.csv").is_file() or (path / "items.csv.gz").is_file()):
        return [path]
    found = sorted(
        {
            p.parent
            for p in path.rglob("tasks.csv")
            if (p.parent / "items.csv").is_file() or (p.parent / "items.csv.gz").is_file()
        }
    )
    return found


#: The parts of a calibration folder's ``manifest.json`` that are read, and the JSON type each must have.
_MANIFEST_PARTS = {"config": dict, "inputs": dict, "outputs": dict, "stage": str}


def read_calibration_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """A calibration folder's ``manifest.json`` (``{}`` when it has none), checked: a JSON object whose
    ``config``, ``config.features``, ``inputs`` and ``outputs`` are objects where present.

    Raises
    ------
    PredictionError
        The file is unreadable, not JSON, or of the wrong shape; the message names it and how to fix it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(read_calibration_manifest(tmp))  # a folder without one: the tables alone calibrate
    {}
    >>> read_calibration_manifest(shipped_calibration_dir() / "study-v2.2")["stage"]
    'correlate'
    """
    path = Path(folder) / "manifest.json"
    fix = "restore it from the correlate run or delete it (the tables alone calibrate)"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PredictionError(f"calibration manifest {path} is not valid JSON ({_short(exc)}); {fix}") from None
    if not isinstance(manifest, dict):
        raise PredictionError(
            f"calibration manifest {path} holds a JSON {type(manifest).__name__}, not an object; {fix}"
        )
    parts = [(key, manifest.get(key), kind) for key, kind in _MANIFEST_PARTS.items()]
    config = manifest.get("config")
    if isinstance(config, dict):
        parts.append(("config.features", config.get("features"), dict))
    for key, value, kind in parts:
        if value is not None and not isinstance(value, kind):
            raise PredictionError(
                f"calibration manifest {path}: `{key}` is a {type(value).__name__}, not a JSON "
                f"{'object' if kind is dict else 'string'}; {fix}"
            )
    return manifest


def load_calibration(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Read calibration outcomes from ``lexprobe correlate`` directories (or directories holding them).

    A task measured with the same model in several places is kept once (the last given wins); the same task
    measured with two models is two calibration units.

    Returns
    -------
    items, tasks : DataFrame
    manifests : list of dict
        Each directory's manifest (provenance), with its ``path``.

    Examples
    --------
    >>> items, tasks, manifests = load_calibration([shipped_calibration_dir()])
    >>> len(tasks) == tasks[["label", "model"]].drop_duplicates().shape[0]  # one row per calibration unit
    True
    >>> items["split"].unique().tolist()
    ['train', 'withheld']
    """
    by_unit: dict[str, tuple[pd.DataFrame, pd.Series]] = {}
    manifests = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise PredictionError(f"calibration directory not found: {path}")
        dirs = _find_correlation_dirs(path)
        if not dirs:
            raise PredictionError(f"{path} holds no `lexprobe correlate` output (tasks.csv and items.csv)")
        for d in dirs:
            manifest = read_calibration_manifest(d)
            items_file = d / "items.csv" if (d / "items.csv").is_file() else d / "items.csv.gz"
            table = "calibration table"
            items = read_table(items_file, CALIBRATION_ITEMS, what=table)
            tasks = read_table(d / "tasks.csv", CALIBRATION_TASKS, what=table)
            item_units = _units(items)
            for unit, (_, row) in zip(_units(tasks), tasks.iterrows()):
                by_unit[unit] = (items[item_units == unit], row)
            manifests.append({"path": str(d)} | manifest)
    items = pd.concat([part for part, _ in by_unit.values()], ignore_index=True)
    tasks = pd.DataFrame([row for _, row in by_unit.values()]).reset_index(drop=True)
    return items, tasks, manifests
