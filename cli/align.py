"""``lexprobe align``: per-layer alignment of paired fields (name:symbol, name:id...), with chance levels."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from lexprobe.cli._common import (
    MAX_RESAMPLES,
    categories_option,
    console,
    err_console,
    parse_limit,
    print_json,
    print_table,
    split_csv,
)
from lexprobe.cli._options import (
    METRICS,
    CILayers,
    DryRunOption,
    ModelOptions,
    NoFiguresOption,
    OntologyOption,
    OverwriteOption,
    Pool,
    Preprocess,
    RetrievalMap,
    WaitOption,
    command,
    csv_choices,
    hold_run_dir,
)

from lexprobe.exceptions import LexprobeWarning

Pairs = Annotated[
    str | None,
    typer.Option("--pairs", help="Field pairs, e.g. name:symbol,name:id (default: hgnc all three; others name:id)."),
]
Limit = Annotated[
    str, typer.Option("--limit", "-n", help="Popularity-balanced sample of N terms (at least 5), or all.")
]
Category = Annotated[
    str | None,
    typer.Option(
        "--category",
        help="Term categories to sample (comma-separated), or all; default the ontology's (hgnc: protein-coding).",
    ),
]
Layers = Annotated[str, typer.Option("--layers", help="all, or indices like 0,8,-1 (0 = embeddings).")]
PoolOption = Annotated[Pool, typer.Option("--pool", help="Over the item's own tokens: mean, or the last or first.")]
Prefix = Annotated[
    str, typer.Option("--prefix", help="Sink prefix, never pooled: auto, bos, none (old pooling) or a literal text.")
]
Metrics = Annotated[
    str,
    typer.Option(
        "--metrics",
        callback=csv_choices(METRICS, "--metrics"),
        help=f"Comma-separated, from {','.join(METRICS)} (retrieval and rsa cost more).",
    ),
]
K = Annotated[int, typer.Option("--k", min=1, help="Neighbours for mutual kNN.")]
RetrievalK = Annotated[int, typer.Option("--retrieval-k", min=1, help="Retrieval hit within the top K.")]
RetrievalMapOption = Annotated[
    RetrievalMap, typer.Option("--retrieval-map", help="Map for retrieval, fitted on half the items.")
]
Permutations = Annotated[
    int, typer.Option("--permutations", min=0, max=MAX_RESAMPLES, help="Shuffles of the pairing for the null.")
]
CKAPermutations = Annotated[
    str,
    typer.Option(
        "--cka-permutations",
        help="Shuffles for the CKA metrics' p-value and layer max: auto (= --permutations up to 8192 items, "
        "0 above) or N. Their null mean, sd and z are exact at any N; with 0 p is Cantelli's bound.",
    ),
]
Bootstrap = Annotated[
    int, typer.Option("--bootstrap", min=0, max=MAX_RESAMPLES, help="Bootstrap resamples for confidence intervals.")
]
CILayersOption = Annotated[CILayers, typer.Option("--ci-layers", help="CKA intervals at the best layer or at all.")]
PreprocessOption = Annotated[Preprocess, typer.Option("--preprocess", help="Per-dimension preprocessing.")]
SurfaceControl = Annotated[
    bool,
    typer.Option(
        "--surface-control/--no-surface-control",
        help="Also measure each metric with token count, digit and punctuation share regressed out of both sides.",
    ),
]
Seed = Annotated[
    int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the sample, permutations and bootstrap.")
]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default runs/<model>/align-<ontology>).")]
NoUmap = Annotated[bool, typer.Option("--no-umap", help="Skip the UMAP figure (the by-layer figure is kept).")]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the summary as one JSON object (no table, no progress; NaN as null).")
]


@command(model="full")
def align_cmd(
    ontology: OntologyOption,
    pairs: Pairs = None,
    limit: Limit = "2000",
    category: Category = None,
    layers: Layers = "all",
    pool: PoolOption = Pool.mean,
    prefix: Prefix = "auto",
    metrics: Metrics = "mknn,cka,dcka",
    k: K = 10,
    retrieval_k: RetrievalK = 1,
    retrieval_map: RetrievalMapOption = RetrievalMap.ridge,
    permutations: Permutations = 100,
    cka_permutations: CKAPermutations = "auto",
    bootstrap: Bootstrap = 100,
    ci_layers: CILayersOption = CILayers.best,
    preprocess: PreprocessOption = Preprocess.standardize,
    surface_control: SurfaceControl = True,
    seed: Seed = 0,
    out: Out = None,
    no_figures: NoFiguresOption = False,
    no_umap: NoUmap = False,
    overwrite: OverwriteOption = False,
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    as_json: AsJson = False,
    model_options: ModelOptions = None,  # type: ignore[assignment]  # from @command: --model, --dtype...
    quiet: bool = False,
) -> None:
    """Measure how far names and their symbols or ids are aligned in a model's hidden states, per layer."""
    from lexprobe.align import AlignmentConfig
    from lexprobe.embed import ExtractionConfig
    from lexprobe.runs import check_run_dir, default_out_dir, settings_of

    config = AlignmentConfig(
        ontology=ontology,
        pairs=split_csv(pairs),
        model=model_options.model,
        dtype=model_options.resolved_dtype(),
        limit=parse_limit(limit),
        categories=None if (chosen := categories_option(category)) is None else tuple(chosen),
        layers=ExtractionConfig.parse_layers(layers),
        pool=pool,
        prefix=prefix,
        metrics=split_csv(metrics) or (),
        k=k,
        retrieval_k=retrieval_k,
        retrieval_map=retrieval_map,
        permutations=permutations,
        cka_permutations=_cka_permutations(cka_permutations),
        bootstrap=bootstrap,
        ci_layers=ci_layers,
        preprocess=preprocess,
        seed=seed,
        batch_size=model_options.batch_size,
        surface_control=surface_control,
    )
    ExtractionConfig(layers=config.layers, pool=pool, prefix=prefix)  # type: ignore[arg-type]  # validate first
    target = out or default_out_dir("align", ontology, model_options.model)
    settings = settings_of(config, leave_out=("batch_size",))
    check_run_dir(target, "align", settings, overwrite=overwrite, dry_run=dry_run)  # a dry run refuses the same
    if dry_run:
        _dry_run(config, model_options, as_json)
        return
    hold_run_dir(target, wait=wait)
    result = _run(config, model_options, target, quiet=quiet, as_json=as_json, figures=not no_figures, umap=not no_umap)
    if as_json:
        print_json(_summary(result, target))
        return
    _print_results(result, config, target)


