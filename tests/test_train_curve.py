"""Training budgets in exposures, precision, adapter snapshots and learning curves."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lexprobe.exceptions import TrainingError
from lexprobe.train import TrainConfig, read_train_config, train_lora
from lexprobe.train._curve import evaluate_curve, snapshot_points
from lexprobe.train._trainer import resolved_config


def test_exposures_count_every_template_of_every_epoch() -> None:
    assert TrainConfig(ontology="hpo", task="name-to-id", templates=3, epochs=3.0).exposures == 9.0
    assert TrainConfig(ontology="hpo", task="name-to-id", templates=1, epochs=60.0).exposures == 60.0
    assert TrainConfig(ontology="hpo", task="name-to-id", max_steps=10).exposures is None  # set by steps


def test_snapshot_points_are_sorted_unique_and_positive() -> None:
    config = TrainConfig(ontology="hpo", task="name-to-id", snapshots=[30, 10, 10.0, 20])
    assert config.snapshots == (10.0, 20.0, 30.0)
    for bad in ([0], [-5], ["x"], [float("nan")]):
        with pytest.raises(TrainingError, match="snapshots"):
            TrainConfig(ontology="hpo", task="name-to-id", snapshots=bad)


def test_schedulers_and_precisions_are_checked() -> None:
    with pytest.raises(TrainingError, match="lr_scheduler"):
        TrainConfig(ontology="hpo", task="name-to-id", lr_scheduler="cosine_restarts_sometimes")
    with pytest.raises(TrainingError, match="`dtype` must be one of auto, float32, bfloat16, float16"):
        TrainConfig(ontology="hpo", task="name-to-id", dtype="fp8")
    with pytest.raises(TrainingError, match="warmup_ratio"):
        TrainConfig(ontology="hpo", task="name-to-id", warmup_ratio=1.0)


def test_a_run_records_the_precision_it_means_not_auto() -> None:
    import torch

    from lexprobe.models import native_bfloat16

    resolved = resolved_config(TrainConfig(ontology="hpo", task="name-to-id", device="cpu"))
    assert resolved.dtype == ("bfloat16" if native_bfloat16(torch.device("cpu")) else "float32")
    assert resolved_config(TrainConfig(ontology="hpo", task="name-to-id", dtype="float32")).dtype == "float32"


def test_configs_written_before_precision_was_recorded_read_as_float32(tmp_path: Path) -> None:
    config = TrainConfig(ontology="hpo", task="name-to-id").to_dict() | {"dtype": None}
    (tmp_path / "train_config.json").write_text(json.dumps({"config": config}))
    assert read_train_config(tmp_path).dtype == "float32"


# --- a real run on the default model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshotted(tmp_path_factory):
    run = tmp_path_factory.mktemp("curve") / "run"
    config = TrainConfig(
        ontology="hpo",
        task="name-to-id",
        bins=2,
        per_bin=4,
        templates=1,
        epochs=6.0,
        batch_size=4,
        lr=2e-3,
        lora_dropout=0.0,
        lr_scheduler="constant_with_warmup",
        warmup_ratio=0.1,
        snapshots=(2, 4),
        seed=0,
    )
    return run, train_lora(run, config)


@pytest.mark.slow
def test_snapshots_are_saved_at_their_exposures_and_the_manifest_counts_exposures(snapshotted) -> None:
    run, result = snapshotted
    assert result.exposures == pytest.approx(6.0)
    assert result.snapshots == ("snapshots/exposures-2", "snapshots/exposures-4")
    assert result.compute_dtype in ("bfloat16", "float32") and result.examples_per_second > 0
    for n in (2, 4):
        info = json.loads((run / "snapshots" / f"exposures-{n}" / "snapshot.json").read_text())
        assert info["exposures"] == n and info["step"] == n * 2  # 8 pairs in batches of 4: 2 steps per epoch
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["outputs"]["exposures"] == pytest.approx(6.0)
    assert manifest["config"]["dtype"] == result.compute_dtype  # "auto" is recorded as what it meant
    assert [p.exposures for p in snapshot_points(run)] == [2.0, 4.0, 6.0]


@pytest.mark.slow
def test_a_learning_curve_scores_the_base_model_and_every_snapshot(snapshotted) -> None:
    run, _ = snapshotted
    result = evaluate_curve(run, batch_size=8)
    curve = result.curve
    assert list(dict.fromkeys(curve["exposures"])) == [0.0, 2.0, 4.0, 6.0]
    assert set(curve["split"]) == {"train", "withheld"} and (curve["n"] == 8).all()
    train = curve[curve["split"] == "train"].set_index("exposures")
    # the base model has never seen the format: its loss per id is far above a uniform guess over all ids;
    # training brings the trained pairs' loss down
    assert train.loc[0.0, "loss_mean"] > result.ln_n_targets
    assert train.loc[6.0, "loss_mean"] < train.loc[0.0, "loss_mean"] / 2
    assert result.ln_n_targets == pytest.approx(curve["ln_n_targets"].iloc[0]) and 9 < result.ln_n_targets < 11
    items = pd.read_csv(run / "learning_curve_items.csv")
    assert len(items) == 4 * 2 * 8 and {"loss", "correct", "parsed", "exposures"} <= set(items.columns)
    assert (run / "learning_curve.png").is_file()
    assert json.loads((run / "learning_curve_manifest.json").read_text())["stage"] == "learning-curve"
    with pytest.raises(TrainingError, match="no snapshot at 3 exposures"):
        evaluate_curve(run, checkpoints=[3])
