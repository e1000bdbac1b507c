"""Cost estimates: the items and tokens a run would compute, what the cache already holds, and time only from
speeds measured on this machine."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from _tiny_lm import make_model_dir

from lexprobe.costs import (
    KEEP_RATES,
    MIN_RATE_WORK,
    Cost,
    estimate_embedding,
    estimate_training,
    format_bytes,
    format_seconds,
    measured_rates,
    record_rate,
    total_lines,
)
from lexprobe.embed import ExtractionConfig, embed_field
from lexprobe.ontology import load_ontology

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir("bytelevel", tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LEXPROBE_CACHE", str(root))
    return root


def test_an_estimate_matches_the_run_and_a_cached_selection_costs_nothing(cache: Path, model_dir: Path) -> None:
    from lexprobe.models import load_model

    hgnc = load_ontology("hgnc")
    spec = str(model_dir)
    before = estimate_embedding(hgnc, ["name"], model=spec, limit=200, dtype="float32")
    assert (before.n_items, before.n_items_cached, before.work) == (200, 0, before.total_work)
    assert before.disk_bytes == 2 * 200 * 32 * 4  # hidden states 0 and 1 x items x width x float32
    assert before.seconds is None and "no measured rate yet on this machine" in " ".join(before.lines())

    lm = load_model(spec, dtype="float32")
    result = embed_field(hgnc, "name", limit=200, model=lm, config=ExtractionConfig(batch_size=32))
    inputs = result.manifest["inputs"]
    assert before.total_work == inputs["n_tokens"] + inputs["n_tokens_left_out"]  # every token the model ran
    assert np.asarray(result.array).nbytes == before.disk_bytes

    after = estimate_embedding(hgnc, ["name"], model=spec, limit=200, dtype="float32")  # a spec, not loaded
    assert (after.n_items_cached, after.n_items_to_compute, after.work, after.disk_bytes) == (200, 0, 0, 0)
    assert after.parts[0]["state"] == "cached" and "everything is done" in " ".join(after.lines())

    # the run measured its speed (after its first batch): a new selection gets a time from it, and only from it
    (rate,) = measured_rates("embed", lm, lm.device, lm.dtype)
    record = json.loads((cache / "rates.json").read_text())["records"][0]
    assert MIN_RATE_WORK <= record["work"] < before.total_work
    symbols = estimate_embedding(hgnc, ["symbol"], model=lm, limit=200)
    assert symbols.rate == pytest.approx(rate) and symbols.seconds == pytest.approx(symbols.work / rate)
    assert "median of 1 measurement on this machine" in " ".join(symbols.lines())
    other_precision = estimate_embedding(hgnc, ["symbol"], model=spec, limit=200, dtype="bfloat16")
    assert other_precision.seconds is None


def test_a_run_too_small_to_time_gives_no_time(cache: Path, model_dir: Path) -> None:
    from lexprobe.models import load_model

    lm = load_model(str(model_dir), dtype="float32")
    embed_field(load_ontology("hgnc"), "symbol", limit=10, model=lm)  # one batch: nothing timed
    assert not (cache / "rates.json").exists()
    record_rate("embed", lm, MIN_RATE_WORK - 1, 100.0)
    cost = estimate_embedding(load_ontology("hgnc"), ["name"], model=lm, limit=10)
    assert cost.seconds is None and cost.rate is None
    assert "only small runs measured yet on this machine" in " ".join(cost.lines())


def test_shards_of_an_interrupted_run_count_as_done(cache: Path, model_dir: Path) -> None:
    from lexprobe.embed import _write_shard

    hgnc = load_ontology("hgnc")
    fresh = estimate_embedding(hgnc, ["symbol", "id"], model=str(model_dir), limit=10, dtype="float32")
    assert [p["state"] for p in fresh.parts] == ["new", "new"]
    key = fresh.parts[1]["key"]
    _write_shard(cache / "embeddings" / f"{key}.partial", [0, 3], np.zeros((2, 2, 32), np.float32), np.zeros((2, 3)))

    resumed = estimate_embedding(hgnc, ["symbol", "id"], model=str(model_dir), limit=10, dtype="float32")
    ids = resumed.parts[1]
    assert ids["state"] == "partial" and ids["n_items_cached"] == 2
    assert resumed.n_items_cached == 2 and resumed.n_items == 20
    assert 0 < ids["n_tokens_to_compute"] < ids["n_tokens"]
    assert resumed.work == fresh.work - (ids["n_tokens"] - ids["n_tokens_to_compute"])
    json.dumps(resumed.to_dict(), allow_nan=False)


def test_rates_keep_the_newest_few_per_model_device_and_precision(cache: Path) -> None:
    class Model:
        name, checksum, device = "m", "abc", "cpu"

        def __init__(self, dtype: str) -> None:
            self.dtype = dtype

    for i in range(KEEP_RATES + 3):
        record_rate("embed", Model("torch.float32"), work=100 * (i + 1), seconds=1.0)
    record_rate("embed", Model("torch.bfloat16"), work=5, seconds=1.0)
    record_rate("embed", Model("torch.float32"), work=0, seconds=1.0)  # nothing done: nothing recorded

    kept = measured_rates("embed", Model(""), "cpu", "float32")
    assert kept == [100.0 * (i + 1) for i in range(3, KEEP_RATES + 3)]
    assert measured_rates("embed", Model(""), "cuda:0", "float32") == []
    assert measured_rates("embed", Model(""), "cpu", "bfloat16") == [5.0]
    data = json.loads((cache / "rates.json").read_text())
    assert len(data["records"]) == KEEP_RATES + 1

    # a run large enough to be past its warm-up outweighs the small ones, and small runs do not push it out
    record_rate("embed", Model("torch.float32"), work=MIN_RATE_WORK * 10, seconds=4.0)
    for _ in range(KEEP_RATES + 1):
        record_rate("embed", Model("torch.float32"), work=10, seconds=1.0)
    assert measured_rates("embed", Model(""), "cpu", "float32") == [MIN_RATE_WORK * 10 / 4.0]


def test_training_time_comes_from_a_finished_run_of_the_same_model_and_precision() -> None:
    from lexprobe.train import read_train_config

    run = ROOT / "docs" / "results" / "precision" / "train-hgnc-name-to-symbol-float32"
    if not (run / "manifest.json").is_file():
        pytest.skip("the recorded training run is not in this checkout")
    outputs = json.loads((run / "manifest.json").read_text())["outputs"]
    config = read_train_config(run)

    cost = estimate_training(config, runs=[run, ROOT / "docs"])  # a folder that is no run is passed over
    assert cost.work == outputs["n_steps"]  # 20 bins x 5 pairs x 1 template / 8 per step, 20 epochs
    loop_seconds = outputs["n_examples"] * config.epochs / outputs["examples_per_second"]
    assert cost.seconds == pytest.approx(loop_seconds)
    assert cost.parts[0]["run"] == str(run)

    other = estimate_training(dataclasses.replace(config, dtype="bfloat16"), runs=[run])
    assert other.seconds is None and other.rate is None
    assert "no measured rate yet on this machine" in " ".join(other.lines())


def test_human_forms() -> None:
    assert format_bytes(999) == "999 B" and format_bytes(1_400_000_000) == "1.4 GB"
    assert format_seconds(42) == "42 s" and format_seconds(75) == "1 min 15 s"
    assert format_seconds(4000) == "1 h 6 min"
    cost = Cost("embed", "x", n_items=3, n_items_cached=1, work=10, total_work=15, unit="tokens", rate=2.0)
    cost.seconds, cost.n_rates = 5.0, 3
    assert "  time: about 5 s at 2 tokens/s (median of 3 measurements on this machine)" in cost.lines()
    assert cost.to_dict()["n_items_to_compute"] == 2 and not math.isnan(cost.to_dict()["rate"])


def test_training_time_is_matched_on_the_precision_training_computed_in() -> None:
    """A bfloat16 run on a CPU loads its weights in float32 (autocast computes in bfloat16): its speed is the
    bfloat16 rate, not a float32 one."""
    from lexprobe.train import read_train_config

    run = ROOT / "docs" / "results" / "study-v2-smollm2" / "hgnc" / "name-to-locus_type"
    if not (run / "manifest.json").is_file():
        pytest.skip("the recorded training run is not in this checkout")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["model"]["dtype"] == "float32" and manifest["outputs"]["compute_dtype"] == "bfloat16"
    config = read_train_config(run)
    cost = estimate_training(config, runs=[run])
    assert cost.seconds is not None and cost.parts[0]["run"] == str(run)
    assert estimate_training(dataclasses.replace(config, dtype="float32"), runs=[run]).seconds is None


@pytest.mark.slow
def test_the_default_model_estimate_agrees_with_its_run() -> None:
    """With the real tokenizer (the converted model in the project cache): a new sample of HGNC symbols is all
    to compute; after embedding it, nothing is."""
    hgnc = load_ontology("hgnc")
    config = ExtractionConfig(layers=(0, -1))
    before = estimate_embedding(hgnc, ["symbol"], limit=7, seed=20261130, config=config)
    result = embed_field(hgnc, "symbol", limit=7, seed=20261130, config=config)
    after = estimate_embedding(hgnc, ["symbol"], limit=7, seed=20261130, config=config)
    inputs = result.manifest["inputs"]
    assert before.total_work == after.total_work == inputs["n_tokens"] + inputs["n_tokens_left_out"]
    assert after.work == 0 and after.n_items_cached == 7
    assert after.parts[0]["disk_bytes"] == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": "/nonexistent/model-dir"}, "ModelError", "model directory not found"),
        ({"fields": ["colour"]}, "TaskError", "colour"),
    ],
)
def test_an_estimate_fails_as_the_run_would(cache: Path, model_dir: Path, kwargs: dict, error: str, message: str):
    import lexprobe.exceptions as exceptions

    args = {"model": str(model_dir), "fields": ["name"]} | kwargs
    with pytest.raises(getattr(exceptions, error), match=message):
        estimate_embedding("hgnc", args.pop("fields"), limit=5, **args)


def test_a_study_dry_run_leaves_out_what_the_study_folder_holds(tmp_path: Path) -> None:
    """Resuming a study, its dry run counts only what is left: a finished run costs nothing, a run stopped at a
    checkpoint costs its steps after it, an untouched task all of its steps."""
    from lexprobe.costs import _less_what_is_done, estimate_study

    run = ROOT / "docs" / "results" / "study-v2-smollm2" / "hgnc" / "name-to-locus_type"
    if not (run / "manifest.json").is_file():
        pytest.skip("the recorded training run is not in this checkout")
    finished = tmp_path / "hgnc" / "name-to-symbol"
    (finished / "adapter").mkdir(parents=True)
    (finished / "adapter" / "adapter_config.json").write_text("{}")
    (finished / "manifest.json").write_text(json.dumps({"stage": "train"}))
    import torch
    from safetensors.torch import save_file

    checkpoints = tmp_path / "hgnc" / "name-to-id" / "checkpoints"
    good = checkpoints / "checkpoint-200"
    good.mkdir(parents=True)
    for name in ("trainer_state.json", "adapter_config.json"):
        (good / name).write_text("{}")
    save_file({"w": torch.zeros(1)}, str(good / "adapter_model.safetensors"))
    torch.save({}, good / "optimizer.pt")
    (checkpoints / "checkpoint-250").mkdir()  # a save cut short: the study resumes from 200, and so does the estimate
    tasks = ["name-to-symbol", "name-to-id", "symbol-to-id"]
    # the recorded run trained in bfloat16: name it, so the rate is found on a machine whose "auto" is float32
    fresh = estimate_study(["hgnc"], tasks=tasks, stages=("train",), runs=[run], dtype="bfloat16")
    resumed = estimate_study(["hgnc"], tasks=tasks, stages=("train",), runs=[run], out=tmp_path, dtype="bfloat16")
    steps = fresh[0].total_work
    assert steps == 260 and [c.work for c in fresh] == [steps] * 3
    assert [c.work for c in resumed] == [0, steps - 200, steps]
    assert resumed[0].seconds == 0 and resumed[0].n_items_to_compute == 0
    assert resumed[1].seconds == pytest.approx(fresh[1].seconds * (steps - 200) / steps)
    assert "resumes at step 200 (its latest checkpoint)" in resumed[1].notes
    assert resumed[2] == fresh[2]
    assert "total: about" in total_lines(resumed)[-1] and "for 2 part(s)" in total_lines(resumed)[-1]
    # an alignment the folder holds is done; one it lacks is all to do
    align = Cost("align", "x", n_items=3, n_items_cached=1, work=10, total_work=15, unit="tokens", rate=2.0)
    (tmp_path / "hgnc" / "align").mkdir()
    assert _less_what_is_done(align, tmp_path / "hgnc" / "align") == align
    (tmp_path / "hgnc" / "align" / "manifest.json").write_text("{}")
    done = _less_what_is_done(align, tmp_path / "hgnc" / "align")
    assert done.work == 0 and done.n_items_to_compute == 0 and done.disk_bytes == 0