def _run(config, model_options: ModelOptions, target: Path, *, quiet: bool, as_json: bool, figures: bool, umap: bool):
    """Load the model, measure the alignment and write it to ``target`` (the model's load time in the manifest)."""
    from lexprobe.cli._progress import progress_display

    from lexprobe.align import run_alignment, write_alignment

    started = time.perf_counter()
    lm = model_options.load()
    loaded = time.perf_counter() - started
    with progress_display(quiet, json=as_json) as progress:
        with warnings.catch_warnings():  # the run's LexprobeWarnings are its manifest's warnings, printed below
            warnings.simplefilter("ignore", LexprobeWarning)
            result = run_alignment(config, model=lm, progress=progress)
        result.manifest.setdefault("timings", {})["load_model"] = round(loaded, 3)  # loaded here, not in the run
        write_alignment(result, target, figures=figures, umap=umap)
    return result


def _print_results(result, config, target: Path) -> None:
    """The summary table, the surface-controlled one, and the notes on how to read them."""
    n = result.manifest["inputs"]["n_items"]
    print_table(_summary_table(result, config, n))
    if "value_ctl" in result.summary:
        print_table(_controlled_table(result.summary, config, n))
    console.print(
        "best layer = the layer with the highest value; its null is the maximum over layers of the permutation "
        f"null ({config.permutations} shuffles), so choosing it does not inflate z. "
        f"Per-layer rows: {target}/alignment.csv"
    )
    if (result.summary.get("null") == "moments").any():
        console.print(
            "CKA rows: no CKA shuffle was run (--cka-permutations "
            f"{config.cka_permutations}, {n} items); z is from the exact null moments, p (≤) is Cantelli's bound "
            "summed over layers, and the null shown is the largest per-layer null mean"
        )
    neighbours = result.manifest.get("neighbours", {})
    if neighbours.get("search") == "hnsw":
        console.print(
            f"neighbours: approximate (FAISS HNSW, {n} items); recall@{config.k} against exact search on "
            f"{neighbours['recall_queries']} items per field and layer: {neighbours['recall_min']:.3f} at worst, "
            f"{neighbours['recall_mean']:.3f} on average"
        )
    for line in result.manifest.get("warnings", []):
        err_console.print(f"warning: {line}", markup=False, emoji=False)  # "name:id:" is no emoji


