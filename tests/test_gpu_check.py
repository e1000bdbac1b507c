"""The GPU check (``make gpu-check``, benchmarks/gpu_check.py) on a machine without CUDA: its one-line exit, and the
parts that run on a CPU (the peak table and arithmetic, the CKA-null comparison, the skipped steps, the writers)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tiny_lm import make_model_dir

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


gc = _load()


def _no_cuda_env() -> dict[str, str]:
    return dict(os.environ) | {"CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one


def _assert_one_line_and_nothing_written(done: subprocess.CompletedProcess, out: Path) -> None:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA"), done.stdout
    assert "nothing measured, no results written" in lines[0]
    assert not out.exists() and not list(out.parent.iterdir())


def test_without_cuda_the_script_says_so_in_one_line_exits_0_and_writes_no_results(tmp_path: Path) -> None:
    out = tmp_path / "results" / "gpu.json"
    out.parent.mkdir()
    command = [sys.executable, str(SCRIPT), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=_no_cuda_env(), timeout=300)
    _assert_one_line_and_nothing_written(done, out)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_without_cuda_make_gpu_check_says_so_in_one_line_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "results" / "gpu.json"
    out.parent.mkdir()
    command = [
        "make",
        "--no-print-directory",
        "gpu-check",
        f"VENV={sys.prefix}",
        "GPU_CHECK_SETUP=",
        f"GPU_CHECK_ARGS=--out {out}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=_no_cuda_env(), timeout=300)
    _assert_one_line_and_nothing_written(done, out)


@pytest.mark.parametrize(
    ("name", "gpu", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.5),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.5),
        ("NVIDIA H100 SXM5 80GB", "H100 SXM", 989.5),
        ("NVIDIA H200", "H200 SXM", 989.5),
        ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
        ("NVIDIA A100 80GB PCIe", "A100", 312.0),
        ("NVIDIA L4", "L4", 121.0),
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "unknown", None),  # a slice has a share of the SMs
        ("NVIDIA H100 NVL", "unknown", None),
        ("NVIDIA H200 NVL", "unknown", None),
        ("NVIDIA L40S", "unknown", None),
        ("Tesla T4", "unknown", None),
        ("", "unknown", None),
    ],
)
def test_the_bf16_peak_comes_from_the_table_by_device_name_or_is_unknown(name: str, gpu: str, tflops) -> None:
    peak = gc.bf16_peak(name)
    assert (peak["gpu"], peak["tflops"]) == (gpu, tflops)
    if tflops is None:
        assert peak["source"].startswith("unknown:") and repr(name) in peak["source"]
    else:
        assert "datasheet" in peak["source"]


def test_the_peak_fraction_is_the_rate_over_the_peak_and_none_without_a_peak() -> None:
    assert gc.peak_fraction(494.75e12, 989.5) == pytest.approx(0.5, rel=1e-12)
    assert gc.peak_fraction(2 * 106_203_456 * 1e6, 312.0) == pytest.approx(2 * 106_203_456 * 1e6 / 312e12)
    assert gc.peak_fraction(1e12, None) is None
    assert gc.peak_fraction(1e12, 0.0) is None


def _paired(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from lexprobe.align import preprocess

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 24))
    Y = X[:, :16] @ rng.normal(size=(16, 16)) + rng.normal(size=(n, 16))
    return preprocess(X), preprocess(Y)


@pytest.mark.parametrize("n", [200, 1100])  # 1,100 > KERNEL_F64_MAX_ITEMS: the compiled loop's float32 kernels
def test_the_cka_null_in_torch_on_the_cpu_equals_the_numpy_one_to_1e8(n: int) -> None:
    X, Y = _paired(n)
    result = gc.compare_cka_null(X, Y, device="cpu", reference="numpy", permutations=12)
    assert result["agree"] and result["tolerance"] == 1e-8
    for form in ("kernel", "feature"):
        assert 0 <= result[form]["max_abs_difference"] <= 1e-8
        assert result[form]["cpu_seconds"] > 0 and result[form]["numpy_seconds"] > 0
    # each form was forced in turn: both give the same null
    assert result["kernel"]["null_mean_cka"] == pytest.approx(result["feature"]["null_mean_cka"], abs=1e-10)


def test_a_null_that_differs_by_more_than_the_tolerance_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    import lexprobe.align._kernels as kernels

    exact = kernels.permuted_traces_torch
    monkeypatch.setattr(kernels, "permuted_traces_torch", lambda K, L, perms: exact(K, L, perms) * (1 + 1e-6))
    X, Y = _paired(200)
    result = gc.compare_cka_null(X, Y, device="cpu", permutations=8, forms=("kernel",))
    assert not result["agree"] and result["kernel"]["max_abs_difference"] > 1e-8


def test_neighbour_agreement_counts_identical_rows_and_recall() -> None:
    A = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    assert gc.neighbour_agreement(A, A, 3) == {"rows_identical": 1.0, "recall_at_k": 1.0}
    B = A.copy()
    B[0] = [2, 1, 3]  # the same neighbours in another order
    B[1] = [0, 2, 1]  # one of three replaced
    out = gc.neighbour_agreement(A, B, 3)
    assert out["rows_identical"] == 0.5 and out["recall_at_k"] == pytest.approx((4 - 1 / 3) / 4)


def test_faiss_without_a_gpu_build_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    X = np.random.default_rng(0).normal(size=(50, 8))
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    assert gc.run_step(lambda: gc._faiss_step(X, 5), "cpu")["status"] == "skipped: faiss is not installed"
    monkeypatch.undo()
    faiss = pytest.importorskip("faiss")
    if hasattr(faiss, "StandardGpuResources"):
        pytest.skip("a GPU build of faiss is installed")
    status = gc.run_step(lambda: gc._faiss_step(X, 5), "cpu")["status"]
    assert (
        status == f"skipped: faiss {faiss.__version__} is a CPU build; a GPU build replaces faiss-cpu "
        "(docs/usage.md, Install with pip alone)"
    )


def test_qlora_without_bitsandbytes_or_cuda_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    step = gc.run_step(lambda: gc._qlora_step("smollm2-135m", "cpu", gc.CheckSizes(), tmp_path), "cpu")
    assert step["status"] == "skipped: bitsandbytes is not installed (pip install 'lexprobe[quantization]')"
    # bitsandbytes present (as far as find_spec tells) but no CUDA device: the library's own reason
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes" else real(name, *a)
    )
    step = gc.run_step(lambda: gc._qlora_step("smollm2-135m", "cpu", gc.CheckSizes(), tmp_path), "cpu")
    assert step["status"].startswith("skipped: 4-bit loading (--load-in-4bit) needs a CUDA GPU")
    assert not list(tmp_path.iterdir())  # nothing was loaded or trained


def test_a_failing_step_is_recorded_and_the_steps_after_it_that_need_its_states_are_skipped() -> None:
    failed = gc.run_step(lambda: {"x": 1 / 0}, "cpu")
    assert failed["status"] == "failed: ZeroDivisionError: division by zero" and failed["seconds"] >= 0
    own = gc.run_step(lambda: {"status": "failed: differs", "x": 1}, "cpu")  # a step that fails with its numbers
    assert own["status"] == "failed: differs" and own["x"] == 1
    step = gc._needs_states({}, lambda: {"never": "run"})
    assert gc.run_step(step, "cpu")["status"] == "skipped: no hidden states: the extraction step did not finish"


def _record() -> dict:
    return {
        "benchmark": "gpu_check",
        "machine": {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3"},
        "bf16_peak": gc.bf16_peak("NVIDIA H100 80GB HBM3"),
        "steps": {
            "extraction": {
                "status": "ok",
                "tokens_per_second": 123456.7,
                "dtype": "bfloat16",
                "tokens": 80000,
                "items": 8000,
                "useful_tflops": 26.2,
                "fraction_of_bf16_peak": 0.0265,
                "seconds": 12.0,
                "peak_gpu_memory_mb": 2048.0,
            },
            "faiss": {"status": "skipped: faiss is not installed", "seconds": 0.0, "peak_gpu_memory_mb": 0.0},
            "lora": {
                "status": "ok",
                "examples_per_second": 400.0,
                "compute_dtype": "bfloat16",
                "steps": 60,
                "batch_size": 16,
                "first_loss": 3.0,
                "final_loss": float("nan"),
                "seconds": 9.0,
            },
            "qlora": {"status": "failed: RuntimeError: boom", "seconds": 1.0},
        },
        "seconds": 30.0,
    }


def test_the_table_has_a_row_per_step_with_its_status_and_numbers() -> None:
    table = gc.format_table(_record())
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    assert [row.split(" | ")[0] for row in rows] == ["| extraction", "| faiss", "| lora", "| qlora"]
    assert "123,457 tokens/s (bfloat16" in rows[0] and "0.0265 of the bf16 peak (H100 SXM, 990 TFLOP/s)" in rows[0]
    assert "| skipped: faiss is not installed |  |" in rows[1]
    assert "400 examples/s" in rows[2] and "loss 3 -> -" in rows[2]  # NaN shows as a dash
    assert "| failed: RuntimeError: boom |" in rows[3]
    assert "datasheet" in table.splitlines()[-1]


def test_a_null_comparison_that_failed_shows_its_numbers_in_the_table() -> None:
    record = _record()
    X, Y = _paired(100)
    numbers = gc.compare_cka_null(X, Y, device="cpu", permutations=4)
    record["steps"] = {
        "cka_null": numbers | {"status": "failed: the cpu and CPU nulls differ by 1e-06", "seconds": 1.0}
    }
    row = gc.format_table(record).splitlines()[2]
    assert (
        "| cka_null | failed: the cpu and CPU nulls differ by 1e-06 | 100 items, 4 permutations; kernel: max diff"
        in row
    )


def test_the_results_file_is_strict_json(tmp_path: Path) -> None:
    path = gc.write_results(_record(), tmp_path / "results_gpu_check.json")
    text = path.read_text()
    assert "NaN" not in text
    back = json.loads(text)
    assert back["steps"]["lora"]["final_loss"] is None and back["steps"]["extraction"]["tokens"] == 80000


def test_every_step_runs_on_a_cpu_with_a_tiny_model(tmp_path: Path) -> None:
    """The whole check through the library's own paths, with a tiny random model on the CPU (no CUDA here)."""
    model = make_model_dir("bytelevel", tmp_path / "model")
    sizes = gc.CheckSizes(
        items=60,
        warmup_items=8,
        cka_items=50,
        permutations=6,
        lora_steps=2,
        lora_batch=2,
        matmul_size=32,
        matmul_repeats=2,
    )
    record = gc.run_checks(model=str(model), device="cpu", sizes=sizes, workdir=tmp_path / "work")
    steps = record["steps"]
    assert list(steps) == ["extraction", "matmul", "faiss", "cka_null", "lora", "qlora"]
    extraction = steps["extraction"]
    assert extraction["status"] == "ok" and extraction["items"] == 120
    assert extraction["tokens_per_second"] > 0 and extraction["fraction_of_bf16_peak"] is None  # no peak for a CPU
    assert steps["matmul"]["status"] == "ok" and steps["matmul"]["tflops"] > 0
    assert steps["faiss"]["status"].startswith("skipped: ")
    assert steps["cka_null"]["status"] == "ok" and steps["cka_null"]["agree"]
    assert steps["lora"]["status"] == "ok" or steps["lora"]["status"].startswith("skipped: cpu does not compute")
    if steps["lora"]["status"] == "ok":
        assert steps["lora"]["examples_per_second"] > 0 and steps["lora"]["steps"] == 2
    assert steps["qlora"]["status"].startswith("skipped: ")
    assert record["bf16_peak"]["tflops"] is None and record["versions"]["lexprobe"]
    assert math.isfinite(record["seconds"]) and record["model"]["n_layers"] == 1
    json.loads(gc.write_results(record, tmp_path / "out.json").read_text())
    assert len(gc.format_table(record).splitlines()) == 2 + 6 + 2
