"""``lexprobe split``: a popularity-balanced train / withheld split of a mapping task."""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import categories_option, console
from lexprobe.cli._options import command, hold_run_dir, ontology_option, task_option, wait_option


@command()
def split_cmd(
    ontology: str = ontology_option(),
    task: str = task_option(),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for train.csv, withheld.csv and manifest.json."),
    bins: int = typer.Option(20, "--bins", min=1, help="Equal-count popularity bins."),
    per_bin: int = typer.Option(30, "--per-bin", min=1, help="Pairs per bin in each of train and withheld."),
    popularity: str | None = typer.Option(
        None, "--popularity", help="Popularity column to rank by (default: the ontology's own)."
    ),
    category: str | None = typer.Option(
        None,
        "--category",
        help="Term categories to keep (comma-separated), or all; default the ontology's (hgnc: protein-coding).",
    ),
    annotations: Path | None = typer.Option(
        None, "--annotations", help="Annotation file for popularity (GAF for GO, phenotype.hpoa for HPO)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed: same seed, same split."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run already in --out."),
    wait: bool = wait_option(),
) -> None:
    """Write a popularity-balanced train / withheld split of a task (no term in both)."""
    from lexprobe.ontology import load_ontology  # imported here so `lexprobe --help` stays fast
    from lexprobe.runs import (
        atomic_path,
        ensure_writable_dir,
        make_manifest,
        prepare_run_dir,
        settings_of,
        write_manifest,
    )
    from lexprobe.tasks import make_split

    ensure_writable_dir(out)
    hold_run_dir(out, wait=wait)
    ont = load_ontology(ontology, annotations=annotations)
    categories = categories_option(category)
    split = make_split(ont, task, bins=bins, per_bin=per_bin, popularity=popularity, seed=seed, categories=categories)
    config = {
        "task": split.task.name,
        "source": split.task.source,
        "target": split.task.target,
        "bins": bins,
        "per_bin": per_bin,
        "popularity": split.popularity,
        "categories": categories,
        "seed": seed,
    }
    data = {"inputs.ontology": ont.name, "inputs.data_checksum": ont.checksum}
    prepare_run_dir(out, "split", settings_of(config) | data, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("train.csv", split.train), ("withheld.csv", split.withheld)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    write_manifest(
        out,
        make_manifest(
            stage="split",
            config=config,
            inputs={
                "ontology": ont.name,
                "source": ont.source,
                "release": ont.release,
                "data_checksum": ont.checksum,
            },
            outputs={"train.csv": len(split.train), "withheld.csv": len(split.withheld)},
            seed=seed,
        ),
    )
    console.print(
        f"{ont.name} {split.task.name}: {len(split.train)} train and {len(split.withheld)} withheld pairs "
        f"in {bins} popularity bins (by {split.popularity or 'no popularity'}) -> {out}"
    )
