"""The HTML report: one self-contained page over any number of run directories.

The page opens offline and alone (it can be mailed or archived): figures are embedded as base64 PNG data URIs,
tables are HTML, and a Content-Security-Policy forbids the browser from fetching anything. Each run directory
is recognized by the ``stage`` field of its ``manifest.json`` (or ``evaluation_manifest.json``); a directory
without one is searched two levels down for run directories (a study). A training run's few-shot evaluations
(``RUN/shots-K/``) are shown right after it, each as an evaluation of its own, headed "K-shot".
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Number
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import ReportError
from lexprobe.runs import REPORT_MARKER, atomic_write_text, few_shot_dirs, library_versions

__all__ = ["build_report", "find_run_dirs"]

#: The files whose ``stage`` field says what a directory is, in order of preference.
_MANIFESTS = ("manifest.json", "evaluation_manifest.json")

#: How deep a directory without a manifest (a study) is searched for run directories.
_SEARCH_DEPTH = 2

#: Rows shown per table; the rest stay in the CSV.
_MAX_ROWS = 60

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _contained(directory: Path, path: Path) -> bool:
    """Whether ``path`` is a regular file that, with every symlink resolved, lies inside ``directory``.

    A report reads only files the run layout names, and only these: a run directory received from someone
    else may hold a symlink (``manifest.json -> ~/.ssh/id_rsa``) that would otherwise copy a file of the reader's
    into the page.
    """
    try:
        resolved = path.resolve(strict=True)
        return resolved.is_file() and resolved.is_relative_to(directory.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
        return False


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

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#222;
margin:0 auto;max-width:1180px;padding:1.5em 2em 4em}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2.2em}
h3{font-size:1.05em;margin:1.4em 0 .5em;color:#333}
.meta,.files,.note{color:#555;font-size:.9em}.note{font-style:italic}
.warning{color:#8a4b00;background:#fff6e0;padding:.2em .5em}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.86em}
pre{background:#f6f8fa;border:1px solid #ddd;padding:.8em;overflow-x:auto;max-height:32em}
nav{background:#f6f8fa;border:1px solid #ddd;padding:.6em 1.4em;margin:1.2em 0}nav ol{margin:.3em 0}
.table{overflow-x:auto;margin:.6em 0 1.2em}
table{border-collapse:collapse;font-size:.85em}
caption{text-align:left;color:#555;padding:.2em 0 .4em;font-style:italic}
th,td{border-bottom:1px solid #e3e3e3;padding:.25em .6em;white-space:nowrap}
th{background:#eef3f8;text-align:left;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
figure{display:inline-block;margin:.4em 1.2em 1em 0;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
details{margin:.4em 0}summary{cursor:pointer;color:#0072B2}
"""

#: Nothing may be fetched: images are data URIs, the style is inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class _Run:
    path: Path
    stage: str
    manifest: dict[str, Any]


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
        if _contained(directory, directory / name):
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
    Per run the page shows a heading (stage, ontology, task, model), the stage's summary tables (every CSV
    for a stage it does not know), every PNG in the directory and its ``figures/`` folder, and each manifest
    in a ``<details>`` element. The page ends with the versions of lexprobe and the libraries that shaped
    the numbers. Numbers show 3 significant digits; every text from a file is HTML-escaped.
    """
    out = Path(out)
    if out.is_dir():
        raise ReportError(f"`out` {out} is a directory; give a file name such as {out / 'report.html'}")
    runs = []
    for path in find_run_dirs(run_dirs):
        manifest = _manifest_of(path) or {}
        runs.append(_Run(path=path, stage=str(manifest.get("stage") or "unknown"), manifest=manifest))
    page = _render_page(runs, given=[str(p) for p in run_dirs], title=title or "lexprobe report")
    return atomic_write_text(out, page)


# --- rendering ---------------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _format_value(value: Any) -> tuple[str, bool]:
    """(text, is_number) of one table cell: 3 significant digits, whole numbers without a decimal point."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", False
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower(), False
    if not isinstance(value, Number):
        return str(value), False
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        return "", False
    if math.isinf(number):
        return ("∞" if number > 0 else "−∞"), True
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number)), True
    if abs(number) >= 1000:
        return f"{number:.0f}", True
    return f"{number:.3g}", True


