"""Training checkpoints: marked complete when saved; a damaged one is dropped on resume, never wedges `train`."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from lexprobe.exceptions import LexprobeWarning
from lexprobe.train._trainer import (
    CHECKPOINT_MARKER,
    _mark_complete_callback,
    checkpoint_problem,
    last_good_checkpoint,
)


def make_checkpoint(checkpoints: Path, step: int, *, mark: bool = True) -> Path:
    """A checkpoint folder like the Trainer's (adapter, optimizer, scheduler, rng, state), marked as it would be."""
    import torch
    from safetensors.numpy import save_file

    folder = checkpoints / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
    save_file({"lora_B": np.ones((4, 8), dtype=np.float32)}, str(folder / "adapter_model.safetensors"))
    torch.save({"state": {0: {"exp_avg": torch.ones(64)}}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    torch.save({"python": 1}, folder / "rng_state.pth")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if mark:
        callback = _mark_complete_callback()
        state = types.SimpleNamespace(global_step=step, is_world_process_zero=True)
        callback.on_save(types.SimpleNamespace(output_dir=str(checkpoints)), state, control=None)
    return folder


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_saved_checkpoint_is_marked_with_its_files_and_sizes(tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path, 4)
    marker = json.loads((folder / CHECKPOINT_MARKER).read_text())
    assert marker["step"] == 4
    assert marker["files"]["optimizer.pt"] == (folder / "optimizer.pt").stat().st_size
    assert set(marker["files"]) == {p.name for p in folder.iterdir() if p.name != CHECKPOINT_MARKER}
    assert checkpoint_problem(folder) is None
    assert last_good_checkpoint(tmp_path) == str(folder)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: truncate(f / "optimizer.pt"), "optimizer.pt has"),
        (lambda f: truncate(f / "adapter_model.safetensors"), "adapter_model.safetensors has"),
        (lambda f: (f / "trainer_state.json").unlink(), "trainer_state.json is missing"),
        (lambda f: (f / CHECKPOINT_MARKER).write_text("{cut"), "is unreadable"),
    ],
)
def test_a_damaged_latest_checkpoint_is_dropped_for_the_one_before(tmp_path: Path, damage, problem: str) -> None:
    good = make_checkpoint(tmp_path, 2)
    bad = make_checkpoint(tmp_path, 4)
    damage(bad)
    assert problem in checkpoint_problem(bad)
    with pytest.warns(LexprobeWarning, match=r"checkpoint-4 cannot be resumed from .*falling back"):
        assert last_good_checkpoint(tmp_path) == str(good)
    assert not bad.exists() and good.is_dir()


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "adapter_model.safetensors", "trainer_state.json"])
def test_an_unmarked_checkpoint_is_checked_by_reading_its_files(tmp_path: Path, name: str) -> None:
    folder = make_checkpoint(tmp_path, 3, mark=False)
    assert checkpoint_problem(folder) is None  # one saved before markers existed, complete: still used
    truncate(folder / name, 0.9)
    assert name in checkpoint_problem(folder)


def test_no_good_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    bad = make_checkpoint(tmp_path, 5)
    truncate(bad / "optimizer.pt")
    (tmp_path / "checkpoint-7").mkdir()  # a save cut short before any file
    with pytest.warns(LexprobeWarning) as caught:
        assert last_good_checkpoint(tmp_path) is None
    assert len(caught) == 2 and not list(tmp_path.iterdir())
    assert last_good_checkpoint(tmp_path / "none") is None


def test_without_remove_nothing_is_deleted(tmp_path: Path) -> None:
    bad = make_checkpoint(tmp_path, 5)
    truncate(bad / "scheduler.pt")
    with pytest.warns(LexprobeWarning):
        assert last_good_checkpoint(tmp_path, remove=False) is None
    assert bad.is_dir()


@pytest.mark.slow
def test_train_resumes_past_a_truncated_checkpoint(tmp_path: Path) -> None:
    from transformers import TrainerCallback

    from lexprobe.train import TrainConfig, train_lora

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    config = TrainConfig(
        ontology="hgnc", task="name-to-symbol", bins=2, per_bin=2, templates=1, batch_size=4, lr=1e-3,
        lr_scheduler="constant", max_steps=4, save_steps=2, seed=0,
    )  # fmt: skip
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_lora(run, config, callbacks=[Interrupt()])
    checkpoint = run / "checkpoints" / "checkpoint-2"
    assert (checkpoint / CHECKPOINT_MARKER).is_file()
    truncate(checkpoint / "optimizer.pt")
    with pytest.warns(LexprobeWarning, match="checkpoint-2 cannot be resumed from"):
        result = train_lora(run, config)
    assert result.resumed_from is None and result.n_steps == 4 and (run / "adapter").is_dir()
