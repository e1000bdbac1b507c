"""Hidden-state extraction with the real embedded model, on small samples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lexprobe.embed import SINK_RATIO_WARN, ExtractionConfig, embed_field, extract_hidden_states, resolve_layers
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
    # float32: these tests compare pooled states with a manual forward and across batchings to 1e-4, which
    # holds in float32; bfloat16 rounds differently with each batch shape (its effect: docs/alignment.md)
    return load_model("smollm2-135m", dtype="float32")


def assert_close_per_layer(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4) -> None:
    """Equal up to float noise relative to each layer's scale (LLM states reach ~1e4 in a few dims)."""
    for la, lb in zip(np.asarray(a), np.asarray(b)):
        scale = max(np.abs(la).max(), 1e-6)
        assert np.abs(la - lb).max() <= rtol * scale


def manual_states(lm, text: str, prefix: str = "") -> tuple[torch.Tensor, ...]:
    """Hidden states of ``prefix + text`` run alone (no padding), the prefix tokenized on its own."""
    ids = lm.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
    ids = ids + lm.tokenizer(text)["input_ids"]
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states


def test_default_model_is_the_embedded_smollm2(lm) -> None:
    assert lm.n_layers == 30 and lm.hidden_size == 576 and lm.is_causal
    assert lm.name == "smollm2-135m" and len(lm.checksum) == 64
    assert not hasattr(lm.model, "lm_head")  # hidden states only: no vocabulary projection


@pytest.mark.parametrize(("prefix", "skip"), [("auto", 1), ("none", 0)])
def test_shapes_and_pooling_match_a_manual_unpadded_forward(lm, tmp_path: Path, prefix: str, skip: int) -> None:
    # SmolLM2 adds no BOS: the default sink prefix is a newline, run before the item and left out of the pool;
    # "none" is the old pooling (every token of the item, the first one included)
    for pool in ("mean", "last", "first"):
        result = extract_hidden_states(
            TEXTS,
            model=lm,
            config=ExtractionConfig(layers=(0, 12, -1), pool=pool, batch_size=8, prefix=prefix),
            cache_dir=tmp_path,
        )
        assert result.array.shape == (3, len(TEXTS), 576)
        assert result.layers == [0, 12, 30]
        for row, text in enumerate(TEXTS):
            states = manual_states(lm, text, "\n" if skip else "")
            for k, layer in enumerate(result.layers):
                h = states[layer][0][skip:]
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


def test_the_attention_sink_is_out_of_the_pooled_states_by_default(lm, tmp_path: Path) -> None:
    # SmolLM2-135M gives the first position a norm ~100x the others from layer 12 on: with the old pooling
    # that one token dominates every item's mean, and the manifest says so; the default prefix takes it
    names = list(load_ontology("hgnc").terms["label"][:40])
    old = extract_hidden_states(
        names, model=lm, config=ExtractionConfig(prefix="none", include_special=True), cache_dir=tmp_path
    )
    new = extract_hidden_states(names, model=lm, config=ExtractionConfig(), cache_dir=tmp_path)
    old_ratio = {r["layer"]: r["max_over_median"] for r in old.manifest["outputs"]["token_norms"]}
    new_ratio = {r["layer"]: r["max_over_median"] for r in new.manifest["outputs"]["token_norms"]}
    assert min(old_ratio[layer] for layer in range(12, 25)) > 30
    assert max(new_ratio[layer] for layer in range(12, 31)) < 3
    assert max(new_ratio.values()) < SINK_RATIO_WARN  # early layers have milder outlier tokens (~10x)
    assert old.manifest["warnings"] and "12" in old.manifest["warnings"][0]
    assert new.manifest["warnings"] == []
    # the prefix itself is where the sink went
    left_out = {r["layer"]: r["max_left_out_norm"] for r in new.manifest["outputs"]["token_norms"]}
    assert left_out[12] > 50 * new.manifest["outputs"]["token_norms"][12]["median_pooled_norm"]
    assert new.manifest["inputs"]["sink_prefix"] == ["Ċ"]  # the newline, in byte-level BPE
    # the item's own tokens are counted, prefix apart
    n_item_tokens = sum(len(lm.tokenizer(t)["input_ids"]) for t in names)
    assert new.manifest["inputs"]["n_tokens"] == n_item_tokens == old.manifest["inputs"]["n_tokens"]
    assert new.manifest["inputs"]["n_tokens_left_out"] == len(names)


