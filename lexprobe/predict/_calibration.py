"""Calibration sets on disk: the shipped one and `lexprobe correlate` outputs."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lexprobe.exceptions import PredictionError
from lexprobe.predict._common import MEASURED_FEATURES, _units


def shipped_calibration_dir() -> Path:
    """The calibration set the project ships (``data/calibration``; ``lexprobe/data/calibration`` installed)."""
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
            items_file = d / "items.csv" if (d / "items.csv").is_file() else d / "items.csv.gz"
            reading = items_file
            try:
                items = pd.read_csv(items_file)
                reading = d / "tasks.csv"
                tasks = pd.read_csv(reading)
            except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
                raise PredictionError(f"{d} has a malformed calibration table: {exc}") from None
            except (EOFError, OSError, zlib.error) as exc:  # a gzip cut short, a damaged stream, an unreadable file
                raise PredictionError(
                    f"calibration table {reading} is truncated or unreadable ({' '.join(str(exc).split())[:160]}); "
                    "copy it again or re-run `lexprobe correlate`"
                ) from None
            need = {"label", "model", "split", "gained", "lost", *MEASURED_FEATURES}
            if not need <= set(items.columns) or not {"label", "model", "memorized", "generalized"} <= set(
                tasks.columns
            ):
                raise PredictionError(f"{d}: items.csv / tasks.csv lack the columns `lexprobe correlate` writes")
            item_units = _units(items)
            for unit, (_, row) in zip(_units(tasks), tasks.iterrows()):
                by_unit[unit] = (items[item_units == unit], row)
            manifest_file = d / "manifest.json"
            manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else {}
            manifests.append({"path": str(d)} | manifest)
    items = pd.concat([part for part, _ in by_unit.values()], ignore_index=True)
    tasks = pd.DataFrame([row for _, row in by_unit.values()]).reset_index(drop=True)
    return items, tasks, manifests
