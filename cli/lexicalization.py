"""``lexprobe lexicalization``: how far each field (name, symbol, id) is a meaningful token to the model."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from lexprobe.cli._common import console, dtype_option, fail, handle_errors, is_terminal, resolved_dtype, split_csv


def _fmt(value: float, spec: str = ".3f") -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


@handle_errors
def lexicalization_cmd(
    ontology: str = typer.Option(..., "--ontology", "-o", help="Built-in name (hgnc, hpo, go) or a file path."),
    fields: str | None = typer.Option(
        None, "--fields", help="Fields to measure, e.g. name,symbol,id (default: hgnc all three; others name,id)."
    ),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Named model, HF id, local dir or .gguf."),
    dtype: str = dtype_option(),
    limit: int = typer.Option(2000, "--limit", "-n", min=20, help="Popularity-balanced sample of N terms."),
    category: str | None = typer.Option(
        None,
        "--category",
        help="Only these categories (comma-separated); default every category, as the probe needs several.",
    ),
    reference: str = typer.Option("name", "--reference", help="Field the agreement and probe compare with."),
    layer: str = typer.Option("best", "--layer", help="Layer of the per-item embedding measures, or best."),
    probe_layers: str = typer.Option("auto", "--probe-layers", help="auto (8 spread out), all, or e.g. 0,8,-1."),
    k: int = typer.Option(10, "--k", help="Neighbours for the agreement."),
    preprocess: str = typer.Option("standardize", "--preprocess", help="none, center, standardize or clip."),
    tokenization_only: bool = typer.Option(
        False, "--tokenization-only", help="Only the tokenizer measures (no forward pass)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the sample and of the probe's folds."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default runs/lexicalization-<ontology>)."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip the figures."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Measure lexicalization per item and per field: tokenization, neighbourhood agreement, category probe."""
    from rich.table import Table

    from lexprobe.embed import ExtractionConfig
    from lexprobe.lexical import LexicalConfig, measure_lexicalization, write_lexicalization
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir, settings_of

    parsed_layer: str | int = layer.strip().lower()
    if parsed_layer != "best":
        try:
            parsed_layer = int(parsed_layer)
        except ValueError:
            raise fail(f"--layer must be 'best' or an integer, got {layer!r}") from None
    parsed_probe = probe_layers.strip().lower()
    probe_spec = parsed_probe if parsed_probe in ("auto", "all") else ExtractionConfig.parse_layers(parsed_probe)
    config = LexicalConfig(
        ontology=ontology,
        fields=split_csv(fields),
        reference=reference,
        model=model,
        dtype=resolved_dtype(dtype),
        limit=limit,
        categories=split_csv(category),
        layer=parsed_layer,
        probe_layers=probe_spec,  # type: ignore[arg-type]
        k=k,
        preprocess=preprocess,
        embeddings=not tokenization_only,
        seed=seed,
    )
    target = ensure_writable_dir(out or Path("runs") / f"lexicalization-{Path(ontology).name.split('.')[0]}")
    prepare_run_dir(target, "lexicalization", settings_of(config), overwrite=overwrite)
    if quiet or not is_terminal():
        result = measure_lexicalization(config)
    else:
        with console.status("measuring lexicalization") as status:
            result = measure_lexicalization(
                config, progress=lambda stage, done, total: status.update(f"{stage} {done}/{total}")
            )
    write_lexicalization(result, target, figures=not no_figures)
    inputs = result.manifest["inputs"]
    rows = result.fields.to_dict("records")
    title = f"{inputs['ontology']['name']}, {inputs['n_items']} terms, {inputs['model']['name']}"
    tok = Table(title=f"{title}: tokenization ({inputs['tokenizer']['kind']})")
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
    console.print(tok)
    if inputs["layer"] is not None:
        emb = Table(title=f"{title}: embeddings at layer {inputs['layer']}, and the combined score")
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
        console.print(emb)
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
