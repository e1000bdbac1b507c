"""``lexprobe train`` and ``lexprobe evaluate``: LoRA fine-tuning and exact-match memorization vs generalization."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from lexprobe.cli._common import console, print_table, split_csv
from lexprobe.cli._options import (
    EvalSplit,
    ModelOptions,
    OntologyOption,
    Scheduler,
    TaskOption,
    WaitOption,
    command,
    hold_run_dir,
)


def _ci(low: float, high: float) -> str:
    return f"[{low:.2f},{high:.2f}]"


def _acc(row) -> str:
    return f"{row['accuracy']:.3f} {_ci(row['ci_low'], row['ci_high'])}"


def _max_steps(value: int) -> int:
    if value != -1 and value < 1:
        raise typer.BadParameter(f"must be >= 1 (or -1, the default: train for --epochs), got {value}")
    return value


FromSplit = Annotated[
    Path | None,
    typer.Option("--from-split", help="Train on this `lexprobe split` folder's pairs instead of drawing a new split."),
]
Exposures = Annotated[
    float | None,
    typer.Option(
        "--exposures", help="Times each pair is shown (templates x epochs); sets --epochs to N / --templates."
    ),
]
MaxSteps = Annotated[
    int,
    typer.Option("--max-steps", callback=_max_steps, help="Stop after N >= 1 optimiser steps (overrides --epochs)."),
]
TargetModules = Annotated[str, typer.Option("--target-modules", help="all-linear, or module names like q_proj,v_proj.")]
LRScheduler = Annotated[
    Scheduler,
    typer.Option("--lr-scheduler", help="linear decays to 0; the others as transformers names them."),
]
Snapshots = Annotated[
    str | None,
    typer.Option(
        "--snapshots", help="Exposure counts at which to save the adapter for a learning curve, e.g. 10,20,30."
    ),
]
GradientCheckpointing = Annotated[
    bool,
    typer.Option("--gradient-checkpointing", help="Recompute activations in the backward pass: less memory, slower."),
]
TrainSeed = Annotated[
    int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the split, LoRA initialisation and data order.")
]


@command(model="full", batch_size=8)
def train_cmd(
    ontology: OntologyOption,
    task: TaskOption,
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (an existing one resumes or is left as it is)."),
    from_split: FromSplit = None,
    bins: int = typer.Option(20, "--bins", min=1, help="Popularity bins of a new split."),
    per_bin: int = typer.Option(30, "--per-bin", min=1, help="Pairs per bin in each of train and withheld."),
    templates: int = typer.Option(5, "--templates", min=1, max=5, help="Prompt paraphrases per pair."),
    epochs: float | None = typer.Option(None, "--epochs", help="Passes over the examples [default: 3]."),
    exposures: Exposures = None,
    max_steps: MaxSteps = -1,
    lora_r: int = typer.Option(16, "--lora-r", min=1, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, "--lora-alpha", help="LoRA alpha (scale alpha / r)."),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", help="Dropout on the LoRA input."),
    target_modules: TargetModules = "all-linear",
    lr: float = typer.Option(2e-4, "--lr", help="Learning rate (AdamW)."),
    lr_scheduler: LRScheduler = Scheduler.linear,
    warmup: float = typer.Option(0.0, "--warmup", min=0.0, max=0.99, help="Share of the steps that warm up from 0."),
    snapshots: Snapshots = None,
    save_steps: int = typer.Option(50, "--save-steps", min=1, help="Checkpoint every N steps (for resuming)."),
    gradient_checkpointing: GradientCheckpointing = False,
    seed: TrainSeed = 0,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out; train from scratch."),
    wait: WaitOption = False,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the pairs, steps and estimated time, then stop."),
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --model, --dtype...
    quiet: bool = False,
) -> None:
    """Fine-tune a model with LoRA on the train pairs of a task; save the adapter, loss log and config."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.runs import check_run_dir
    from lexprobe.train import TrainConfig, progress_callback, train_lora

    epochs = _epochs(epochs, exposures, templates)
    modules = target_modules if target_modules == "all-linear" else split_csv(target_modules)
    points = _snapshot_points(snapshots)
    config = TrainConfig(
        ontology=ontology,
        task=task,
        **_model_fields(model_options),
        gradient_checkpointing=gradient_checkpointing,
        bins=bins,
        per_bin=per_bin,
        templates=templates,
        epochs=epochs,
        max_steps=max_steps,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=modules,
        lr=lr,
        lr_scheduler=lr_scheduler,
        warmup_ratio=warmup,
        save_steps=save_steps,
        snapshots=points,
        seed=seed,
    )
    _refuse_device_map(model_options)
    # train itself resumes a run of the same settings; a dry run refuses what the run would
    check_run_dir(out, "train", None, overwrite=overwrite, dry_run=dry_run)
    if dry_run:
        _print_cost(out, ontology, config)
        return
    hold_run_dir(out, wait=wait)
    with progress_display(quiet) as progress:
        callbacks = [progress_callback(progress)] if progress else []
        result = train_lora(out, config, split_dir=from_split, progress=False, callbacks=callbacks)
    _print_trained(result, out, ontology, task, templates)


