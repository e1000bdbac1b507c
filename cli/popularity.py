"""``lexprobe popularity``: does popularity predict baseline accuracy (the paper's finding), within tasks?"""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import MAX_RESAMPLES, console, print_table
from lexprobe.cli._options import command, hold_run_dir, wait_option


@command()
def popularity_cmd(
    runs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR", help="Runs evaluated with `lexprobe evaluate --baseline --shots K`."
    ),
    shots: int = typer.Option(5, "--shots", min=0, help="Which baseline: K-shot (0: the zero-shot evaluation)."),
    out: Path = typer.Option(Path("runs/popularity"), "--out", "-o", help="Output folder."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, max=MAX_RESAMPLES, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the bootstraps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    wait: bool = wait_option(),
) -> None:
    """Spearman of log popularity against baseline correctness, per task and within tasks (cluster bootstrap)."""
    from rich.table import Table

    from lexprobe.predict import popularity_baselines, write_popularity
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir

    ensure_writable_dir(out)
    hold_run_dir(out, wait=wait)
    listed = [str(r) for r in runs]
    prepare_run_dir(out, "popularity", {"config.shots": shots, "inputs.runs": listed}, overwrite=overwrite)
    result = popularity_baselines(runs, shots=shots, n_boot=bootstrap, seed=seed)
    write_popularity(result, out, runs=listed)
    which = f"{shots}-shot" if shots else "zero-shot"
    table = Table(title=f"popularity vs {which} baseline correctness (Spearman; 95% bootstrap interval)")
    for column in ("model", "task", "n", "accuracy", "less / more popular half", "rho"):
        table.add_column(column, justify="left" if column in ("model", "task") else "right")
    for r in result.tasks.itertuples(index=False):
        rho = f"{r.rho:+.2f} [{r.rho_ci_low:+.2f},{r.rho_ci_high:+.2f}]" if r.rho == r.rho else f"- ({r.note})"
        halves = f"{r.accuracy_less_popular:.2f} / {r.accuracy_more_popular:.2f}"
        table.add_row(r.model, r.label, str(r.n), f"{r.accuracy:.3f}", halves, rho)
    print_table(table)
    for r in result.summary.itertuples(index=False):
        value = f"{r.rho:+.3f}" if r.rho == r.rho else "-"
        value += f" [{r.ci_low:+.3f},{r.ci_high:+.3f}]" if r.ci_low == r.ci_low else f" ({r.note})" if r.note else ""
        console.print(
            f"{r.model}, {r.scope}: rho {value} over {r.n_tasks} tasks ({r.n_tasks_ranked} with both right and "
            f"wrong answers), {r.n_clusters} field-pair clusters"
        )
    console.print(f"per task: {out / 'popularity_tasks.csv'}; pooled: {out / 'popularity_summary.csv'}")
