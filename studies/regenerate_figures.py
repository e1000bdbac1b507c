"""Redraw the figures of recorded runs from their tables, without a model, and a study's ``report.html``.

``docs/results`` keeps every run's tables and manifests but not every figure (docs/design.md, "Stored
results"): no SVG, and in a study folder only the UMAP figures (they need the embeddings). This script draws
the rest again with lexprobe's own figure functions, into the place the stage drew it, from the files the stage
wrote beside it:

- align: ``figures/alignment_by_layer`` from ``alignment.csv`` (``umap_pairs`` needs the model: re-run align);
- lexicalization: ``figures/{lexicalization_distributions,tokens_per_item,probe_by_layer}`` from
  ``lexicalization_items.csv`` and ``lexicalization_layers.csv``;
- correlate: every figure under ``figures/`` from its CSVs (the stage's own drawing, through
  ``write_correlation`` into a scratch folder);
- training runs: ``loss_curve`` from ``loss.csv``, ``accuracy_by_bin`` from ``evaluation_summary.csv`` (a K-shot
  evaluation in ``shots-K/`` too), ``learning_curve`` from ``learning_curve.csv``;
- popularity: ``popularity_halves`` from ``popularity_tasks.csv``.

A figure already there is left as it is unless ``--overwrite``. PNG only, unless ``--svg`` (the figure functions
draw both; the SVG is dropped otherwise). ``--report`` then writes a study folder's ``report.html`` as the
study's report stage does (its runs in the study's order, the same title), figures embedded. ``--list`` only
says what each run has and what could be drawn.

    python studies/regenerate_figures.py docs/results/study-v2-smollm2 --report
    python studies/regenerate_figures.py docs/results --list
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: The figures each kind of run draws, and where (relative to the run).
LEXICALIZATION_FIGURES = ("lexicalization_distributions", "tokens_per_item", "probe_by_layer")


@dataclass(frozen=True)
class Figure:
    """A figure of a run: where its files go, how to draw it (into a scratch folder), or why it cannot be."""

    run: Path
    folder: Path  # the run itself, or its figures/ folder
    stems: tuple[str, ...]  # every stem ``draw`` writes (a stage may draw several figures in one go)
    draw: Callable[[Path], object] | None
    reason: str = ""  # why there is no ``draw``

    def files(self, formats: Sequence[str]) -> list[Path]:
        return [self.folder / f"{stem}.{ext}" for stem in self.stems for ext in formats]


@dataclass(frozen=True)
class Outcome:
    path: Path
    status: str  # "drawn", "kept" (already there), "cannot" (with the reason), "would draw" (--list)
    reason: str = ""


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def _recorded_stems(manifest: dict) -> tuple[str, ...]:
    """The figures a stage's manifest lists among its outputs (align, lexicalization, correlate)."""
    outputs = manifest.get("outputs")
    names = outputs if isinstance(outputs, dict) else {}
    return tuple(dict.fromkeys(Path(n).stem for n in names if n.endswith((".png", ".svg"))))


def _missing(run: Path, names: Sequence[str]) -> str:
    gone = [n for n in names if not (run / n).is_file()]
    return f"{', '.join(gone)} not in {run}" if gone else ""


def _align(run: Path, manifest: dict) -> list[Figure]:
    from lexprobe.figures import plot_alignment_by_layer

    title = manifest["inputs"]["ontology"]["name"]
    missing = _missing(run, ["alignment.csv"])

    def draw(directory: Path) -> object:  # as the align stage draws it: best layers marked, k in the title
        summary = run / "alignment_summary.csv"
        return plot_alignment_by_layer(
            pd.read_csv(run / "alignment.csv"),
            directory,
            title=title,
            summary=pd.read_csv(summary) if summary.is_file() else None,
            k=manifest.get("config", {}).get("k"),
        )

    out = [Figure(run, run / "figures", ("alignment_by_layer",), None if missing else draw, missing)]
    if "umap_pairs" in _recorded_stems(manifest):
        why = "needs the embeddings: re-run `lexprobe align` with the settings in manifest.json"
        out.append(Figure(run, run / "figures", ("umap_pairs",), None, why))
    return out