def _summary_table(result, config, n: int):
    """Each pair and metric at its best layer, against its layer-max null."""
    from rich.table import Table

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
            _null_text(row.null_max_mean, row.null_max_sd),
            f"{row.z:.1f}",
            _p_text(row.p_value, _shuffles(row, config, n)),
            f"{row.effect:+.3f}",
            "" if ratio != ratio else f"{ratio:.2f}",
        )
    return table


def _cka_permutations(text: str) -> int | str:
    """``--cka-permutations``: ``auto`` or a count (a bad value gets the config's one-line error)."""
    text = text.strip().lower()
    return "auto" if text == "auto" else int(text) if text.isdigit() else text


def _shuffles(row, config, n: int) -> int:
    """The shuffles a summary row's p-value rests on (-1: a bound from the exact moments)."""
    if getattr(row, "null", "permutations") == "moments":
        return -1
    return config.resolved_cka_permutations(n) if row.metric in ("cka", "dcka") else config.permutations


def _null_text(mean: float, sd: float) -> str:
    return f"{mean:.3f}" if sd != sd else f"{mean:.3f} ± {sd:.3f}"


def _controlled_table(summary, config, n: int):
    """The surface-controlled metric at its own best layer, beside the share of the raw effect it keeps."""
    from rich.table import Table

    table = Table(
        title="surface-form control: the same metrics with token count, digit and punctuation share regressed "
        "out of each side (columns *_ctl)"
    )
    for column in ("pair", "metric", "best layer", "controlled", "null (layer max)", "z", "p", "effect", "kept"):
        table.add_column(column, justify="left" if column in ("pair", "metric") else "right")
    for row in summary.itertuples(index=False):
        table.add_row(
            row.pair,
            row.metric,
            str(row.best_layer_ctl),
            f"{row.value_ctl:.3f}",
            _null_text(row.null_max_mean_ctl, row.null_max_sd_ctl),
            f"{row.z_ctl:.1f}",
            _p_text(row.p_value_ctl, _shuffles(row, config, n)),
            f"{row.effect_ctl:+.3f}",
            "" if row.effect_kept != row.effect_kept else f"{row.effect_kept:.0%}",
        )
    return table


def _p_text(p_value: float, permutations: int) -> str:
    """The permutation p-value, shown as its floor ("≤ 1/(m+1)") when no shuffle reached the value; a bound from
    the exact moments (``permutations`` -1) as "≤ bound"."""
    if p_value != p_value or not permutations:
        return ""
    if permutations < 0:
        return f"≤{p_value:.2g}"
    floor = 1 / (permutations + 1)
    return f"≤{floor:.2g}" if p_value <= floor * (1 + 1e-9) else f"{p_value:.2g}"


def _summary(result, target: Path) -> dict:
    """The run's summary, neighbours, warnings and timings (printed as strict JSON by ``--json``)."""
    inputs = result.manifest["inputs"]
    return {
        "out": str(target),
        "ontology": inputs["ontology"]["name"],
        "model": inputs["model"]["name"],
        "n_items": inputs["n_items"],
        "summary": result.summary.to_dict(orient="records"),
        "neighbours": result.manifest.get("neighbours"),
        "warnings": result.manifest.get("warnings", []),
        "timings": result.manifest.get("timings", {}),
    }


def _dry_run(config, model_options: ModelOptions, as_json: bool) -> None:
    """``--dry-run``: what the run would embed and measure, and what it would cost here."""
    from lexprobe.costs import estimate_alignment

    cost = estimate_alignment(config, device=model_options.device)
    if as_json:
        print_json(cost.to_dict())
    else:
        for line in cost.lines():
            console.print(line, markup=False, soft_wrap=True)
