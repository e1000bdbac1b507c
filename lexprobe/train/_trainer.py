"""LoRA fine-tuning with transformers' Trainer (DDP under torchrun), resumable, with a loss log."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import tempfile
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lexprobe.exceptions import LexprobeWarning, TrainingError
from lexprobe.figures import plot_loss_curve
from lexprobe.models import auto_device, check_load_in_4bit, dtype_name, load_model, resolve_dtype, resolved_dtype
from lexprobe.runs import (
    atomic_path,
    atomic_write_json,
    disk_full_as_error,
    is_disk_full,
    make_manifest,
    no_space_error,
    relative_to_run,
    sha256_file,
    write_manifest,
)
from lexprobe.tasks import prompt_templates
from lexprobe.train._card import AdapterBase, model_card, write_model_card
from lexprobe.train._config import RESUME_FREE, SPLITS, TrainConfig, is_complete, read_train_config
from lexprobe.train._data import _LabelledPositions, _prepare_split, build_examples, completion_collator


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run did.

    Attributes
    ----------
    run_dir, adapter_dir : Path
    already_complete : bool
        The run directory already held a finished adapter; nothing was done.
    n_pairs, n_examples, n_steps : int
        Train pairs, (pair, template) examples and optimiser steps in total.
    first_loss, final_loss : float
        Mean loss of the first and last logged tenth of the steps.
    seconds : float
        Wall time of this invocation.
    resumed_from : str or None
        The checkpoint training resumed from.
    n_lora_changed, n_lora_total : int
        LoRA B matrices that moved away from their (zero) initial values, of all of them.
    world_size : int
        Processes that trained together.
    exposures : float
        How often training showed each pair by the end: templates x epochs reached.
    compute_dtype : str
        The precision the passes ran in (``"bfloat16"`` under autocast, or ``"float32"``).
    examples_per_second : float
        Training examples per second of wall time in this invocation's training loop (all processes together).
    snapshots : tuple of str
        Adapter snapshots saved for a learning curve (``snapshots/exposures-N``).
    logits_at : str
        Where the output layer ran: ``"labelled positions"`` (see :func:`completion_collator`; the same loss
        and gradients) or ``"every position"``.

    Examples
    --------
    >>> result = TrainResult(Path("run"), Path("run/adapter"), already_complete=False, n_lora_changed=64,
    ...                      n_lora_total=64)
    >>> result.n_lora_changed == result.n_lora_total  # every adapted matrix learned something
    True
    """

    run_dir: Path
    adapter_dir: Path
    already_complete: bool
    n_pairs: int = 0
    n_examples: int = 0
    n_steps: int = 0
    first_loss: float = float("nan")
    final_loss: float = float("nan")
    seconds: float = 0.0
    resumed_from: str | None = None
    n_lora_changed: int = 0
    n_lora_total: int = 0
    world_size: int = 1
    exposures: float = float("nan")
    compute_dtype: str = ""
    examples_per_second: float = float("nan")
    snapshots: tuple[str, ...] = ()
    logits_at: str = ""


def _check_resumable(run_dir: Path, config: TrainConfig) -> None:
    path = run_dir / "train_config.json"
    if not path.is_file():
        return
    old = read_train_config(run_dir).to_dict()
    new = config.to_dict()
    differ = [k for k in new if k not in RESUME_FREE and old.get(k) != new.get(k)]
    if differ:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ[:4])
        raise TrainingError(
            f"{str(run_dir)!r} holds a run with other settings ({detail}); pass a new --out, "
            "the same settings to resume it, or --overwrite to start again"
        )


def compute_dtype(config: TrainConfig) -> Any:
    """The precision training computes in: ``config.dtype`` resolved on the run's device."""
    return resolve_dtype(config.dtype, auto_device(config.device))


def resolved_config(config: TrainConfig) -> TrainConfig:
    """``config`` with ``dtype="auto"`` replaced by the precision it means on this machine (what the run's
    ``train_config.json`` records, so that a resume on other hardware cannot silently change precision)."""
    if config.dtype != "auto":
        return config
    return dataclasses.replace(config, dtype=resolved_dtype(config.dtype, config.device))


