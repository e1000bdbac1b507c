"""Evaluation: replies that stop after their first line, few-shot baselines (RUN/shots-K), and how the report
and ``--overwrite`` treat them. Fast tests on a tiny random model; ``slow`` ones on the real default model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _tiny_lm import PAIRS, make_model_dir, make_run

from lexprobe.exceptions import TrainingError
from lexprobe.train import draw_shots, evaluate_run, few_shot_prompt, format_prompt, generate_replies, parse_reply
from lexprobe.train._evaluate import (
    _first_line_stop,
    _line_tables,
    _tables_from_texts,
    _token_texts,
    shots_for,
)

EVAL_FILES = (
    "predictions.csv",
    "outcomes.csv",
    "evaluation_summary.csv",
    "evaluation.json",
    "evaluation_manifest.json",
    "accuracy_by_bin.png",
    "accuracy_by_bin.svg",
)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-lm")
    return {kind: make_model_dir(kind, root / kind) for kind in ("bytelevel", "metaspace")}


@pytest.fixture(scope="module")
def tiny_lms(tiny_dirs):
    from lexprobe.models import load_model

    return {kind: load_model(str(d), head=True, device="cpu", dtype="float32") for kind, d in tiny_dirs.items()}


def _template():
    from lexprobe.tasks import prompt_templates

    return prompt_templates("hgnc", "name-to-symbol", 1)[0]


# --- stopping after the first line ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
def test_line_tables_from_the_vocabulary_equal_decoding_each_id(tiny_lms, kind: str) -> None:
    tok = tiny_lms[kind].tokenizer
    decoded = tok.batch_decode([[i] for i in range(len(tok))], skip_special_tokens=True)
    texts = _token_texts(tok)
    if kind == "metaspace":  # decoding one SentencePiece token drops its leading space, which is no text either way
        texts, decoded = [t.removeprefix(" ") for t in texts], [t.removeprefix(" ") for t in decoded]
    assert texts == decoded
    fast, slow = _line_tables(tok), _tables_from_texts(decoded)
    for field in ("breaks", "content", "content_first"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field))
    assert fast.breaks.any() and _line_tables(tok) is fast  # cached per tokenizer


def test_a_row_stops_at_a_line_break_only_after_some_text() -> None:
    import torch

    texts = ["", "\n", "A", " ", "B\n", "\nC", "\n\n", "\r"]
    stop = _first_line_stop(_tables_from_texts(texts), width=2)
    cases = {
        (1,): False,  # a reply that opens with a line break goes on
        (1, 6): False,
        (1, 2): False,
        (1, 2, 1): True,  # the first non-empty line is complete
        (3, 1): False,  # blank so far
        (4,): True,  # text, then the break, in one token
        (5,): False,  # break, then text: the line has only begun
        (5, 6): True,
        (0, 1): False,  # a special token is no text
        (2, 7): True,  # any line break str.splitlines knows
        (99,): False,  # an id past the tokenizer's (a padded output layer)
        (99, 1): False,
        (2, 99): False,
    }
    for generated, expected in cases.items():
        ids = torch.tensor([[2, 2, *generated]])
        assert stop(ids, None).tolist() == [expected], generated


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
def test_stopped_replies_are_the_first_line_of_the_full_ones(tiny_lms, kind: str) -> None:
    lm = tiny_lms[kind]
    prompts = [_template().render(s) for s, _, _ in PAIRS] + ["a", "b c", "x y z"]
    full = generate_replies(lm.model, lm.tokenizer, prompts, max_new_tokens=16, batch_size=4, stop_at_newline=False)
    short = generate_replies(lm.model, lm.tokenizer, prompts, max_new_tokens=16, batch_size=4)
    breaks = re.compile(r"\S[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]*[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
    stopped = 0
    for a, b in zip(full, short):
        assert a.startswith(b)
        assert parse_reply(a, "name") == parse_reply(b, "name") and parse_reply(a, "symbol") == parse_reply(b, "symbol")
        if a != b:
            stopped += 1
            assert breaks.search(b), (a, b)  # cut only after a finished non-empty line
    assert stopped > 0  # the tiny model does write line breaks


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
def test_the_output_layer_gets_a_contiguous_input_only_while_generating(tiny_lms, kind: str) -> None:
    """The prefill hands the output layer a strided view (the prompts' last positions), which torch's CPU
    bfloat16 matmul runs far slower (benchmarks/bench_generation_head.py); generation copies it contiguous
    with a hook on the output layer, the replies are those the layer gives the view, and the hook is gone
    afterwards."""
    import torch

    from lexprobe.train import _evaluate

    lm = tiny_lms[kind]
    head = lm.model.get_output_embeddings()
    seen = []
    probe = head.register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    prompts = [_template().render(s) for s, _, _ in PAIRS]
    try:
        replies = generate_replies(lm.model, lm.tokenizer, prompts, max_new_tokens=6, batch_size=4)
    finally:
        probe.remove()
    assert seen and all(seen)  # the layer ran on a contiguous input every time
    assert not head._forward_pre_hooks  # and was removed
    view = torch.arange(24.0).reshape(2, 3, 4)[:, -1:, :]
    assert not view.is_contiguous()
    (made,) = _evaluate._contiguous_input(head, (view,))
    assert made.is_contiguous() and torch.equal(made, view)
    keep, seen[:] = _evaluate._contiguous_input, []
    _evaluate._contiguous_input = lambda module, args: args
    probe = head.register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    try:
        assert generate_replies(lm.model, lm.tokenizer, prompts, max_new_tokens=6, batch_size=4) == replies
    finally:
        _evaluate._contiguous_input = keep
        probe.remove()
    assert not all(seen)  # without it, the prefill's view reaches the layer strided


# --- few-shot prompts ----------------------------------------------------------------------------------------


def test_zero_shots_is_the_training_prompt(tiny_lms) -> None:
    template = _template()
    for lm in tiny_lms.values():
        text = template.render("insulin")
        assert few_shot_prompt(lm.tokenizer, template, [], "insulin") == format_prompt(lm.tokenizer, text)


def test_a_chat_prompt_has_one_user_and_assistant_turn_per_shot(tiny_lms) -> None:
    tok = tiny_lms["bytelevel"].tokenizer
    template = _template()
    shots = [("insulin", "INS"), ("albumin", "ALB"), ("hemoglobin subunit beta", "HBB")]
    prompt = few_shot_prompt(tok, template, shots, "tumor protein p53")
    assert prompt.count("<|im_start|>user\n") == 4 and prompt.count("<|im_start|>assistant\n") == 4  # + generation
    for source, target in shots:
        assert (
            f"<|im_start|>user\n{template.render(source)}<|im_end|>\n<|im_start|>assistant\n{target}<|im_end|>"
            in prompt
        )
    assert prompt.endswith(
        f"<|im_start|>user\n{template.render('tumor protein p53')}<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_base_model_prompt_has_one_line_per_shot(tiny_lms) -> None:
    tok = tiny_lms["metaspace"].tokenizer
    assert not getattr(tok, "chat_template", None)
    template = _template()
    shots = [("insulin", "INS"), ("albumin", "ALB")]
    lines = few_shot_prompt(tok, template, shots, "tumor protein p53").split("\n")
    assert lines == [
        template.render("insulin") + " INS",
        template.render("albumin") + " ALB",
        format_prompt(tok, template.render("tumor protein p53")),
    ]


def test_shots_are_seeded_and_never_the_item_itself() -> None:
    train = pd.DataFrame(PAIRS, columns=["source", "target", "id"])
    a, b = draw_shots(train, 3, seed=7), draw_shots(train, 3, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 4 and not a["id"].duplicated().any()
    assert not draw_shots(train, 3, seed=8).equals(a)
    for source, _, term_id in PAIRS:
        rows = shots_for(a, 3, source, term_id)
        assert len(rows) == 3 and term_id not in set(a["id"][rows]) and source not in set(a["source"][rows])
        if term_id not in set(a["id"][:3]):
            assert rows == [0, 1, 2]  # everyone else gets the same K


# --- evaluate_run with shots ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated_runs(tiny_dirs, tmp_path_factory):
    """A finished tiny run on each tokenizer, evaluated zero-shot and 2-shot (baseline and tuned)."""
    runs = {}
    for kind, model_dir in tiny_dirs.items():
        run = make_run(tmp_path_factory.mktemp(f"run-{kind}") / "run", model_dir, adapter=True)
        zero = evaluate_run(run, n_boot=50)
        zero_files = {n: (run / n).read_bytes() for n in ("predictions.csv", "evaluation.json")}
        two = evaluate_run(run, shots=2, n_boot=50, seed=3)
        runs[kind] = (run, zero, two, zero_files)
    return runs


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
def test_a_few_shot_evaluation_writes_into_shots_k(evaluated_runs, kind: str) -> None:
    run, zero, two, zero_files = evaluated_runs[kind]
    assert zero.out_dir == run and zero.shots == 0 and zero.shot_pairs == []
    assert two.out_dir == run / "shots-2" and two.shots == 2
    for name in EVAL_FILES:
        assert (run / name).is_file() and (run / "shots-2" / name).is_file(), name
    for name, data in zero_files.items():  # the zero-shot evaluation is left as it was
        assert (run / name).read_bytes() == data
    assert "shot_ids" not in pd.read_csv(run / "predictions.csv").columns
    back = pd.read_csv(run / "shots-2" / "predictions.csv", keep_default_na=False)  # replies may end in "\r"
    assert back["reply"].tolist() == two.predictions["reply"].tolist()
    manifest = json.loads((run / "shots-2" / "evaluation_manifest.json").read_text())
    assert manifest["stage"] == "evaluate" and manifest["config"]["shots"] == 2
    train = pd.read_csv(run / "split" / "train.csv", dtype=str)
    drawn = draw_shots(train, 2, seed=3)
    assert manifest["config"]["shot_pairs"] == drawn.iloc[:2].to_dict(orient="records")
    assert manifest["config"]["spare_shot_pair"] == drawn.iloc[2].to_dict()
    assert set(manifest["config"]["shot_pairs"][0]) == {"source", "target", "id"}
    assert manifest["outputs"]["items_per_second"] > 0 and manifest["outputs"]["n_replies"] == 20
    report = json.loads((run / "shots-2" / "evaluation.json").read_text())
    assert report["shots"] == 2 and report["shot_pairs"] == manifest["config"]["shot_pairs"]
    assert json.loads((run / "evaluation.json").read_text())["shots"] == 0
    assert json.loads((run / "evaluation_manifest.json").read_text())["config"]["shots"] == 0
    assert two.items_per_second > 0 and zero.items_per_second > 0


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
def test_no_item_is_among_its_own_shots(evaluated_runs, kind: str) -> None:
    run, _, two, _ = evaluated_runs[kind]
    predictions = pd.read_csv(run / "shots-2" / "predictions.csv", dtype={"shot_ids": str})
    assert set(predictions["model"]) == {"baseline", "tuned"} and len(predictions) == 20
    first = ";".join(p["id"] for p in two.shot_pairs[:2])
    for row in predictions.itertuples():
        ids = row.shot_ids.split(";")
        assert len(ids) == 2 and row.id not in ids
        if row.id not in {p["id"] for p in two.shot_pairs[:2]}:
            assert row.shot_ids == first
    assert (predictions["split"] == "train").sum() == 12


def test_bad_shot_counts_are_refused_before_any_work(tiny_dirs, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", tiny_dirs["bytelevel"], n_train=3)
    with pytest.raises(TrainingError, match=r"smaller than the number of train pairs \(3 in"):
        evaluate_run(run, shots=3, baseline_only=True)
    with pytest.raises(TrainingError, match="`shots` must be a whole number >= 0"):
        evaluate_run(run, shots=-1, baseline_only=True)
    with pytest.raises(TrainingError, match="`shots` must be a whole number"):
        evaluate_run(run, shots=1.5, baseline_only=True)  # type: ignore[arg-type]
    assert not (run / "shots-3").exists()
    (run / "shots-1").write_text("someone's file")
    with pytest.raises(TrainingError, match="shots-1 is in the way"):
        evaluate_run(run, shots=1, baseline_only=True)
    result = evaluate_run(run, shots=2, baseline_only=True, splits=("withheld",), n_boot=10)  # train pairs 3 > 2
    assert result.out_dir == run / "shots-2" and set(result.predictions["split"]) == {"withheld"}


def test_a_repeated_term_in_a_hand_made_split_is_told(tiny_dirs, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", tiny_dirs["bytelevel"], n_train=3)
    train = pd.read_csv(run / "split" / "train.csv")
    pd.concat([train, train.iloc[[0, 0]]]).to_csv(run / "split" / "train.csv", index=False)
    drawn = draw_shots(pd.read_csv(run / "split" / "train.csv", dtype=str), 3, seed=0)
    if drawn["id"].value_counts().max() < 2:
        pytest.skip("this seed draws the repeated term once")
    with pytest.raises(TrainingError, match="repeats"):
        evaluate_run(run, shots=3, baseline_only=True, splits=("train",))


# --- the report, --overwrite and the CLI ---------------------------------------------------------------------


def test_the_report_shows_few_shot_evaluations_apart(evaluated_runs, tmp_path: Path) -> None:
    from lexprobe.report import build_report, find_run_dirs

    run = evaluated_runs["bytelevel"][0]
    assert find_run_dirs([run]) == [run, run / "shots-2"]
    assert find_run_dirs([run.parent]) == [run, run / "shots-2"]  # searched from above: each once
    page = build_report([run], tmp_path / "report.html").read_text()
    assert "evaluate · hgnc · name-to-symbol" in page and "· 2-shot" in page
    assert page.count("evaluation.json: gain") == 2


def test_a_run_without_its_own_evaluation_still_shows_its_few_shot_one(tiny_dirs, tmp_path: Path) -> None:
    from lexprobe.report import find_run_dirs

    run = make_run(tmp_path / "run", tiny_dirs["metaspace"])  # training not finished: no manifest yet
    evaluate_run(run, shots=1, baseline_only=True, n_boot=10)
    assert find_run_dirs([run]) == [run / "shots-1"]


def test_overwriting_a_run_takes_its_few_shot_evaluations_with_it(tiny_dirs, tmp_path: Path) -> None:
    from lexprobe.runs import prepare_run_dir

    run = make_run(tmp_path / "run", tiny_dirs["metaspace"], adapter=True)
    evaluate_run(run, shots=1, baseline_only=True, n_boot=10)
    (run / "shots-9").mkdir()
    (run / "shots-9" / "mine.txt").write_text("not lexprobe's")
    prepare_run_dir(run, "train", None, overwrite=True)
    assert not (run / "shots-1").exists() and not (run / "adapter").exists()
    assert (run / "shots-9" / "mine.txt").is_file()  # a folder lexprobe did not write stays


def test_cli_evaluate_with_shots_prints_them_and_the_speed(tiny_dirs, tmp_path: Path) -> None:
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    run = make_run(tmp_path / "run", tiny_dirs["bytelevel"], adapter=True)
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(run), "--shots", "2", "--dtype", "float32", "-q"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "2 shots (train pairs drawn with seed 0)" in text and "items/s" in text and "2-shot" in text
    assert str(run / "shots-2" / "outcomes.csv") in "".join(result.output.split())  # rich wraps long paths
    assert (run / "shots-2" / "outcomes.csv").is_file() and not (run / "outcomes.csv").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--shots", "6"], 1, "`shots` must be smaller than the number of train pairs (6 in"),
        (["--shots", "60", "--baseline"], 1, "`shots` must be smaller than the number of train pairs"),
        (["--shots", "-1"], 2, "--shots"),
        (["--shots", "two"], 2, "--shots"),
        (["--dtype", "float8"], 2, "--dtype"),
    ],
)
def test_cli_bad_shots_and_dtype(tiny_dirs, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    from lexprobe.cli.main import app
    from typer.testing import CliRunner

    run = make_run(tmp_path / "run", tiny_dirs["bytelevel"], adapter=True)
    result = CliRunner().invoke(app, ["evaluate", str(run), *args])
    assert result.exit_code == code, result.output
    if code == 1:  # one `error:` line and no traceback, as tests/cli/_cli.py checks
        import re

        log = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|DEBUG) ")  # progress lines on stderr
        lines = [line for line in result.output.splitlines() if line.strip() and not log.match(line)]
        assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
        assert message in lines[0]
    else:
        assert message in result.output and "Traceback" not in result.output
    assert not any(run.glob("shots-*")) and not (run / "outcomes.csv").exists()


# --- the real default model ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_real_models_give_the_same_answers_when_stopped_at_the_first_line(model: str) -> None:
    """On real prompts, zero- and 3-shot: stopping after the first line changes no parsed answer. Gemma 3 base
    opens zero-shot replies with blank lines; they must go on to the text."""
    from lexprobe.models import NAMED_MODELS, load_model
    from lexprobe.ontology import load_ontology
    from lexprobe.tasks import make_split, prompt_templates
    from lexprobe.train._evaluate import _generate, encode_formatted

    if NAMED_MODELS[model].optional:
        pytest.importorskip(NAMED_MODELS[model].module)
    lm = load_model(model, head=True, dtype="float32")
    hpo = load_ontology("hpo")
    for task, field in (("name-to-id", "id"), ("id-to-name", "name")):
        split = make_split(hpo, task, bins=2, per_bin=3, seed=0)
        template = prompt_templates("hpo", task, 1)[0]
        drawn = draw_shots(split.train, 3, seed=0)
        for shots in (0, 3):
            prompts = []
            for source, term_id in zip(split.withheld["source"], split.withheld["id"]):
                rows = shots_for(drawn, shots, source, term_id) if shots else []
                examples = [(drawn["source"][j], drawn["target"][j]) for j in rows]
                prompts.append(
                    encode_formatted(lm.tokenizer, few_shot_prompt(lm.tokenizer, template, examples, source))
                )
            kwargs = {"max_new_tokens": 24, "batch_size": 8, "progress": None}
            full = _generate(lm.model, lm.tokenizer, prompts, stop_at_newline=False, **kwargs)
            short = _generate(lm.model, lm.tokenizer, prompts, stop_at_newline=True, **kwargs)
            for a, b in zip(full, short):
                assert a.startswith(b)
                assert parse_reply(a, field, prefix="HP") == parse_reply(b, field, prefix="HP"), (task, shots, a, b)
            if shots == 0 and model == "gemma3-270m":
                assert any(a.startswith("\n") for a in full) and all(b.strip() for b in short)


@pytest.mark.slow
def test_real_model_tables_equal_decoding() -> None:
    from lexprobe.models import load_model

    tok = load_model("smollm2-135m", head=True).tokenizer
    decoded = tok.batch_decode([[i] for i in range(len(tok))], skip_special_tokens=True)
    slow = _tables_from_texts(decoded)
    fast = _line_tables(tok)
    for field in ("breaks", "content", "content_first"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field))
