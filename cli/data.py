"""``lexprobe data``: list, show and fetch ontologies."""

from __future__ import annotations

from pathlib import Path

import typer
from lexprobe.cli._common import console, print_json, print_table
from lexprobe.cli._help import HelpCommand, HelpGroup
from lexprobe.cli._options import FetchSource, command
from rich.table import Table

data_app = typer.Typer(help="List, show and download ontologies.", no_args_is_help=True, cls=HelpGroup)


@data_app.command("list", cls=HelpCommand)
@command()
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the list as one JSON object."),
) -> None:
    """Show each built-in ontology: source, release, term count and popularity columns."""
    from lexprobe.ontology import builtin_ontologies

    if as_json:
        print_json(
            {
                name: {
                    "release": info.release,
                    "n_terms": info.n_terms,
                    "default_popularity": info.default_popularity,
                    "popularity_columns": list(info.popularity_columns),
                    "sources": info.sources,
                }
                for name, info in builtin_ontologies().items()
            }
        )
        return

    table = Table(title="built-in ontologies (offline snapshots in data/)")
    for column in ("name", "release", "terms", "popularity columns (default first)", "source"):
        table.add_column(column, overflow="fold", no_wrap=column in ("name", "release", "terms"))
    for name, info in builtin_ontologies().items():
        pops = [info.default_popularity] + [p for p in info.popularity_columns if p != info.default_popularity]
        origin = "; ".join(sorted({s["origin"] for s in info.sources}))
        table.add_row(name, info.release, f"{info.n_terms:,}", ", ".join(pops), origin)
    print_table(table)


@data_app.command("show", cls=HelpCommand)
@command()
def show_cmd(
    ontology: str = typer.Argument(..., metavar="ONTOLOGY", help="Built-in name (hgnc, hpo, go) or a file path."),
    limit: str = typer.Option("10", "--limit", "-n", help="How many terms to print (at least 1), or all."),
    annotations: Path | None = typer.Option(None, "--annotations", help="Popularity file (GAF, phenotype.hpoa)."),
    popular: bool = typer.Option(False, "--popular", help="Most popular terms first."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the ontology's description and the terms as one JSON object (NaN as null)."
    ),
) -> None:
    """Print the first terms of an ontology (or the most popular with --popular), then its fields and tasks."""
    from lexprobe.cli._common import parse_limit

    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import FIELD_KINDS, MULTI_VALUED_FIELDS, ontology_fields, ontology_tasks

    n_terms = parse_limit(limit, minimum=1)
    ont = load_ontology(ontology, annotations=annotations)
    terms = ont.active()
    if popular and ont.default_popularity:
        terms = terms.sort_values(ont.default_popularity, ascending=False, kind="stable")
    columns = ["id", "label"]
    if terms["symbol"].notna().any():
        columns.append("symbol")
    columns.append("category")
    pops = [ont.default_popularity] if ont.default_popularity else []
    columns += pops + [c for c in ont.popularity_columns if c not in pops]
    shown = terms if n_terms is None else terms.head(n_terms)
    fields = ontology_fields(ont)
    tasks = ontology_tasks(ont)
    if as_json:
        print_json(
            {
                "ontology": ont.name,
                "release": ont.release,
                "source": str(ont.source),
                "n_terms": len(ont),
                "n_active": len(terms),
                "default_popularity": ont.default_popularity,
                "fields": [
                    {"field": f, "kind": FIELD_KINDS[f], "multi_valued": f in MULTI_VALUED_FIELDS} for f in fields
                ],
                "tasks": tasks,
                "terms": shown[columns].to_dict(orient="records"),
            }
        )
        return
    table = Table(
        title=f"{ont.name}: {len(terms):,} active of {len(ont):,} terms (release {ont.release or 'unknown'})",
        caption=f"source: {ont.source}; default popularity: {ont.default_popularity or 'none'}",
    )
    for column in columns:
        # ids, symbols and counts stay whole; names and categories wrap at spaces, never inside a short word
        whole = column in ("id", "symbol") or column.startswith("pop_")
        table.add_column(
            column,
            no_wrap=whole,
            min_width=None if whole else 16,
            ratio=None if whole else (3 if column == "label" else 1),
            justify="right" if column.startswith("pop_") else "left",
        )
    for row in shown[columns].itertuples(index=False):
        table.add_row(*("" if v is None or v != v else f"{v:g}" if isinstance(v, float) else str(v) for v in row))
    print_table(table)
    multi = [f for f in fields if f in MULTI_VALUED_FIELDS]
    console.print(
        f"fields: {', '.join(fields)}" + (f" (several values per term: {', '.join(multi)})" if multi else ""),
        highlight=False,
        soft_wrap=True,
    )
    console.print("tasks: --task SOURCE-to-TARGET for any two of these fields; named:", highlight=False)
    for entry in tasks:
        what = "the paper's" if entry["group"] == "paper" else f"{entry['group']}, {entry['kind']}"
        console.print(f"  {entry['task']}  ({what})", highlight=False, soft_wrap=True)


@data_app.command("fetch", cls=HelpCommand)
@command()
def fetch_cmd(
    name: FetchSource = typer.Argument(..., metavar="NAME", help="The release to download."),
    out: Path = typer.Option(Path("downloads"), "--out", "-o", help="Folder for the downloaded files."),
    url: list[str] | None = typer.Option(
        None, "--url", help="Download from this URL instead (repeatable). $LEXPROBE_FETCH_MIRROR sets a mirror base."
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the server."),
    checksum: list[str] | None = typer.Option(
        None,
        "--checksum",
        help="FILE=ALG:HEX, e.g. hp.obo=sha256:... (repeatable): refuse a download whose checksum differs.",
    ),
) -> None:
    """Download the official upstream release files (atomically, with their checksum and date)."""
    from lexprobe.ontology import fetch_ontology

    sums = {}
    for item in checksum or ():
        file_name, sep, digest = item.partition("=")
        if not sep or not file_name or not digest:
            raise typer.BadParameter(f"expected FILE=ALG:HEX, got {item!r}", param_hint="--checksum")
        sums[file_name.strip()] = digest.strip()
    paths = fetch_ontology(name, out, urls=tuple(url) if url else None, timeout=timeout, checksums=sums or None)
    for path in paths:
        console.print(f"{path}  ({path.stat().st_size:,} bytes; provenance in {path.name}.source.json)")
    if name != "go-annotations":
        console.print(f"load it with: lexprobe data show {paths[0]}")
    else:
        console.print(f"use it with: lexprobe data show go --annotations {paths[0]}")
