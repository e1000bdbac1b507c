"""``lexprobe lexicalization``: how far each field (name, symbol, id) is a meaningful token to the model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from lexprobe.cli._common import console, parse_limit, print_table, split_csv
from lexprobe.cli._options import (
    DryRunOption,
    ModelOptions,
    NoFiguresOption,
    OntologyOption,
    OverwriteOption,
    Preprocess,
    WaitOption,
    command,
    hold_run_dir,
    layer_choice,
)


def _fmt(value: float, spec: str = ".3f") -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


@command(model="full")
def lexicalization_cmd(
    ontology: OntologyOption,
    fields: str | None = typer.Option(
        None, "--fields", help="Fields to measure, e.g. name,symbol,id (default: hgnc all three; others name,id)."
    ),
    limit: str = typer.Option(
        "2000", "--limit", "-n", help="Popularity-balanced sample of N terms (at least 20), or all."
    ),
    category: str | None = typer.Option(
        None,
        "--category",
        help="Only these categories (comma-separated), or all (the default: the probe needs several).",
    ),
    layers: str = typer.Option("all", "--layers", help="Layers to extract: all, or indices like 0,8,-1."),
    reference: str = typer.Option("name", "--reference", help="Field the agreement and probe compare with."),
    layer: str = typer.Option(
        "best",
        "--layer",
        callback=layer_choice,
        help="The one layer the per-item embedding measures are reported at, or best.",
    ),
    probe_layers: str = typer.Option("auto", "--probe-layers", help="auto (8 spread out), all, or e.g. 0,8,-1."),
    k: int = typer.Option(10, "--k", min=1, help="Neighbours for the agreement."),
    preprocess: Preprocess = typer.Option(Preprocess.standardize, "--preprocess", help="Per-dimension preprocessing."),
    tokenization_only: bool = typer.Option(
        False, "--tokenization-only", help="Only the tokenizer measures (no forward pass)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the sample and of the probe's folds."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default runs/<model>/lexicalization-<ontology>)."
    ),
    no_figures: NoFiguresOption = False,
    overwrite: OverwriteOption = False,
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --model, --dtype...
    quiet: bool = False,
) -> None:
    """Measure lexicalization per item and per field: tokenization, neighbourhood agreement, category probe."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.lexical import measure_lexicalization, write_lexicalization
    from lexprobe.runs import check_run_dir, default_out_dir, settings_of

    config = _lexical_config(
        ontology=ontology,
        fields=fields,
        limit=limit,
        category=category,
        layers=layers,
        reference=reference,
        layer=layer,
        probe_layers=probe_layers,
        k=k,
        preprocess=preprocess,
        tokenization_only=tokenization_only,
        seed=seed,
        model_options=model_options,
    )
    target = out or default_out_dir("lexicalization", ontology, model_options.model)
    settings = settings_of(config, leave_out=("batch_size",))
    check_run_dir(target, "lexicalization", settings, overwrite=overwrite, dry_run=dry_run)
    if dry_run:
        from lexprobe.costs import estimate_lexicalization

        for line in estimate_lexicalization(config, device=model_options.device).lines():
            console.print(line, markup=False, soft_wrap=True)
        return
    hold_run_dir(target, wait=wait)
    lm = model_options.load()  # the tokenizer measures need only its tokenizer, but they load together
    with progress_display(quiet) as progress:
        result = measure_lexicalization(config, model=lm, progress=progress)
        write_lexicalization(result, target, figures=not no_figures)
    _print_results(result, target, k, reference)


def _lexical_config(
    *,
    ontology: str,
    fields: str | None,
    limit: str,
    category: str | None,
    layers: str,
    reference: str,
    layer: str,
    probe_layers: str,
    k: int,
    preprocess: Preprocess,
    tokenization_only: bool,
    seed: int,
    model_options: ModelOptions,
) -> Any:
    """The ``LexicalConfig`` the options ask for."""
    from lexprobe.embed import ExtractionConfig
    from lexprobe.lexical import LexicalConfig

    parsed_layer: str | int = "best" if layer == "best" else int(layer)
    parsed_probe = probe_layers.strip().lower()
    probe_spec = parsed_probe if parsed_probe in ("auto", "all") else ExtractionConfig.parse_layers(parsed_probe)
    return LexicalConfig(
        ontology=ontology,
        fields=split_csv(fields),
        reference=reference,
        model=model_options.model,
        dtype=model_options.resolved_dtype(),
        limit=parse_limit(limit, minimum=20),
        categories=None if category is None or category.strip().lower() == "all" else split_csv(category),
        layers=ExtractionConfig.parse_layers(layers),
        layer=parsed_layer,
        probe_layers=probe_spec,  # type: ignore[arg-type]
        k=k,
        preprocess=preprocess,
        embeddings=not tokenization_only,
        seed=seed,
        batch_size=model_options.batch_size,
    )


def _print_results(result: Any, target: Path, k: int, reference: str) -> None:
    """The tokenization table, the embedding one (when measured), and how to read the scores."""
    inputs = result.manifest["inputs"]
    rows = result.fields.to_dict("records")
    title = f"{inputs['ontology']['name']}, {inputs['n_items']} terms, {inputs['model']['name']}"
    print_table(_tokenization_table(rows, f"{title}: tokenization ({inputs['tokenizer']['kind']})"))
    if inputs["layer"] is not None:
        print_table(_embedding_table(rows, f"{title}: embeddings at layer {inputs['layer']}, and the combined score"))
    if inputs["layer"] is None:
        console.print(
            "score = tokenization score in [0, 1] (no embedding measures); higher = more of a meaningful token."
        )
        console.print(f"Per item: {target}/lexicalization_items.csv")
        return
    console.print(
        "score = mean(tokenization score, embedding score), each in [0, 1]; higher = more of a meaningful token. "
        f"agreement = share of an item's {k} neighbours it shares with its {reference} (chance "
        f"{k / max(inputs['n_items'] - 1, 1):.3f}); probe = cross-validated category accuracy."
    )
    console.print(f"Per item and per layer: {target}/lexicalization_items.csv, {target}/lexicalization_layers.csv")


def _tokenization_table(rows: list[dict[str, Any]], title: str) -> Any:
    """Per field: tokens per item, single-token share, digit and punctuation share, word-likeness, score."""
    from rich.table import Table

    tok = Table(title=title)
    for column in ("field", "tokens", "1 token", "digit/punct", "word-like", "log rank", "score"):
        tok.add_column(column, justify="left" if column == "field" else "right")
    for row in rows:
        tok.add_row(
            row["field"],
            _fmt(row["tokens_mean"], ".1f"),
            _fmt(row["single_token_share"], ".0%"),
            _fmt(row["digit_punct_share"], ".2f"),
            _fmt(row["wordlike_share"], ".2f"),
            _fmt(row["log_rank"], ".2f"),
            _fmt(row["tokenization_score"]),
        )
    return tok


def _embedding_table(rows: list[dict[str, Any]], title: str) -> Any:
    """Per field: neighbourhood agreement, probe accuracy against its majority baseline, and the scores."""
    from rich.table import Table

    emb = Table(title=title)
    for column in ("field", "agreement", "probe", "majority", "emb score", "score [95% CI]"):
        emb.add_column(column, justify="left" if column == "field" else "right")
    for row in rows:
        emb.add_row(
            row["field"],
            _fmt(row["agreement"]),
            _fmt(row["probe_accuracy"]),
            _fmt(row["probe_baseline"]),
            _fmt(row["embedding_score"]),
            f"{row['score']:.3f} [{row['score_ci_low']:.3f}, {row['score_ci_high']:.3f}]",
        )
    return emb
