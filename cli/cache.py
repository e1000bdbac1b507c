"""``lexprobe cache``: see what ``$LEXPROBE_CACHE`` holds and clear parts of it."""

from __future__ import annotations

import json
import sys

import typer
from lexprobe.cli._common import console, err_console, fail, print_table, split_csv, styled
from lexprobe.cli._help import HelpCommand, HelpGroup
from lexprobe.cli._options import command, csv_choices

cache_app = typer.Typer(
    help="List, size and clear the cache: embeddings, converted models, parsed ontologies, measured speeds.",
    no_args_is_help=True,
    cls=HelpGroup,
)


#: The kinds of cache entry (``lexprobe.cache.KINDS``; a test checks that the two agree).
KINDS = ("embeddings", "model", "gguf", "ontology", "rates", "other")


def _kinds(kind: str | None) -> list[str] | None:
    return list(split_csv(kind) or ()) or None


def _kind_option() -> typer.models.OptionInfo:
    return typer.Option(
        None,
        "--kind",
        callback=csv_choices(KINDS, "--kind"),
        help=f"Only these kinds, comma-separated: {','.join(KINDS)}.",
    )


@cache_app.command("path", cls=HelpCommand)
@command()
def path_cmd() -> None:
    """Print the cache directory ($LEXPROBE_CACHE, default ~/.cache/lexprobe)."""
    from lexprobe.cache import cache_root

    print(cache_root())


@cache_app.command("list", cls=HelpCommand)
@command()
def list_cmd(
    kind: str | None = _kind_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as one JSON object."),
) -> None:
    """List what the cache holds: kind, what it is, size, last use, and unfinished work."""
    from rich.table import Table

    from lexprobe.cache import cache_root, list_entries
    from lexprobe.costs import format_bytes

    entries = list_entries(_kinds(kind))
    total = sum(e.size for e in entries)
    if as_json:
        record = {"root": str(cache_root()), "total_bytes": total, "entries": [e.to_dict() for e in entries]}
        print(json.dumps(record, indent=2, allow_nan=False))
        return
    table = Table(title=str(cache_root()), title_justify="left")
    for column, justify in (("kind", "left"), ("model", "left"), ("what", "left"), ("size", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("last used")
    table.add_column("name", overflow="fold")
    for e in entries:
        what = e.description if e.complete else styled(e.description, "yellow")
        used = e.last_used.astimezone().strftime("%Y-%m-%d %H:%M")
        table.add_row(e.kind, e.model, what, format_bytes(e.size), used, e.path.name)
    print_table(table)
    incomplete = sum(not e.complete for e in entries)
    extra = f", {incomplete} unfinished (clear them with `lexprobe cache clear --incomplete`)" if incomplete else ""
    console.print(f"{len(entries)} entries, {format_bytes(total)}{extra}")


@cache_app.command("clear", cls=HelpCommand)
@command()
def clear_cmd(
    kind: str | None = _kind_option(),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Only entries of this model (as runs name it; wildcards like 'gemma*')."
    ),
    older_than: str | None = typer.Option(None, "--older-than", help="Only entries unused for this long: 30d, 12h."),
    incomplete: bool = typer.Option(False, "--incomplete", help="Only unfinished work (shards, interrupted writes)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Remove nothing; show what would be removed."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print what was removed as one JSON object."),
) -> None:
    """Remove cache entries that match every filter given (everything, with none); entries in use are kept."""
    from lexprobe.cache import clear_entries, parse_age
    from lexprobe.costs import format_bytes

    if older_than is not None:
        parse_age(older_than)  # a bad age is told before anything is asked
    filters = {"kind": _kinds(kind), "model": model, "older_than": older_than, "incomplete_only": incomplete}
    if not dry_run and not yes:
        plan = clear_entries(**filters, dry_run=True)
        if not plan.removed:
            console.print("nothing to clear")
            return
        if not _stdin_is_terminal():
            raise fail(
                f"would remove {len(plan.removed)} entries ({format_bytes(plan.bytes_freed)}); stdin is not a "
                "terminal, so pass --yes to confirm (or --dry-run to look first)",
                code=2,
            )
        for line in _entry_lines(plan.removed):
            err_console.print(line, markup=False, soft_wrap=True)
        what = f"{len(plan.removed)} entries, {format_bytes(plan.bytes_freed)}"
        if not typer.confirm(f"Remove {what} from the cache?", default=False, err=True):
            raise typer.Exit(1)
    result = clear_entries(**filters, dry_run=dry_run)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        return
    verb = "would free" if dry_run else "freed"
    for line in _entry_lines(result.removed):
        console.print(("would remove " if dry_run else "removed ") + line, markup=False)
    for entry, why in result.skipped:
        err_console.print(f"kept {entry.path.name} ({entry.kind}): {why}", markup=False)
    console.print(f"{len(result.removed)} entries, {verb} {format_bytes(result.bytes_freed)}")


def _stdin_is_terminal() -> bool:
    """Whether a person can answer the confirmation (stdin is an interactive terminal)."""
    return sys.stdin.isatty()


def _entry_lines(entries) -> list[str]:
    from lexprobe.costs import format_bytes

    return [f"{e.kind} {e.path.name}: {e.description} ({format_bytes(e.size)})" for e in entries]