def _lexicalization(run: Path, manifest: dict) -> list[Figure]:
    from lexprobe.figures import plot_lexicalization

    def draw(directory: Path) -> object:
        layers = _csv(run / "lexicalization_layers.csv")
        items = pd.read_csv(run / "lexicalization_items.csv")
        return plot_lexicalization(items, directory, layers=pd.DataFrame() if layers is None else layers, title=title)

    title = manifest["inputs"]["ontology"]["name"]
    stems = _recorded_stems(manifest) or LEXICALIZATION_FIGURES
    missing = _missing(run, ["lexicalization_items.csv"])
    if missing:
        missing += "; re-run `lexprobe lexicalization` with the settings in manifest.json"
    return [Figure(run, run / "figures", stems, None if missing else draw, missing)]


def _correlate(run: Path, manifest: dict) -> list[Figure]:
    from lexprobe.predict import CorrelationResult, write_correlation

    def draw(directory: Path) -> object:
        tables = {k: _csv(run / f"{k}.csv") for k in ("items", "tasks", "correlations", "auc", "loto", "holdout")}
        if tables["items"] is None:  # a calibration set keeps its items gzipped
            tables["items"] = pd.read_csv(run / "items.csv.gz")
        result = CorrelationResult(**tables, baselines=_csv(run / "baselines.csv"), manifest=manifest)
        scratch = directory / "run"
        write_correlation(result, scratch)
        for path in (scratch / "figures").iterdir():
            path.replace(directory / path.name)
        return None

    items = "items.csv.gz" if (run / "items.csv.gz").is_file() else "items.csv"
    missing = _missing(run, [items, "tasks.csv", "correlations.csv", "auc.csv"])
    return [Figure(run, run / "figures", _recorded_stems(manifest), None if missing else draw, missing)]


def _popularity(run: Path, manifest: dict) -> list[Figure]:
    from lexprobe.figures import plot_popularity_halves

    shots = int(manifest.get("config", {}).get("shots", 0))
    missing = _missing(run, ["popularity_tasks.csv"])

    def draw(directory: Path) -> object:
        return plot_popularity_halves(pd.read_csv(run / "popularity_tasks.csv"), directory, shots=shots)

    return [Figure(run, run, ("popularity_halves",), None if missing else draw, missing)]


def _training(run: Path) -> list[Figure]:
    """The figures of a training run's files: the loss, accuracy by bin of an evaluation, the learning curve."""
    from lexprobe.figures import plot_accuracy_by_bin, plot_learning_curve, plot_loss_curve

    out = []
    config = _json(run / "train_config.json").get("config", {})
    if (run / "loss.csv").is_file() and config:
        loss_title = f"{config['ontology']} {config['task']} ({config['model']})"

        def loss(directory: Path) -> object:
            return plot_loss_curve(pd.read_csv(run / "loss.csv"), directory, title=loss_title)

        out.append(Figure(run, run, ("loss_curve",), loss))
    evaluation = _json(run / "evaluation.json")
    if evaluation and (run / "evaluation_summary.csv").is_file():
        shots = f" ({evaluation['shots']}-shot)" if evaluation.get("shots") else ""
        by_bin_title = f"{evaluation['ontology']} {evaluation['task']}{shots}"

        def by_bin(directory: Path) -> object:
            summary = pd.read_csv(run / "evaluation_summary.csv", dtype={"bin": str})
            return plot_accuracy_by_bin(summary[summary["bin"] != "all"], directory, title=by_bin_title)

        out.append(Figure(run, run, ("accuracy_by_bin",), by_bin))
    curve = _json(run / "learning_curve_manifest.json")
    if curve and (run / "learning_curve.csv").is_file():
        trained = curve["inputs"]["train_config"]
        curve_title = f"{trained['ontology']} {trained['task']} ({trained['model']})"
        ln_n_targets = float(curve["outputs"]["ln_n_targets"])

        def learning(directory: Path) -> object:
            table = pd.read_csv(run / "learning_curve.csv")
            return plot_learning_curve(table, directory, ln_n_targets=ln_n_targets, title=curve_title)

        out.append(Figure(run, run, ("learning_curve",), learning))
    return out


STAGES = {"align": _align, "lexicalization": _lexicalization, "correlate": _correlate, "popularity": _popularity}


def run_figures(run: Path) -> list[Figure]:
    """Every figure the files of one run directory (not its subfolders) stand for."""
    stage = _json(run / "manifest.json").get("stage")
    found = STAGES[stage](run, _json(run / "manifest.json")) if stage in STAGES else []
    return found + _training(run)


