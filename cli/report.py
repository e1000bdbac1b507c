"""``lexprobe report``: one self-contained HTML page over run directories (figures embedded, opens offline)."""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import console
from lexprobe.cli._options import command, hold_run_dir, wait_option

#: The page's file name inside ``--out``.
REPORT_FILE = "report.html"


@command()
def report_cmd(
    run_dirs: list[Path] = typer.Argument(
        ...,
        metavar="RUN_DIR",
        help="Run folders (align, lexicalization, train, correlate, predict...) or a study holding them.",
    ),
    out: Path = typer.Option(
        Path("runs/report"), "--out", "-o", help=f"Output folder; the page is {REPORT_FILE} inside it."
    ),
    title: str | None = typer.Option(None, "--title", help="Page title (default: lexprobe report)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help=f"Replace {REPORT_FILE} in --out even if lexprobe did not write it."
    ),
    wait: bool = wait_option(),
) -> None:
    """Write one HTML page with every run's tables, figures and manifest; it needs no network to open."""
    from lexprobe.report import build_report, find_run_dirs
    from lexprobe.runs import ensure_writable_dir, ensure_writable_file, prepare_report_file

    ensure_writable_dir(out)
    page = out / REPORT_FILE
    ensure_writable_file(page)
    prepare_report_file(page, overwrite=overwrite)
    hold_run_dir(out, wait=wait)
    n_runs = len(find_run_dirs(run_dirs))
    out.mkdir(parents=True, exist_ok=True)
    path = build_report(run_dirs, page, title=title)
    console.print(
        f"wrote {path} ({n_runs} run{'s' if n_runs != 1 else ''}, {path.stat().st_size / 1024:.0f} KiB)", soft_wrap=True
    )
