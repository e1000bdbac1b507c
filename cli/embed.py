"""``lexprobe embed``: per-layer hidden states of one field of an ontology."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from lexprobe.cli._common import console, parse_limit
from lexprobe.cli._options import ModelOptions, Pool, StorageDType, command, hold_run_dir, ontology_option, wait_option


@command(model="full")
def embed_cmd(
    ontology: str = ontology_option(),
    field: str = typer.Option(..., "--field", "-f", help="Field to embed: name, symbol or id."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for embeddings.npy, keys.tsv and manifest.json."),
    layers: str = typer.Option("all", "--layers", help="all, or indices like 0,4,8 or -1 (0 = embeddings)."),
    pool: Pool = typer.Option(Pool.mean, "--pool", help="Over the item's own tokens: mean, or the last or first."),
    template: str = typer.Option("{text}", "--template", help="Text around each item; must hold {text}."),
    prefix: str = typer.Option(
        "auto",
        "--prefix",
        help="Sink prefix before each item, never pooled: auto (the tokenizer's BOS if it adds one, else a "
        "newline), bos, none (old pooling), or a literal text.",
    ),
    include_special: bool = typer.Option(
        False, "--include-special", help="Pool special tokens (BOS, EOS, chat markers) too."
    ),
    limit: str = typer.Option(
        "all", "--limit", "-n", help="Popularity-balanced sample of N terms, or all (--dry-run shows the cost)."
    ),
    storage_dtype: StorageDType = typer.Option(StorageDType.float32, "--storage-dtype", help="Precision on disk."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the term sample."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    wait: bool = wait_option(),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the items, tokens and estimated time, then stop."),
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --model, --dtype...
    quiet: bool = False,
) -> None:
    """Extract per-layer hidden states of one field of an ontology's terms (cached, resumable)."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.embed import embed_field
    from lexprobe.ontology import load_ontology
    from lexprobe.runs import check_run_dir

    n_terms = parse_limit(limit, minimum=1)
    config = _extraction_config(layers, pool, template, prefix, include_special, storage_dtype, model_options)
    ont = load_ontology(ontology)
    settings = _embed_settings(config, ont, field, n_terms, seed, model_options)
    check_run_dir(out, "embed", settings, overwrite=overwrite, dry_run=dry_run)  # a dry run refuses the same
    if dry_run:
        _print_cost(ontology, field, n_terms, seed, config, model_options)
        return
    hold_run_dir(out, wait=wait)
    lm = model_options.load()
    with progress_display(quiet) as progress:
        result = embed_field(ont, field, limit=n_terms, seed=seed, model=lm, config=config, progress=progress)
    _write_embeddings(out, result)
    layers_kept = result.layers
    console.print(
        f"{ont.name} {field}: {len(result.keys)} items x {len(layers_kept)} layers "
        f"({layers_kept[0]}..{layers_kept[-1]}) x {result.array.shape[-1]} dims, {pool} pooled -> {out}"
    )


def _extraction_config(
    layers: str,
    pool: Pool,
    template: str,
    prefix: str,
    include_special: bool,
    storage_dtype: StorageDType,
    model_options: ModelOptions,
) -> Any:
    """The ``ExtractionConfig`` the options ask for."""
    from lexprobe.embed import ExtractionConfig

    batch_size = model_options.batch_size
    return ExtractionConfig(
        layers=ExtractionConfig.parse_layers(layers),
        pool=pool,  # type: ignore[arg-type]
        template=template,
        prefix=prefix,
        include_special=include_special,
        batch_size="auto" if batch_size == "auto" else int(batch_size),
        storage_dtype=storage_dtype,  # type: ignore[arg-type]
    )


def _embed_settings(
    config: Any, ont: Any, field: str, n_terms: int | None, seed: int, model_options: ModelOptions
) -> dict[str, Any]:
    """The settings a run in --out must share to be this one (the batch size aside)."""
    from lexprobe.models import resolve_model_spec
    from lexprobe.runs import settings_of

    same = {"field": field, "limit": n_terms, "seed": seed, "ontology.checksum": ont.checksum}
    same["inputs.model.dtype"] = model_options.resolved_dtype()
    same["inputs.model.name"] = resolve_model_spec(model_options.model).name  # the name load_model gives
    return settings_of(config, leave_out=("batch_size",)) | same


def _print_cost(
    ontology: str, field: str, n_terms: int | None, seed: int, config: Any, model_options: ModelOptions
) -> None:
    """--dry-run: print the items, tokens and estimated time."""
    from lexprobe.costs import estimate_embedding

    cost = estimate_embedding(
        ontology,
        (field,),
        model=model_options.model,
        limit=n_terms,
        seed=seed,
        config=config,
        dtype=model_options.dtype,
        device=model_options.device,
    )
    for line in cost.lines():
        console.print(line, markup=False, soft_wrap=True)


def _write_embeddings(out: Path, result: Any) -> None:
    """embeddings.npy, keys.tsv and manifest.json of ``result`` in ``out``, each written whole or not at all."""
    import numpy as np

    from lexprobe.runs import atomic_path, atomic_write_text, write_manifest

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "embeddings.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(result.array))
    atomic_write_text(
        out / "keys.tsv", "id\ttext\n" + "".join(f"{k}\t{t}\n" for k, t in zip(result.keys, result.texts))
    )
    write_manifest(
        out,
        result.manifest | {"outputs": {"embeddings.npy": list(result.array.shape), "keys.tsv": len(result.keys)}},
    )
