"""``lexprobe exposure``: how familiar the base model already is with each pair, and whether that predicts
what it answers and what training teaches it (within tasks, beside the ontology's popularity)."""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import MAX_RESAMPLES, console, print_table
from lexprobe.cli._options import ModelOptions, command, hold_run_dir, wait_option


@command(model="runtime", batch_size=16, dtype=None)
def exposure_cmd(
    runs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR", help="Training runs (their split and base model are scored)."
    ),
    shots: int = typer.Option(5, "--shots", min=0, help="Worked train pairs before each query (the K-shot prompt)."),
    candidates: int = typer.Option(20, "--candidates", min=2, help="Targets each item's own is ranked among."),
    min_k: float = typer.Option(0.2, "--min-k", min=0.01, max=1.0, help="Share of lowest token scores (Min-K%)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for the validation tables (default: score only, no validation)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, max=MAX_RESAMPLES, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the shots, candidates, bootstraps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different result already in --out."),
    wait: bool = wait_option(),
    model_options: ModelOptions = None,  # type: ignore[assignment]
) -> None:
    """Score each run's pairs with its base model (RUN/exposure-K/exposure.csv, reused when unchanged); with
    --out, validate the scores within tasks against the runs' outcomes."""
    from rich.table import Table

    from lexprobe.exposure import ExposureConfig, measure_exposure, validate_exposure, write_validation
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir

    config = ExposureConfig(
        shots=shots, seed=seed, n_candidates=candidates, min_k=min_k, batch_size=int(model_options.batch_size)
    )
    if out is not None:
        ensure_writable_dir(out)
        hold_run_dir(out, wait=wait)
    for run in runs:
        hold_run_dir(run, wait=wait, option="RUN")
        frame = measure_exposure(run, config=config, device=model_options.device, dtype=model_options.dtype)
        console.print(
            f"{run}: {len(frame)} pairs, median target log-probability {frame['target_logprob'].median():+.2f}, "
            f"target ranked first among {int(frame['n_candidates'].max())} in "
            f"{(frame['target_rank'] == 1).mean():.0%}",
            markup=False,
        )
    if out is None:
        return
    listed = [str(r) for r in runs]
    prepare_run_dir(out, "exposure-validation", {"config.shots": shots, "inputs.runs": listed}, overwrite=overwrite)
    result = validate_exposure(runs, shots=shots, n_boot=bootstrap, seed=seed)
    write_validation(result, out, runs=listed)
    table = Table(title="exposure scores within tasks: AUC of each outcome (95% bootstrap over field pairs)")
    for column in ("model", "outcome", "score", "kind", "within-task AUC", "units ranked"):
        table.add_column(column, justify="left" if column in ("model", "outcome", "score", "kind") else "right")
    for r in result.table.itertuples(index=False):
        auc = f"{r.within_auc:.2f}" if r.within_auc == r.within_auc else "-"
        if r.ci_low == r.ci_low:
            auc += f" [{r.ci_low:.2f},{r.ci_high:.2f}]"
        table.add_row(r.model, r.outcome, r.score, r.kind, auc, f"{r.n_units_ranked}/{r.n_units}")
    print_table(table)
    console.print(f"table: {out / 'exposure_validation.csv'}; items: {out / 'exposure_items.csv'}", markup=False)
