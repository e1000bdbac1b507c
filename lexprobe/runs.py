"""Run directories, manifests, checksums, atomic writes and caching keys.

Every result file lexprobe writes is accompanied by a manifest saying how it was made (library versions,
model, data checksum, seed, config), and every write goes to a temporary file that is renamed into place,
so an interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lexprobe.exceptions import OutputError
from lexprobe.files import (
    CACHE_NAMES,
    CACHE_TAG,
    CACHE_TAG_TEXT,
    atomic_path,
    atomic_write_text,
    cache_dir,
    disk_full_as_error,
    has_cache_tag,
    is_cache_name,
    is_disk_full,
    no_space_error,
)
from lexprobe.named_models import NAMED_MODELS
from lexprobe.runlock import RUN_LOCK, lock_holder, run_lock

__all__ = [
    "CACHE_NAMES",
    "CACHE_TAG",
    "CACHE_TAG_TEXT",
    "has_cache_tag",
    "is_cache_name",
    "RUN_LOCK",
    "run_lock",
    "lock_holder",
    "is_disk_full",
    "no_space_error",
    "disk_full_as_error",
    "atomic_path",
    "atomic_write_text",
    "atomic_write_json",
    "default_out_dir",
    "dumps_json",
    "strict_json",
    "json_default",
    "sha256_file",
    "sha256_text",
    "cache_dir",
    "safe_name",
    "library_versions",
    "make_manifest",
    "write_manifest",
    "write_result_dir",
    "config_key",
    "existing_run",
    "read_json_object",
    "prepare_run_dir",
    "check_run_dir",
    "settings_of",
    "prepare_report_file",
    "clear_stage_outputs",
    "few_shot_dir",
    "few_shot_dirs",
    "STAGE_OUTPUTS",
    "ensure_writable_dir",
    "ensure_writable_file",
    "relative_to_run",
    "default_out_dir",
]

_VERSIONED_PACKAGES = (
    "lexprobe",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "torch",
    "transformers",
    "gguf",
    "peft",
    "faiss-cpu",
    "faiss-gpu",
    "pronto",
    "umap-learn",
    "numba",
    "matplotlib",
)


def json_default(obj: Any) -> Any:
    """``json.dumps``'s ``default=``: dataclasses as dicts, paths as strings, sets sorted, numpy as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def strict_json(obj: Any) -> Any:
    """``obj`` as plain JSON values that every parser reads: NaN and infinities become ``None`` (JSON ``null``),
    numpy values Python ones, dataclasses dicts, paths strings, tuples and sets lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return strict_json(json_default(obj))


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict_json` (``allow_nan=False``: the text is valid JSON, never ``NaN``)."""
    return json.dumps(strict_json(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON (NaN as ``null``) to ``path`` atomically and return the path."""
    return atomic_write_text(path, dumps_json(obj, indent=2, sort_keys=True) + "\n")


def _unwritable(path: Path) -> str | None:
    """Why results cannot be written in the directory ``path`` (``None`` when they can); creates nothing."""
    try:
        if path.exists() and not path.is_dir():
            return f"{path} is a file, not a directory"
        probe = path
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return f"{path} lies under {probe}, which is a file, not a directory"
        with tempfile.TemporaryFile(dir=probe, prefix=".lexprobe-write-test-"):
            pass
    except OSError as exc:
        return f"{path} cannot be written ({(exc.strerror or type(exc).__name__).lower()})"
    return None


def ensure_writable_dir(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check, before any slow work, that results can be written in the directory ``path``; create nothing.

    ``path`` must be a directory or not exist yet, and the nearest existing folder at or above it must take a
    new file (a temporary file is made there and removed at once), so a file in the way, a read-only file
    system or a missing permission is told now rather than after the computation.

    Raises
    ------
    OutputError
        With a one-line message naming ``option`` and the path.
    """
    path = Path(path).expanduser()
    problem = _unwritable(path)
    if problem:
        raise OutputError(f"{option}: {problem}; give a writable directory")
    return path


def ensure_writable_file(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check, before any slow work, that the file ``path`` can be written (made or replaced); create nothing.

    Raises
    ------
    OutputError
        ``path`` is a directory, or its folder cannot be written (see :func:`ensure_writable_dir`).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{option}: {path} is a directory; give a file name")
    problem = _unwritable(path.parent)
    if problem:
        raise OutputError(f"{option}: cannot write {path}: {problem}")
    return path


def relative_to_run(path: str | os.PathLike[str], run_dir: str | os.PathLike[str], *, given: str | None = None) -> str:
    """How a manifest records ``path``: relative to ``run_dir`` (POSIX separators) when it lies inside it, so the
    record stays true when the run folder is moved or shared; else ``given`` (the path as the user wrote it), or
    ``path`` itself.

    >>> relative_to_run("/runs/a/split", "/runs/a")
    'split'
    """
    try:
        return Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except (ValueError, OSError, RuntimeError):  # outside the run (or a path that cannot be resolved)
        return str(path) if given is None else given


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """Return the hex SHA-256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_key(*parts: Any) -> str:
    """A short, stable caching key for JSON-serialisable parts (configs, checksums, names)."""
    blob = json.dumps(parts, sort_keys=True, default=json_default)
    return sha256_text(blob)[:20]


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(text: str) -> str:
    """``text`` as one safe folder or file name: every character outside ``[A-Za-z0-9._-]`` becomes ``_``.

    For names that come from data or the command line (an OBO header's ``ontology:``, a task, a model) and
    become a path: ``"../../tmp/x"`` -> ``".._.._tmp_x"``, ``"a/b"`` -> ``"a_b"``, so the name cannot leave
    the folder it is joined to (a symbolic link can; check the resolved path where that matters).

    Raises
    ------
    OutputError
        The name is empty, ``.`` or ``..`` once cleaned.
    """
    name = _UNSAFE_NAME.sub("_", str(text))
    if name in ("", ".", ".."):
        raise OutputError(f"{str(text)!r} cannot name a folder (empty, '.' or '..'); give it another name")
    return name


def library_versions() -> dict[str, str]:
    """Versions of Python and of the installed packages that shape lexprobe's numbers."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def make_manifest(
    *,
    stage: str,
    config: Any = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the provenance record written beside a result.

    Parameters
    ----------
    stage : str
        Which stage made the result (``"split"``, ``"embed"``, ``"align"``...).
    config : dataclass or mapping, optional
        The exact configuration of the stage.
    inputs, outputs : mapping, optional
        What went in (ontology name, data checksum, model, ...) and what came out (file names, counts).
    **extra
        Anything else worth recording (seed, timings).
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    return {
        "stage": stage,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "platform": platform.platform(),
        "config": config,
        "inputs": dict(inputs or {}),
        "outputs": dict(outputs or {}),
        **extra,
    }


def write_manifest(
    directory: str | os.PathLike[str], manifest: Mapping[str, Any], *, name: str = "manifest.json"
) -> Path:
    """Write ``manifest`` as ``directory/name`` atomically."""
    return atomic_write_json(Path(directory) / name, dict(manifest))


def write_result_dir(
    out: str | os.PathLike[str],
    tables: Mapping[str, Any],
    *,
    stage: str,
    record: Mapping[str, Any],
    figures: Any = None,
    texts: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write a stage's result directory: each table as CSV, texts, the figures, then the manifest, each
    atomically.

    Parameters
    ----------
    out : path
        The directory (created if missing).
    tables : mapping of file name -> pandas.DataFrame
    stage : str
    record : mapping
        The stage's own record of how the result was made: ``config``, ``inputs`` and ``seed``.
    figures : callable, optional
        ``figures(directory) -> list of paths``, drawn into ``out/figures``.
    texts : mapping of file name -> str, optional
        Text files (e.g. a Markdown summary of the tables), UTF-8.

    Returns
    -------
    list of Path
        Every file written, the manifest last (its ``outputs`` lists the others with their sizes).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    found = existing_run(out)
    if found is not None and found[0] == stage:  # a re-run: its old tables and figures go first
        clear_stage_outputs(out, stage, found[1])
    written = []
    for name, frame in tables.items():
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        written.append(out / name)
    for name, text in (texts or {}).items():
        with atomic_path(out / name) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        written.append(out / name)
    if figures is not None:
        written += list(figures(out / "figures"))
    manifest = make_manifest(
        stage=stage,
        config=record["config"],
        inputs=record["inputs"],
        outputs={p.name: p.stat().st_size for p in written},
        seed=record["seed"],
    )
    # what else the stage recorded (e.g. align's per-field token-norm diagnostics and warnings) goes along
    manifest |= {k: v for k, v in record.items() if k not in manifest and k not in ("config", "inputs", "seed")}
    written.append(write_manifest(out, manifest))
    return written


# --- run directories: which stage owns a folder, refusing to mix runs, clearing a stage's outputs ---------

#: Files and folders each stage writes in its run directory, beyond those its manifest's ``outputs`` names;
#: ``--overwrite`` removes these (and nothing else) before a new run is written.
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "align": ("alignment.csv", "alignment_summary.csv", "figures"),
    "lexicalization": (
        "lexicalization_items.csv",
        "lexicalization_fields.csv",
        "lexicalization_layers.csv",
        "figures",
    ),
    "embed": ("embeddings.npy", "keys.tsv"),
    "split": ("train.csv", "withheld.csv"),
    "train": (
        "train_config.json",
        "split",
        "adapter",
        "checkpoints",
        "loss.csv",
        "loss_curve.png",
        "loss_curve.svg",
    ),
    "evaluate": (
        "predictions.csv",
        "outcomes.csv",
        "evaluation_summary.csv",
        "evaluation.json",
        "accuracy_by_bin.png",
        "accuracy_by_bin.svg",
        "evaluation_manifest.json",
    ),
    "correlate": ("items.csv", "tasks.csv", "correlations.csv", "auc.csv", "loto.csv", "summary.md", "figures"),
    "predict": ("prediction.csv", "reasons.csv", "features.csv", "calibration_tasks.csv", "loto.csv"),
}
#: A training run directory also holds its evaluation: clearing one clears both.
_STAGE_ALSO = {"train": ("evaluate",), "evaluate": ("train",)}

_FEW_SHOT_NAME = re.compile(r"shots-[1-9][0-9]*")


def few_shot_dir(run_dir: str | os.PathLike[str], shots: int) -> Path:
    """Where a ``shots``-shot evaluation of a training run writes its files: ``run_dir/shots-K`` (K >= 1)."""
    return Path(run_dir) / f"shots-{int(shots)}"


def few_shot_dirs(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The few-shot evaluations a training run holds: its ``shots-K`` folders (not links) with an
    ``evaluation_manifest.json``, by K."""
    run_dir = Path(run_dir)
    try:
        children = list(run_dir.iterdir())
    except OSError:
        return []
    found = [
        c
        for c in children
        if _FEW_SHOT_NAME.fullmatch(c.name)
        and c.is_dir()
        and not c.is_symlink()
        and (c / "evaluation_manifest.json").is_file()
    ]
    return sorted(found, key=lambda c: int(c.name.split("-")[1]))


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, unreadable, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def existing_run(directory: str | os.PathLike[str]) -> tuple[str, dict[str, Any]] | None:
    """``(stage, manifest)`` of the run a directory holds, or ``None`` when it holds none.

    The stage comes from ``manifest.json``; a directory with only ``evaluation_manifest.json`` or only a
    ``train_config.json`` (training interrupted before its manifest) holds a ``train`` run. A manifest that
    is not valid JSON still marks a run (of stage ``"unknown"``): it is never taken for an empty folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    path = directory / "manifest.json"
    if path.exists() or path.is_symlink():
        manifest = read_json_object(path)
        if manifest is None:
            return "unknown", {}
        return str(manifest.get("stage") or "unknown"), manifest
    if (directory / "evaluation_manifest.json").is_file() or (directory / "train_config.json").is_file():
        config = read_json_object(directory / "train_config.json") or {}
        return "train", {"stage": "train", "config": config.get("config")}
    return None


def _lookup(manifest: Mapping[str, Any], dotted: str) -> Any:
    value: Any = manifest
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


_MISSING = object()


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=json_default))


def clear_stage_outputs(directory: str | os.PathLike[str], stage: str, manifest: Mapping[str, Any] | None) -> None:
    """Remove what a stage wrote in ``directory``: the files its manifest's ``outputs`` names (at the top and in
    ``figures/``), the names :data:`STAGE_OUTPUTS` lists for it, and its manifest. Other files stay. A training
    run's few-shot evaluations (``shots-K/``, see :func:`few_shot_dirs`) go with it: they evaluated its adapter."""
    directory = Path(directory)
    if stage in ("train", "evaluate"):
        for sub in few_shot_dirs(directory):
            clear_stage_outputs(sub, "evaluate", read_json_object(sub / "evaluation_manifest.json"))
            with contextlib.suppress(OSError):
                sub.rmdir()  # only if nothing else is left in it
    outputs = manifest.get("outputs") if isinstance(manifest, Mapping) else None
    named = [str(k) for k in outputs] if isinstance(outputs, Mapping) else []
    names = set(named) | {"manifest.json"}
    for owner in (stage, *_STAGE_ALSO.get(stage, ())):
        names |= set(STAGE_OUTPUTS.get(owner, ()))
    for name in sorted(names):
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            continue  # only plain names inside the directory, never a path out of it
        for path in (directory / name, directory / "figures" / name):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir() and path != directory / "figures":
                shutil.rmtree(path)
    figures = directory / "figures"
    if figures.is_dir() and not figures.is_symlink():
        for path in figures.iterdir():  # the figures folder belongs to the stage that drew into it
            if path.suffix in (".png", ".svg", ".pdf") and (path.is_file() or path.is_symlink()):
                path.unlink()
        with contextlib.suppress(OSError):
            figures.rmdir()
    for path in directory.glob(".*.tmp"):  # temporaries an interrupted atomic write left
        with contextlib.suppress(OSError):
            path.unlink()


def prepare_run_dir(
    directory: str | os.PathLike[str],
    stage: str,
    settings: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
    option: str = "--out",
) -> Path:
    """Make sure ``directory`` may receive a run of ``stage``; call before any slow work.

    Parameters
    ----------
    directory : path
        The run directory (``--out``); it need not exist.
    stage : str
    settings : mapping of dotted manifest path -> value, optional
        What makes this run this run (``{"config.k": 10, "field": "name"}``); a directory holding a run of
        the same stage whose manifest agrees on each is reused (resumed, or its outputs replaced). ``None``:
        the stage compares settings itself (``train``).
    overwrite : bool
        Remove the run the directory holds, whatever its stage and settings (the outputs its stage owns, see
        :func:`clear_stage_outputs`; other files stay), so the new run starts clean.

    Raises
    ------
    OutputError
        The directory holds a run of another stage (or an unreadable manifest), or of this stage with other
        settings, and ``overwrite`` is not set: one line saying so, with the first differences, and to pass
        ``--overwrite`` or another ``--out``.
    """
    directory = Path(directory).expanduser()
    found = existing_run(directory)
    if found is None:
        return directory
    old_stage, manifest = found
    if overwrite:  # whatever the folder holds goes, so the new run starts clean
        clear_stage_outputs(directory, old_stage, manifest)
        if (directory / "evaluation_manifest.json").is_file():  # an evaluation left without its training
            clear_stage_outputs(directory, "evaluate", read_json_object(directory / "evaluation_manifest.json"))
        return directory
    if old_stage == stage or (stage == "train" and old_stage == "evaluate"):
        differ = []
        for key, value in (settings or {}).items():
            old = _lookup(manifest, key)
            if old is _MISSING or _normal(old) != _normal(value):
                shown = "(not recorded)" if old is _MISSING else repr(_normal(old))
                differ.append(f"{key.removeprefix('config.')}: {shown} -> {_normal(value)!r}")
        if not differ:
            return directory
        what = f"a {stage} run with other settings ({', '.join(differ[:3])}{', ...' if len(differ) > 3 else ''})"
    else:
        what = f"a {old_stage} run" if old_stage != "unknown" else "a run whose manifest.json is unreadable"
    raise OutputError(f"{option} {directory} holds {what}; pass --overwrite to replace it, or another {option}")


def check_run_dir(
    directory: str | os.PathLike[str],
    stage: str,
    settings: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
    dry_run: bool = False,
    option: str = "--out",
) -> Path:
    """Every check a command makes on its output folder before any slow work, for the run and its dry run alike:
    the folder can be written (:func:`ensure_writable_dir`) and may receive this run (:func:`prepare_run_dir`).

    Parameters
    ----------
    dry_run : bool
        Change nothing: ``overwrite`` removes no old run (and a folder it would clear is not refused), so
        ``--dry-run`` refuses exactly what the run would refuse.

    Raises
    ------
    OutputError
        As :func:`ensure_writable_dir` and :func:`prepare_run_dir`.
    """
    target = ensure_writable_dir(directory, option=option)
    if dry_run and overwrite:
        return target
    return prepare_run_dir(target, stage, settings, overwrite=overwrite, option=option)


def settings_of(config: Any, prefix: str = "config", *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config (dataclass or mapping) as :func:`prepare_run_dir` settings: ``{"config.<field>": value}``."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    return {f"{prefix}.{k}": v for k, v in dict(config).items() if k not in leave_out}


def prepare_report_file(path: str | os.PathLike[str], *, overwrite: bool = False, option: str = "--out") -> Path:
    """Make sure ``path`` may receive a report: missing, or a report lexprobe wrote, unless ``overwrite``.

    Raises
    ------
    OutputError
        ``path`` is an existing file that is not a lexprobe report (a manifest, a table, someone's page).
    """
    path = Path(path).expanduser()
    if overwrite or not (path.is_file() or path.is_symlink()):
        return path
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        head = b""
    if REPORT_MARKER.encode() not in head:
        raise OutputError(
            f"{option} {path} exists and is not a lexprobe report; pass --overwrite to replace it, or another {option}"
        )
    return path


#: The line every report carries in its head, so a later report may replace it without --overwrite.
REPORT_MARKER = '<meta name="generator" content="lexprobe">'


def _model_slug(model: str) -> str:
    """A model spec as one folder name: a named model as itself, an HF id ``org/name`` as ``org--name``, a
    ``.gguf`` file as its stem, a local directory as its own name (``Llama-3.1-8B`` keeps its dots)."""
    text = str(model).strip().rstrip("/\\")
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        return safe_name(path.stem)
    if path.is_dir() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        return safe_name(path.name)
    if text.lower() in NAMED_MODELS:
        text = text.lower()
    return safe_name(text.replace("/", "--"))


def default_out_dir(stage: str, ontology: str, model: str, *, root: str | os.PathLike[str] = "runs") -> Path:
    """The default ``--out`` of a stage: ``runs/<model>/<stage>-<ontology>``, one folder per model.

    A second model's run no longer lands in (and is refused by, or replaces) the first model's folder.

    Parameters
    ----------
    stage : str
        ``"align"``, ``"embed"``, ``"lexicalization"``, ``"train"``...
    ontology : str
        A built-in name (``"hgnc"``) or a file (its stem is used: ``terms/my.obo`` -> ``my``).
    model : str
        The model spec as given to ``--model``: a named model (``smollm2-135m``), a Hugging Face id
        (``google/gemma-3-270m`` -> ``google--gemma-3-270m``), a ``.gguf`` file (its stem) or a local directory
        (its name).
    root : path
        The folder that holds every model's runs.

    Returns
    -------
    Path
        ``root / <model slug> / "<stage>-<ontology>"``, relative when ``root`` is.

    Raises
    ------
    OutputError
        The stage, ontology or model gives an empty name.
    """
    name = Path(str(ontology).strip()).name
    for suffix in (".gz", ".bz2", ".xz", ".zip"):
        name = name.removesuffix(suffix)
    name = Path(name).stem if Path(name).suffix else name
    return Path(root) / _model_slug(model) / safe_name(f"{stage}-{name}")
