"""``lexprobe study``: every stage for a set of ontologies in one directory, resuming what is done."""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import console, dtype_option, handle_errors, split_csv


@handle_errors
def study_cmd(
    ontology: str = typer.Option("hgnc,hpo,go", "--ontology", "-o", help="Comma-separated ontologies."),
    out: Path = typer.Option(..., "--out", help="Study directory (an existing one resumes)."),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Named model, HF id, local dir or .gguf."),
    dtype: str = dtype_option(),
    size: str = typer.Option(
        "small",
        "--size",
        help="tiny (tests), small (CPU hours), small-v1 (the recorded studies' budget) or paper (GPU hours).",
    ),
    tasks: str | None = typer.Option(None, "--tasks", help="Tasks to run (default: the paper's, per ontology)."),
    stages: str | None = typer.Option(
        None, "--stages", help="Subset of align,lexicalization,train,evaluate,correlate,report (default all)."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: auto)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of every stage."),
    rerun_mismatched: bool = typer.Option(
        False,
        "--rerun-mismatched",
        help="Re-run the finished stages made with another model, size, seed or settings (what they wrote is "
        "removed) instead of refusing.",
    ),
) -> None:
    """Run the paper's analysis: align, lexicalization, train, evaluate, correlate and report."""
    from lexprobe.runs import ensure_writable_dir
    from lexprobe.study import STAGES, run_study

    ensure_writable_dir(out)
    result = run_study(
        split_csv(ontology) or (),
        out,
        model=model,
        size=size,
        tasks=split_csv(tasks),
        stages=split_csv(stages) or STAGES,
        device=device,
        dtype=dtype,
        seed=seed,
        log=lambda line: console.print(line),
        rerun_mismatched=rerun_mismatched,
    )
    ran = sum(s["status"] == "done" for s in result.stages)
    resumed = sum(s["status"] == "resumed" for s in result.stages)
    console.print(f"{out}: {ran} stage(s) run, {resumed} found done; {len(result.runs)} task(s) evaluated")
    if result.correlate is not None:
        console.print(f"correlation and predictor evaluation: {result.correlate}")
    if result.report is not None:
        console.print(f"report: {result.report}")