def _runs(paths: Sequence[Path]) -> Iterator[Path]:
    seen = set()
    for path in paths:
        if not path.is_dir():
            raise SystemExit(f"regenerate_figures: {path} is not a folder")
        for folder in sorted({path, *(p.parent for p in path.rglob("*.json"))}):
            if folder.resolve() not in seen and folder.name != "figures":
                seen.add(folder.resolve())
                yield folder


def regenerate(
    paths: Sequence[str | os.PathLike[str]], *, svg: bool = False, overwrite: bool = False, dry_run: bool = False
) -> list[Outcome]:
    """Redraw the figures of the runs in ``paths`` (runs, or folders holding runs at any depth).

    Returns one outcome per file: drawn, kept (there already; ``overwrite`` redraws it), cannot (with the
    reason), or would draw (``dry_run``).
    """
    formats = ("png", "svg") if svg else ("png",)
    outcomes = []
    for run in _runs([Path(p) for p in paths]):
        for figure in run_figures(run):
            wanted = [p for p in figure.files(formats) if overwrite or not p.is_file()]
            kept = [p for p in figure.files(formats) if p not in wanted]
            outcomes += [Outcome(p, "kept") for p in kept]
            if not wanted:
                continue
            if figure.draw is None:
                outcomes += [Outcome(p, "cannot", figure.reason) for p in wanted]
                continue
            if dry_run:
                outcomes += [Outcome(p, "would draw") for p in wanted]
                continue
            with tempfile.TemporaryDirectory(prefix="lexprobe-figures-") as scratch:
                figure.draw(Path(scratch))
                figure.folder.mkdir(parents=True, exist_ok=True)
                for path in wanted:
                    drawn = Path(scratch) / path.name
                    if not drawn.is_file():  # the stage did not draw it from these tables (an empty one)
                        outcomes.append(Outcome(path, "cannot", f"the recorded tables draw no {path.name}"))
                        continue
                    part = path.with_name(f".{path.name}.tmp")
                    shutil.copyfile(drawn, part)
                    part.replace(path)
                    outcomes.append(Outcome(path, "drawn"))
    return outcomes


def study_report(study: str | os.PathLike[str], *, overwrite: bool = False) -> Path | None:
    """Write ``STUDY/report.html`` as the study's report stage did: each ontology's align and lexicalization,
    the evaluated runs in the study's order (its correlate manifest's), then correlate, under the same title.
    None when ``study`` is no study folder or its report is there already (``overwrite`` replaces it)."""
    from lexprobe.report import build_report

    root = Path(study)
    manifest = _json(root / "manifest.json")
    out = root / "report.html"
    if manifest.get("stage") != "study" or (out.is_file() and not overwrite):
        return None
    config = manifest["config"]
    ontologies = config["ontologies"]
    dirs = [root / o / part for o in ontologies for part in ("align", "lexicalization")]
    dirs = [d for d in dirs if (d / "manifest.json").is_file()]
    correlate = root / "correlate"
    listed = _json(correlate / "manifest.json").get("inputs", {}).get("runs", [])
    dirs += [root / r["run"] for r in listed if (root / r["run"] / "evaluation_manifest.json").is_file()]
    if (correlate / "manifest.json").is_file():
        dirs.append(correlate)
    return build_report(dirs, out, title=f"lexprobe study: {', '.join(ontologies)} with {config['model']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run folders, or folders holding runs (a study)")
    parser.add_argument("--svg", action="store_true", help="write the SVG beside each PNG")
    parser.add_argument("--overwrite", action="store_true", help="redraw figures that are there already")
    parser.add_argument("--report", action="store_true", help="then write each study folder's report.html")
    parser.add_argument("--list", action="store_true", help="only say what is there and what could be drawn")
    args = parser.parse_args(argv)
    outcomes = regenerate(args.paths, svg=args.svg, overwrite=args.overwrite, dry_run=args.list)
    for outcome in outcomes:
        if outcome.status != "kept" or args.list:
            print(f"{outcome.status:10} {outcome.path}" + (f"  ({outcome.reason})" if outcome.reason else ""))
    if args.report and not args.list:
        for path in args.paths:
            if (report := study_report(path, overwrite=args.overwrite)) is not None:
                print(f"{'report':10} {report}")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("drawn", "kept", "cannot", "would draw")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no figures found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
