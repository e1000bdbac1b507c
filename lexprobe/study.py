"""``run_study``: every stage of the paper's analysis for a set of ontologies, resuming what is already done.

Layout of a study directory::

    OUT/<ontology>/align/            lexprobe align
    OUT/<ontology>/lexicalization/   lexprobe lexicalization
    OUT/<ontology>/<task>/           lexprobe train + lexprobe evaluate (one per task)
    OUT/<ontology>/<task>/shots-K/   lexprobe evaluate --baseline --shots K: the base model shown K train
                                     pairs before each query (the few-shot baseline fine-tuning must beat)
    OUT/correlate/                   lexprobe correlate over every evaluated task (the predictor's evaluation)
    OUT/report.html                  lexprobe report over all of the above
    OUT/manifest.json                the study's own record: sizes, stages, timings, what was resumed

A stage counts as done when its directory holds the manifest its stage writes last (for a task: the
evaluation's manifest), so an interrupted study resumes at the first unfinished stage (training itself
resumes from its last checkpoint). The correlation and the report are redone when the set of evaluated tasks
changed.

A study never mixes settings: before a finished stage is reused, the configuration its manifest records is
compared with the one the stage would record now (every key of the stage's config, so settings added later
are covered, plus the ontology's checksum); a difference, or a key the old manifest lacks, stops the study
with a :class:`~lexprobe.exceptions.StudyError` naming the stage, its folder and the keys, unless
``rerun_mismatched`` is set, in which case what that stage wrote is removed and the stage re-run. The study's
own manifest (model, size, seed) is compared the same way before anything runs.

Folder names come from data (an OBO header's ``ontology:``) and the command line (tasks); each is made safe
with :func:`lexprobe.runs.safe_name` and checked to resolve inside the study directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lexprobe.exceptions import LexprobeError, LexprobeWarning, ModelError, StudyError
from lexprobe.models import RECORDED_BEFORE, load_model, resolved_dtype
from lexprobe.plan import (
    PAPER_TASKS,
    SIZES,
    ZOO,
    ZOO_STUDY_TASKS,
    StudySize,
    align_config,
    lexical_config,
    size_name,
    study_plan,
    study_size,
    study_tasks,
    train_config,
    usable_tasks,
)
from lexprobe.progress import ProgressCallback, prefixed
from lexprobe.runs import (
    atomic_path,
    clear_stage_outputs,
    ensure_writable_dir,
    few_shot_dir,
    json_default,
    make_manifest,
    read_json_object,
    safe_name,
    write_manifest,
)

__all__ = [
    "PAPER_TASKS",
    "ZOO_STUDY_TASKS",
    "SIZES",
    "STAGES",
    "DEFAULT_SHOTS",
    "StudySize",
    "StudyResult",
    "run_study",
    "check_study",
    "seed_spread",
    "write_seed_spread",
    "evaluated_runs",
    "study_plan",
    "study_tasks",
    "ZOO",
]

logger = logging.getLogger(__name__)

#: Stages in the order they run.
STAGES = ("align", "lexicalization", "train", "evaluate", "fewshot", "correlate", "report")

#: Worked examples in the few-shot baseline of each task (stage ``fewshot``).
DEFAULT_SHOTS = 5


@dataclasses.dataclass
class StudyResult:
    """What the study did: per stage and directory, ``done`` (ran now) or ``resumed`` (found finished)."""

    out: Path
    stages: list[dict[str, Any]]
    runs: list[Path]
    correlate: Path | None
    report: Path | None


def _stage_done(directory: Path, stage: str, manifest: str = "manifest.json") -> bool:
    return (read_json_object(directory / manifest) or {}).get("stage") == stage


def _evaluated(run: Path) -> bool:
    return _stage_done(run, "evaluate", "evaluation_manifest.json") and (run / "outcomes.csv").is_file()


def run_study(
    ontologies: Sequence[str],
    out: str | os.PathLike[str],
    *,
    model: str = "smollm2-135m",
    size: str | StudySize = "small",
    tasks: Sequence[str] | None = None,
    stages: Sequence[str] = STAGES,
    device: str | None = None,
    dtype: str = "auto",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    rerun_mismatched: bool = False,
    batch_size: int | str = "auto",
    load_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    shots: int = DEFAULT_SHOTS,
) -> StudyResult:
    """Run (or resume) the study: align, lexicalization, train, evaluate, fewshot, correlate, report.

    Parameters
    ----------
    ontologies : sequence of str
        Built-in names or paths.
    out : path
        The study directory (layout in the module docstring).
    model : str
    size : {"tiny", "small", "small-v1", "paper"} or StudySize
    tasks : sequence of str, optional
        Tasks to run on every ontology that has them; default the paper's tasks of each ontology.
    stages : sequence of str
        A subset of :data:`STAGES` (the others are skipped, not undone).
    device : str, optional
    dtype : {"auto", "float32", "bfloat16", "float16"}
        The precision of every stage; ``"auto"`` is resolved once (bfloat16 where the hardware computes it
        natively) and the resolved name is what the stages record and are compared by.
    seed : int
    log : callable, optional
        Called with one line per stage started / resumed.
    rerun_mismatched : bool
        Re-run (after removing what it wrote) every selected stage whose recorded settings differ from these,
        instead of refusing.
    batch_size : "auto" or int
        Items per forward pass of the embedding stages (training keeps the size's own batch size).
    load_options : mapping, optional
        More keyword arguments of :func:`lexprobe.models.load_model` (``revision``, ``device_map``,
        ``load_in_4bit``, ``trust_remote_code``) for the stages that embed.
    progress : callable, optional
        ``progress(stage, done, total)``: ``"study"`` counts the parts (a stage on an ontology or a task) run
        or found done, and each part reports its own stages under its name, e.g. ``"align hgnc/align:
        embedding name"`` or ``"train hgnc/name-to-symbol: training"`` (per optimizer step).
    shots : int
        Stage ``fewshot``: each evaluated task's base model is also scored with ``shots`` of its train pairs
        before every query (:func:`lexprobe.train.evaluate_run` with ``baseline_only=True``), into
        ``<task>/shots-K/``; 0 leaves the stage out.

    Raises
    ------
    StudyError
        Unknown size or stage, no ontology, no task of a given ontology, a folder name that is not safe, or a
        finished stage (or the study itself) made with other settings and ``rerun_mismatched`` not set.
    """
    say = log or (lambda line: logger.info(line))
    checked = _checked_study(ontologies, out, model, size, tasks, stages, device, dtype, seed, rerun_mismatched, shots)
    checked.root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runner = _StudyRunner(checked, model, device, seed, say, rerun_mismatched, batch_size, load_options, progress)
    runs, correlate_dir, report = runner.run(ontologies, shots)
    return runner.finish(ontologies, size, tasks, shots, started, runs, correlate_dir, report)


class _StudyRunner:
    """The running study's state (the model loaded once, the stages recorded, the parts counted) and its steps:
    check a stage's recorded settings (:meth:`settled`), run or resume it (:meth:`step`), per ontology, per task,
    then the correlation and the report."""

    def __init__(
        self,
        checked: _CheckedStudy,
        model: str,
        device: str | None,
        seed: int,
        say: Callable[[str], None],
        rerun_mismatched: bool,
        batch_size: int | str,
        load_options: Mapping[str, Any] | None,
        progress: ProgressCallback | None,
    ) -> None:
        from lexprobe.ontology import earlier_checksums

        self.checked, self.root, self.stages = checked, checked.root, checked.stages
        self.model, self.device, self.seed, self.say = model, device, seed, say
        self.rerun_mismatched, self.batch_size, self.progress = rerun_mismatched, batch_size, progress
        self.load_options = dict(load_options or {})
        self.record: list[dict[str, Any]] = []
        self.models: dict[str, Any] = {}
        self.same_data = {
            (old, ont.checksum) for ont in checked.loaded.values() for old in earlier_checksums(ont.checksum)
        }
        # parts done and planned (a part that turns out to have nothing to do, e.g. evaluate without training, is
        # counted at the end)
        self.parts = [0, _n_parts(checked.stages, checked.plan)]

    def run(self, ontologies: Sequence[str], shots: int) -> tuple[list[Path], Path, Path | None]:
        """Every selected stage in order; the evaluated runs, the correlation's directory and the report."""
        if self.progress:
            self.progress("study", 0, self.parts[1])
        runs: list[Path] = []
        for ontology in ontologies:
            self.run_ontology(ontology)
            if {"train", "evaluate", "fewshot", "correlate", "report"} & set(self.stages):
                runs += self.run_tasks(ontology, shots)
        correlate_dir = self.run_correlate(runs)
        report = self.run_report(ontologies, runs, correlate_dir) if "report" in self.stages else None
        if (
            self.progress and self.parts[0] < self.parts[1]
        ):  # parts that had nothing to do (evaluate without training...)
            self.progress("study", self.parts[1], self.parts[1])
        return runs, correlate_dir, report

    def finish(
        self,
        ontologies: Sequence[str],
        size: str | StudySize,
        tasks: Sequence[str] | None,
        shots: int,
        started: float,
        runs: list[Path],
        correlate_dir: Path,
        report: Path | None,
    ) -> StudyResult:
        """Write the study's manifest and return what it did."""
        checked = self.checked
        if checked.changed:
            self.say(
                f"{checked.root}: the stages recorded with the study's earlier settings are dropped from its manifest"
            )
        merged = _write_study_manifest(
            checked.root,
            ontologies,
            self.model,
            checked.precision,
            checked.spec,
            size,
            tasks,
            checked.stages,
            self.seed,
            self.record,
            started,
            keep_earlier=not checked.changed,
            shots=shots,
        )
        return StudyResult(
            out=checked.root,
            stages=merged[
                : len(self.record)
            ],  # this run's stages, with their times; the manifest also lists the others
            runs=runs,
            correlate=correlate_dir if _stage_done(correlate_dir, "correlate") else None,
            report=report,
        )

    def lm(self, progress: ProgressCallback | None = None) -> Any:
        """The study's model, loaded on first use."""
        if "lm" not in self.models:
            if progress:
                progress("loading model", 0, 1)
            self.models["lm"] = load_model(
                self.model, device=self.device, dtype=self.checked.precision, **self.load_options
            )
            if progress:
                progress("loading model", 1, 1)
        return self.models["lm"]

    def step(self, stage: str, where: Path, done: bool, work: Callable[..., Any], *args: Any) -> None:
        """Run ``work(*args)`` as ``stage`` in ``where``, or record it resumed when ``done``."""
        name = f"{stage} {where.relative_to(self.root)}"
        if done:
            self.say(f"{name}: already done")
            # its time is filled in from the manifests when the study's manifest is written
            self.record.append(
                {"stage": stage, "dir": str(where.relative_to(self.root)), "status": "resumed", "seconds": 0.0}
            )
            self._count_part()
            return
        self.say(f"{name}: running")
        t0 = time.perf_counter()
        work(*args, progress=prefixed(self.progress, name))
        seconds = time.perf_counter() - t0
        self.record.append(
            {"stage": stage, "dir": str(where.relative_to(self.root)), "status": "done", "seconds": seconds}
        )
        self.say(f"{name}: done in {seconds / 60:.1f} min")
        self._count_part()

    def _count_part(self) -> None:
        self.parts[0] += 1
        if self.progress:
            self.progress("study", self.parts[0], max(self.parts))

    def settled(self, stage: str, where: Path, manifest: str, expected: Mapping[str, Any], selected: bool) -> bool:
        """Whether ``where`` holds ``stage`` finished with the settings ``expected``: ``False`` when it holds
        none (or held other settings, now cleared for the re-run); other settings otherwise raise."""
        recorded = read_json_object(where / manifest)
        if recorded is None:
            return False
        # a snapshot that only added columns holds the same data as the earlier one a run recorded
        differ = [
            (key, old, new)
            for key, old, new in _differences(recorded, expected)
            if not (isinstance(old, str) and isinstance(new, str) and (old, new) in self.same_data)
        ]
        if not differ:
            return True
        rel = where.relative_to(self.root)
        detail = _describe(differ)
        if not selected:
            raise StudyError(
                f"{stage} {rel} was made with other settings ({detail}); add {stage} to --stages with "
                "--rerun-mismatched to re-run it, or give another --out"
            )
        if not self.rerun_mismatched:
            raise StudyError(
                f"{stage} {rel} was made with other settings ({detail}); pass --rerun-mismatched to re-run it "
                "with these, or give another --out"
            )
        self.say(f"{stage} {rel}: made with other settings ({detail}); re-running")
        _clear(self.root, where, stage, recorded)
        return False

    def run_ontology(self, ontology: str) -> None:
        """The stages of one ontology: align, then lexicalization (checked, too, when only the report runs)."""
        checked, stages = self.checked, self.stages
        base = checked.folders[ontology]
        checksum = {"checksum": checked.loaded[ontology].checksum}
        for stage, work, make in (
            ("align", _align, align_config),
            ("lexicalization", _lexicalization, lexical_config),
        ):
            where = base / stage
            if stage not in stages and "report" not in stages:
                continue
            config = make(ontology, self.model, checked.spec, self.seed, checked.precision)
            config = dataclasses.replace(config, batch_size=self.batch_size)
            expected = {
                "config": _settings(config, skip=("batch_size",)) | _resolved(config, checked.names[ontology]),
                "inputs": {"ontology": checksum},
            }
            done = self.settled(stage, where, "manifest.json", expected, stage in stages)
            if stage in stages:
                self.step(stage, where, done, work, config, where, self.lm)  # the config compared above is the one run

    def run_tasks(self, ontology: str, shots: int) -> list[Path]:
        """Train, evaluate and score the few-shot baseline of each task of one ontology; its evaluated runs."""
        from lexprobe.train import RESUME_FREE, is_complete

        checked, stages, seed = self.checked, self.stages, self.seed
        runs: list[Path] = []
        for task, where in checked.task_folders[ontology].items():
            config = train_config(ontology, task, self.model, checked.spec, seed, self.device, checked.precision)
            trained = _settings(config, skip=RESUME_FREE)
            self._check_task(where, trained, checked.loaded[ontology].checksum)
            if "train" in stages:
                done = is_complete(where) or _evaluated(where)
                args = (ontology, task, where, self.model, checked.spec, seed, self.device, checked.precision)
                self.step("train", where, done, _train, *args)
            if "evaluate" in stages:
                if _evaluated(where) or is_complete(where):
                    self.step("evaluate", where, _evaluated(where), _evaluate, where, self.device, seed)
            if _evaluated(where):
                runs.append(where)
            if "fewshot" in stages and _evaluated(where):
                shown = few_shot_dir(where, shots)
                expected = {
                    "config": {"seed": seed, "baseline_only": True, "shots": shots},
                    "inputs": {"train_config": trained},
                }
                done = self.settled("fewshot", shown, "evaluation_manifest.json", expected, True)
                self.step("fewshot", shown, done, _fewshot, where, self.device, seed, shots)
        return runs

    def _check_task(self, where: Path, trained: Mapping[str, Any], checksum: str) -> None:
        """Check the settings a task's training and evaluation recorded against these."""
        stages = self.stages
        if (where / "manifest.json").is_file():
            expected = {"config": trained, "inputs": {"data_checksum": checksum}}
            self.settled("train", where, "manifest.json", expected, "train" in stages)
        else:  # training under way: its settings are in train_config.json
            self.settled("train", where, "train_config.json", {"config": trained}, "train" in stages)
        expected = {"config": {"seed": self.seed, "baseline_only": False}, "inputs": {"train_config": trained}}
        self.settled("evaluate", where, "evaluation_manifest.json", expected, "evaluate" in stages)

    def run_correlate(self, runs: list[Path]) -> Path:
        """Correlate the evaluated runs (redone when their set changed); the correlation's directory."""
        checked, stages = self.checked, self.stages
        correlate_dir = self.root / "correlate"
        if ("correlate" in stages and runs) or "report" in stages:
            self.settled(
                "correlate",
                correlate_dir,
                "manifest.json",
                _correlate_expected(checked.spec, self.seed, checked.precision),
                "correlate" in stages,
            )
        if "correlate" in stages and runs:
            listed = sorted(str(r.relative_to(self.root)) for r in runs)
            done = _stage_done(correlate_dir, "correlate") and _correlated_runs(correlate_dir, self.root) == listed
            args = (runs, correlate_dir, checked.spec, self.seed, checked.precision)
            self.step("correlate", correlate_dir, done, _correlate, *args)
        return correlate_dir

    def run_report(self, ontologies: Sequence[str], runs: list[Path], correlate_dir: Path) -> Path | None:
        """The report over every finished stage; its path, or ``None`` when there is nothing to report."""
        folders = self.checked.folders
        report = self.root / "report.html"
        dirs = [d for o in ontologies for d in (folders[o] / "align", folders[o] / "lexicalization")]
        dirs = [d for d in dirs if (d / "manifest.json").is_file()] + runs
        if _stage_done(correlate_dir, "correlate"):
            dirs.append(correlate_dir)
        if not dirs:
            return None
        self.step("report", report, False, _report, dirs, report, self.checked.names, self.model)
        return report


def _n_parts(stages: Sequence[str], plan: Mapping[str, Sequence[str]]) -> int:
    """How many parts (a stage on an ontology or a task) a study with these stages and tasks runs at most."""
    per_ontology = sum(s in stages for s in ("align", "lexicalization"))
    per_task = sum(s in stages for s in ("train", "evaluate", "fewshot"))
    once = sum(s in stages for s in ("correlate", "report"))
    return sum(per_ontology + per_task * len(tasks) for tasks in plan.values()) + once


def _earlier_stages(root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The stages the study's manifest lists, by (stage, dir)."""
    manifest = read_json_object(root / "manifest.json") or {}
    return {(s["stage"], s["dir"]): s for s in manifest.get("outputs", {}).get("stages", [])}


#: Where a run directory records how long a stage took.
_RUN_MANIFESTS = {
    "align": "manifest.json",
    "lexicalization": "manifest.json",
    "train": "manifest.json",
    "evaluate": "evaluation_manifest.json",
    "fewshot": "evaluation_manifest.json",
}


def _run_seconds(manifest: Path) -> float:
    """The seconds a stage's own manifest records: ``outputs.seconds`` (training, evaluation), the sum of
    ``timings`` (alignment) or ``seconds`` (lexicalization); 0 where it records none (an older version)."""
    record = read_json_object(manifest) or {}
    try:
        if isinstance(record.get("outputs"), dict) and "seconds" in record["outputs"]:
            return float(record["outputs"]["seconds"])
        if isinstance(record.get("timings"), dict):
            return float(sum(float(v) for v in record["timings"].values()))
        return float(record.get("seconds", 0.0))
    except (TypeError, ValueError):
        return 0.0


def _merged_record(root: Path, record: list[dict[str, Any]], keep_earlier: bool = True) -> list[dict[str, Any]]:
    """This run's stages, then those an earlier run (or one running beside it on other tasks) recorded and
    this one did not touch; read just before writing, so a study resumed a part at a time keeps every time.
    ``keep_earlier=False`` (the study's settings changed) keeps this run's stages only."""
    latest = _earlier_stages(root) if keep_earlier else {}
    merged = []
    for entry in record:
        key = (entry["stage"], entry["dir"])
        if entry["status"] == "resumed" and not entry["seconds"] and key in latest:
            entry = entry | {"seconds": float(latest[key].get("seconds", 0.0))}
        if entry["status"] == "resumed" and not entry["seconds"] and entry["stage"] in _RUN_MANIFESTS:
            # a stage records its own time (a study stopped before writing its manifest, or one written by
            # an older version)
            entry = entry | {"seconds": _run_seconds(root / entry["dir"] / _RUN_MANIFESTS[entry["stage"]])}
        merged.append(entry)
    seen = {(e["stage"], e["dir"]) for e in merged}
    merged += [entry for key, entry in latest.items() if key not in seen]
    return merged


def _normal(value: Any) -> Any:
    """``value`` as it reads back from a manifest (tuples as lists, dataclasses as dicts)."""
    return json.loads(json.dumps(value, sort_keys=True, default=json_default))


def _settings(config: Any, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Every field of a stage's config, as its manifest records them, less ``ontology`` (the way it was named:
    the data is compared by checksum) and ``skip`` (fields that do not change the result)."""
    return {k: v for k, v in _normal(config).items() if k not in ("ontology", *skip)}


#: Shown for a setting a manifest does not record (it was made before the setting existed).
_MISSING = "(not recorded)"


def _differences(recorded: Any, expected: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple]:
    """``(key, old, new)`` for every leaf of ``expected`` that ``recorded`` holds with another value or lacks."""
    recorded = recorded if isinstance(recorded, Mapping) else {}
    differ: list[tuple] = []
    for key, new in expected.items():
        where = (*path, key)
        if isinstance(new, Mapping) and new:
            differ += _differences(recorded.get(key), new, where)
        elif key in RECORDED_BEFORE and recorded.get(key) is None:  # recorded before the setting existed
            if _normal(new) != RECORDED_BEFORE[key]:
                differ.append((".".join(where), RECORDED_BEFORE[key], _normal(new)))
        elif key not in recorded:
            differ.append((".".join(where), _MISSING, _normal(new)))
        elif _normal(recorded[key]) != _normal(new):
            differ.append((".".join(where), _normal(recorded[key]), _normal(new)))
    return differ


def _short(value: Any) -> str:
    text = value if value is _MISSING else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(differ: list[tuple], most: int = 4) -> str:
    """``"seed: 0 -> 1, model: 'a' -> 'b'"``, the first ``most`` of them and how many more."""
    parts = [f"{key.removeprefix('config.')}: {_short(old)} -> {_short(new)}" for key, old, new in differ[:most]]
    if len(differ) > most:
        parts.append(f"and {len(differ) - most} more")
    return ", ".join(parts)


def _resolved(config: Any, ontology_name: str) -> dict[str, list[str]]:
    """The defaults an alignment or lexicalization config resolves for an ontology, as its manifest records
    them (so a changed default is a difference too)."""
    if hasattr(config, "resolved_pairs"):
        return {"pairs_resolved": [f"{a}:{b}" for a, b in config.resolved_pairs(ontology_name)]}
    return {"fields_resolved": list(config.resolved_fields(ontology_name))}


@dataclasses.dataclass(frozen=True)
class _CheckedStudy:
    """What the checks of a study found, for the run: its settings resolved, ontologies loaded, folders named."""

    root: Path
    spec: StudySize
    stages: list[str]
    precision: str
    changed: bool
    loaded: dict[str, Any]
    names: dict[str, str]
    folders: dict[str, Path]
    plan: dict[str, tuple[str, ...]]
    task_folders: dict[str, dict[str, Path]]


def check_study(
    ontologies: Sequence[str],
    out: str | os.PathLike[str],
    *,
    model: str = "smollm2-135m",
    size: str | StudySize = "small",
    tasks: Sequence[str] | None = None,
    stages: Sequence[str] = STAGES,
    device: str | None = None,
    dtype: str = "auto",
    seed: int = 0,
    rerun_mismatched: bool = False,
    shots: int = DEFAULT_SHOTS,
) -> None:
    """Every check :func:`run_study` makes before it works, with its parameters, changing nothing: what
    ``--dry-run`` runs before it plans, so it refuses what the study would refuse.

    Raises
    ------
    StudyError
        As :func:`run_study` before its first stage: an unknown size, stage or precision, no ontology, a task of
        none of them, two ontologies or tasks whose folders would be one, a name that cannot be a folder
        (``..``), or a study made with other settings and ``rerun_mismatched`` not set.
    OutputError
        ``out`` cannot be written (a file, under a file, read-only).
    """
    _checked_study(ontologies, out, model, size, tasks, stages, device, dtype, seed, rerun_mismatched, shots)


def _checked_study(
    ontologies: Sequence[str],
    out: str | os.PathLike[str],
    model: str,
    size: str | StudySize,
    tasks: Sequence[str] | None,
    stages: Sequence[str],
    device: str | None,
    dtype: str,
    seed: int,
    rerun_mismatched: bool,
    shots: int,
) -> _CheckedStudy:
    from lexprobe.ontology import load_ontology

    spec = study_size(size)
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise StudyError(f"--stages must be from {', '.join(STAGES)}, got {', '.join(unknown) or '(none)'}")
    if not ontologies:
        raise StudyError("give at least one ontology, e.g. --ontology hgnc,hpo,go")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
        raise StudyError(f"--shots must be a whole number >= 0, got {shots!r}")
    root = ensure_writable_dir(out)
    try:
        precision = resolved_dtype(dtype, device)
    except ModelError as exc:
        raise StudyError(str(exc)) from None
    changed = _check_study(root, model, spec, seed, rerun_mismatched, precision)
    loaded = {}
    for ontology in ontologies:
        try:
            loaded[ontology] = load_ontology(ontology)
        except LexprobeError as exc:
            raise StudyError(str(exc)) from None
    names = {ontology: ont.name for ontology, ont in loaded.items()}
    unknown = sorted({t.rpartition(":")[0] for t in tasks or ()} - {"", *names.values()})
    if unknown:
        raise StudyError(
            f"--tasks names {', '.join(unknown)}, not an ontology of this study ({', '.join(names.values())})"
        )
    folders = {ontology: _folder(root, names[ontology]) for ontology in ontologies}
    _check_distinct(folders, "ontologies")
    plan = {ontology: usable_tasks(ont, tasks) for ontology, ont in loaded.items()}
    task_folders = {}
    for ontology in ontologies:
        task_folders[ontology] = {task: _folder(root, names[ontology], task) for task in plan[ontology]}
        _check_distinct(task_folders[ontology], f"tasks of {names[ontology]}")
    kept = [s for s in stages if shots or s != "fewshot"]
    return _CheckedStudy(root, spec, kept, precision, changed, loaded, names, folders, plan, task_folders)


def _check_study(root: Path, model: str, spec: StudySize, seed: int, rerun: bool, dtype: str) -> bool:
    """Whether the study's manifest records another model, size or seed (then refuse unless ``rerun``)."""
    recorded = read_json_object(root / "manifest.json")
    if recorded is None or recorded.get("stage") != "study":
        return False
    expected = {"config": {"model": model, "dtype": dtype, "size_settings": dataclasses.asdict(spec)}, "seed": seed}
    differ = _differences(recorded, expected)
    if not differ:
        return False
    old_size, new_size = (recorded.get("config") or {}).get("size"), size_name(spec, spec)
    if old_size != new_size and any(key.startswith("config.size_settings.") for key, _, _ in differ):
        differ = [("size", old_size, new_size)] + [d for d in differ if not d[0].startswith("config.size_settings.")]
    if not rerun:
        raise StudyError(
            f"the study {root} was made with other settings ({_describe(differ)}); pass --rerun-mismatched to "
            "re-run its stages with these, or give another --out"
        )
    return True


def _folder(root: Path, *names: str) -> Path:
    """``root/name/...`` with each name made safe; it must resolve inside ``root``."""
    try:
        path = root.joinpath(*(safe_name(name) for name in names))
    except LexprobeError as exc:
        raise StudyError(str(exc)) from None
    inside = path.resolve()
    if inside == root.resolve() or not inside.is_relative_to(root.resolve()):
        raise StudyError(f"the folder of {'/'.join(names)!r} ({path}) resolves outside the study {root}")
    return path


def _check_distinct(folders: Mapping[str, Path], what: str) -> None:
    seen: dict[Path, str] = {}
    for name, path in folders.items():
        if path in seen:
            raise StudyError(f"the {what} {seen[path]!r} and {name!r} would share the folder {path}; run them apart")
        seen[path] = name


def _clear(root: Path, where: Path, stage: str, recorded: Mapping[str, Any]) -> None:
    """Remove what ``stage`` wrote in ``where`` (inside the study) before re-running it: the files its manifest
    and :data:`lexprobe.runs.STAGE_OUTPUTS` name (training takes its evaluation with it); other files stay. An
    evaluation alone loses its manifest (re-running it rewrites its other files)."""
    resolved = where.resolve()
    if resolved == root.resolve() or not resolved.is_relative_to(root.resolve()):
        raise StudyError(f"will not clear {where}: it is not inside the study {root}")
    if stage == "evaluate":
        (where / "evaluation_manifest.json").unlink(missing_ok=True)
    elif stage == "fewshot":  # its own folder, written by the evaluation alone
        import shutil

        shutil.rmtree(where)
    else:
        clear_stage_outputs(where, stage, recorded)


def _align(config: Any, where: Path, lm: Callable[..., Any], progress: ProgressCallback | None = None) -> None:
    import warnings

    from lexprobe.align import run_alignment, write_alignment

    with warnings.catch_warnings():  # the surface-control warnings are the align manifest's, which the report shows
        warnings.simplefilter("ignore", LexprobeWarning)
        result = run_alignment(config, model=lm(progress), progress=progress)
    write_alignment(result, where)


def _lexicalization(config: Any, where: Path, lm: Callable[..., Any], progress: ProgressCallback | None = None) -> None:
    from lexprobe.lexical import measure_lexicalization, write_lexicalization

    write_lexicalization(measure_lexicalization(config, model=lm(progress), progress=progress), where)


def _train(
    ontology: str,
    task: str,
    where: Path,
    model: str,
    spec: StudySize,
    seed: int,
    device: str | None,
    dtype: str,
    progress: ProgressCallback | None = None,
) -> None:
    from lexprobe.train import progress_callback, train_lora

    callbacks = [progress_callback(progress)] if progress else []
    train_lora(where, train_config(ontology, task, model, spec, seed, device, dtype), callbacks=callbacks)


def _evaluate(where: Path, device: str | None, seed: int, progress: ProgressCallback | None = None) -> None:
    from lexprobe.train import evaluate_run

    evaluate_run(where, device=device, seed=seed, progress=progress)


def _fewshot(where: Path, device: str | None, seed: int, shots: int, progress: ProgressCallback | None = None) -> None:
    from lexprobe.train import evaluate_run

    evaluate_run(where, baseline_only=True, shots=shots, device=device, seed=seed, progress=progress)


def _correlated_runs(correlate_dir: Path, root: Path) -> list[str]:
    manifest = read_json_object(correlate_dir / "manifest.json")
    if manifest is None:
        return []
    listed = []
    for entry in manifest.get("inputs", {}).get("runs", []):
        path = Path(entry["run"])
        listed.append(str(path.relative_to(root)) if path.is_absolute() and path.is_relative_to(root) else entry["run"])
    return sorted(listed)


def _feature_config(spec: StudySize, seed: int, dtype: str) -> Any:
    from lexprobe.predict import FeatureConfig

    return FeatureConfig(k=spec.k, permutations=max(spec.permutations, 2), seed=seed, dtype=dtype)


def _correlate_expected(spec: StudySize, seed: int, dtype: str) -> dict[str, Any]:
    """What the correlation's manifest records of its settings (see :func:`lexprobe.predict.correlate`)."""
    from lexprobe.predict import FEATURES

    return {
        "config": {
            "features": _settings(_feature_config(spec, seed, dtype), skip=("batch_size",)),
            "predictor_features": list(FEATURES),
            "n_boot": spec.correlate_bootstrap,
        }
    }


def _correlate(
    runs: list[Path], where: Path, spec: StudySize, seed: int, dtype: str, progress: ProgressCallback | None = None
) -> None:
    from lexprobe.predict import correlate, write_correlation

    config = _feature_config(spec, seed, dtype)
    # runs are recorded relative to the study directory, so a moved study still resumes
    root = where.parent
    result = correlate(
        [r.relative_to(root) if r.is_relative_to(root) else r for r in runs],
        config=config,
        n_boot=spec.correlate_bootstrap,
        seed=seed,
        base=root,
        progress=progress,
    )
    write_correlation(result, where)


def _report(
    dirs: list[Path], report: Path, names: dict[str, str], model: str, progress: ProgressCallback | None = None
) -> None:
    from lexprobe.report import build_report

    build_report(dirs, report, title=f"lexprobe study: {', '.join(names.values())} with {model}")


def _write_study_manifest(
    root,
    ontologies,
    model,
    dtype,
    spec,
    size,
    tasks,
    stages,
    seed,
    record,
    started,
    *,
    keep_earlier: bool = True,
    shots: int = DEFAULT_SHOTS,
) -> list[dict]:
    """Write the study's manifest; returns its stages (this run's first, then those of earlier runs)."""
    record = _merged_record(root, record, keep_earlier)
    manifest = make_manifest(
        stage="study",
        config={
            "ontologies": list(ontologies),
            "model": model,
            "dtype": dtype,
            "size": size_name(size, spec),
            "size_settings": dataclasses.asdict(spec),
            "tasks": list(tasks) if tasks else None,
            "stages": list(stages),
            "shots": shots if "fewshot" in stages else None,
        },
        inputs={},
        outputs={
            "stages": record,
            "seconds_this_run": time.perf_counter() - started,
            "seconds_all_stages": sum(r["seconds"] for r in record),
        },
        seed=seed,
    )
    write_manifest(root, manifest)
    return record


def seed_spread(studies: Sequence[str | os.PathLike[str]]) -> Any:
    """Run-to-run spread: the tasks evaluated in two or more studies that differ only in their seed.

    Parameters
    ----------
    studies : sequence of path
        Study directories (:func:`run_study` outputs) of one model, size and precision, each with another seed.

    Returns
    -------
    pandas.DataFrame
        One row per task (``ontology``, ``task``) evaluated in at least two of them: ``seeds``, then per seed
        ``memorization_gain_seed<S>`` and ``generalization_gain_seed<S>``, the spread (largest minus smallest)
        of each gain over the seeds, and ``verdicts_agree`` (each seed's measured verdict, a gain interval
        above 0, is the same). Each seed draws its own split, LoRA initialisation and data order, so the
        spread is what a rerun of the same experiment moves by.

    Raises
    ------
    StudyError
        Fewer than two studies, a directory that is no study, studies of other models, sizes or precisions,
        or two with the same seed.
    """
    import pandas as pd

    if len(studies) < 2:
        raise StudyError("give at least two study directories, one per seed")
    settings, seeds = set(), []
    for study in studies:
        manifest = read_json_object(Path(study) / "manifest.json") or {}
        if manifest.get("stage") != "study":
            raise StudyError(f"{study} is not a study directory (no study manifest.json)")
        config = manifest.get("config") or {}
        settings.add(json.dumps([config.get(k) for k in ("model", "dtype", "size_settings")], sort_keys=True))
        seeds.append(int(manifest.get("seed", 0)))
    if len(settings) > 1:
        raise StudyError("the studies differ in model, precision or size, not only in their seed")
    if len(set(seeds)) < len(seeds):
        raise StudyError(f"two studies have the same seed ({seeds})")
    found: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for study, seed in zip(studies, seeds):
        for path in sorted(Path(study).glob("*/*/evaluation.json")):
            record = read_json_object(path) or {}
            gains = record.get("gains") or {}
            if not {"train", "withheld"} <= set(gains) or record.get("shots"):
                continue
            key = (str(record.get("ontology", path.parent.parent.name)), str(record.get("task", path.parent.name)))
            found.setdefault(key, {})[seed] = gains
    rows = []
    for (ontology, task), by_seed in sorted(found.items()):
        if len(by_seed) < 2:
            continue
        row: dict[str, Any] = {"ontology": ontology, "task": task, "seeds": ",".join(map(str, sorted(by_seed)))}
        verdicts = set()
        for name, split in (("memorization", "train"), ("generalization", "withheld")):
            values = [float(by_seed[s][split]["gain"]) for s in sorted(by_seed)]
            for seed, value in zip(sorted(by_seed), values):
                row[f"{name}_gain_seed{seed}"] = value
            row[f"{name}_gain_spread"] = max(values) - min(values)
        for seed in sorted(by_seed):
            gen = float(by_seed[seed]["withheld"]["gain_ci_low"]) > 0
            mem = float(by_seed[seed]["train"]["gain_ci_low"]) > 0
            verdicts.add("generalized" if gen else "memorized" if mem else "neither")
        row["verdicts_agree"] = len(verdicts) == 1
        rows.append(row)
    return pd.DataFrame(rows)


def write_seed_spread(
    studies: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None
) -> tuple[Any, Path | None]:
    """:func:`seed_spread` of ``studies``, written to ``out/spread.csv`` with a ``manifest.json`` (each study's
    seed, model, size settings and its manifest's creation time) when ``out`` is given.

    Returns
    -------
    (pandas.DataFrame, Path or None)
        The spread and the CSV's path (``None`` without ``out``).

    Raises
    ------
    StudyError
        As :func:`seed_spread`, or when no task was evaluated in two of the studies.
    """
    spread = seed_spread(studies)
    if spread.empty:
        raise StudyError("no task was evaluated in two of these studies; nothing to compare")
    if out is None:
        return spread, None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifests = [read_json_object(Path(study) / "manifest.json") or {} for study in studies]
    path = out / "spread.csv"
    with atomic_path(path) as tmp:
        spread.to_csv(tmp, index=False)
    write_manifest(
        out,
        make_manifest(
            stage="spread",
            config=(manifests[0].get("config") or {}) | {"stages": None, "tasks": None},
            inputs={
                "studies": [
                    {"path": str(study), "seed": m.get("seed"), "created": m.get("created")}
                    for study, m in zip(studies, manifests)
                ]
            },
            outputs={"spread.csv": path.stat().st_size, "tasks": len(spread)},
        ),
    )
    return spread, path


def evaluated_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` with each study directory (a ``manifest.json`` of stage ``study``) replaced by its evaluated
    task runs (``<ontology>/<task>/`` holding an evaluation), sorted; other paths are kept as given."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (read_json_object(path / "manifest.json") or {}).get("stage") != "study":
            out.append(path)
            continue
        out += [run.parent for run in sorted(path.glob("*/*/evaluation_manifest.json")) if _evaluated(run.parent)]
    return out
