"""Exposure scores of the base model: teacher-forced log-probabilities checked against a forward pass computed by
hand, Min-K% / Min-K%++ against their definitions, ranks, the run folder's cache, validation and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lexprobe.exceptions import PredictionError
from lexprobe.exposure import (
    ExposureConfig,
    _lowest_mean,
    _mid_rank,
    measure_exposure,
    read_exposure,
    score_exposure,
    validate_exposure,
)
from lexprobe.stats import pooled_auc, within_auc
from tests._tiny_lm import PAIRS, make_model_dir, make_run


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-lm-exposure")
    return {kind: make_model_dir(kind, root / kind) for kind in ("bytelevel", "metaspace")}


@pytest.fixture(scope="module")
def tiny_lms(tiny_dirs):
    from lexprobe.models import load_model

    return {kind: load_model(str(d), head=True, device="cpu", dtype="float32") for kind, d in tiny_dirs.items()}


def _template():
    from lexprobe.tasks import prompt_templates

    return prompt_templates("hgnc", "name-to-symbol", 1)[0]


def _pairs() -> pd.DataFrame:
    return pd.DataFrame(PAIRS, columns=["source", "target", "id"])


def _by_hand(lm, prompt_text: str, target: str) -> float:
    """log p(target + EOS | prompt) from one full forward pass of prompt + completion, no cache."""
    from lexprobe.train._data import encode_completion
    from lexprobe.train._evaluate import encode_formatted

    tok = lm.tokenizer
    prompt = encode_formatted(tok, prompt_text)
    completion = encode_completion(tok, prompt_text, prompt, target) + [tok.eos_token_id]
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].double(), dim=-1)
    return float(sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(completion)))


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
@pytest.mark.parametrize("shots", [0, 2])
def test_target_logprob_equals_a_forward_pass_computed_by_hand(tiny_lms, kind: str, shots: int) -> None:
    from lexprobe.train._evaluate import draw_shots, few_shot_prompt, shots_for

    lm, pairs = tiny_lms[kind], _pairs()
    pool, items = pairs.iloc[:6], pairs.iloc[6:]
    config = ExposureConfig(shots=shots, n_candidates=4, batch_size=3)
    scored = score_exposure(lm, _template(), items, pool, config=config)
    drawn = draw_shots(pool, shots, 0) if shots else None
    for row, (source, target, term_id) in zip(scored.itertuples(), items.itertuples(index=False)):
        examples = []
        if drawn is not None:
            examples = [(drawn["source"][j], drawn["target"][j]) for j in shots_for(drawn, shots, source, term_id)]
        expected = _by_hand(lm, few_shot_prompt(lm.tokenizer, _template(), examples, source), target)
        assert row.target_logprob == pytest.approx(expected, abs=1e-3)
        assert row.target_logprob_mean == pytest.approx(expected / row.completion_tokens, abs=1e-3)
        assert 1 <= row.target_rank <= row.n_candidates == 4
        assert 0 <= row.candidate_prob <= 1


def test_min_k_scores_follow_their_definitions(tiny_lms) -> None:
    lm = tiny_lms["bytelevel"]
    tok = lm.tokenizer
    text = "tumor protein p53"
    scored = score_exposure(lm, _template(), _pairs().iloc[:1], _pairs().iloc[1:], config=ExposureConfig(shots=0))
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, :-1].double(), dim=-1)
    nxt = ids[0, 1:]
    chosen = logp[torch.arange(len(nxt)), nxt].numpy()
    p = logp.exp()
    mu = (p * logp).sum(-1).numpy()
    sd = np.sqrt(((p * logp**2).sum(-1)).numpy() - mu**2)
    k = int(np.ceil(0.2 * len(chosen)))
    assert scored["source_mink"][0] == pytest.approx(np.sort(chosen)[:k].mean(), abs=1e-3)
    assert scored["source_minkpp"][0] == pytest.approx(np.sort((chosen - mu) / sd)[:k].mean(), abs=1e-3)


def test_ranks_are_mid_ranks_and_lowest_means_take_at_least_one() -> None:
    assert _mid_rank(np.array([0.5, 0.9, 0.1]), 0) == 2.0
    assert _mid_rank(np.array([0.5, 0.5, 0.5]), 0) == 2.0
    assert _mid_rank(np.array([3.0, 1.0]), 0) == 1.0
    assert _lowest_mean(np.array([5.0, 1.0, 3.0]), 0.2) == 1.0
    assert _lowest_mean(np.array([5.0, 1.0, 3.0, 2.0]), 0.5) == 1.5
    assert np.isnan(_lowest_mean(np.array([]), 0.2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_candidates": 1}, "n_candidates"),
        ({"min_k": 0}, "min_k"),
        ({"shots": -1}, "shots"),
        ({"batch_size": 0}, "batch"),
    ],
)
def test_bad_settings_are_refused(kwargs, match: str) -> None:
    with pytest.raises(PredictionError, match=match):
        ExposureConfig(**kwargs)


def test_within_auc_is_the_share_of_pairs_in_one_unit_ranked_right() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    parts = [(rng.random(30) < 0.4, rng.random(30)) for _ in range(3)]
    # one unit: the within-unit AUC is that unit's ROC AUC
    assert within_auc(parts[:1]) == pytest.approx(roc_auc_score(*parts[0]))
    # a constant shift of one unit's scores moves the pooled AUC, never the within-unit one
    shifted = [parts[0], (parts[1][0], parts[1][1] + 10), parts[2]]
    assert within_auc(shifted) == pytest.approx(within_auc(parts))
    assert pooled_auc(shifted) != pytest.approx(pooled_auc(parts))
    assert np.isnan(within_auc([(np.ones(4, bool), np.arange(4.0))]))


@pytest.fixture(scope="module")
def scored_run(tiny_dirs, tmp_path_factory):
    from lexprobe.train import evaluate_run

    run = make_run(tmp_path_factory.mktemp("exposure-run") / "run", tiny_dirs["bytelevel"], adapter=True)
    evaluate_run(run, n_boot=20)
    evaluate_run(run, shots=2, n_boot=20, baseline_only=True)
    config = ExposureConfig(shots=2, n_candidates=5)
    return run, config, measure_exposure(run, config=config)


def test_a_runs_exposure_is_written_with_its_manifest_and_read_back_unchanged(scored_run, monkeypatch) -> None:
    import lexprobe.exposure as exposure

    run, config, frame = scored_run
    out = run / "exposure-2"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "exposure" and manifest["config"]["n_candidates"] == 5
    assert set(manifest["inputs"]["splits"]) == {"train", "withheld"} and manifest["inputs"]["model"]["checksum"]
    assert list(frame["split"]) == ["train"] * 6 + ["withheld"] * 4
    monkeypatch.setattr(exposure, "score_exposure", lambda *a, **k: pytest.fail("scored again"))
    again = measure_exposure(run, config=config)
    pd.testing.assert_frame_equal(again, read_exposure(run, shots=2))
    assert np.allclose(again["target_logprob"], frame["target_logprob"], atol=1e-9)


def test_other_settings_score_again(scored_run, tmp_path: Path) -> None:
    run, config, frame = scored_run
    other = measure_exposure(run, config=ExposureConfig(shots=2, n_candidates=3))
    assert (other["n_candidates"] == 3).all()
    # same seed, same numbers: the log-probability of the target does not depend on the candidates
    assert np.allclose(other["target_logprob"], frame["target_logprob"], atol=1e-6)


def test_validation_names_every_score_beside_popularity_and_surface_controls(scored_run) -> None:
    run, config, _ = scored_run
    measure_exposure(run, config=config)
    result = validate_exposure([run], shots=2, n_boot=20)
    table = result.table
    assert {"fewshot_correct", "zeroshot_correct"} <= set(table["outcome"])
    assert {"target_logprob", "target_minkpp", "log_popularity", "completion_tokens"} <= set(table["score"])
    assert set(table["kind"]) == {"exposure", "popularity", "surface"}
    assert len(result.items) == 10


def test_a_run_without_scores_is_one_clear_error(tiny_dirs, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", tiny_dirs["bytelevel"])
    with pytest.raises(PredictionError, match="no exposure scores.*lexprobe exposure"):
        validate_exposure([run], shots=5)


def test_cli_scores_runs_and_writes_the_validation(scored_run, tmp_path: Path) -> None:
    from lexprobe.cli.main import app

    run, _, _ = scored_run
    result = CliRunner().invoke(
        app, ["exposure", str(run), "--shots", "2", "--candidates", "5", "-o", str(tmp_path / "v")]
    )
    assert result.exit_code == 0, result.output
    assert "ranked first among 5" in result.output
    table = pd.read_csv(tmp_path / "v" / "exposure_validation.csv")
    assert {"within_auc", "ci_low", "ci_high", "n_units_ranked"} <= set(table.columns)
    bad = CliRunner().invoke(app, ["exposure", str(tmp_path / "nowhere")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_the_published_exposure_table_matches_its_file() -> None:
    """docs/prediction.md's table of the scored units (both models) is docs/results/exposure-v2's file."""
    root = Path(__file__).resolve().parents[1]
    table = pd.read_csv(root / "docs/results/exposure-v2/exposure_validation.csv")
    page = (root / "docs/prediction.md").read_text(encoding="utf-8")

    def auc(model: str, outcome: str, score: str) -> str:
        row = table[(table["model"] == model) & (table["outcome"] == outcome) & (table["score"] == score)]
        return f"{row['within_auc'].iloc[0]:.2f}"

    for score in ("target_logprob", "target_logprob_mean", "log_popularity", "completion_tokens"):
        kind = table[table["score"] == score]["kind"].iloc[0]
        cells = [auc(m, o, score) for m in ("smollm2-135m", "gemma3-270m") for o in ("fewshot_correct", "generalized")]
        assert f"| `{score}` | {kind} | {' | '.join(cells)} |" in page
    assert set(table["model"]) == {"smollm2-135m", "gemma3-270m", "all"}