def weights_dtype(config: TrainConfig) -> str:
    """The dtype the frozen base weights are loaded in: float32 on CPU (autocast casts them per operation,
    faster there than bfloat16 weights), the compute dtype on a GPU (half the memory)."""
    compute = dtype_name(compute_dtype(config))
    return compute if auto_device(config.device).type == "cuda" else "float32"


def _training_arguments(config: TrainConfig, run_dir: Path, *, progress: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    use_cpu = auto_device(config.device).type == "cpu"
    compute = compute_dtype(config)
    # transformers 5 renamed gradient checkpointing to activation checkpointing (the old name warns); non-reentrant
    # checkpointing needs no input that requires grad (the frozen embeddings under LoRA give none)
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    checkpointing = {f"{prefix}_checkpointing": config.gradient_checkpointing}
    if config.gradient_checkpointing:
        checkpointing[f"{prefix}_checkpointing_kwargs"] = {"use_reentrant": False}
    return TrainingArguments(
        **checkpointing,
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=float(config.warmup_ratio),  # a float in [0, 1) is a share of the steps
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        seed=config.seed,
        data_seed=config.seed,
        bf16=compute == torch.bfloat16,
        fp16=compute == torch.float16,
        use_cpu=use_cpu,
        # gloo is the CPU backend; naming a backend in a single process would make accelerate expect a group
        ddp_backend="gloo" if use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=not progress,
    )


def _bar_only_progress() -> Any:
    """The Trainer's progress bar without the log dict it writes under the bar at every logging step."""
    from transformers.trainer_callback import ProgressCallback

    class BarOnlyProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    return BarOnlyProgress()


def _lora_b(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_B" in name}


def train_lora(
    run_dir: str | os.PathLike[str],
    config: TrainConfig,
    *,
    split_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Fine-tune ``config.model`` with LoRA on the train pairs of a task; save the adapter in ``run_dir``.

    Parameters
    ----------
    run_dir : path
        The run directory (layout in the module docstring). If it holds a finished adapter nothing is done;
        if it holds checkpoints of an interrupted run with the same settings, training resumes from the last.
    config : TrainConfig
    split_dir : path, optional
        A directory written by ``lexprobe split`` (``train.csv``, ``withheld.csv``); default: draw a split
        with the config's ``bins``, ``per_bin`` and ``seed``.
    progress : bool
        Show the Trainer's progress bar (on stderr).
    callbacks : sequence of transformers.TrainerCallback
        Extra Trainer callbacks.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        Other settings than the run directory's, an empty split, no EOS token, or LoRA weights that did not
        change during training.

    Examples
    --------
    A run directory holding a run with other settings is refused before any model is loaded:

    >>> tmp = tempfile.TemporaryDirectory()  # removed when the example ends
    >>> config = TrainConfig("hgnc", "name-to-symbol", dtype="float32")
    >>> _ = (Path(tmp.name) / "train_config.json").write_text(json.dumps({"config": config.to_dict()}))
    >>> train_lora(tmp.name, dataclasses.replace(config, lr=1e-3))
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.TrainingError: ... holds a run with other settings (lr: 0.0002 -> 0.001); pass a new ...
    """
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    config = resolved_config(config)
    _check_resumable(run_dir, config)
    if is_complete(run_dir):
        return TrainResult(run_dir=run_dir, adapter_dir=run_dir / "adapter", already_complete=True)
    if config.load_in_4bit:  # told before the split is drawn and written
        check_load_in_4bit(config.device)
    args = _training_arguments(config, run_dir, progress=progress)
    main = args.process_index == 0
    data, lm = _prepare_run(run_dir, config, Path(split_dir) if split_dir else None, args, main)
    templates = prompt_templates(config.ontology, config.task, config.templates)
    examples = build_examples(data["train"], templates, lm.tokenizer)
    model, initial = _seeded_lora(lm.model, config)
    base = AdapterBase.of(lm, run_dir)
    card = _card_maker(base, config, data["train"], templates)
    collate = completion_collator(lm.tokenizer, model)
    callbacks = [*callbacks, _mark_complete_callback(), _snapshot_callback(run_dir, config, base, card)]
    trainer = _make_trainer(model, args, examples, collate, callbacks)
    last, start_epoch, train_seconds = _run_trainer(trainer, args, run_dir, main)
    changed = _check_lora_changed(model, initial, trainer)
    losses = _loss_table(trainer.state.log_history)
    examples_now = (float(trainer.state.epoch or 0.0) - start_epoch) * len(examples)
    result = TrainResult(
        run_dir=run_dir,
        adapter_dir=run_dir / "adapter",
        already_complete=False,
        n_pairs=len(data["train"]),
        n_examples=len(examples),
        n_steps=int(trainer.state.global_step),
        first_loss=_edge_mean(losses, first=True),
        final_loss=_edge_mean(losses, first=False),
        seconds=time.perf_counter() - t0,
        resumed_from=Path(last).name if last else None,
        n_lora_changed=changed,
        n_lora_total=len(initial),
        world_size=int(args.world_size),
        exposures=float(trainer.state.epoch or 0.0) * config.templates,
        compute_dtype=config.dtype,  # resolved at the start: "auto" never reaches here
        examples_per_second=examples_now / train_seconds if train_seconds > 0 else float("nan"),
        logits_at="labelled positions" if isinstance(collate, _LabelledPositions) else "every position",
        snapshots=_snapshots_written(run_dir, config),
    )
    if main:
        _write_outputs(run_dir, model, losses, result, config, lm, data, base=base, card=card())
    return result


def _prepare_run(
    run_dir: Path, config: TrainConfig, split_dir: Path | None, args: Any, main: bool
) -> tuple[dict[str, pd.DataFrame], Any]:
    """The run's split (drawn or read, and written with the config by the main process) and its model."""
    # the main process writes the split and converts the model (first use) before the others read them
    with args.main_process_first(local=False, desc="prepare"):
        data = _prepare_split(run_dir, config, split_dir, write=main)
        if main:
            _write_train_config(run_dir, config, data)
        lm = load_model(
            config.model, device=config.device, dtype=weights_dtype(config), head=True, **config.load_options
        )
    return data, lm


def _seeded_lora(model: Any, config: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """The model with fresh LoRA layers (drawn after seeding with ``config.seed``) and their initial B weights."""
    from transformers import set_seed

    set_seed(config.seed)
    model = _add_lora(model, config)
    return model, _lora_b(model)


def _card_maker(base: AdapterBase, config: TrainConfig, train: pd.DataFrame, templates: Sequence[Any]) -> Any:
    """``card()``: the adapter's model card, with the first train pair as its example."""
    first = train.iloc[0] if len(train) else None
    return functools.partial(
        model_card,
        base,
        config,
        n_train=len(train),
        example=(templates[0].render(str(first["source"])), str(first["target"])) if first is not None else None,
    )


def _make_trainer(model: Any, args: Any, examples: Any, collate: Any, callbacks: Sequence[Any]) -> Any:
    """The Trainer, with the loss printer removed and its bar (if asked for) showing no log lines."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=collate,
        callbacks=list(callbacks),
    )
    # the library does not print: the loss goes to loss.csv, the bar (if asked for) shows no log lines
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_bar_only_progress())
    return trainer


def _run_trainer(trainer: Any, args: Any, run_dir: Path, main: bool) -> tuple[str | None, float, float]:
    """Train, resuming from the last good checkpoint; that checkpoint, its epoch and the seconds training took."""
    # the main process drops damaged checkpoints first; then every process finds the same last good one
    with args.main_process_first(local=False, desc="checkpoints"):
        last = last_good_checkpoint(run_dir / "checkpoints", remove=main)
    start_epoch = _checkpoint_epoch(last)
    t_train = time.perf_counter()
    with warnings.catch_warnings():
        # checkpoints of a hub model make peft ask the hub whether the vocabulary was resized; offline it warns
        # that it cannot tell and assumes not, which is so: lexprobe never resizes it
        warnings.filterwarnings("ignore", message="Could not find a config file in", category=UserWarning)
        try:
            trainer.train(resume_from_checkpoint=last)
        except Exception as exc:
            if not is_disk_full(exc, run_dir):
                raise
            where = drop_unfinished_checkpoints(run_dir / "checkpoints", after=last) if main else None
            raise no_space_error(where or run_dir / "checkpoints") from exc
    return last, start_epoch, time.perf_counter() - t_train


def _check_lora_changed(model: Any, initial: dict[str, Any], trainer: Any) -> int:
    """How many LoRA weights training changed; none raises."""
    changed = sum(not bool((p.detach().cpu() == initial[n].cpu()).all()) for n, p in _lora_named(model))
    if changed == 0:
        raise TrainingError(
            f"no LoRA weight changed in {trainer.state.global_step} steps; raise --lr or --epochs, or check "
            "that --target-modules matches the model's layers"
        )
    return changed


def _snapshots_written(run_dir: Path, config: TrainConfig) -> tuple[str, ...]:
    """The snapshot folders of ``config.snapshots`` that the run holds."""
    return tuple(
        f"{SNAPSHOT_DIR}/{snapshot_name(x)}"
        for x in config.snapshots
        if (run_dir / SNAPSHOT_DIR / snapshot_name(x)).is_dir()
    )


#: Written into a checkpoint folder once the Trainer has saved everything in it: its files and their sizes.
CHECKPOINT_MARKER = ".lexprobe-complete.json"


def _mark_complete_callback() -> Any:
    """A callback that marks each checkpoint complete (:data:`CHECKPOINT_MARKER`, written last, atomically)."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                files = {
                    p.relative_to(folder).as_posix(): p.stat().st_size
                    for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.name != CHECKPOINT_MARKER
                }
                atomic_write_json(folder / CHECKPOINT_MARKER, {"step": state.global_step, "files": files})
            return control

    return MarkComplete()


#: Where adapter snapshots for a learning curve go, one folder per exposure count.
SNAPSHOT_DIR = "snapshots"


def snapshot_name(exposures: float) -> str:
    """``snapshots/exposures-30`` for 30 exposures per pair (``exposures-7.5`` for a fraction)."""
    return f"exposures-{exposures:g}"


def _snapshot_callback(run_dir: Path, config: TrainConfig, base: AdapterBase, card: Any) -> Any:
    """A callback that saves the adapter (only) each time training passes an exposure count in
    ``config.snapshots``, atomically, with a ``snapshot.json`` (step, epoch, exposures, mean recent loss)."""
    from transformers import TrainerCallback

    targets = list(config.snapshots)

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if not state.is_world_process_zero or model is None or state.epoch is None:
                return control
            reached = state.epoch * config.templates
            for target in targets:
                folder = run_dir / SNAPSHOT_DIR / snapshot_name(target)
                if reached + 1e-6 < target or folder.is_dir():
                    continue
                _save_adapter(model, folder, base=base, card=card(snapshot=target))
                recent = [e["loss"] for e in state.log_history[-10:] if "loss" in e]
                atomic_write_json(
                    folder / "snapshot.json",
                    {
                        "exposures": target,
                        "exposures_reached": reached,
                        "step": state.global_step,
                        "epoch": state.epoch,
                        "recent_loss": sum(recent) / len(recent) if recent else None,
                    },
                )
            return control

    return Snapshot()


def _save_adapter(model: Any, folder: Path, *, base: AdapterBase, card: str) -> None:
    """``model.save_pretrained`` into ``folder`` via a temporary sibling renamed onto it (never half-written), naming
    ``base`` as its base model (so it loads against the base's hub id anywhere), with ``card`` as its README.md,
    and with the usual permissions (a temporary folder is made ``drwx------``)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_dir, 0o777 & ~umask)
    try:
        with disk_full_as_error(folder):
            _save_adapter_into(tmp_dir, model, base=base, card=card, umask=umask)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp_dir, folder)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def _save_adapter_into(tmp_dir: Path, model: Any, *, base: AdapterBase, card: str, umask: int) -> None:
    """``_save_adapter``'s writing: the adapter, named against ``base``, its card and the usual modes."""
    unwrapped = getattr(model, "module", model)  # DDP wraps the model
    configs = list(unwrapped.peft_config.values())
    kept = [(c.base_model_name_or_path, c.revision) for c in configs]
    for c in configs:  # the Trainer's checkpoints keep the local path: they are for resuming here
        c.base_model_name_or_path, c.revision = base.name_or_path, base.revision
    try:
        # the embeddings are never resized or trained; "auto" would ask the hub for the base's config
        unwrapped.save_pretrained(str(tmp_dir), save_embedding_layers=False)
    finally:
        for c, (name, revision) in zip(configs, kept):
            c.base_model_name_or_path, c.revision = name, revision
    write_model_card(tmp_dir, card)
    for path in tmp_dir.rglob("*"):  # whatever mode each writer chose (safetensors: 0600), the usual ones
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _zip_problem(path: Path) -> str | None:
    """Why a ``torch.save`` file (a zip archive) is unreadable, or ``None``; every member's CRC is checked."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"{path.name} is unreadable ({type(exc).__name__})"
    return f"{path.name} is damaged ({bad})" if bad else None


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is unreadable (header, or fewer bytes than the header promises), or ``None``."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        if path.stat().st_size != 8 + n + max(ends, default=0):
            return f"{path.name} has {path.stat().st_size} bytes, its header promises {8 + n + max(ends, default=0)}"
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        return f"{path.name} is unreadable ({type(exc).__name__})"
    return None


def _json_object_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable JSON object, or ``None``."""
    try:
        if not isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
            return f"{path.name} is not a JSON object"
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError):
        return f"{path.name} is unreadable"
    return None


def adapter_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why the LoRA adapter saved in ``folder`` cannot be loaded (its config is not a JSON object, its weights are
    missing or cut short), or ``None`` when it can."""
    folder = Path(folder)
    problem = _json_object_problem(folder / "adapter_config.json")
    if problem:
        return problem
    weights = folder / "adapter_model.safetensors"
    if weights.is_file():
        return _safetensors_problem(weights)
    if (folder / "adapter_model.bin").is_file():
        return _zip_problem(folder / "adapter_model.bin")
    return "the adapter weights are missing"


def checkpoint_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why a Trainer checkpoint cannot be resumed from, or ``None`` when it can.

    A checkpoint needs its ``trainer_state.json``, adapter config and weights and optimizer state, each readable
    (JSON parses, safetensors as long as its header says, ``torch.save`` archives pass their CRC checks); when it
    carries the completion marker, every file it lists with the size it had.
    """
    folder = Path(folder)
    marker = folder / CHECKPOINT_MARKER
    if marker.exists():
        try:
            files = json.loads(marker.read_text(encoding="utf-8"))["files"]
            for name, size in files.items():
                path = folder / name
                if not path.is_file():
                    return f"{name} is missing"
                if path.stat().st_size != size:
                    return f"{name} has {path.stat().st_size} bytes, {size} were written"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"{CHECKPOINT_MARKER} is unreadable"
    problem = _json_object_problem(folder / "trainer_state.json") or adapter_problem(folder)
    if problem:
        return problem
    if not (folder / "optimizer.pt").is_file():
        return "optimizer.pt is missing"
    for path in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")):
        problem = _zip_problem(path)
        if problem:
            return problem
    return None


def last_good_checkpoint(checkpoints: str | os.PathLike[str], *, remove: bool = True) -> str | None:
    """The newest checkpoint in ``checkpoints`` that can be resumed from, or ``None`` (a fresh start).

    Each newer one that cannot (:func:`checkpoint_problem`: a save cut short, a truncated file) is dropped with
    a :class:`~lexprobe.exceptions.LexprobeWarning` (and removed when ``remove``).

    Examples
    --------
    >>> tmp = tempfile.TemporaryDirectory()  # removed when the example ends
    >>> checkpoints = Path(tmp.name)
    >>> last_good_checkpoint(checkpoints) is None  # nothing saved yet: a fresh start
    True
    >>> (checkpoints / "checkpoint-50").mkdir()  # a save cut short: no trainer state, no weights
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     print(last_good_checkpoint(checkpoints))
    None
    >>> "cannot be resumed from" in str(caught[0].message), (checkpoints / "checkpoint-50").exists()
    (True, False)
    """
    checkpoints = Path(checkpoints)
    if not checkpoints.is_dir():
        return None
    folders = [p for p in checkpoints.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    for folder in sorted(folders, key=lambda p: int(p.name.split("-")[1]), reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        warnings.warn(
            f"checkpoint {folder} cannot be resumed from ({problem}); dropping it and falling back to an earlier "
            "checkpoint or a fresh start",
            LexprobeWarning,
            stacklevel=2,
        )
        if remove:
            shutil.rmtree(folder, ignore_errors=True)
    return None


def drop_unfinished_checkpoints(checkpoints: str | os.PathLike[str], *, after: str | None = None) -> Path | None:
    """Remove the checkpoints newer than ``after`` that lack their completion marker (a save cut short, by a full
    disk for one), so nothing half-written looks like a checkpoint; return the newest removed, or None."""
    checkpoints = Path(checkpoints)
    floor = _step(Path(after)) if after else -1
    found = sorted(
        (p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)),
        key=_step,
    )
    removed = None
    for folder in found:
        if _step(folder) > floor and not (folder / CHECKPOINT_MARKER).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            removed = folder
    return removed


def _step(folder: Path) -> int:
    return int(folder.name.rsplit("-", 1)[1])


def _checkpoint_epoch(path: str | None) -> float:
    """The epoch a checkpoint was saved at (0 for a fresh start)."""
    if not path:
        return 0.0
    state = json.loads((Path(path) / "trainer_state.json").read_text(encoding="utf-8"))
    return float(state.get("epoch") or 0.0)


def _lora_named(model: Any) -> list[tuple[str, Any]]:
    return [(n, p) for n, p in model.named_parameters() if "lora_B" in n]


def _add_lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    model.config.use_cache = False
    if config.load_in_4bit:  # QLoRA: norms in float32, inputs that carry gradients through the frozen 4-bit base
        from peft import prepare_model_for_kbit_training

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls transformers' v4 checkpointing names
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=config.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
    target = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target,
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API deprecated for v6
            return get_peft_model(model, lora)
    except ValueError as exc:
        raise TrainingError(f"cannot add LoRA to {config.model!r}: {' '.join(str(exc).split())[:200]}") from None


def _write_train_config(run_dir: Path, config: TrainConfig, data: dict[str, Any]) -> None:
    atomic_write_json(
        run_dir / "train_config.json",
        {
            "config": config.to_dict(),
            "split_from": relative_to_run(data["from"], run_dir) if data["from"] != "make_split" else "make_split",
            "n_train": len(data["train"]),
            "n_withheld": len(data["withheld"]),
            "example_format": "prompt (chat template user turn if any) -> target + EOS; loss on completion",
            # where the split was drawn from, so that a resumed run's manifest records it too
            "ontology": data["ontology"],
        },
    )


def _loss_table(log_history: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "step": int(e["step"]),
            "epoch": float(e.get("epoch", float("nan"))),
            "loss": float(e["loss"]),
            "learning_rate": float(e.get("learning_rate", float("nan"))),
            "grad_norm": float(e.get("grad_norm", float("nan"))),
        }
        for e in log_history
        if "loss" in e and "step" in e
    ]
    frame = pd.DataFrame(rows, columns=["step", "epoch", "loss", "learning_rate", "grad_norm"])
    return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def _edge_mean(losses: pd.DataFrame, *, first: bool) -> float:
    if losses.empty:
        return float("nan")
    k = max(1, len(losses) // 10)
    part = losses["loss"].iloc[:k] if first else losses["loss"].iloc[-k:]
    return float(part.mean())


def _write_outputs(
    run_dir: Path,
    model: Any,
    losses: pd.DataFrame,
    result: TrainResult,
    config: TrainConfig,
    lm: Any,
    data: dict,
    *,
    base: AdapterBase,
    card: str,
) -> None:
    with atomic_path(run_dir / "loss.csv") as tmp:
        losses.to_csv(tmp, index=False)
    _plot_loss(losses, run_dir, title=f"{config.ontology} {config.task} ({config.model})")
    _save_adapter(model, run_dir / "adapter", base=base, card=card)
    split_files = {f"split/{n}.csv": sha256_file(run_dir / "split" / f"{n}.csv") for n in SPLITS}
    outputs = {k: v for k, v in dataclasses.asdict(result).items() if k not in ("run_dir", "adapter_dir")}
    write_manifest(
        run_dir,
        make_manifest(
            stage="train",
            config=config,
            inputs={
                "ontology": config.ontology,
                **data["ontology"],
                "model": lm.describe(run_dir=run_dir),
                "split": split_files,
            },
            outputs={
                **outputs,
                "adapter": "adapter/",
                "adapter_base": {"base_model_name_or_path": base.name_or_path, "revision": base.revision},
                "loss": "loss.csv",
            },
            seed=config.seed,
        ),
    )


def _plot_loss(losses: pd.DataFrame, directory: Path, *, title: str) -> None:
    plot_loss_curve(losses, directory, title=title)