def test_special_tokens_are_never_pooled_unless_asked(lm, tmp_path: Path) -> None:
    template = "{text}<|im_end|>"
    plain = extract_hidden_states(TEXTS[:3], model=lm, config=ExtractionConfig(layers=(5,)), cache_dir=tmp_path)
    marked = extract_hidden_states(
        TEXTS[:3], model=lm, config=ExtractionConfig(layers=(5,), template=template), cache_dir=tmp_path
    )
    assert marked.manifest["inputs"]["n_tokens"] == plain.manifest["inputs"]["n_tokens"]
    assert marked.manifest["inputs"]["n_tokens_left_out"] == 2 * 3  # the sink prefix and <|im_end|>
    asked = extract_hidden_states(
        TEXTS[:3],
        model=lm,
        config=ExtractionConfig(layers=(5,), template=template, include_special=True),
        cache_dir=tmp_path,
    )
    assert asked.manifest["inputs"]["n_tokens"] == plain.manifest["inputs"]["n_tokens"] + 3
    assert not np.allclose(asked.array, marked.array)
    with pytest.raises(EmbeddingError, match="no tokens of its own"):
        extract_hidden_states(["<|im_end|>"], model=lm, config=ExtractionConfig(layers=(5,)), cache_dir=tmp_path)


def test_other_braces_in_a_template_are_literal_text(lm, tmp_path: Path) -> None:
    result = extract_hidden_states(
        ["TP53"], model=lm, config=ExtractionConfig(layers=(1,), template='{"gene": "{text}"} }'), cache_dir=tmp_path
    )
    n = len(lm.tokenizer('{"gene": "TP53"} }')["input_ids"])
    assert result.manifest["inputs"]["n_tokens"] == n


def _entry(cache: Path) -> Path:
    (entry,) = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return entry


@pytest.mark.parametrize("damage", ["flip", "truncate", "items"])
def test_a_damaged_cache_entry_is_recomputed_not_used(lm, tmp_path: Path, damage: str, caplog) -> None:
    config = ExtractionConfig(layers=(0, 12))
    good = np.array(extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path).array)
    npy = _entry(tmp_path) / "embeddings.npy"
    data = bytearray(npy.read_bytes())
    if damage == "flip":
        data[-7] ^= 0x7F  # a value deep in the array becomes ~1e29
        npy.write_bytes(bytes(data))
    elif damage == "truncate":
        npy.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (npy.parent / "items.json").write_text("{not json", encoding="utf-8")
    with caplog.at_level("WARNING", logger="lexprobe.embed"):
        again = extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path)
    assert "damaged cached embeddings" in caplog.text
    np.testing.assert_array_equal(np.asarray(again.array), good)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_shard_is_dropped_and_its_items_recomputed(lm, tmp_path: Path, damage: str, caplog) -> None:
    config = ExtractionConfig(layers=(0, -1), batch_size=2)

    def interrupt(stage: str, done: int, total: int) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path / "run", progress=interrupt)
    shard = sorted((tmp_path / "run").glob("*.partial/shard-*.npz"))[0]
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0xFF  # a bad CRC inside the zip
        shard.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="lexprobe.embed"):
        resumed = extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path / "run")
    assert "damaged shard" in caplog.text
    fresh = extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path / "fresh")
    np.testing.assert_array_equal(np.asarray(resumed.array), np.asarray(fresh.array))


def test_two_processes_embedding_the_same_items_into_one_cache_both_succeed(tmp_path: Path) -> None:
    env = {**os.environ, "LEXPROBE_CACHE": os.environ["LEXPROBE_CACHE"], "OMP_NUM_THREADS": "1"}
    code = (
        "import sys, numpy as np\n"
        "from lexprobe.embed import ExtractionConfig, extract_hidden_states\n"
        f"texts = {TEXTS * 8!r}\n"
        "r = extract_hidden_states(texts, config=ExtractionConfig(layers=(0, -1), batch_size=4),"
        f" cache_dir={str(tmp_path / 'shared')!r})\n"
        "np.save(sys.argv[1], np.asarray(r.array))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"out{i}.npy")], env=env, stderr=subprocess.PIPE)
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))


def test_a_repeated_call_is_a_cache_hit(lm, tmp_path: Path) -> None:
    config = ExtractionConfig(layers=(0, -1))
    first = extract_hidden_states(TEXTS, model=lm, config=config, cache_dir=tmp_path)
    calls = []
    second = extract_hidden_states(
        TEXTS, model=lm, config=config, cache_dir=tmp_path, progress=lambda *a: calls.append(a)
    )
    assert calls == [("embedding", len(TEXTS), len(TEXTS))]  # nothing was computed: done at once
    np.testing.assert_array_equal(first.array, second.array)
    other = extract_hidden_states(
        TEXTS, model=lm, config=ExtractionConfig(layers=(0, -1), pool="last"), cache_dir=tmp_path
    )
    assert not np.allclose(first.array, other.array)


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(lm, tmp_path: Path) -> None:
    config = ExtractionConfig(layers=(0, 7, -1), batch_size=2)
    texts = TEXTS * 2
    seen: list[tuple[int, int]] = []

    def interrupt(stage: str, done: int, total: int) -> None:
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
        progress=lambda s, d, t: resumed_from.append(d),
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