def _epochs(epochs: float | None, exposures: float | None, templates: int) -> float:
    """The passes over the examples: --epochs, or --exposures / --templates (not both), or 3."""
    from lexprobe.exceptions import TrainingError

    if exposures is not None and epochs is not None:
        raise TrainingError("give --epochs or --exposures, not both (exposures = templates x epochs)")
    if exposures is not None and exposures <= 0:
        raise TrainingError(f"--exposures must be > 0, got {exposures}")
    return exposures / templates if exposures is not None else (3.0 if epochs is None else epochs)


def _snapshot_points(snapshots: str | None) -> tuple[float, ...]:
    """--snapshots as exposure counts."""
    from lexprobe.exceptions import TrainingError

    try:
        return tuple(float(x) for x in split_csv(snapshots) or ())
    except ValueError:
        raise TrainingError(f"--snapshots must be exposure counts separated by commas, got {snapshots!r}") from None


def _model_fields(model_options: ModelOptions) -> dict[str, Any]:
    """The fields of ``TrainConfig`` that the model options set."""
    return {
        "model": model_options.model,
        "revision": model_options.revision,
        "trust_remote_code": model_options.trust_remote_code,
        "load_in_4bit": model_options.load_in_4bit,
        "batch_size": int(model_options.batch_size),
        "device": model_options.device,
        "dtype": model_options.dtype,
    }


def _refuse_device_map(model_options: ModelOptions) -> None:
    """--device-map spreads a model for inference; training on several GPUs is launched otherwise."""
    from lexprobe.exceptions import TrainingError

    if model_options.device_map is not None:
        raise TrainingError(
            "--device-map is for inference; to train on several GPUs launch with `accelerate launch` or `torchrun`"
        )


def _print_cost(out: Path, ontology: str, config: Any) -> None:
    """``train --dry-run``: the pairs, steps and estimated time."""
    from lexprobe.costs import estimate_training, finished_training_runs
    from lexprobe.runs import default_out_dir

    # the speed comes from finished training runs beside this one and in this model's default folder
    runs = finished_training_runs(out.parent, default_out_dir("train", ontology, config.model).parent)
    for line in estimate_training(config, runs=runs).lines():
        console.print(line, markup=False, soft_wrap=True)


