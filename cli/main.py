"""The ``lexprobe`` command: composes one Typer sub-app or command per stage."""

from __future__ import annotations

import os

# OpenBLAS (NumPy's BLAS) keeps its worker threads spinning for about 2^28 cycles after each call, which takes
# a core from the compiled permutation loops and FAISS (OpenMP) that follow NumPy products in `lexprobe align`
# (1.8x slower in docs/benchmarks.md). It reads this only when it loads, so it is set before NumPy is imported;
# a value the user set is kept. It does not change any result.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import typer  # noqa: E402
from lexprobe.cli._help import HelpCommand, HelpGroup  # noqa: E402

app = typer.Typer(
    name="lexprobe",
    help=(
        "Will fine-tuning a language model to map biomedical terms to identifiers generalize, or only "
        "memorize? lexprobe measures popularity, lexicalization and embedding alignment to tell you first."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=HelpGroup,
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"lexprobe {version('lexprobe')}")
        except PackageNotFoundError:  # run from a source tree that is not installed
            print("lexprobe (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Every command takes -v/--verbose and -q/--quiet; commands that write take -o/--out (a folder)."""


# --- commands: one line each (modules import their heavy dependencies lazily, inside the command) ---
from lexprobe.cli.align import align_cmd  # noqa: E402
from lexprobe.cli.cache import cache_app  # noqa: E402
from lexprobe.cli.data import data_app  # noqa: E402
from lexprobe.cli.embed import embed_cmd  # noqa: E402
from lexprobe.cli.exposure import exposure_cmd  # noqa: E402
from lexprobe.cli.lexicalization import lexicalization_cmd  # noqa: E402
from lexprobe.cli.popularity import popularity_cmd  # noqa: E402
from lexprobe.cli.predict import correlate_cmd, predict_cmd  # noqa: E402
from lexprobe.cli.report import report_cmd  # noqa: E402
from lexprobe.cli.split import split_cmd  # noqa: E402
from lexprobe.cli.study import spread_cmd, study_cmd  # noqa: E402
from lexprobe.cli.train import evaluate_cmd, train_cmd  # noqa: E402

app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
for _name, _command in (
    ("split", split_cmd),
    ("embed", embed_cmd),
    ("align", align_cmd),
    ("lexicalization", lexicalization_cmd),
    ("train", train_cmd),
    ("evaluate", evaluate_cmd),
    ("report", report_cmd),
    ("correlate", correlate_cmd),
    ("predict", predict_cmd),
    ("popularity", popularity_cmd),
    ("exposure", exposure_cmd),
    ("study", study_cmd),
    ("spread", spread_cmd),
):
    app.command(_name, cls=HelpCommand)(_command)


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
