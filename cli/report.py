"""``lexprobe report``: one self-contained HTML page over run directories (figures embedded, opens offline)."""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import console, handle_errors


@handle_errors
def report_cmd(
    run_dirs: list[Path] = typer.Argument(
        ...,
        metavar="RUN_DIR",
        help="Run directories (align, lexicalization, train, correlate, predict...) or a study holding them.",
    ),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
    title: str | None = typer.Option(None, "--title", help="Page title (default: lexprobe report)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out even if it is not a lexprobe report."),
) -> None:
    """Write one HTML page with every run's tables, figures and manifest; it needs no network to open."""
    from lexprobe.report import build_report, find_run_dirs
    from lexprobe.runs import ensure_writable_file, prepare_report_file

    ensure_writable_file(out)
    prepare_report_file(out, overwrite=overwrite)
    n_runs = len(find_run_dirs(run_dirs))
    path = build_report(run_dirs, out, title=title)
    console.print(
        f"wrote {path} ({n_runs} run{'s' if n_runs != 1 else ''}, {path.stat().st_size / 1024:.0f} KiB)", soft_wrap=True
    )
