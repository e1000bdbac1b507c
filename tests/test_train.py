"""LoRA fine-tuning and exact-match evaluation: scoring on hand-made replies, and real training on the default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lexprobe.exceptions import TrainingError
from lexprobe.ontology import load_ontology
from lexprobe.train import (
    TrainConfig,
    build_examples,
    completion_collator,
    evaluate_run,
    format_prompt,
    outcome_category,
    paired_bootstrap_interval,
    parse_reply,
    progress_callback,
    score_reply,
    train_lora,
    wilson_interval,
)
from lexprobe.train._trainer import resolved_config


@pytest.fixture(scope="module")
def hgnc():
    return load_ontology("hgnc")


@pytest.fixture(scope="module")
def hpo():
    return load_ontology("hpo")


# --- scoring on hand-made replies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "parsed", "kind", "hallucinated"),
    [
        ("HGNC:11998", "HGNC:11998", "exact", False),
        ("hgnc: 11998.", "HGNC:11998", "exact", False),  # case, space, trailing punctuation
        ("The identifier is HGNC:11998, I think", "HGNC:11998", "exact", False),
        ("HGNC:5 or HGNC:11998", "HGNC:5", "none", False),  # several ids: the first one is the answer
        ("HGNC:119980", "HGNC:119980", "none", True),  # well formed, exists nowhere: hallucinated
        ("HP:0001250", None, "none", False),  # wrong prefix
        ("11998", None, "none", False),  # a bare number is no identifier
        ("", None, "none", False),
        ("HGNC:", None, "none", False),
        ("XHGNC:11998", None, "none", False),  # glued to another word
    ],
)
def test_hgnc_id_replies_are_parsed_and_scored(hgnc, reply, parsed, kind, hallucinated) -> None:
    score = score_reply(reply, "HGNC:11998", field="id", ontology=hgnc)
    assert score.parsed == parsed
    assert score.match_kind == kind
    assert score.well_formed is (parsed is not None)
    assert score.hallucinated is hallucinated
    assert score.correct is (kind != "none")


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("HP:0000003", "exact"),
        ("HP_0000003", "exact"),
        ("HP:0004715", "alt"),  # an alt_id of HP:0000003 maps to it, reported apart
        ("HP:0000005", "none"),  # another real term
        ("HP:123", "none"),  # HP ids have 7 digits
    ],
)
def test_alternative_ids_count_and_are_reported_apart(hpo, reply, kind) -> None:
    score = score_reply(reply, "HP:0000003", field="id", ontology=hpo)
    assert score.match_kind == kind
    assert not score.hallucinated


@pytest.mark.parametrize(
    ("reply", "parsed", "kind"),
    [
        ("TP53", "TP53", "exact"),
        ("tp53", "tp53", "exact"),  # symbols compare case-insensitively (unique in HGNC regardless of case)
        ("`TP53`.", "TP53", "exact"),
        ('"TP53"', "TP53", "exact"),
        ("Symbol: TP53", "TP53", "exact"),
        ("HGNC gene symbol: TP53\nTP53 is a tumour suppressor.", "TP53", "exact"),
        ("The HGNC gene symbol for tumor protein p53 is TP53.", "TP53", "exact"),
        ("\n\n  TP53  \nsomething else", "TP53", "exact"),
        ("p53", "p53", "alt"),  # an alias symbol of TP53
        ("BRCA1", "BRCA1", "none"),
        ("", None, "none"),
        ("...", None, "none"),
    ],
)
def test_symbol_replies_are_parsed_and_scored(hgnc, reply, parsed, kind) -> None:
    score = score_reply(reply, "TP53", field="symbol", ontology=hgnc)
    assert score.parsed == parsed
    assert score.match_kind == kind


def test_previous_symbols_map_to_the_current_one(hgnc) -> None:
    assert score_reply("KRAS2", "KRAS", field="symbol", ontology=hgnc).match_kind == "alt"
    assert score_reply("KRAS2", "KRAS", field="symbol").match_kind == "none"  # no ontology, no alternatives


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("Multicystic kidney dysplasia", "exact"),
        ("multicystic   KIDNEY dysplasia.", "exact"),  # case and whitespace do not matter for names
        ("Multicystic kidneys", "alt"),  # a synonym
        ("Multicystic kidney", "none"),
    ],
)
def test_names_are_case_insensitive_and_synonyms_are_alternatives(hpo, reply, kind) -> None:
    score = score_reply(reply, "Multicystic kidney dysplasia", field="name", ontology=hpo, term_id="HP:0000003")
    assert score.match_kind == kind


def test_parse_reply_needs_a_prefix_for_ids_and_a_known_field() -> None:
    with pytest.raises(TrainingError, match="prefix"):
        parse_reply("HGNC:5", "id")
    with pytest.raises(TrainingError, match="`field` must be one of"):
        score_reply("x", "y", field="colour")


def test_categories_follow_the_paper() -> None:
    assert outcome_category(False, True) == "gained"
    assert outcome_category(True, False) == "lost"
    assert outcome_category(True, True) == "correct both"
    assert outcome_category(False, False) == "incorrect both"


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (57, 200)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    from scipy.stats import binomtest

    expected = binomtest(k, n).proportion_ci(method="wilson")
    assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-9)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_paired_bootstrap_is_seeded_and_covers_the_difference() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(100) < 0.2
    tuned = base | (rng.random(100) < 0.3)
    a = paired_bootstrap_interval(base, tuned, n_boot=1000, seed=3)
    assert a == paired_bootstrap_interval(base, tuned, n_boot=1000, seed=3)
    diff = tuned.mean() - base.mean()
    assert a[0] <= diff <= a[1]
    assert paired_bootstrap_interval(base, base, n_boot=200, seed=0) == (0.0, 0.0)


def test_config_is_checked() -> None:
    with pytest.raises(TrainingError, match="`templates` must be in"):
        TrainConfig(ontology="hgnc", task="name-to-symbol", templates=6)
    with pytest.raises(TrainingError, match="`lr` must be"):
        TrainConfig(ontology="hgnc", task="name-to-symbol", lr=0)
    config = TrainConfig(ontology="hgnc", task="name-to-symbol", target_modules=["q_proj", "v_proj"])
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def _write_unfinished_run(run: Path, train: pd.DataFrame | None = None) -> None:
    from lexprobe.runs import atomic_write_json

    pairs = pd.DataFrame(
        {"source": ["tumor protein p53"], "target": ["TP53"], "id": ["HGNC:11998"], "popularity": [1.0], "bin": [0]}
    )
    (run / "split").mkdir(parents=True)
    (pairs if train is None else train).to_csv(run / "split" / "train.csv", index=False)
    pairs.to_csv(run / "split" / "withheld.csv", index=False)
    config = TrainConfig(ontology="hgnc", task="name-to-symbol")
    atomic_write_json(run / "train_config.json", {"config": config.to_dict()})


def test_evaluation_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="does not exist"):
        evaluate_run(tmp_path / "nope")
    with pytest.raises(TrainingError, match="no train_config.json"):
        evaluate_run(tmp_path)
    run = tmp_path / "run"
    _write_unfinished_run(run, train=pd.DataFrame(columns=["source", "target", "id", "popularity", "bin"]))
    with pytest.raises(TrainingError, match="no finished adapter"):
        evaluate_run(run)
    with pytest.raises(TrainingError, match="`splits` must be from"):
        evaluate_run(run, splits=("test",), baseline_only=True)
    with pytest.raises(TrainingError, match="has no pairs"):
        evaluate_run(run, splits=("train",), baseline_only=True)


# --- real training on the default model ------------------------------------------------------------------

TINY = {
    "ontology": "hgnc",
    "task": "name-to-symbol",
    "bins": 2,
    "per_bin": 2,
    "templates": 1,
    "batch_size": 4,
    "lr": 1e-3,
    "lr_scheduler": "constant",
    "max_steps": 8,
    "save_steps": 4,
    "seed": 0,
}


@pytest.fixture(scope="module")
def lm():
    from lexprobe.models import load_model

    return load_model(head=True)


#: ``progress(stage, done, total)`` calls of the shared training run and of its evaluation
PROGRESS: dict[str, list[tuple[str, int, int]]] = {"train": [], "evaluate": []}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("train") / "run"
    calls = PROGRESS["train"]
    result = train_lora(run, TrainConfig(**TINY), callbacks=[progress_callback(lambda *a: calls.append(a))])
    return run, result


@pytest.fixture(scope="module")
def evaluated(trained):
    run, _ = trained
    calls = PROGRESS["evaluate"]
    return evaluate_run(run, progress=lambda *a: calls.append(a))


@pytest.mark.slow
def test_training_and_evaluation_report_every_step_and_batch(trained, evaluated) -> None:
    # every optimizer step, from the start (0 of 8) to the end
    assert PROGRESS["train"] == [("training", step, 8) for step in range(9)]
    generating = [(done, total) for stage, done, total in PROGRESS["evaluate"] if stage == "generating"]
    # 4 pairs per split, 2 splits, baseline and tuned: 16 replies, a batch per split and model
    assert generating == [(done, 16) for done in range(0, 17, 4)]
    assert PROGRESS["evaluate"][:2] == [("loading model", 0, 1), ("loading model", 1, 1)]


@pytest.mark.slow
def test_examples_mask_the_prompt_and_keep_eos_when_pad_is_eos(lm) -> None:
    from lexprobe.tasks import prompt_templates

    tok = lm.tokenizer
    assert tok.pad_token_id == tok.eos_token_id  # the case that bites
    pairs = pd.DataFrame({"source": ["tumor protein p53", "KRAS proto-oncogene, GTPase"], "target": ["TP53", "KRAS"]})
    templates = prompt_templates("hgnc", "name-to-symbol", 2)
    examples = build_examples(pairs, templates, tok)
    assert len(examples) == 4
    for ex, target in zip(examples, ["TP53", "TP53", "KRAS", "KRAS"]):
        completion = [t for t in ex["labels"] if t != -100]
        assert completion[-1] == tok.eos_token_id
        assert tok.decode(completion[:-1]) == target
        prompt = tok.decode(ex["input_ids"][: len(ex["input_ids"]) - len(completion)])
        assert prompt.endswith("<|im_start|>assistant\n")  # the chat template's generation prompt
    assert format_prompt(tok, "Q?").count("Q?") == 1
    batch = completion_collator(tok)(examples)
    short = int(np.argmin([len(e["input_ids"]) for e in examples]))
    n = len(examples[short]["input_ids"])
    labels = batch["labels"][short].tolist()
    assert labels[n - 1] == tok.eos_token_id  # the real EOS is learned ...
    assert set(labels[n:]) <= {-100}  # ... the padding (the same token id) is not
    assert batch["attention_mask"][short].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)


@pytest.mark.slow
def test_a_base_model_prompt_reads_the_answer_as_running_text(lm) -> None:
    """Without a chat template the answer follows the prompt after one space, tokenized as in running text."""
    import copy

    from lexprobe.tasks import prompt_templates

    tok = copy.deepcopy(lm.tokenizer)
    tok.chat_template = None
    text = prompt_templates("hgnc", "name-to-symbol", 1)[0].render("BRCA1 DNA repair associated")
    assert format_prompt(tok, text + "  ") == text  # no trailing space for the answer to hang off
    pairs = pd.DataFrame({"source": ["BRCA1 DNA repair associated"], "target": ["BRCA1"]})
    (example,) = build_examples(pairs, prompt_templates("hgnc", "name-to-symbol", 1), tok)
    completion = [t for t in example["labels"] if t != -100][:-1]
    natural = tok(text + " BRCA1")["input_ids"]
    assert example["input_ids"][:-1] == natural  # the same tokens the model reads in text: "ĠBRCA", "1"
    assert tok.decode(completion) == " BRCA1" and tok.convert_ids_to_tokens(completion)[0] == "ĠBRCA"


@pytest.mark.slow
def test_loss_falls_and_every_lora_matrix_changes(trained) -> None:
    run, result = trained
    assert not result.already_complete and result.n_steps == 8 and result.n_examples == 4
    assert result.final_loss < result.first_loss / 3
    loss = pd.read_csv(run / "loss.csv")
    assert loss["step"].tolist() == list(range(1, 9))
    assert loss["loss"].iloc[-1] < loss["loss"].iloc[0]
    assert result.n_lora_total > 0 and result.n_lora_changed == result.n_lora_total
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert (run / "loss_curve.png").is_file() and (run / "loss_curve.svg").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stage"] == "train" and manifest["config"]["lr"] == 1e-3
    assert manifest["inputs"]["model"]["name"] == "smollm2-135m"
    saved = json.loads((run / "train_config.json").read_text())
    # the run records the precision "auto" meant on this machine, so a resume elsewhere cannot change it
    assert TrainConfig.from_dict(saved["config"]) == resolved_config(TrainConfig(**TINY))
    assert saved["config"]["dtype"] in ("bfloat16", "float32") and result.compute_dtype == saved["config"]["dtype"]
    assert not list(run.glob(".*"))  # no temporary files left behind


@pytest.mark.slow
def test_memorization_rises_above_baseline(evaluated) -> None:
    gains = evaluated.gains
    assert gains["train"]["tuned"] >= 0.75
    assert gains["train"]["tuned"] > gains["train"]["baseline"]
    assert evaluated.memorization_gain == pytest.approx(gains["train"]["tuned"] - gains["train"]["baseline"])
    assert gains["train"]["gained"] >= 3


@pytest.mark.slow
def test_evaluation_writes_items_bins_and_summary(trained, evaluated) -> None:
    run, _ = trained
    outcomes = pd.read_csv(run / "outcomes.csv")
    assert len(outcomes) == 8 and sorted(set(outcomes["split"])) == ["train", "withheld"]
    assert set(outcomes["category"]) <= {"gained", "lost", "correct both", "incorrect both"}
    expected = [outcome_category(b, t) for b, t in zip(outcomes["baseline_correct"], outcomes["tuned_correct"])]
    assert outcomes["category"].tolist() == expected
    predictions = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    assert len(predictions) == 16 and {"reply", "parsed", "match_kind"} <= set(predictions.columns)
    summary = pd.read_csv(run / "evaluation_summary.csv")
    assert set(summary["bin"].astype(str)) == {"all", "0", "1"}
    assert ((summary["ci_low"] <= summary["accuracy"]) & (summary["accuracy"] <= summary["ci_high"])).all()
    report = json.loads((run / "evaluation.json").read_text())
    assert report["memorization_gain"] == pytest.approx(evaluated.memorization_gain)
    manifest = json.loads((run / "evaluation_manifest.json").read_text())
    assert manifest["stage"] == "evaluate" and manifest["outputs"]["seconds"] > 0


@pytest.mark.slow
def test_same_seed_same_numbers_and_a_finished_run_is_left_alone(trained, tmp_path: Path) -> None:
    run, first = trained
    again = train_lora(tmp_path / "again", TrainConfig(**{**TINY, "max_steps": 3}))
    a = pd.read_csv(run / "loss.csv")["loss"].to_numpy()[:3]
    b = pd.read_csv(tmp_path / "again" / "loss.csv")["loss"].to_numpy()
    np.testing.assert_allclose(b, a, rtol=1e-6)
    assert again.n_steps == 3
    done = train_lora(run, TrainConfig(**TINY))
    assert done.already_complete
    with pytest.raises(TrainingError, match="other settings"):
        train_lora(run, TrainConfig(**{**TINY, "lr": 5e-4}))


@pytest.mark.slow
def test_the_output_layer_at_labelled_positions_trains_the_same_adapter(trained, tmp_path: Path, monkeypatch) -> None:
    """Projecting onto the vocabulary only where a label is scored changes no weight of the adapter: runs made
    before it (every position projected) and after it are the same runs."""
    import torch
    from safetensors.torch import load_file

    from lexprobe.train import _data

    run, result = trained
    assert result.logits_at == "labelled positions"
    monkeypatch.setattr(_data, "scores_labelled_positions_only", lambda model: False)
    plain = train_lora(tmp_path / "plain", TrainConfig(**TINY))
    assert plain.logits_at == "every position"
    ours, theirs = (load_file(r / "adapter" / "adapter_model.safetensors") for r in (run, tmp_path / "plain"))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["outputs"]["logits_at"] == "labelled positions"


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_last_checkpoint(trained, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    config = TrainConfig(**{**TINY, "save_steps": 2})
    with pytest.raises(KeyboardInterrupt):
        train_lora(run, config, callbacks=[Interrupt()])
    assert (run / "checkpoints" / "checkpoint-2").is_dir() and not (run / "adapter").exists()
    result = train_lora(run, config)
    assert result.resumed_from == "checkpoint-2" and result.n_steps == 8
    resumed = pd.read_csv(run / "loss.csv")
    assert resumed["step"].tolist() == list(range(1, 9))
    # resuming gives the numbers of the uninterrupted run
    np.testing.assert_allclose(resumed["loss"], pd.read_csv(trained[0] / "loss.csv")["loss"], rtol=1e-4)
    # and records where its split was drawn from, as the uninterrupted run does (a study compares it)
    inputs = json.loads((run / "manifest.json").read_text())["inputs"]
    uninterrupted = json.loads((trained[0] / "manifest.json").read_text())["inputs"]
    assert inputs["data_checksum"] == uninterrupted["data_checksum"] == load_ontology("hgnc").checksum
    assert {k: inputs[k] for k in ("source", "release")} == {k: uninterrupted[k] for k in ("source", "release")}


@pytest.mark.slow
def test_two_processes_under_torchrun_train_one_adapter(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    run = tmp_path / "ddp"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_port",
            "29531",
            str(Path(__file__).with_name("_ddp_train_worker.py")),
            str(run),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["outputs"]["world_size"] == 2
    assert manifest["outputs"]["n_lora_changed"] == manifest["outputs"]["n_lora_total"] > 0
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert [p.name for p in run.iterdir() if "adapter" in p.name] == ["adapter"]
