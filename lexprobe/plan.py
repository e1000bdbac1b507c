"""What a study runs, without running it: its sizes, its tasks, and the config of each stage it runs.

:func:`lexprobe.study.run_study` runs these configs and :func:`lexprobe.costs.estimate_study` estimates them;
both read them from here, so the estimate of a study never imports the study (the stages' own modules are
imported where a config is made: :mod:`lexprobe.study`, which ``lexprobe --help`` imports, loads none of them).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from lexprobe.exceptions import LexprobeError, StudyError
from lexprobe.models import resolved_dtype

__all__ = [
    "PAPER_TASKS",
    "ZOO_STUDY_TASKS",
    "ZOO",
    "ZOO_V3",
    "SIZES",
    "StudySize",
    "study_plan",
    "study_tasks",
    "study_size",
    "size_name",
    "usable_tasks",
    "align_config",
    "lexical_config",
    "train_config",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StudySize:
    """How large each stage of a study is.

    Parameters
    ----------
    terms : int
        Popularity-balanced terms for alignment and lexicalization.
    permutations, bootstrap : int
        Of the alignment nulls and intervals.
    bins, per_bin : int
        The popularity-balanced split of each task: ``bins * per_bin`` pairs in each of train and withheld.
    templates, epochs, max_steps, batch_size, lr, lr_scheduler, warmup_ratio, lora_dropout
        Fine-tuning (see :class:`lexprobe.train.TrainConfig`); templates x epochs is the budget in exposures
        per pair.
    k : int
        Neighbours of mutual kNN in the correlation's features.
    correlate_bootstrap : int
        Bootstrap resamples of the correlation intervals.
    """

    terms: int
    permutations: int
    bootstrap: int
    bins: int
    per_bin: int
    templates: int
    epochs: float
    max_steps: int = -1
    batch_size: int = 8
    lr: float = 2e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    lora_dropout: float = 0.05
    k: int = 10
    correlate_bootstrap: int = 1000


#: ``tiny`` is for tests (minutes on a CPU), ``small`` fits the eight tasks into a few CPU hours, ``paper``
#: is the paper's scale (hours on a GPU). ``small`` and ``paper`` train for 20 exposures per pair at a constant
#: rate of 1e-3 after a 2% warm-up, without dropout: measured (docs/results/memorization/), 9 exposures at a
#: rate decaying from 2e-4 (``small-v1``, the recorded studies' preset) leave identifiers at the loss of a
#: uniform guess, while 20 memorize 0.82 to 0.93 of them on the default model.
#: The optimiser settings measured to memorize identifiers at 20 exposures per pair (docs/results/memorization/).
_MEMORIZING: dict[str, Any] = {
    "lr": 1e-3,
    "lr_scheduler": "constant_with_warmup",
    "warmup_ratio": 0.02,
    "lora_dropout": 0.0,
}

SIZES: dict[str, StudySize] = {
    "tiny": StudySize(
        terms=60,
        permutations=20,
        bootstrap=20,
        bins=4,
        per_bin=4,
        templates=1,
        epochs=1.0,
        max_steps=4,
        batch_size=4,
        lr=1e-3,
        k=3,
        correlate_bootstrap=50,
    ),
    "small": StudySize(
        terms=1000, permutations=100, bootstrap=100, bins=20, per_bin=5, templates=1, epochs=20.0, **_MEMORIZING
    ),
    "small-v1": StudySize(terms=1000, permutations=100, bootstrap=100, bins=20, per_bin=5, templates=3, epochs=3.0),
    "paper": StudySize(
        terms=2000, permutations=100, bootstrap=100, bins=20, per_bin=30, templates=5, epochs=4.0, **_MEMORIZING
    ),
}


#: The eight tasks of the paper (arXiv 2510.19036), by ontology; any other ontology gets name <-> id.
PAPER_TASKS: dict[str, tuple[str, ...]] = {
    "hgnc": ("name-to-symbol", "symbol-to-name", "name-to-id", "id-to-name"),
    "hpo": ("name-to-id", "id-to-name"),
    "go": ("name-to-id", "id-to-name"),
}

#: Study v2 (issue 19): the paper's tasks, then the task zoo (:data:`lexprobe.tasks.ZOO_TASKS`, kinds and
#: reasons in docs/zoo.md), then HGNC's named task ``symbol-to-id`` (the paper's eight leave its field pair
#: out), by ontology: 20 field pairs; pass an ontology's list as ``tasks``.
ZOO_STUDY_TASKS: dict[str, tuple[str, ...]] = {
    "hgnc": (
        "name-to-symbol",
        "symbol-to-name",
        "name-to-id",
        "id-to-name",
        "previous_symbol-to-symbol",
        "alias_symbol-to-symbol",
        "symbol-to-ncbi_gene",
        "symbol-to-uniprot",
        "symbol-to-ensembl",
        "name-to-mgi",
        "ncbi_gene-to-symbol",
        "uniprot-to-symbol",
        "ensembl-to-symbol",
        "mgi-to-name",
        "name-to-locus_type",
        "symbol-to-locus_type",
        "symbol-to-id",
    ),
    "hpo": (
        "name-to-id",
        "id-to-name",
        "synonym-to-name",
        "name-to-category",
        "synonym-to-id",
    ),
    "go": (
        "name-to-id",
        "id-to-name",
        "synonym-to-name",
        "name-to-namespace",
        "synonym-to-id",
        "id-to-namespace",
    ),
}


#: ``--tasks zoo``: each ontology's list of :data:`ZOO_STUDY_TASKS` (study v2).
ZOO = "zoo"
#: ``--tasks zoo-v3``: each ontology's tasks of :data:`lexprobe.tasks.ZOO_V3_TASKS` (calibration v3's eight
#: field pairs; none for an ontology that has none of them).
ZOO_V3 = "zoo-v3"


def study_tasks(ontology: str, tasks: Sequence[str] | None = None) -> tuple[str, ...]:
    """The tasks a study runs on ``ontology`` (its name as loaded): the paper's (:data:`PAPER_TASKS`) when
    ``tasks`` is empty, else the given ones, where ``"zoo"`` stands for the ontology's list of
    :data:`ZOO_STUDY_TASKS`, ``"zoo-v3"`` for its tasks of :data:`lexprobe.tasks.ZOO_V3_TASKS`, and
    ``"ONTOLOGY:TASK"`` is a task of that ontology only (so one study call can run other tasks on each ontology:
    ``hgnc:name-to-locus_type,go:name-to-namespace``)."""
    paper = PAPER_TASKS.get(ontology, ("name-to-id", "id-to-name"))
    if not tasks:
        return paper
    chosen: list[str] = []
    for entry in tasks:
        where, _, task = entry.rpartition(":")
        if where and where != ontology:
            continue
        if task == ZOO:
            chosen += ZOO_STUDY_TASKS.get(ontology, paper)
        elif task == ZOO_V3:
            from lexprobe.tasks import ZOO_V3_TASKS  # pandas: off the path of `lexprobe --help`

            chosen += ZOO_V3_TASKS.get(ontology, {})
        else:
            chosen.append(task)
    return tuple(dict.fromkeys(chosen))


def study_plan(
    ontologies: Sequence[str],
    *,
    model: str = "smollm2-135m",
    size: str | StudySize = "small",
    tasks: Sequence[str] | None = None,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "auto",
) -> list[tuple[str, str, Any]]:
    """The configs a study runs, without running anything: ``(stage, where, config)`` for the alignment and
    lexicalization of each ontology and the training of each task (``where`` is ``"hgnc"`` or
    ``"hgnc/name-to-symbol"``), with the settings :func:`lexprobe.study.run_study` would use (``dtype`` resolved
    once)."""
    from lexprobe.ontology import load_ontology

    spec = study_size(size)
    precision = resolved_dtype(dtype, device)
    plan: list[tuple[str, str, Any]] = []
    for ontology in ontologies:
        ont = load_ontology(ontology)
        plan.append(("align", ont.name, align_config(ontology, model, spec, seed, precision)))
        plan.append(("lexicalization", ont.name, lexical_config(ontology, model, spec, seed, precision)))
        for task in usable_tasks(ont, tasks):
            config = train_config(ontology, task, model, spec, seed, device, precision)
            plan.append(("train", f"{ont.name}/{task}", config))
    return plan


def study_size(size: str | StudySize) -> StudySize:
    """The preset ``size`` names (:data:`SIZES`), or ``size`` itself.

    Raises
    ------
    StudyError
        ``size`` names no preset.
    """
    if isinstance(size, StudySize):
        return size
    if size not in SIZES:
        raise StudyError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    return SIZES[size]


def size_name(size: str | StudySize, spec: StudySize) -> str:
    """What a study's manifest records as its size: the name given, the preset equal to ``spec``, or ``custom``."""
    if isinstance(size, str):
        return size
    return next((name for name, preset in SIZES.items() if preset == spec), "custom")


