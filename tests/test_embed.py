"""Hidden-state extraction with the real embedded model, on small samples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lexprobe.embed import ExtractionConfig, embed_field, extract_hidden_states, resolve_layers
from lexprobe.exceptions import EmbeddingError, ModelError, ResourceError
from lexprobe.models import load_model, resolve_model_spec
from lexprobe.ontology import load_ontology

pytestmark = pytest.mark.slow

TEXTS = [
    "tumor protein p53",
    "TP53",
    "HGNC:11998",
    "BRCA1 DNA repair associated",
    "a",
    "phosphatidylinositol-4,5-bisphosphate 3-kinase catalytic subunit alpha",
    "HP:0001250",
    "Seizure",
]


@pytest.fixture(scope="module")
def lm():
    return load_model("smollm2-135m")


def assert_close_per_layer(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4) -> None:
    """Equal up to float noise relative to each layer's scale (LLM states reach ~1e4 in a few dims)."""
    for la, lb in zip(np.asarray(a), np.asarray(b)):
        scale = max(np.abs(la).max(), 1e-6)
        assert np.abs(la - lb).max() <= rtol * scale


def manual_states(lm, text: str) -> tuple[torch.Tensor, ...]:
    ids = lm.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        return lm.model(**ids, output_hidden_states=True).hidden_states


def test_default_model_is_the_embedded_smollm2(lm) -> None:
    assert lm.n_layers == 30 and lm.hidden_size == 576 and lm.is_causal
    assert lm.name == "smollm2-135m" and len(lm.checksum) == 64
    assert not hasattr(lm.model, "lm_head")  # hidden states only: no vocabulary projection


def test_shapes_and_pooling_match_a_manual_unpadded_forward(lm, tmp_path: Path) -> None:
    for pool in ("mean", "last", "first"):
        result = extract_hidden_states(
            TEXTS,
            model=lm,
            config=ExtractionConfig(layers=(0, 12, -1), pool=pool, batch_size=8),
            cache_dir=tmp_path,
        )
        assert result.array.shape == (3, len(TEXTS), 576)
        assert result.layers == [0, 12, 30]
        for row, text in enumerate(TEXTS):
            states = manual_states(lm, text)
            for k, layer in enumerate(result.layers):
                h = states[layer][0]
                expected = {"mean": h.mean(0), "last": h[-1], "first": h[0]}[pool].numpy()
                scale = np.abs(expected).max()
                assert np.abs(result.array[k, row] - expected).max() <= 1e-4 * scale, (pool, text, layer)


def test_an_items_embedding_does_not_depend_on_its_batch(lm, tmp_path: Path) -> None:
    config_1 = ExtractionConfig(layers="all", batch_size=1)
    config_64 = ExtractionConfig(layers="all", batch_size=64)
    one = extract_hidden_states(TEXTS, model=lm, config=config_1, cache_dir=tmp_path / "a")
    many = extract_hidden_states(TEXTS, model=lm, config=config_64, cache_dir=tmp_path / "b")
    assert_close_per_layer(one.array, many.array)
    order = np.random.default_rng(0).permutation(len(TEXTS))
    shuffled = extract_hidden_states([TEXTS[i] for i in order], model=lm, config=config_64, cache_dir=tmp_path / "c")
    assert_close_per_layer(np.asarray(shuffled.array)[:, np.argsort(order)], many.array)


def test_bos_option_changes_the_input_and_is_recorded(lm, tmp_path: Path) -> None:
    plain = extract_hidden_states(TEXTS[:2], model=lm, config=ExtractionConfig(layers=(-1,)), cache_dir=tmp_path)
    with_bos = extract_hidden_states(
        TEXTS[:2], model=lm, config=ExtractionConfig(layers=(-1,), add_bos=True), cache_dir=tmp_path
    )
    assert with_bos.manifest["config"]["add_bos"] is True
    assert not np.allclose(plain.array, with_bos.array)


def test_a_repeated_call_is_a_cache_hit(lm, tmp_path: Path) -> None:
    config = ExtractionConfig(layers=(0, -1))
    first = extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path)
    calls = []
    second = extract_hidden_states(
        TEXTS, model=lm, config=config, cache_dir=tmp_path, progress=lambda *a: calls.append(a)
    )
    assert calls == []  # nothing was computed
    np.testing.assert_array_equal(first.array, second.array)
    other = extract_hidden_states(
        TEXTS, model=lm, config=ExtractionConfig(layers=(0, -1), pool="last"), cache_dir=tmp_path
    )
    assert not np.allclose(first.array, other.array)


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(lm, tmp_path: Path) -> None:
    config = ExtractionConfig(layers=(0, 7, -1), batch_size=2)
    texts = TEXTS * 2
    seen: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_hidden_states(texts, model=lm, config=config, cache_dir=tmp_path / "run", progress=interrupt)
    assert list((tmp_path / "run").glob("*.partial/shard-*.npz"))
    resumed_from = []
    resumed = extract_hidden_states(
        texts,
        model=lm,
        config=config,
        cache_dir=tmp_path / "run",
        progress=lambda d, t: resumed_from.append(d),
    )
    assert resumed_from[0] == 6  # the finished batches were not recomputed
    fresh = extract_hidden_states(texts, model=lm, config=config, cache_dir=tmp_path / "fresh")
    np.testing.assert_allclose(resumed.array, fresh.array, rtol=0, atol=0)
    assert not list((tmp_path / "run").glob("*.partial"))


