"""The HTML report: one self-contained page over any number of run directories; and the Markdown of a
``lexprobe correlate`` output (``summary.md``, :class:`CorrelationMarkdown`, which the stage renders with).

The page opens offline and alone (it can be mailed or archived): figures are embedded as base64 PNG data URIs,
tables are HTML, and a Content-Security-Policy forbids the browser from fetching anything. It opens with a summary
(:mod:`lexprobe.report._summary`): verdicts, warnings and headline numbers. Each run directory
is recognized by the ``stage`` field of its ``manifest.json`` (or ``evaluation_manifest.json``); a directory
without one is searched two levels down for run directories (a study). A training run's few-shot evaluations
(``RUN/shots-K/``) are shown right after it, each as an evaluation of its own, headed "K-shot".
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pandas as pd

import lexprobe
from lexprobe.exceptions import ReportError
from lexprobe.report._markdown import RULE_CELLS, RULE_KEYS, SKILL_CELLS, SUMMARY_HEADER, CorrelationMarkdown
from lexprobe.report._summary import summarize
from lexprobe.report._tables import Note, Run, Table, contained, heading, make_table, read_csv, read_json
from lexprobe.runs import REPORT_MARKER, atomic_write_text, few_shot_dirs, library_versions

__all__ = [
    "RULE_CELLS",
    "RULE_KEYS",
    "SKILL_CELLS",
    "SUMMARY_HEADER",
    "CorrelationMarkdown",
    "build_report",
    "find_run_dirs",
]

#: The files whose ``stage`` field says what a directory is, in order of preference.
_MANIFESTS = ("manifest.json", "evaluation_manifest.json")

#: How deep a directory without a manifest (a study) is searched for run directories.
_SEARCH_DEPTH = 2

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _all_bins(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["bin"].astype(str) == "all"] if "bin" in table else table


#: Each known stage's summary tables: (file, caption, row filter).
_STAGE_TABLES: dict[str, tuple[tuple[str, str, Callable[[pd.DataFrame], pd.DataFrame] | None], ...]] = {
    "align": (
        (
            "alignment_summary.csv",
            "alignment at each pair's best layer, against the maximum over layers of the permutation null",
            None,
        ),
    ),
    "lexicalization": (("lexicalization_fields.csv", "lexicalization per field (scores 0 to 1, 95% CI)", None),),
    "train": (("evaluation_summary.csv", "exact-match accuracy over all popularity bins (Wilson 95% CI)", _all_bins),),
    "evaluate": (
        ("evaluation_summary.csv", "exact-match accuracy over all popularity bins (Wilson 95% CI)", _all_bins),
    ),
    "correlate": (
        ("tasks.csv", "one row per task: features, accuracies and gains", None),
        ("correlations.csv", "rank correlations of gains with features (95% CI)", None),
        ("auc.csv", "how well features tell gained items apart (ROC AUC, 95% CI)", None),
    ),
    "predict": (
        ("prediction.csv", "the prediction for the task asked about", None),
        ("loto.csv", "leave-one-task-out check of the predictor", None),
    ),
}

#: Nothing may be fetched: images are data URIs, the style is inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); re-run the stage that wrote it") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} is not a lexprobe manifest (a JSON object with a `stage` field)")
    return data


def _manifest_of(directory: Path) -> dict[str, Any] | None:
    for name in _MANIFESTS:
        if contained(directory, directory / name):
            return _read_manifest(directory / name)
    return None


def _study_references(directory: Path, manifest: dict[str, Any]) -> list[Path]:
    """Run directories a study's manifest lists under ``outputs`` (as keys or values, relative or absolute)."""
    outputs = manifest.get("outputs")
    if not isinstance(outputs, dict):
        return []
    names = [*outputs, *(v for v in outputs.values() if isinstance(v, str))]
    candidates = [Path(n) if Path(n).is_absolute() else directory / n for n in names]
    return [c for c in candidates if c.is_dir() and _manifest_of(c) is not None]


def _collect(directory: Path, depth: int) -> list[Path]:
    manifest = _manifest_of(directory)
    if manifest is not None and manifest.get("stage") != "study":
        if manifest.get("stage") in ("train", "evaluate"):  # and its few-shot evaluations, apart
            return [directory, *(d for d in few_shot_dirs(directory) if _manifest_of(d) is not None)]
        return [directory]
    found: list[Path] = []
    if depth > 0:
        for child in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if child.is_symlink() and not child.resolve().is_relative_to(directory.resolve()):
                continue  # a link out of the directory searched (or a loop): not part of it
            found += _collect(child, depth - 1)
    if manifest is not None:  # a study: itself, then its runs
        found = [directory, *sorted(set(found) | set(_study_references(directory, manifest)))]
    return found


