"""The training configuration, saved as ``train_config.json`` in every run directory."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from lexprobe.config import StageConfig
from lexprobe.exceptions import TrainingError
from lexprobe.models import DEFAULT_MODEL, DTYPES, RECORDED_BEFORE, load_model

SPLITS: tuple[str, ...] = ("train", "withheld")


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """How to fine-tune: the task, the split, LoRA and the optimiser.

    Parameters
    ----------
    ontology, task : str
        As for :func:`lexprobe.tasks.make_split` (``"hgnc"``, ``"name-to-symbol"``).
    model : str
        Any spec :func:`lexprobe.models.load_model` accepts.
    bins, per_bin, popularity, categories
        The popularity-balanced split (ignored when a split directory is given).
    templates : int
        Prompt paraphrases per pair, 1 to 5 (the first is also the evaluation prompt).
    epochs : float
        Passes over the examples (``max_steps > 0`` overrides).
    lora_r, lora_alpha, lora_dropout, target_modules
        peft LoRA settings; ``"all-linear"`` adapts every linear layer except the output head.
    lr, batch_size, grad_accum, weight_decay
        Optimiser (AdamW) settings; ``batch_size`` is per process.
    lr_scheduler, warmup_ratio
        ``"linear"`` decay to 0 (the default), ``"constant_with_warmup"`` (the rate stays at ``lr`` after
        warm-up, so later exposures count as much as early ones) or ``"cosine"``; the first ``warmup_ratio``
        of the steps ramp up from 0.
    snapshots : tuple of float
        Exposures per pair (see :attr:`exposures`) at which to save the adapter into
        ``snapshots/exposures-N/`` for a learning curve (``lexprobe evaluate --checkpoints``).
    save_steps : int
        Checkpoint every this many optimiser steps (and at the end), for resuming.
    seed : int
        Seeds the split, the LoRA initialisation, dropout and the data order.
    device : str, optional
        Default: CUDA when present, else CPU.
    dtype : {"auto", "float32", "bfloat16", "float16"}
        The compute precision. ``"auto"``: bfloat16 where the hardware computes it natively (a CPU with
        AVX512-BF16 or AMX, a CUDA GPU that supports it), else float32. In bfloat16 the forward and backward
        passes run under autocast while the trainable LoRA weights and the optimizer state stay float32 (on
        CPU the frozen base weights stay float32 too: autocast casts them per operation, which measured
        faster than bfloat16 weights; on CUDA they are loaded in bfloat16 to halve their memory).
    revision : str, optional
        A hub model's branch, tag or commit (default: its main branch); the commit trained on is recorded.
    trust_remote_code : bool
        Let a hub model run modelling code from its own repository (off unless asked).
    gradient_checkpointing : bool
        Recompute activations in the backward pass instead of keeping them: less memory, about a third more
        time, the same numbers.
    load_in_4bit : bool
        QLoRA: the frozen base in 4-bit NF4 (bitsandbytes, bfloat16 compute; ``peft.prepare_model_for_kbit_training``)
        with the LoRA weights in float32. Needs a CUDA GPU and ``pip install "lexprobe[quantization]"``.

    Examples
    --------
    >>> config = TrainConfig("hgnc", "name-to-symbol", templates=2, epochs=5.0)
    >>> config.exposures  # each pair seen under 2 paraphrases, 5 times over
    10.0
    >>> TrainConfig.from_dict(config.to_dict()) == config  # as train_config.json records it
    True
    >>> TrainConfig("hgnc", "name-to-symbol", templates=9)
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.TrainingError: ...
    """

    ontology: str
    task: str
    model: str = DEFAULT_MODEL
    bins: int = 20
    per_bin: int = 30
    popularity: str | None = None
    categories: tuple[str, ...] | None = None
    templates: int = 5
    epochs: float = 3.0
    max_steps: int = -1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    lr: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    save_steps: int = 50
    snapshots: tuple[float, ...] = ()
    seed: int = 0
    device: str | None = None
    dtype: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    load_in_4bit: bool = False

    def __post_init__(self) -> None:
        checks = [
            ("templates", 1 <= self.templates <= 5, "in [1, 5]"),
            ("epochs", self.epochs > 0 or self.max_steps > 0, "> 0 (or max_steps > 0)"),
            ("max_steps", self.max_steps == -1 or self.max_steps >= 1, "-1 (train for `epochs`) or >= 1"),
            ("lora_r", self.lora_r >= 1, ">= 1"),
            ("lora_alpha", self.lora_alpha > 0, "> 0"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "in [0, 1)"),
            ("lr", self.lr > 0, "> 0"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("grad_accum", self.grad_accum >= 1, ">= 1"),
            ("save_steps", self.save_steps >= 1, ">= 1"),
            ("bins", self.bins >= 1, ">= 1"),
            ("per_bin", self.per_bin >= 1, ">= 1"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)"),
            ("lr_scheduler", self.lr_scheduler in LR_SCHEDULERS, f"one of {', '.join(LR_SCHEDULERS)}"),
        ]
        if self.dtype is None:
            object.__setattr__(self, "dtype", "auto")
        for name, ok, allowed in checks:
            if not ok:
                raise TrainingError(f"`{name}` must be {allowed}, got {getattr(self, name)!r}")
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if isinstance(self.categories, list):
            object.__setattr__(self, "categories", tuple(self.categories))
        if self.dtype not in DTYPES:
            raise TrainingError(f"`dtype` must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("trust_remote_code", "gradient_checkpointing", "load_in_4bit"):
            if not isinstance(getattr(self, name), bool):
                raise TrainingError(f"`{name}` must be True or False, got {getattr(self, name)!r}")
        if self.revision is not None and (not isinstance(self.revision, str) or not self.revision.strip()):
            raise TrainingError(f"`revision` must be a hub branch, tag or commit, got {self.revision!r}")
        try:
            points = tuple(sorted({float(x) for x in self.snapshots}))
        except (TypeError, ValueError):
            raise TrainingError(f"`snapshots` must be exposure counts, got {self.snapshots!r}") from None
        if any(not (x > 0) or x != x for x in points):
            raise TrainingError(f"`snapshots` must be exposure counts > 0, got {list(self.snapshots)}")
        object.__setattr__(self, "snapshots", points)

    @property
    def exposures(self) -> float | None:
        """How often training shows each pair: templates x epochs (``None`` when ``max_steps`` sets the length,
        which depends on the number of pairs; the manifest then records the count reached)."""
        return self.templates * self.epochs if self.max_steps == -1 else None

    @property
    def load_options(self) -> dict[str, Any]:
        """What :func:`lexprobe.models.load_model` needs, besides device and dtype, to load the run's base model
        as it was trained (the same revision, in 4 bits for QLoRA)."""
        names = ("revision", "trust_remote_code", "load_in_4bit")
        return {name: getattr(self, name) for name in names}

    def load_base(self, *, device: str | None = None, dtype: str | None = None, device_map: str | None = None) -> Any:
        """The run's base model with its LM head, as it was trained (:attr:`load_options`), on ``device`` and in
        ``dtype`` (default: the run's own) or spread by ``device_map``, for generation."""
        return load_model(
            self.model,
            device=device or self.device,
            dtype=dtype or self.dtype,
            device_map=device_map,
            head=True,
            **self.load_options,
        )


#: Learning-rate schedules ``TrainConfig.lr_scheduler`` accepts (transformers' names).
LR_SCHEDULERS: tuple[str, ...] = ("linear", "constant", "constant_with_warmup", "cosine")

#: Fields that may differ when a run is resumed (they do not change what is learned).
RESUME_FREE = ("save_steps", "device", "snapshots", "gradient_checkpointing", "trust_remote_code")


def read_train_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` a run directory was trained with.

    Raises
    ------
    TrainingError
        If the directory or its ``train_config.json`` is missing or unreadable.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()  # removed when the example ends
    >>> run = tmp.name
    >>> config = TrainConfig("hgnc", "name-to-symbol", dtype="float32")
    >>> _ = (Path(run) / "train_config.json").write_text(json.dumps({"config": config.to_dict()}))
    >>> read_train_config(run) == config
    True
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainingError(f"run directory {str(run_dir)!r} does not exist; make one with `lexprobe train --out`")
    path = run_dir / "train_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingError(
            f"{str(run_dir)!r} has no train_config.json; is it a `lexprobe train` run directory?"
        ) from None
    except ValueError as exc:
        raise TrainingError(f"{path} is not valid JSON ({exc}); re-run `lexprobe train`") from None
    try:
        recorded = dict(data["config"])
        if recorded.get("dtype") is None:  # written before the precision was recorded
            recorded["dtype"] = RECORDED_BEFORE["dtype"]
        return TrainConfig.from_dict(recorded)
    except (KeyError, TypeError, AttributeError):
        raise TrainingError(f"{path} does not hold a training configuration; re-run `lexprobe train`") from None


def is_complete(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a run directory holds a finished adapter (written last, with the training manifest).

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()  # removed when the example ends
    >>> run = Path(tmp.name)
    >>> (run / "adapter").mkdir()
    >>> _ = (run / "adapter" / "adapter_config.json").write_text("{}")
    >>> is_complete(run)  # an adapter, but no training manifest yet: training was cut short
    False
    >>> _ = (run / "manifest.json").write_text(json.dumps({"stage": "train"}))
    >>> is_complete(run)
    True
    """
    run_dir = Path(run_dir)
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        return False
    try:
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("stage") == "train"
    except (OSError, ValueError):
        return False
