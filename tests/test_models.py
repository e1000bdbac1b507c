"""Model resolution and the converted-model cache (without loading weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lexprobe.exceptions import ModelError
from lexprobe.models import NAMED_MODELS, _complete, auto_device, resolve_model_spec


def test_the_default_resolves_to_the_gguf_inside_its_package() -> None:
    spec = resolve_model_spec("smollm2-135m")
    assert spec.kind == "gguf" and spec.location.endswith(NAMED_MODELS["smollm2-135m"][1])
    assert resolve_model_spec("SmolLM2-135M").name == "smollm2-135m"


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
