"""``kill -9`` of a training run mid-way, then the same command again: it resumes from the last complete
checkpoint and ends with the adapter an uninterrupted run with the same seed makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lexprobe.train._trainer import CHECKPOINT_MARKER

WORKER = Path(__file__).with_name("_train_worker.py")


def train(run: Path, model_dir: Path, *, slow: float = 0.0) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(WORKER), str(run), str(model_dir), str(slow)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.slow  # three training processes: about a minute on a shared 2-core machine
def test_kill_9_mid_training_then_resume_gives_the_uninterrupted_adapter(tmp_path: Path) -> None:
    from _tiny_lm import make_model_dir

    model_dir = make_model_dir("bytelevel", tmp_path / "model")
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    reference = train(whole, model_dir)
    proc = train(killed, model_dir, slow=0.5)
    deadline = time.monotonic() + 300
    while not list((killed / "checkpoints").glob(f"checkpoint-*/{CHECKPOINT_MARKER}")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "adapter").exists()  # it died before the end
    resumed = finish(train(killed, model_dir))
    assert "resumed_from=checkpoint-" in resumed
    assert "steps=8" in finish(reference)
    a = load_file(str(killed / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(whole / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
