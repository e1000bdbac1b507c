"""``lexprobe align``: per-layer alignment of paired fields (name:symbol, name:id...), with chance levels."""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import (
    MAX_RESAMPLES,
    console,
    dtype_option,
    err_console,
    handle_errors,
    is_terminal,
    parse_limit,
    resolved_dtype,
    split_csv,
)


@handle_errors
def align_cmd(
    ontology: str = typer.Option(..., "--ontology", "-o", help="Built-in name (hgnc, hpo, go) or a file path."),
    pairs: str | None = typer.Option(
        None,
        "--pairs",
        help="Field pairs, e.g. name:symbol,name:id (default: hgnc all three; others name:id).",
    ),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Named model, HF id, local dir or .gguf."),
    dtype: str = dtype_option(),
    limit: str = typer.Option(
        "2000", "--limit", "-n", help="Popularity-balanced sample of N terms (at least 5), or all."
    ),
    category: str | None = typer.Option(
        None,
        "--category",
        help="Term categories to sample (comma-separated), or all; default the ontology's (hgnc: protein-coding).",
    ),
    layers: str = typer.Option("all", "--layers", help="all, or indices like 0,8,-1 (0 = embeddings)."),
    pool: str = typer.Option("mean", "--pool", help="mean (over the item's tokens), last or first."),
    prefix: str = typer.Option(
        "auto", "--prefix", help="Sink prefix, never pooled: auto, bos, none (old pooling) or a literal text."
    ),
    metrics: str = typer.Option(
        "mknn,cka,dcka", "--metrics", help="From mknn,retrieval,cka,dcka,rsa (retrieval and rsa cost more)."
    ),
    k: int = typer.Option(10, "--k", help="Neighbours for mutual kNN."),
    retrieval_k: int = typer.Option(1, "--retrieval-k", help="Retrieval hit within the top K."),
    retrieval_map: str = typer.Option(
        "ridge", "--retrieval-map", help="Map for retrieval, fitted on half the items: ridge, procrustes or none."
    ),
    permutations: int = typer.Option(
        100, "--permutations", min=0, max=MAX_RESAMPLES, help="Shuffles of the pairing for the null."
    ),
    bootstrap: int = typer.Option(
        100, "--bootstrap", min=0, max=MAX_RESAMPLES, help="Bootstrap resamples for confidence intervals."
    ),
    ci_layers: str = typer.Option("best", "--ci-layers", help="CKA intervals at the best layer or at all."),
    preprocess: str = typer.Option("standardize", "--preprocess", help="none, center, standardize or clip."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the sample, permutations and bootstrap."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default runs/align-<ontology>)."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip the figures."),
    no_umap: bool = typer.Option(False, "--no-umap", help="Skip the UMAP figure (the by-layer figure is kept)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as one JSON object (no table, no progress; NaN as null)."
    ),
) -> None:
    """Measure how far names and their symbols or ids are aligned in a model's hidden states, per layer."""
    from rich.table import Table

    from lexprobe.align import AlignmentConfig, run_alignment, write_alignment
    from lexprobe.embed import ExtractionConfig
    from lexprobe.runs import ensure_writable_dir, prepare_run_dir, settings_of

    config = AlignmentConfig(
        ontology=ontology,
        pairs=split_csv(pairs),
        model=model,
        dtype=resolved_dtype(dtype),
        limit=parse_limit(limit),
        categories=() if category is not None and category.strip().lower() == "all" else split_csv(category),
        layers=ExtractionConfig.parse_layers(layers),
        pool=pool,
        prefix=prefix,
        metrics=split_csv(metrics) or (),
        k=k,
        retrieval_k=retrieval_k,
        retrieval_map=retrieval_map,
        permutations=permutations,
        bootstrap=bootstrap,
        ci_layers=ci_layers,
        preprocess=preprocess,
        seed=seed,
    )
    ExtractionConfig(layers=config.layers, pool=pool, prefix=prefix)  # type: ignore[arg-type]  # validate first
    target = ensure_writable_dir(out or Path("runs") / f"align-{Path(ontology).name.split('.')[0]}")
    prepare_run_dir(target, "align", settings_of(config), overwrite=overwrite)
    if quiet or as_json or not is_terminal():
        result = run_alignment(config)
    else:
        with console.status("aligning") as status:
            result = run_alignment(config, progress=lambda stage, done, total: status.update(f"{stage} {done}/{total}"))
    write_alignment(result, target, figures=not no_figures, umap=not no_umap)
    if as_json:
        print(_summary_json(result, target))
        return
    n = result.manifest["inputs"]["n_items"]
    table = Table(
        title=f"{result.manifest['inputs']['ontology']['name']}: alignment of {n} terms, "
        f"{result.manifest['inputs']['model']['name']} ({config.preprocess}, {config.pool} pooled)"
    )
    for column in (
        "pair",
        "metric",
        "best layer",
        "value",
        "null (layer max)",
        "z",
        "p",
        "effect",
        "x name:symbol",
    ):
        table.add_column(column, justify="left" if column in ("pair", "metric") else "right")
    for row in result.summary.itertuples(index=False):
        ratio = getattr(row, "ratio_to_name_symbol", float("nan"))
        table.add_row(
            row.pair,
            row.metric,
            str(row.best_layer),
            f"{row.value:.3f}",
            f"{row.null_max_mean:.3f} ± {row.null_max_sd:.3f}",
            f"{row.z:.1f}",
            _p_text(row.p_value, config.permutations),
            f"{row.effect:+.3f}",
            "" if ratio != ratio else f"{ratio:.2f}",
        )
    console.print(table)
    console.print(
        "best layer = the layer with the highest value; its null is the maximum over layers of the permutation "
        f"null ({config.permutations} shuffles), so choosing it does not inflate z. "
        f"Per-layer rows: {target}/alignment.csv"
    )
    neighbours = result.manifest.get("neighbours", {})
    if neighbours.get("search") == "hnsw":
        console.print(
            f"neighbours: approximate (FAISS HNSW, {n} items); recall@{config.k} against exact search on "
            f"{neighbours['recall_queries']} items per field and layer: {neighbours['recall_min']:.3f} at worst, "
            f"{neighbours['recall_mean']:.3f} on average"
        )
    for line in result.manifest.get("warnings", []):
        err_console.print(f"warning: {line}")


def _p_text(p_value: float, permutations: int) -> str:
    """The permutation p-value, shown as its floor ("≤ 1/(m+1)") when no shuffle reached the value."""
    if not permutations or p_value != p_value:
        return ""
    floor = 1 / (permutations + 1)
    return f"≤{floor:.2g}" if p_value <= floor * (1 + 1e-9) else f"{p_value:.2g}"


def _summary_json(result, target: Path) -> str:
    """The run's summary, neighbours, warnings and timings as strict JSON (a NaN becomes null)."""
    import json
    import math

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value.item() if hasattr(value, "item") else value

    inputs = result.manifest["inputs"]
    return json.dumps(
        clean(
            {
                "out": str(target),
                "ontology": inputs["ontology"]["name"],
                "model": inputs["model"]["name"],
                "n_items": inputs["n_items"],
                "summary": result.summary.to_dict(orient="records"),
                "neighbours": result.manifest.get("neighbours"),
                "warnings": result.manifest.get("warnings", []),
                "timings": result.manifest.get("timings", {}),
            }
        ),
        allow_nan=False,
    )