def usable_tasks(ontology: Any, tasks: Sequence[str] | None) -> tuple[str, ...]:
    """The tasks of :func:`study_tasks` that the loaded ``ontology`` can build (one it cannot is skipped).

    Raises
    ------
    StudyError
        One of the paper's tasks cannot be built (``tasks`` not given), or none of ``tasks`` is for this ontology
        or can be built from it.
    """
    from lexprobe.tasks import get_task

    name = ontology.name
    chosen = study_tasks(name, tasks)
    usable = []
    for task in chosen:
        try:
            get_task(ontology, task)
        except LexprobeError:
            if tasks is None:
                raise StudyError(f"{name}: the paper's task {task} cannot be built from this table") from None
            logger.info("%s has no task %s; skipped", name, task)
            continue
        usable.append(task)
    if not chosen:
        raise StudyError(f"{name}: no task of --tasks is for it (each names another ontology: ONTOLOGY:TASK)")
    if not usable:
        raise StudyError(f"{name} has none of the tasks {', '.join(chosen)}")
    return tuple(usable)


def align_config(ontology: str, model: str, spec: StudySize, seed: int, dtype: str) -> Any:
    """The :class:`lexprobe.align.AlignmentConfig` of a study's alignment of ``ontology``."""
    from lexprobe.align import AlignmentConfig

    return AlignmentConfig(
        ontology=ontology,
        model=model,
        dtype=dtype,
        limit=spec.terms,
        permutations=spec.permutations,
        bootstrap=spec.bootstrap,
        k=min(10, spec.terms - 2),
        seed=seed,
    )


def lexical_config(ontology: str, model: str, spec: StudySize, seed: int, dtype: str) -> Any:
    """The :class:`lexprobe.lexical.LexicalConfig` of a study's lexicalization of ``ontology``."""
    from lexprobe.lexical import LexicalConfig

    return LexicalConfig(
        ontology=ontology,
        model=model,
        dtype=dtype,
        limit=max(spec.terms, 20),
        k=min(10, spec.terms - 2),
        seed=seed,
    )


def train_config(
    ontology: str, task: str, model: str, spec: StudySize, seed: int, device: str | None, dtype: str
) -> Any:
    """The :class:`lexprobe.train.TrainConfig` of a study's training of ``task``."""
    from lexprobe.train import TrainConfig

    return TrainConfig(
        ontology=ontology,
        task=task,
        model=model,
        bins=spec.bins,
        per_bin=spec.per_bin,
        templates=spec.templates,
        epochs=spec.epochs,
        max_steps=spec.max_steps,
        batch_size=spec.batch_size,
        lr=spec.lr,
        lr_scheduler=spec.lr_scheduler,
        warmup_ratio=spec.warmup_ratio,
        lora_dropout=spec.lora_dropout,
        seed=seed,
        device=device,
        dtype=dtype,
    )
