"""Measured speeds: the store in ``$LEXPROBE_CACHE/rates.json`` that estimates read their times from.

Every real extraction records the tokens per second it ran at (timed from the end of its first batch, which
carries the warm-up) for its (stage, model, device type, precision); :mod:`lexprobe.costs` takes the median
of the newest few. The store sits low in the layers so that a stage records its speed without importing the
estimates (:mod:`lexprobe.embed` is below :mod:`lexprobe.costs`, which reads a study's plan).
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

from lexprobe.runs import atomic_write_json, read_json_object
from lexprobe.runs import cache_dir as user_cache_dir

__all__ = [
    "RATES_FILE",
    "KEEP_RATES",
    "MIN_RATE_WORK",
    "MAX_RECORDS",
    "record_rate",
    "measured_rates",
    "matching_rates",
]

logger = logging.getLogger(__name__)

#: The file in ``$LEXPROBE_CACHE`` that keeps measured speeds.
RATES_FILE = "rates.json"
#: Measurements kept per (stage, model, device type, precision) and size class: the newest ones.
KEEP_RATES = 5
#: Work below which a measurement is "small" and gives no time: warm-up and scheduling weigh on it (on two
#: shared CPU cores 66-token extractions timed from their start measured 4 to 7 tokens/s). Extraction is timed
#: from the end of its first batch, so a run of one batch records nothing.
MIN_RATE_WORK = 2000
#: Measurements kept in all (the file does not grow with every model a test suite makes).
MAX_RECORDS = 200


def _model_id(model: Any) -> str:
    return str(getattr(model, "checksum", "") or getattr(model, "name", "") or model)


def _rate_key(stage: str, model_id: str, device: Any, dtype: Any) -> dict[str, str]:
    device_type = getattr(device, "type", None) or str(device).split(":")[0]
    return {"stage": stage, "model": model_id, "device": device_type, "dtype": str(dtype).replace("torch.", "")}


def record_rate(stage: str, model: Any, work: float, seconds: float, *, unit: str = "tokens") -> None:
    """Record that ``stage`` did ``work`` units in ``seconds`` with ``model`` (a loaded model: its checksum,
    device and precision identify the measurement) in ``$LEXPROBE_CACHE/rates.json``.

    The newest :data:`KEEP_RATES` measurements per (stage, model, device type, precision) are kept. The file is
    rewritten atomically under a file lock; a cache that cannot be written only loses the measurement.
    """
    from filelock import FileLock

    if not (work > 0 and seconds > 0):
        return
    key = _rate_key(stage, _model_id(model), getattr(model, "device", "cpu"), getattr(model, "dtype", "float32"))
    record = key | {
        "name": str(getattr(model, "name", "")),
        "work": float(work),
        "seconds": round(float(seconds), 4),
        "rate": float(work) / float(seconds),
        "unit": unit,
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        path = user_cache_dir() / RATES_FILE
        with FileLock(str(path) + ".lock"):
            large = work >= MIN_RATE_WORK

            def same(r: dict[str, Any]) -> bool:
                return all(r.get(k) == v for k, v in key.items()) and (r.get("work", 0) >= MIN_RATE_WORK) == large

            records = _read_rates(path)
            kept = [r for r in records if not same(r)] + ([r for r in records if same(r)] + [record])[-KEEP_RATES:]
            atomic_write_json(path, {"version": 1, "records": kept[-MAX_RECORDS:]})
    except OSError as exc:
        logger.warning("could not record the measured rate in the cache (%s)", exc)


def _read_rates(path: Path) -> list[dict[str, Any]]:
    data = read_json_object(path) or {}
    records = data.get("records")
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def matching_rates(stage: str, model: Any, device: Any, dtype: Any) -> tuple[list[float], bool]:
    """The recorded rates for this model (checksum or name), device type and precision, those of runs of at
    least :data:`MIN_RATE_WORK` units when there are any; and whether only small runs were found."""
    key = _rate_key(stage, _model_id(model), device, dtype)
    found = [
        r
        for r in _read_rates(user_cache_dir() / RATES_FILE)
        if all(r.get(k) == v for k, v in key.items()) and isinstance(r.get("rate"), (int, float)) and r["rate"] > 0
    ]
    large = [r for r in found if r.get("work", 0) >= MIN_RATE_WORK]
    return [float(r["rate"]) for r in (large or found)], bool(found) and not large


def measured_rates(stage: str, model: Any, device: Any, dtype: Any) -> list[float]:
    """The rates recorded for ``stage`` with this model (checksum or name), device type and precision: those of
    runs of at least :data:`MIN_RATE_WORK` units when there are any, else all of them."""
    return matching_rates(stage, model, device, dtype)[0]