def find_run_dirs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The run directories behind ``paths``: each path itself if it is a run, else the runs found under it.

    Parameters
    ----------
    paths : sequence of path
        Run directories (each with a ``manifest.json``), or directories holding them (a study, with or
        without its own manifest of stage ``"study"``), searched two levels down.

    Returns
    -------
    list of Path
        In the order given, the runs under one path sorted; each directory once.

    Raises
    ------
    ReportError
        If a path is missing, is not a directory, holds no run, or has a manifest that is not valid JSON.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from lexprobe.runs import write_result_dir
    >>> summary = pd.DataFrame({"pair": ["name:symbol"], "metric": ["mknn"], "best_layer": [6], "value": [0.31]})
    >>> record = {"config": {"ontology": "hgnc"}, "inputs": {}, "seed": 0}
    >>> tables = {"alignment_summary.csv": summary}
    >>> with tempfile.TemporaryDirectory() as study:  # a study folder: the runs under it
    ...     _ = write_result_dir(Path(study, "align-hgnc"), tables, stage="align", record=record)
    ...     print([run.name for run in find_run_dirs([study])])
    ['align-hgnc']
    >>> find_run_dirs(["no/such/run"])
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.ReportError: run directory no/such/run does not exist
    """
    if not paths:
        raise ReportError("no run directory given; give at least one (a directory with a manifest.json)")
    found: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ReportError(f"run directory {path} does not exist")
        if not path.is_dir():
            raise ReportError(f"{path} is not a directory; give run directories (each with a manifest.json)")
        runs = _collect(path, _SEARCH_DEPTH)
        if not runs:
            raise ReportError(
                f"{path} is not a lexprobe run: no manifest.json in it or in its subdirectories "
                f"({_SEARCH_DEPTH} levels down)"
            )
        for run in runs:
            if run.resolve() not in seen:
                seen.add(run.resolve())
                found.append(run)
    return found


def build_report(
    run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Write one self-contained HTML page showing the results of run directories.

    Parameters
    ----------
    run_dirs : sequence of path
        Run directories of any stage (align, lexicalization, train, correlate, predict...), or study
        directories holding them (see :func:`find_run_dirs`).
    out : path
        The HTML file to write (atomically; its directory is created if missing).
    title : str, optional
        Page title (default "lexprobe report").

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ReportError
        If a directory is missing or holds no run, or ``out`` is a directory.

    Notes
    -----
    The page opens with a summary read from the runs' files: the verdicts of correlate and predict runs with
    their gains, intervals and the trivial baselines beside them, every warning the runs recorded, and the
    headline numbers of align, lexicalization and train/evaluate runs. Per run it then shows a heading
    (stage, ontology, task, model), the stage's tables under human column headers (every CSV for a stage it
    does not know), every PNG in the directory and its ``figures/`` folder, and each manifest in a
    ``<details>`` element. The page ends with the versions of lexprobe and the libraries that shaped the
    numbers. Numbers show 3 significant digits, a missing value an em dash; the page is rendered from
    ``templates/report.html.j2`` with autoescaping, so every text from a file is HTML-escaped.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from lexprobe.runs import write_result_dir
    >>> summary = pd.DataFrame({"pair": ["name:symbol"], "metric": ["mknn"], "best_layer": [6], "value": [0.31]})
    >>> record = {"config": {"ontology": "hgnc"}, "inputs": {}, "seed": 0}
    >>> tables = {"alignment_summary.csv": summary}  # an align run, as write_alignment leaves it
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_result_dir(Path(tmp, "align-hgnc"), tables, stage="align", record=record)
    ...     page = build_report([tmp], Path(tmp, "report.html"))
    ...     print(page.name, "<html" in page.read_text(encoding="utf-8"))
    report.html True
    """
    out = Path(out)
    if out.is_dir():
        raise ReportError(f"`out` {out} is a directory; give a file name such as {out / 'report.html'}")
    runs: list[Run] = []
    for path in find_run_dirs(run_dirs):
        manifest = _manifest_of(path) or {}
        runs.append(Run(path=path, stage=str(manifest.get("stage") or "unknown"), manifest=manifest))
    page = _render_page(runs, given=[str(p) for p in run_dirs], title=title or "lexprobe report")
    return atomic_write_text(out, page)


# --- what each run shows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Figure:
    name: str
    uri: str
    width: int
    height: int


@dataclass(frozen=True)
class _RunView:
    """One run's section as the template shows it."""

    heading: str
    name: str
    path: str
    meta: list[tuple[str, str]]
    warnings: list[str]
    norms: str
    tables: list[Table | Note]
    figures: list[_Figure | Note]
    manifests: list[tuple[str, str]]
    files: str


