"""``lexprobe study``: every stage for a set of ontologies in one directory, resuming what is done."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from lexprobe.cli._common import console, split_csv
from lexprobe.cli._options import STAGES, ModelOptions, StudySize, WaitOption, command, csv_choices, hold_run_dir

from lexprobe.study import DEFAULT_SHOTS

Size = Annotated[
    StudySize,
    typer.Option(
        "--size",
        help="tiny (tests), small (CPU hours), small-v1 (the recorded studies' budget) or paper (GPU hours).",
    ),
]
Tasks = Annotated[
    str | None,
    typer.Option(
        "--tasks",
        help="Tasks to run, SOURCE-to-TARGET, comma-separated (default: the paper's, per ontology; see `lexprobe "
        "data show`); ONTOLOGY:TASK runs a task on that ontology only; zoo: study v2's list of each ontology; zoo-v3: "
        "calibration v3's field pairs.",
    ),
]
Stages = Annotated[
    str | None,
    typer.Option(
        "--stages",
        callback=csv_choices(STAGES, "--stages"),
        help=f"Comma-separated, from {','.join(STAGES)} (default all).",
    ),
]
Shots = Annotated[
    int,
    typer.Option(
        "--shots",
        min=0,
        help="Worked examples in each task's few-shot baseline (stage fewshot, into TASK/shots-K); 0: none.",
    ),
]
RerunMismatched = Annotated[
    bool,
    typer.Option(
        "--rerun-mismatched",
        help="Re-run the finished stages made with another model, size, seed or settings (what they wrote is "
        "removed) instead of refusing.",
    ),
]


@command(model="full")
def study_cmd(
    ontology: str = typer.Option("hgnc,hpo,go", "--ontology", help="Ontologies, comma-separated."),
    out: Path = typer.Option(..., "--out", "-o", help="Study folder (an existing one resumes)."),
    size: Size = StudySize.small,
    tasks: Tasks = None,
    stages: Stages = None,
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of every stage."),
    shots: Shots = DEFAULT_SHOTS,
    rerun_mismatched: RerunMismatched = False,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the stages to run and their estimated cost, then stop."
    ),
    wait: WaitOption = False,
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --model, --dtype...
    quiet: bool = False,
) -> None:
    """Run the paper's analysis: align, lexicalization, train, evaluate, a few-shot baseline, correlate, report."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.study import run_study

    load_options = {k: v for k, v in model_options.load_kwargs().items() if k not in ("device", "dtype")}
    if dry_run:
        _dry_run(ontology, out, size, tasks, stages, seed, shots, rerun_mismatched, model_options)
        return
    from lexprobe.runs import ensure_writable_dir

    ensure_writable_dir(out)  # before the lock creates the folder: a file in the way is one line
    hold_run_dir(out, wait=wait)
    with progress_display(quiet) as progress:
        ontologies, common = _study_arguments(ontology, size, tasks, stages, seed, model_options)
        result = run_study(
            ontologies,
            out,
            **common,
            rerun_mismatched=rerun_mismatched,
            batch_size=model_options.batch_size,
            load_options=load_options,
            progress=progress,
            shots=shots,
        )
    ran = sum(s["status"] == "done" for s in result.stages)
    resumed = sum(s["status"] == "resumed" for s in result.stages)
    console.print(f"{out}: {ran} stage(s) run, {resumed} found done; {len(result.runs)} task(s) evaluated")
    if result.correlate is not None:
        console.print(f"correlation and predictor evaluation: {result.correlate}")
    if result.report is not None:
        console.print(f"report: {result.report}")


def _study_arguments(
    ontology: str, size: StudySize, tasks: str | None, stages: str | None, seed: int, model_options: ModelOptions
) -> tuple[Any, dict[str, Any]]:
    """The ontologies and the settings that running, checking and costing a study share."""
    from lexprobe.study import STAGES as STUDY_STAGES

    ontologies = split_csv(ontology) or ()
    common = {
        "model": model_options.model,
        "size": size,
        "tasks": split_csv(tasks),
        "stages": split_csv(stages) or STUDY_STAGES,
        "seed": seed,
        "device": model_options.device,
        "dtype": model_options.dtype,
    }
    return ontologies, common


def _dry_run(
    ontology: str,
    out: Path,
    size: StudySize,
    tasks: str | None,
    stages: str | None,
    seed: int,
    shots: int,
    rerun_mismatched: bool,
    model_options: ModelOptions,
) -> None:
    """``--dry-run``: check what the run would check first, then print the stages to run and their cost."""
    from lexprobe.costs import estimate_study, finished_training_runs, total_lines
    from lexprobe.study import check_study

    ontologies, common = _study_arguments(ontology, size, tasks, stages, seed, model_options)
    check_study(  # what run_study checks first, so a dry run refuses what the run would
        ontologies,
        out,
        **common,
        rerun_mismatched=rerun_mismatched,
        shots=shots,
    )
    costs = estimate_study(
        ontologies,
        **common,
        runs=finished_training_runs(out),
        out=out,
    )
    for line in total_lines(costs):
        console.print(line, markup=False, soft_wrap=True)


@command()
def spread_cmd(
    studies: list[Path] = typer.Argument(
        ..., metavar="STUDY_DIR", help="Study folders of one model, size and precision, each run with another --seed."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for spread.csv and its manifest.json (default: print only)."
    ),
) -> None:
    """Run-to-run spread: each task evaluated in two or more seeds' studies, its gains side by side."""
    from lexprobe.cli._common import print_table
    from rich.table import Table

    from lexprobe.runs import ensure_writable_dir
    from lexprobe.study import write_seed_spread

    if out is not None:
        ensure_writable_dir(out)
    spread, path = write_seed_spread(studies, out)
    seeds = sorted({s for value in spread["seeds"] for s in value.split(",")}, key=int)
    table = Table("task", *[f"gen. gain, seed {s}" for s in seeds], "spread", "mem. spread", "verdicts agree")
    for row in spread.itertuples(index=False):
        values = [getattr(row, f"generalization_gain_seed{s}", float("nan")) for s in seeds]
        table.add_row(
            f"{row.ontology} {row.task}",
            *[f"{v:+.2f}" for v in values],
            f"{row.generalization_gain_spread:.2f}",
            f"{row.memorization_gain_spread:.2f}",
            "yes" if row.verdicts_agree else "no",
        )
    print_table(table)
    if path is not None:
        console.print(f"wrote {path}", soft_wrap=True)
