"""``lexprobe embed``: per-layer hidden states of one field of an ontology."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from lexprobe.cli._common import console, dtype_option, err_console, handle_errors, is_terminal, resolved_dtype


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar with items/s on a terminal; nothing when quiet or not a terminal."""
    if quiet or not is_terminal():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None, rate="")
        import time

        start = {"t": time.perf_counter(), "n": None}

        def update(stage: str, done: int, total: int) -> None:
            if start["n"] is None:
                start["n"] = done
            elapsed = max(time.perf_counter() - start["t"], 1e-9)
            rate = (done - start["n"]) / elapsed
            bar.update(task, completed=done, total=total, rate=f"{rate:7.1f} items/s")

        yield update


@handle_errors
def embed_cmd(
    ontology: str = typer.Option(..., "--ontology", "-o", help="Built-in name (hgnc, hpo, go) or a file path."),
    field: str = typer.Option(..., "--field", "-f", help="Field to embed: name, symbol or id."),
    out: Path = typer.Option(..., "--out", help="Directory for embeddings.npy, keys.tsv and manifest.json."),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Named model, HF id, local dir or .gguf."),
    precision: str = dtype_option(),
    layers: str = typer.Option("all", "--layers", help="all, or indices like 0,4,8 or -1 (0 = embeddings)."),
    pool: str = typer.Option("mean", "--pool", help="mean (over real tokens), last or first."),
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
    limit: int | None = typer.Option(None, "--limit", "-n", help="Popularity-balanced sample of N terms."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Items per batch, or auto."),
    dtype: str = typer.Option("float32", "--storage-dtype", help="float32 or float16 on disk."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: auto)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the term sample."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Extract per-layer hidden states of one field of an ontology's terms (cached, resumable)."""
    import numpy as np

    from lexprobe.embed import ExtractionConfig, embed_field
    from lexprobe.exceptions import EmbeddingError
    from lexprobe.models import load_model, resolve_model_spec
    from lexprobe.ontology import load_ontology
    from lexprobe.runs import (
        atomic_path,
        atomic_write_text,
        ensure_writable_dir,
        prepare_run_dir,
        settings_of,
        write_manifest,
    )

    if batch_size != "auto" and not batch_size.isdigit():
        raise EmbeddingError(f"--batch-size must be 'auto' or a positive integer, got {batch_size!r}")
    config = ExtractionConfig(
        layers=ExtractionConfig.parse_layers(layers),
        pool=pool,  # type: ignore[arg-type]
        template=template,
        prefix=prefix,
        include_special=include_special,
        batch_size="auto" if batch_size == "auto" else int(batch_size),
        storage_dtype=dtype,  # type: ignore[arg-type]
    )
    ensure_writable_dir(out)
    ont = load_ontology(ontology)
    same = {"field": field, "limit": limit, "seed": seed, "ontology.checksum": ont.checksum}
    same["inputs.model.dtype"] = resolved_dtype(precision, device)
    same["inputs.model.name"] = resolve_model_spec(model).name  # the name load_model gives, without loading
    prepare_run_dir(out, "embed", settings_of(config, leave_out=("batch_size",)) | same, overwrite=overwrite)
    lm = load_model(model, device=device, dtype=precision)
    with progress_bar(f"embedding {ont.name} {field}", quiet) as update:
        result = embed_field(ont, field, limit=limit, seed=seed, model=lm, config=config, progress=update)
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
    layers_kept = result.layers
    console.print(
        f"{ont.name} {field}: {len(result.keys)} items x {len(layers_kept)} layers "
        f"({layers_kept[0]}..{layers_kept[-1]}) x {result.array.shape[-1]} dims, {pool} pooled -> {out}"
    )