def _table_html(frame: pd.DataFrame, caption: str) -> str:
    shown = frame.head(_MAX_ROWS)
    more = f" (first {_MAX_ROWS} of {len(frame)} rows)" if len(frame) > _MAX_ROWS else ""
    head = "".join(f"<th>{_esc(c)}</th>" for c in shown.columns)
    rows = []
    for row in shown.itertuples(index=False, name=None):
        cells = []
        for value in row:
            text, numeric = _format_value(value)
            cells.append(f'<td class="num">{_esc(text)}</td>' if numeric else f"<td>{_esc(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="table"><table><caption>{_esc(caption)}{_esc(more)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _csv_section(path: Path, caption: str, rows: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> str:
    if not path.is_file() and not path.is_symlink():
        return f'<p class="note">{_esc(path.name)} is not in this run directory.</p>'
    if not _contained(path.parent, path):
        return f'<p class="note">{_esc(path.name)} is a link out of the run directory or not a file; left out.</p>'
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return f'<p class="note">{_esc(path.name)} could not be read: {_esc(" ".join(str(exc).split()))}</p>'
    if rows is not None:
        frame = rows(frame)
    return _table_html(frame, f"{path.name}: {caption}")


def _gains_section(path: Path) -> str:
    """A trained run's memorization (train) and generalization (withheld) gains, from ``evaluation.json``."""
    if not _contained(path.parent, path):
        return ""
    try:
        gains = json.loads(path.read_text(encoding="utf-8")).get("gains")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return ""
    if not isinstance(gains, dict) or not gains:
        return ""
    frame = pd.DataFrame.from_dict(gains, orient="index").rename_axis("split").reset_index()
    return _table_html(frame, "evaluation.json: gain = tuned − baseline accuracy (paired bootstrap 95% CI)")


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _figures_html(directory: Path) -> str:
    paths = sorted(directory.glob("*.png")) + sorted((directory / "figures").glob("*.png"))
    parts = []
    for path in paths:
        if not _contained(directory, path):
            name = path.relative_to(directory).as_posix()
            parts.append(
                f'<p class="note">{_esc(name)} is a link out of the run directory or not a file; left out.</p>'
            )
            continue
        data = path.read_bytes()
        size = _png_size(data)
        name = path.relative_to(directory).as_posix()
        if size is None:
            parts.append(f'<p class="note">{_esc(name)} is not a PNG file; left out.</p>')
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(
            f'<figure><img src="{uri}" alt="{_esc(name)}" width="{size[0]}" height="{size[1]}">'
            f"<figcaption>{_esc(name)}</figcaption></figure>"
        )
    return "<h3>Figures</h3>" + "".join(parts) if parts else ""


def _manifests_html(directory: Path) -> str:
    names = [n for n in _MANIFESTS if _contained(directory, directory / n)]  # only the names the layout gives
    parts = []
    for name in names:
        text = (directory / name).read_text(encoding="utf-8", errors="replace")
        try:
            text = json.dumps(json.loads(text), indent=2, sort_keys=True)
        except json.JSONDecodeError:
            pass  # shown as it is
        parts.append(f"<details><summary>{_esc(name)}</summary><pre>{_esc(text)}</pre></details>")
    return "<h3>Provenance</h3>" + "".join(parts) if parts else ""


def _files_html(directory: Path) -> str:
    entries = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():
            entries.append(f"{path.name} (link)")
        else:
            entries.append(f"{path.name}/" if path.is_dir() else f"{path.name} ({path.stat().st_size / 1024:.1f} KiB)")
    return f'<p class="files">files: {_esc(", ".join(entries))}</p>'


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return None if value in (None, "") else str(value)


def _describe(run: _Run) -> list[str]:
    """Ontology, task (or pairs, fields) and model of a run, from its manifest's config and inputs."""
    config = run.manifest.get("config") if isinstance(run.manifest.get("config"), dict) else {}
    inputs = run.manifest.get("inputs") if isinstance(run.manifest.get("inputs"), dict) else {}
    trained = inputs.get("train_config") if isinstance(inputs.get("train_config"), dict) else {}
    task = config.get("task") or trained.get("task")
    for key in ("pairs_resolved", "fields_resolved"):
        if not task and isinstance(config.get(key), list):
            task = ", ".join(map(str, config[key]))
    if not task and _contained(run.path, run.path / "tasks.csv"):
        try:
            task = f"{len(pd.read_csv(run.path / 'tasks.csv'))} tasks"
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            task = None
    described = [
        _name(config.get("ontology") or trained.get("ontology") or inputs.get("ontology")),
        _name(task),
        _name(config.get("model") or trained.get("model") or inputs.get("model")),
    ]
    shots = config.get("shots") if run.stage == "evaluate" else None
    if isinstance(shots, int) and not isinstance(shots, bool) and shots > 0:
        described.append(f"{shots}-shot")
    return [d for d in described if d]


def _run_html(index: int, run: _Run) -> str:
    heading = " · ".join([run.stage, *_describe(run)])
    meta = [f"directory <code>{_esc(run.path)}</code>"]
    for key in ("created", "seed"):
        if run.manifest.get(key) is not None:
            meta.append(f"{key} {_esc(run.manifest[key])}")
    parts = [f'<section id="run-{index}"><h2>{index}. {_esc(heading)}</h2>', f'<p class="meta">{" · ".join(meta)}</p>']
    parts.append(_pooling_html(run.manifest))
    if run.stage in _STAGE_TABLES:
        tables = [_csv_section(run.path / name, caption, rows) for name, caption, rows in _STAGE_TABLES[run.stage]]
        if run.stage in ("train", "evaluate"):
            tables.append(_gains_section(run.path / "evaluation.json"))
    else:  # a stage this report does not know: every table it left
        tables = [_csv_section(p, "as written by the run") for p in sorted(run.path.glob("*.csv"))]  # links: a note
    if any(tables):
        parts.append("<h3>Summary</h3>" + "".join(tables))
    parts += [_figures_html(run.path), _manifests_html(run.path), _files_html(run.path), "</section>"]
    return "\n".join(p for p in parts if p)


def _pooling_html(manifest: dict[str, Any]) -> str:
    """The run's warnings, and how far one token dominates the pooled states (largest pooled token norm over
    the median, worst layer per field), from the embedding diagnostics an align run records."""
    lines = [f'<p class="warning">warning: {_esc(w)}</p>' for w in manifest.get("warnings") or [] if isinstance(w, str)]
    norms = manifest.get("token_norms")
    if isinstance(norms, dict):
        worst = []
        for field, rows in norms.items():
            ratios = [(r.get("max_over_median"), r.get("layer")) for r in rows or [] if isinstance(r, dict)]
            ratios = [(v, layer) for v, layer in ratios if isinstance(v, (int, float))]
            if ratios:
                value, layer = max(ratios)
                worst.append(f"{_esc(field)} {value:.1f}x (layer {_esc(layer)})")
        if worst:
            lines.append(
                '<p class="meta">largest pooled token norm over the median, worst layer: '
                + ", ".join(worst)
                + " (an attention sink in the pool shows as tens to hundreds)</p>"
            )
    return "".join(lines)


def _versions_html() -> str:
    from lexprobe import __version__

    versions = {"lexprobe": __version__, **library_versions()}
    frame = pd.DataFrame({"package": list(versions), "version": list(versions.values())})
    table = _table_html(frame, "as installed when the report was built")
    return f'<section id="versions"><h2>Versions</h2>{table}</section>'


def _render_page(runs: list[_Run], *, given: list[str], title: str) -> str:
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    toc = "".join(
        f'<li><a href="#run-{i}">{_esc(" · ".join([r.stage, *_describe(r)]))}</a> '
        f'<span class="meta">{_esc(r.path.name)}</span></li>'
        for i, r in enumerate(runs, start=1)
    )
    toc += '<li><a href="#versions">Versions</a></li>'
    given_html = " ".join(f"<code>{_esc(g)}</code>" for g in given)
    body = "\n".join(_run_html(i, r) for i, r in enumerate(runs, start=1))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
{REPORT_MARKER}
<title>{_esc(title)}</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{_esc(title)}</h1>
<p class="meta">created {_esc(created)} · {len(runs)} run{"s" if len(runs) != 1 else ""}</p>
<p class="meta">run directories as given: {given_html}</p>
</header>
<nav><strong>Contents</strong><ol>{toc}</ol></nav>
{body}
{_versions_html()}
</body>
</html>
"""