def _print_trained(result: Any, out: Path, ontology: str, task: str, templates: int) -> None:
    """What the training did, or that the run was already finished."""
    if result.already_complete:
        console.print(f"{out} already holds a finished adapter; nothing to do (evaluate it with `lexprobe evaluate`)")
        return
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    console.print(
        f"{ontology} {task}: {result.n_pairs} pairs x {templates} templates = {result.n_examples} examples, "
        f"{result.n_steps} steps on {result.world_size} process(es) in {result.compute_dtype} "
        f"({result.examples_per_second:.2f} examples/s), {result.exposures:g} exposures per pair{resumed}; "
        f"loss {result.first_loss:.3f} -> {result.final_loss:.3f}; "
        f"{result.n_lora_changed}/{result.n_lora_total} LoRA matrices changed; "
        f"{result.seconds / 60:.1f} min -> {result.adapter_dir}"
    )


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@command(model="runtime", batch_size=32, dtype=None)
def evaluate_cmd(
    run: Path = typer.Argument(..., metavar="RUN_DIR", help="A `lexprobe train` run folder."),
    split: EvalSplit = typer.Option(EvalSplit.both, "--split", help="Which pairs to score."),
    baseline: bool = typer.Option(False, "--baseline", help="Evaluate the model without the adapter only."),
    shots: int = typer.Option(
        0,
        "--shots",
        min=0,
        help="Few-shot baseline: K train pairs (drawn with --seed) as worked examples before each query; "
        "results go to RUN/shots-K.",
    ),
    checkpoints: str | None = typer.Option(
        None,
        "--checkpoints",
        help="A learning curve instead: 'all' or exposure counts like 10,30 of the run's snapshots (train "
        "--snapshots), each scored beside the base model and the finished adapter.",
    ),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", min=1, help="Default by target: 24 id, 16 symbol."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Seed of the bootstrap intervals of the gains and of the shots."
    ),
    wait: WaitOption = False,
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --dtype, --device...
    quiet: bool = False,
) -> None:
    """Exact-match accuracy before (baseline) and after (tuned) fine-tuning, on train and withheld pairs."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.exceptions import TrainingError
    from lexprobe.runs import ensure_writable_dir
    from lexprobe.train import SPLITS, evaluate_run

    batch_size, device, dtype = int(model_options.batch_size), model_options.device, model_options.dtype
    splits = SPLITS if split == "both" else (split,)
    if run.is_dir():
        ensure_writable_dir(run, option="RUN_DIR")  # evaluation writes its outcomes into the run
        hold_run_dir(run, wait=wait, option="RUN_DIR")
    if checkpoints is not None:
        if baseline or shots:
            raise TrainingError("--checkpoints scores the run's snapshots; it goes without --baseline and --shots")
        _curve(run, checkpoints, splits, batch_size, max_new_tokens, model_options, quiet)
        return
    with progress_display(quiet) as progress:
        result = evaluate_run(
            run,
            splits=splits,
            baseline_only=baseline,
            shots=shots,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            device=device,
            dtype=dtype,
            device_map=model_options.device_map,
            seed=seed,
            progress=progress,
        )
    out = result.out_dir or run
    table, halluc = _accuracy_table(run, result, splits, baseline)
    if result.shots:
        _print_shots(result, seed)
    print_table(table)
    if halluc:
        console.print("well-formed ids that exist nowhere in the ontology: " + ", ".join(halluc))
    if not baseline:
        _print_gains(run, result.gains)
    gen = result.generation
    console.print(
        f"generation: {int(gen.get('n_replies', 0))} replies in {gen.get('seconds', 0.0):.1f} s "
        f"({result.items_per_second:.2f} items/s)"
    )
    console.print(f"per item: {out / 'outcomes.csv'}; per bin: {out / 'evaluation_summary.csv'}")


def _accuracy_table(run: Path, result: Any, splits: tuple[str, ...], baseline: bool) -> tuple[Any, list[str]]:
    """The accuracy table of each split (baseline, tuned, gain, the four outcomes), and the hallucinated ids."""
    from rich.table import Table

    overall = result.summary[result.summary["bin"] == "all"].set_index(["split", "model"])
    prompt = f", {result.shots}-shot" if result.shots else ""
    table = Table(title=f"{run}: exact-match accuracy{prompt} [Wilson 95% CI]")
    columns = ["split", "n", "baseline", "tuned", "gain (bootstrap CI)", "gained", "lost", "both right", "both wrong"]
    for column in columns:
        table.add_column(column, justify="left" if column == "split" else "right")
    halluc = []
    for s in splits:
        b = overall.loc[(s, "baseline")]
        row = [s, str(int(b["n"])), _acc(b)]
        if baseline:
            row += ["", "", "", "", "", ""]
        else:
            t, g = overall.loc[(s, "tuned")], result.gains[s]
            row += [_acc(t), f"{g['gain']:+.3f} {_ci(g['gain_ci_low'], g['gain_ci_high'])}"]
            row += [str(g[c]) for c in ("gained", "lost", "correct both", "incorrect both")]
        table.add_row(*row)
        for which in ("baseline",) if baseline else ("baseline", "tuned"):
            r = overall.loc[(s, which)]
            if r["hallucinated_share"] == r["hallucinated_share"]:  # id targets only
                halluc.append(f"{s} {which} {int(r['n_hallucinated'])}/{int(r['n_well_formed'])}")
    return table, halluc


def _print_shots(result: Any, seed: int) -> None:
    """The worked examples a few-shot evaluation put before every query."""
    used = "; ".join(f"{_shorten(p['source'])} -> {p['target']}" for p in result.shot_pairs[: result.shots])
    spare = result.shot_pairs[result.shots]
    console.print(
        f"{result.shots} shots (train pairs drawn with seed {seed}), before every query: {used}; "
        f"in place of a query's own pair: {_shorten(spare['source'])} -> {spare['target']}"
    )


def _print_gains(run: Path, gains: dict[str, Any]) -> None:
    """The memorization (train) and generalization (withheld) gains with their intervals."""
    parts = []
    for name, s in (("memorization", "train"), ("generalization", "withheld")):
        if s in gains:
            g = gains[s]
            parts.append(f"{name} gain {g['gain']:+.3f} {_ci(g['gain_ci_low'], g['gain_ci_high'])}")
    console.print(f"{run}: " + "; ".join(parts) + " (tuned - baseline; paired bootstrap 95% CI)")


def _curve(run, checkpoints, splits, batch_size, max_new_tokens, model_options, quiet) -> None:
    """``evaluate --checkpoints``: the learning curve table."""
    from lexprobe.cli._progress import progress_display
    from rich.table import Table

    from lexprobe.exceptions import TrainingError
    from lexprobe.train import evaluate_curve

    if checkpoints.strip().lower() == "all":
        chosen: str | list[float] = "all"
    else:
        try:
            chosen = [float(x) for x in split_csv(checkpoints) or ()]
        except ValueError:
            raise TrainingError(
                f"--checkpoints must be 'all' or exposure counts like 10,30, got {checkpoints!r}"
            ) from None
        if not chosen:
            raise TrainingError("--checkpoints needs 'all' or at least one exposure count")
    with progress_display(quiet) as progress:
        result = evaluate_curve(
            run,
            checkpoints=chosen,
            splits=splits,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            device=model_options.device,
            dtype=model_options.dtype,
            device_map=model_options.device_map,
            progress=progress,
        )
    table = Table(title=f"{run}: learning curve (exact match [Wilson 95% CI]; loss per target in nats)")
    for column in ("exposures", "adapter", "split", "accuracy", "distinct answers", "loss per target"):
        table.add_column(column, justify="left" if column in ("adapter", "split") else "right")
    for r in result.curve.itertuples(index=False):
        table.add_row(f"{r.exposures:g}", r.point, r.split, _acc(r._asdict()), str(r.n_distinct), f"{r.loss_mean:.2f}")
    print_table(table)
    console.print(
        f"ln(number of targets) = {result.ln_n_targets:.2f} nats: the loss of a uniform guess over every valid target"
    )
    console.print(f"curve: {run / 'learning_curve.csv'}; per item: {run / 'learning_curve_items.csv'}")
