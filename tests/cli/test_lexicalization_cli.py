"""`lexprobe lexicalization` end to end on a small real sample, and its bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()

ARGS = ["lexicalization", "--ontology", "hgnc", "--limit", "160", "--probe-layers", "0,-1", "--no-figures"]


@pytest.fixture(scope="module")
def hgnc_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lex") / "hgnc"
    result = runner.invoke(app, [*ARGS[:-1], "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_symbols_are_more_lexicalized_than_hgnc_ids_on_tokens_and_embeddings(hgnc_run: Path) -> None:
    fields = pd.read_csv(hgnc_run / "lexicalization_fields.csv").set_index("field")
    assert list(fields.index) == ["name", "symbol", "id"]
    sym, hid = fields.loc["symbol"], fields.loc["id"]
    # tokenization: ids fall apart into more, digit-and-colon tokens
    assert hid["tokens_mean"] > sym["tokens_mean"]
    assert hid["digit_punct_share"] > sym["digit_punct_share"]
    assert sym["tokenization_score"] > hid["tokenization_score"]
    # embeddings: symbols share their names' neighbourhoods and carry the locus type better than ids
    assert sym["agreement"] > 2 * hid["agreement"] > 0
    assert sym["agreement"] > sym["agreement_chance"]
    assert sym["probe_accuracy"] > hid["probe_accuracy"]
    assert fields.loc["name", "probe_accuracy"] > fields.loc["name", "probe_baseline"]
    assert sym["embedding_score"] > hid["embedding_score"]
    assert sym["score_ci_low"] > hid["score_ci_high"]


@pytest.mark.slow
def test_outputs_have_every_component_and_a_manifest(hgnc_run: Path) -> None:
    items = pd.read_csv(hgnc_run / "lexicalization_items.csv")
    assert len(items) == 3 * 160 and set(items["field"]) == {"name", "symbol", "id"}
    for column in (
        "id",
        "text",
        "category",
        "popularity",
        "n_tokens",
        "chars_per_token",
        "single_token",
        "single_token_spaced",
        "digit_punct_share",
        "wordlike_share",
        "log_rank",
        "agreement",
        "crowding",
        "probe_correct",
        "tokenization_score",
        "embedding_score",
        "score",
    ):
        assert column in items.columns, column
    assert items["score"].between(0, 1).all()
    ids = items[items["field"] == "id"]
    assert ids["text"].str.match(r"^HGNC:\d+$").all()
    assert items[items["field"] == "name"]["agreement"].isna().all()  # the reference field has no partner
    assert len(set(items["category"])) > 1  # every locus type is sampled, so the probe has classes
    layers = pd.read_csv(hgnc_run / "lexicalization_layers.csv")
    assert set(layers["layer"]) == set(range(31))
    probed = layers.dropna(subset=["probe_accuracy"])
    chosen = json.loads((hgnc_run / "manifest.json").read_text())["inputs"]["layer"]
    assert set(probed["layer"]) == {0, 30, chosen}
    manifest = json.loads((hgnc_run / "manifest.json").read_text())
    assert manifest["stage"] == "lexicalization" and manifest["config"]["seed"] == 0
    assert manifest["inputs"]["tokenizer"]["kind"] == "bpe"
    assert len(manifest["inputs"]["ontology"]["checksum"]) == 64
    assert "transformers" in manifest["versions"] and manifest["inputs"]["model"]["name"] == "smollm2-135m"
    assert set(manifest["outputs"]) >= {"lexicalization_items.csv", "lexicalization_fields.csv"}


@pytest.mark.slow
def test_same_seed_same_numbers_and_figures_are_written(hgnc_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    result = runner.invoke(app, [*ARGS[:-1], "--out", str(out)])  # embeddings come from the cache now
    assert result.exit_code == 0, result.output
    for name in ("lexicalization_items.csv", "lexicalization_fields.csv", "lexicalization_layers.csv"):
        a, b = pd.read_csv(hgnc_run / name), pd.read_csv(out / name)
        pd.testing.assert_frame_equal(a, b)
    for stem in ("lexicalization_distributions", "tokens_per_item", "probe_by_layer"):
        for ext in ("png", "svg"):
            assert (out / "figures" / f"{stem}.{ext}").stat().st_size > 1000


@pytest.mark.slow
def test_tokenization_only_on_go_needs_no_forward_pass(tmp_path: Path) -> None:
    out = tmp_path / "go"
    args = ["lexicalization", "--ontology", "go", "-n", "200", "--tokenization-only", "--no-figures", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    fields = pd.read_csv(out / "lexicalization_fields.csv").set_index("field")
    assert list(fields.index) == ["name", "id"]
    assert "agreement" not in fields.columns
    assert fields.loc["id", "tokens_mean"] == pytest.approx(9.0)  # G O : and seven digits, one by one
    assert np.isclose(fields.loc["id", "wordlike_share"], 1 / 9)  # 'GO'
    assert not (out / "lexicalization_layers.csv").exists()
    assert json.loads((out / "manifest.json").read_text())["inputs"]["layer"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ontology", "nosuch"], "nosuch"),
        (["--ontology", "hgnc", "--fields", "name,colour"], "colour"),
        (["--ontology", "hgnc", "--preprocess", "whiten"], "--preprocess"),
        (["--ontology", "hgnc", "--category", "no such locus type"], "no such locus type"),
        (["--ontology", "hpo", "--fields", "symbol"], "symbol"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["lexicalization", *args, "--tokenization-only", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert any("error" in line and message in line for line in lines), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x" / "lexicalization_items.csv").exists()


def test_a_layer_that_is_neither_best_nor_a_number_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["lexicalization", "--ontology", "hgnc", "--layer", "top", "-o", str(tmp_path / "x")],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2 and "expected best or a layer index, got 'top'" in result.output