def _csv_table(path: Path, caption: str, rows: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Table | Note:
    frame = read_csv(path)
    if isinstance(frame, Note):
        return frame
    return make_table(rows(frame) if rows is not None else frame, f"{path.name}: {caption}")


def _gains_table(directory: Path) -> Table | None:
    """A trained run's memorization (train) and generalization (withheld) gains, from ``evaluation.json``."""
    evaluation = read_json(directory, "evaluation.json")
    gains = evaluation.get("gains") if evaluation else None
    if not isinstance(gains, dict) or not gains:
        return None
    frame = pd.DataFrame.from_dict(gains, orient="index").rename_axis("split").reset_index()
    return make_table(frame, "evaluation.json: gain = tuned − baseline accuracy (paired bootstrap 95% CI)")


def _tables(run: Run) -> list[Table | Note]:
    if run.stage not in _STAGE_TABLES:  # a stage this report does not know: every table it left
        return [_csv_table(p, "as written by the run") for p in sorted(run.path.glob("*.csv"))]  # links: a note
    found = [_csv_table(run.path / name, caption, rows) for name, caption, rows in _STAGE_TABLES[run.stage]]
    gains = _gains_table(run.path) if run.stage in ("train", "evaluate") else None
    return found + ([gains] if gains is not None else [])


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _figures(directory: Path) -> list[_Figure | Note]:
    found: list[_Figure | Note] = []
    for path in sorted(directory.glob("*.png")) + sorted((directory / "figures").glob("*.png")):
        name = path.relative_to(directory).as_posix()
        if not contained(directory, path):
            found.append(Note(f"{name} is a link out of the run directory or not a file; left out."))
            continue
        data = path.read_bytes()
        size = _png_size(data)
        if size is None:
            found.append(Note(f"{name} is not a PNG file; left out."))
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        found.append(_Figure(name=name, uri=uri, width=size[0], height=size[1]))
    return found


def _manifests(directory: Path) -> list[tuple[str, str]]:
    found = []
    for name in (n for n in _MANIFESTS if contained(directory, directory / n)):  # only the names the layout gives
        text = (directory / name).read_text(encoding="utf-8", errors="replace")
        try:
            text = json.dumps(json.loads(text), indent=2, sort_keys=True)
        except json.JSONDecodeError:
            pass  # shown as it is
        found.append((name, text))
    return found


def _files(directory: Path) -> str:
    entries = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():
            entries.append(f"{path.name} (link)")
        else:
            entries.append(f"{path.name}/" if path.is_dir() else f"{path.name} ({path.stat().st_size / 1024:.1f} KiB)")
    return ", ".join(entries)


def _token_norms(manifest: dict[str, Any]) -> str:
    """How far one token dominates the pooled states (largest pooled token norm over the median, worst layer
    per field), from the embedding diagnostics an align run records."""
    norms = manifest.get("token_norms")
    if not isinstance(norms, dict):
        return ""
    worst = []
    for field, rows in norms.items():
        ratios = [(r.get("max_over_median"), r.get("layer")) for r in rows or [] if isinstance(r, dict)]
        ratios = [(v, layer) for v, layer in ratios if isinstance(v, (int, float))]
        if ratios:
            value, layer = max(ratios)
            worst.append(f"{field} {value:.1f}x (layer {layer})")
    return ", ".join(worst)


def _view(run: Run) -> _RunView:
    return _RunView(
        heading=heading(run),
        name=run.path.name,
        path=str(run.path),
        meta=[(key, str(run.manifest[key])) for key in ("created", "seed") if run.manifest.get(key) is not None],
        warnings=[w for w in run.manifest.get("warnings") or [] if isinstance(w, str)],
        norms=_token_norms(run.manifest),
        tables=_tables(run),
        figures=_figures(run.path),
        manifests=_manifests(run.path),
        files=_files(run.path),
    )


# --- the page ----------------------------------------------------------------------------------------------


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("lexprobe.report", "templates"),
        autoescape=True,  # every text read from a file is escaped
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("report.html.j2")


def _versions() -> Table:
    versions = {"lexprobe": lexprobe.__version__, **library_versions()}
    frame = pd.DataFrame({"package": list(versions), "version": list(versions.values())})
    return make_table(frame, "as installed when the report was built")


def _render_page(runs: list[Run], *, given: list[str], title: str) -> str:
    return _template().render(
        title=title,
        csp=_CSP,
        marker=markupsafe.Markup(REPORT_MARKER),  # our own constant: the tag itself, not its text
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        given=given,
        summary=summarize(runs),
        runs=[_view(r) for r in runs],
        versions=_versions(),
    )
