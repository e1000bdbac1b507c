"""The library's progress protocol: ``progress(stage, done, total)``.

Every long-running function takes ``progress: ProgressCallback | None`` and calls it as ``done`` of ``total``
units of a named stage finish: once at the start (``done`` may count resumed work), then often enough to move
(per batch, per layer, per step, never per item in a hot loop), and with ``done == total`` at the end. The
library only calls it; how progress is shown (bars on a terminal, log lines otherwise) is the CLI's business
(``lexprobe.cli._progress``).
"""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(stage, done, total)``.
ProgressCallback = Callable[[str, int, int], None]


def relabel(progress: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """``progress`` reporting under ``stage``, whatever stage name the callee gives (None stays None)."""
    if progress is None:
        return None
    return lambda _, done, total: progress(stage, done, total)


def prefixed(progress: ProgressCallback | None, prefix: str) -> ProgressCallback | None:
    """``progress`` reporting ``"<prefix>: <stage>"`` (a part of a larger run; None stays None)."""
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{prefix}: {stage}", done, total)
