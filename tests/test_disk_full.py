"""A full disk is one line naming the file and "no space left on device", leaves nothing that looks finished, and
the next run after space is freed resumes: atomic writes (every result and ``--out`` file), the embedding cache's
memory-mapped array, and training's checkpoints and adapter."""

from __future__ import annotations

import errno
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from lexprobe.exceptions import OutputError
from lexprobe.runs import atomic_path, atomic_write_text, is_disk_full


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (needs the right to mount: root, as in CI containers; skipped otherwise)."""
    mount = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_numpys_short_write_on_a_full_disk_is_one_line_naming_the_file(small_disk: Path) -> None:
    target = small_disk / "embeddings.npy"
    with pytest.raises(OutputError, match=rf"cannot write {target}: no space left on device") as caught:
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.zeros((4, 100_000), dtype=np.float32))  # 1.6 MB into 1 MiB
    assert caught.value.errno == errno.ENOSPC
    assert list(small_disk.iterdir()) == []  # no temporary and no half file left
    np.save(target, np.zeros(10))  # space is there again for a smaller write


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError("714240 requested and 524256 written"),
        RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left" })'),
    ],
    ids=["enospc", "numpy-short-write", "safetensors"],
)
def test_each_way_a_library_says_the_disk_is_full_becomes_one_output_error(tmp_path: Path, error) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def write(tmp: Path) -> None:
        tmp.write_text("half")
        raise error

    with pytest.raises(OutputError, match=rf"cannot write {target}: no space left on device"):
        with atomic_path(target) as tmp:
            write(tmp)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"


def test_other_errors_are_not_taken_for_a_full_disk(tmp_path: Path) -> None:
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("bad value"), tmp_path)
    with pytest.raises(ValueError, match="bad value"):
        with atomic_path(tmp_path / "x.csv"):
            raise ValueError("bad value")


ASSEMBLE = """
import sys
from pathlib import Path
from lexprobe.embed import _open_allocated
from lexprobe.exceptions import OutputError
try:
    array = _open_allocated(Path(sys.argv[1]) / "embeddings.npy", "float32", (4, 1000, 100))  # 1.6 MB
    array[:] = 1.0
    array.flush()
except OutputError as exc:
    print(exc)
    sys.exit(1)
"""


def test_the_cache_array_is_allocated_first_so_a_full_disk_is_an_error_not_sigbus(small_disk: Path) -> None:
    done = subprocess.run([sys.executable, "-c", ASSEMBLE, str(small_disk)], capture_output=True, text=True)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])  # -7 (SIGBUS) without the allocation
    assert f"cannot write {small_disk / 'embeddings.npy'}: no space left on device" in done.stdout


def test_a_full_disk_while_assembling_keeps_the_shards_and_the_next_run_finishes(tmp_path: Path, monkeypatch) -> None:
    import os

    from _tiny_lm import make_model_dir

    from lexprobe.embed import extract_hidden_states
    from lexprobe.models import load_model

    lm = load_model(str(make_model_dir("bytelevel", tmp_path / "model")), dtype="float32", device="cpu")
    texts = ["tumor protein p53", "TP53", "insulin", "INS"]

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OutputError, match=r"embeddings\.npy: no space left on device"):
        extract_hidden_states(texts, model=lm, cache_dir=tmp_path / "cache")
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert not [n for n in left if not n.endswith((".partial", ".lock"))], left  # no entry, no half-built one
    assert list((tmp_path / "cache").glob("*.partial/shard-*.npz"))  # the finished work is kept
    monkeypatch.undo()
    resumed = extract_hidden_states(texts, model=lm, cache_dir=tmp_path / "cache")
    fresh = extract_hidden_states(texts, model=lm, cache_dir=tmp_path / "fresh")
    np.testing.assert_array_equal(resumed.array, fresh.array)


def tiny_train_config(model_dir: Path, **changes):
    from lexprobe.train import TrainConfig

    settings = dict(
        ontology="hgnc", task="name-to-symbol", model=str(model_dir), dtype="float32", device="cpu", bins=2,
        per_bin=2, templates=1, batch_size=4, lr=1e-2, lr_scheduler="constant", max_steps=4, save_steps=2, seed=0,
    )  # fmt: skip
    return TrainConfig(**(settings | changes))


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_leaves_no_half_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    import peft.peft_model
    from _tiny_lm import make_model_dir
    from safetensors import SafetensorError

    from lexprobe.train import train_lora

    config = tiny_train_config(make_model_dir("bytelevel", tmp_path / "model"))
    run = tmp_path / "run"

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 64)  # what a write cut short leaves
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space" })'
        )

    monkeypatch.setattr(peft.peft_model, "safe_save_file", full)
    with pytest.raises(OutputError, match=r"checkpoint-2: no space left on device"):
        train_lora(run, config)
    assert not list((run / "checkpoints").glob("checkpoint-*")) and not (run / "adapter").exists()
    monkeypatch.undo()
    result = train_lora(run, config)  # space freed: the run starts afresh (no good checkpoint) and finishes
    assert result.n_steps == 4 and (run / "adapter" / "adapter_model.safetensors").is_file()