def test_float16_storage_halves_the_bytes(lm, tmp_path: Path) -> None:
    half = extract_hidden_states(
        TEXTS, model=lm, config=ExtractionConfig(layers=(3,), storage_dtype="float16"), cache_dir=tmp_path
    )
    assert half.array.dtype == np.float16


def test_embed_field_uses_a_popularity_balanced_sample(lm, tmp_path: Path) -> None:
    hgnc = load_ontology("hgnc")
    result = embed_field(hgnc, "symbol", limit=20, model=lm, config=ExtractionConfig(layers=(-1,)), cache_dir=tmp_path)
    assert len(result.keys) == 20 and all(k.startswith("HGNC:") for k in result.keys)
    assert result.manifest["ontology"]["checksum"] == hgnc.checksum


def test_two_processes_under_torchrun_give_the_single_process_result(lm, tmp_path: Path) -> None:
    texts = TEXTS + ["lamin A/C", "LMNA", "KRAS proto-oncogene, GTPase"]
    single = extract_hidden_states(
        texts,
        model=lm,
        config=ExtractionConfig(layers=(0, 5, -1), batch_size=2),
        cache_dir=tmp_path / "single",
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(Path(__file__).with_name("_ddp_embed_worker.py")),
            str(tmp_path / "ddp"),
            str(tmp_path / "ddp.npy"),
            "|".join(texts),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = next((tmp_path / "ddp").glob("*/manifest.json")).read_text()
    assert '"world_size": 2' in manifest
    assert_close_per_layer(np.load(tmp_path / "ddp.npy"), single.array)


def test_bad_layers_empty_input_and_unknown_models_are_clear_errors(lm, tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="layer 99 is out of range: this model has 31 hidden states"):
        extract_hidden_states(TEXTS, model=lm, config=ExtractionConfig(layers=(99,)), cache_dir=tmp_path)
    with pytest.raises(EmbeddingError, match="no items to embed"):
        extract_hidden_states([], model=lm, cache_dir=tmp_path)
    with pytest.raises(EmbeddingError, match="got 1 keys for 2 texts"):
        extract_hidden_states(["a", "b"], keys=["x"], model=lm, cache_dir=tmp_path)
    with pytest.raises(EmbeddingError, match="must contain"):
        ExtractionConfig(template="no placeholder")
    with pytest.raises(ModelError, match="not reachable on the Hugging Face hub"):
        load_model("no-such-org/no-such-model")
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_model_spec("/tmp/missing.gguf")
    with pytest.raises(ModelError, match="model directory not found"):
        resolve_model_spec("./no/such/dir")
    assert resolve_layers("all", 3) == [0, 1, 2]
    assert resolve_layers((-1, 0, 2), 3) == [0, 2]


def test_an_encoder_model_works_too(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "tumor", "protein", "p53", "tp53"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(tmp_path / "bert")
    fast.save_pretrained(tmp_path / "bert")
    bert = load_model(str(tmp_path / "bert"))
    assert not bert.is_causal and bert.n_layers == 2
    result = extract_hidden_states(
        ["tumor protein p53", "tp53"],
        model=bert,
        config=ExtractionConfig(pool="first"),
        cache_dir=tmp_path / "c",
    )
    assert result.array.shape == (3, 2, 32)
    batch1 = extract_hidden_states(
        ["tumor protein p53", "tp53"],
        model=bert,
        config=ExtractionConfig(pool="mean", batch_size=1),
        cache_dir=tmp_path / "d",
    )
    batch2 = extract_hidden_states(
        ["tumor protein p53", "tp53"],
        model=bert,
        config=ExtractionConfig(pool="mean", batch_size=2),
        cache_dir=tmp_path / "e",
    )
    assert_close_per_layer(batch1.array, batch2.array)


def test_out_of_memory_halves_the_batch_and_the_result_is_unchanged(lm, tmp_path: Path, monkeypatch) -> None:
    import lexprobe.embed as embed_module

    real_forward = embed_module._forward
    sizes: list[int] = []

    def forward_with_a_memory_limit(model, batch, layers, pool):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(model, batch, layers, pool)

    config = ExtractionConfig(layers=(0, -1), batch_size=8)
    expected = extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path / "plain")
    monkeypatch.setattr(embed_module, "_forward", forward_with_a_memory_limit)
    result = extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path / "limited")
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) <= 2
    assert_close_per_layer(result.array, expected.array)

    def always_out_of_memory(model, batch, layers, pool):
        raise MemoryError

    monkeypatch.setattr(embed_module, "_forward", always_out_of_memory)
    with pytest.raises(ResourceError, match="out of memory at batch size 1"):
        extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path / "hopeless")
