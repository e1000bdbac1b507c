"""`lexprobe align` end to end on a small real sample, and its bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.slow
def test_align_on_hgnc_writes_tables_manifest_and_figures_and_shows_the_paper_effect(tmp_path: Path) -> None:
    out = tmp_path / "align"
    args = [
        "align",
        "--ontology",
        "hgnc",
        "--limit",
        "150",
        "--layers",
        "0,6,-1",
        "--permutations",
        "30",
        "--bootstrap",
        "20",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "alignment.csv")
    assert list(table.columns[:10]) == [
        "pair",
        "layer",
        "metric",
        "value",
        "null_mean",
        "null_sd",
        "z",
        "p_value",
        "ci_low",
        "ci_high",
    ]
    assert set(table["pair"]) == {"name:symbol", "name:id", "symbol:id"}
    # 30 shuffles: every best layer's p-value is at its floor 1/31, shown as such, with a warning
    assert "≤0.032" in result.output and "with 30 permutations no p-value can be below 1/31" in result.output
    assert set(table["layer"]) == {0, 6, 30} and set(table["metric"]) == {"mknn", "cka", "dcka"}
    summary = pd.read_csv(out / "alignment_summary.csv").set_index(["pair", "metric"])
    # what the paper found, measured here: names align with symbols far above chance and above names:ids
    for metric in ("mknn", "dcka"):
        assert summary.loc[("name:symbol", metric), "z"] > 5
        assert summary.loc[("name:symbol", metric), "effect"] > 3 * summary.loc[("name:id", metric), "effect"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 0 and manifest["inputs"]["n_items"] == 150
    assert len(manifest["inputs"]["ontology"]["checksum"]) == 64
    for name in ("alignment_by_layer", "umap_pairs"):
        for ext in ("png", "svg"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert set(manifest["timings"]) == {"load_model", "embed", "measure", "figures", "umap"}
    assert manifest["neighbours"]["search"] == "exact" and manifest["cka_null_form"] == "kernel"
    # the surface-form control: its columns beside the raw ones, finite, its table printed, its setting recorded
    controlled = ["value_ctl", "null_mean_ctl", "null_sd_ctl", "z_ctl", "p_value_ctl", "effect_ctl"]
    assert table[controlled].notna().all().all() and np.isfinite(table[controlled].to_numpy()).all()
    assert np.isfinite(summary[["value_ctl", "z_ctl", "effect_ctl"]].to_numpy()).all()
    assert "surface-form control: the same metrics" in result.output
    assert manifest["surface_control"]["covariates"] == ["n_tokens", "digit_share", "punct_share"]
    # same seed, same numbers (the embeddings come from the cache the first run filled)
    again = tmp_path / "again"
    rerun = runner.invoke(app, [*args[:-1], str(again), "--no-figures"])
    assert rerun.exit_code == 0
    assert (again / "alignment.csv").read_text() == (out / "alignment.csv").read_text()
    # --json: one strict JSON object on stdout with the summary the CSV holds
    as_json = runner.invoke(app, [*args[:-1], str(tmp_path / "json"), "--no-figures", "--json"])
    assert as_json.exit_code == 0, as_json.output
    record = json.loads(as_json.stdout)
    assert record["n_items"] == 150 and len(record["summary"]) == len(summary)
    first = record["summary"][0]
    assert first["value"] == pytest.approx(summary.loc[(first["pair"], first["metric"]), "value"], abs=1e-6)
    assert any("30 permutations" in w for w in record["warnings"]) and "measure" in record["timings"]


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["--metrics", "mknn,magic"], "mknn,retrieval,cka,dcka,rsa"),
        (["--preprocess", "whiten"], "'none', 'center', 'standardize', 'clip'"),
        (["--retrieval-map", "cca"], "'ridge', 'procrustes', 'none'"),
        (["--pool", "max"], "'mean', 'last', 'first'"),
        (["--dtype", "int8"], "'auto', 'float32', 'bfloat16', 'float16'"),
        (["--batch-size", "lots"], "auto or a positive number"),
    ],
)
def test_a_wrong_choice_is_a_usage_error_naming_the_choices(tmp_path: Path, args: list[str], choices: str) -> None:
    out = tmp_path / "align"
    result = runner.invoke(app, ["align", "--ontology", "hgnc", *args, "--out", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert choices in " ".join(result.output.split()), result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ontology", "hgnc", "--pairs", "name-symbol"], "a pair must look like name:symbol"),
        (["--ontology", "hgnc", "--pairs", "name:colour"], "unknown field 'colour'"),
        (["--ontology", "hpo", "--pairs", "name:symbol"], "has no terms with a 'symbol' value"),
        (["--ontology", "hgnc", "--layers", "1,two"], "--layers must be"),
        (["--ontology", "nosuch"], "unknown ontology 'nosuch'"),
        (["--ontology", "hgcn"], "unknown ontology 'hgcn' (did you mean 'hgnc'?)"),
        (["--ontology", "hgnc", "--cka-permutations", "some"], "--cka-permutations must be auto or >= 0"),
        (["--ontology", "hgnc", "--category", "gene with wings"], "no terms of 'hgnc' are in categories"),
        (
            ["--ontology", "hgnc", "--limit", "8", "--k", "20"],
            "--k must be in [1, n_items - 1] = [1, 7], got 20",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "align"
    result = runner.invoke(app, ["align", *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists()


@pytest.mark.slow
def test_align_limit_all_takes_every_term_and_no_umap_skips_only_that_figure(tmp_path: Path) -> None:
    out = tmp_path / "all"
    args = ["align", "--ontology", "tests/data/hp_sample.obo", "--limit", "all", "--k", "3"]
    result = runner.invoke(app, [*args, "--permutations", "10", "--bootstrap", "0", "--no-umap", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["limit"] is None
    assert manifest["inputs"]["n_items"] == 8  # the sample's 9 terms but its obsolete one
    assert (out / "figures" / "alignment_by_layer.png").exists()
    assert not (out / "figures" / "umap_pairs.png").exists()
    # each stage's seconds are recorded; no time for a figure that was not drawn
    assert set(manifest["timings"]) == {"load_model", "embed", "measure", "figures"}
    assert all(seconds >= 0 for seconds in manifest["timings"].values())
    assert manifest["neighbours"]["search"] == "exact" and manifest["cka_null_form"] in ("kernel", "feature")


@pytest.mark.parametrize(("limit", "message"), [("some", "expected a number of terms or all"), ("4", "at least 5")])
def test_a_limit_that_is_neither_a_number_nor_all_is_refused(tmp_path: Path, limit: str, message: str) -> None:
    result = runner.invoke(app, ["align", "--ontology", "hgnc", "--limit", limit, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x").exists()


def test_align_prints_the_controlled_table_and_the_warning_when_length_is_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The states are a function of the recorded token count, the same in both fields, so the control removes
    all of it; the tiny model's tokenizer gives the counts a cache entry without them would get."""
    import zlib

    import numpy as np

    import lexprobe.embed
    from lexprobe.embed import EmbeddingSet, pooled_token_counts
    from tests._tiny_lm import make_model_dir

    model_dir = make_model_dir("bytelevel", tmp_path / "model")

    def length_extract(texts, *, keys, model, config, **_):
        n_tokens = np.array([1 + zlib.crc32(k.encode()) % 12 for k in keys], dtype=np.float32)
        assert len(pooled_token_counts(texts, model, config)) == len(texts)
        rng = np.random.default_rng(len(texts[0]))
        array = np.outer(n_tokens, rng.standard_normal(16)) + rng.standard_normal((len(texts), 16))
        return EmbeddingSet(
            array[None].astype(np.float32), list(keys), list(texts), [0], {"inputs": {}}, n_tokens=list(n_tokens)
        )

    monkeypatch.setattr(lexprobe.embed, "extract_hidden_states", length_extract)
    out = tmp_path / "align"
    args = ["align", "--ontology", "hgnc", "--limit", "120", "--pairs", "name:id", "--model", str(model_dir)]
    result = runner.invoke(app, [*args, "--permutations", "20", "--bootstrap", "0", "--no-figures", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "surface-form control: the same metrics" in result.output and "kept" in result.output
    assert "warning: name:id: the surface-form control" in result.output  # the id as text, not an emoji
    table = pd.read_csv(out / "alignment.csv")
    assert table[["value_ctl", "z_ctl", "effect_ctl"]].notna().all().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["surface_control"] is True
    # an old run made before the setting existed is another run: refused in one line, naming --overwrite
    del manifest["config"]["surface_control"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    again = runner.invoke(app, [*args, "--permutations", "20", "--bootstrap", "0", "--no-figures", "--out", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output
    plain = runner.invoke(
        app, [*args, "--permutations", "20", "--bootstrap", "0", "--no-figures", "--no-surface-control",
              "--out", str(tmp_path / "plain")]
    )  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert "surface-form control" not in plain.output
    assert "value_ctl" not in pd.read_csv(tmp_path / "plain" / "alignment.csv")


def test_align_with_no_cka_shuffle_says_its_p_is_a_bound_from_the_exact_moments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names and symbols share a latent part, ids are noise: the bound shows the one, and says it cannot show
    anything of the other."""
    import zlib

    import lexprobe.embed
    from lexprobe.embed import EmbeddingSet
    from tests._tiny_lm import make_model_dir

    model_dir = make_model_dir("bytelevel", tmp_path / "model")

    def planted(texts, *, keys, model, config, **_):
        latent = np.stack([np.random.default_rng(zlib.crc32(k.encode())).standard_normal(16) for k in keys])
        noise = np.random.default_rng(len(texts[0]) + zlib.crc32(texts[0].encode())).standard_normal((len(keys), 16))
        weight = 0.0 if texts[0].startswith("HGNC:") else 3.0
        array = (weight * latent + noise)[None].astype(np.float32)
        return EmbeddingSet(array, list(keys), list(texts), [0], {"inputs": {}}, n_tokens=[3] * len(keys))

    monkeypatch.setattr(lexprobe.embed, "extract_hidden_states", planted)
    out = tmp_path / "align"
    args = [
        "align",
        "--ontology",
        "hgnc",
        "--limit",
        "150",
        "--pairs",
        "name:symbol,name:id",
        "--model",
        str(model_dir),
    ]
    result = runner.invoke(
        app,
        [
            *args,
            "--cka-permutations",
            "0",
            "--bootstrap",
            "0",
            "--no-figures",
            "--no-surface-control",
            "--out",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "p (≤) is Cantelli's bound" in result.output
    assert "name:id dcka: with no CKA permutation the p-value is Cantelli's bound" in result.output
    summary = pd.read_csv(out / "alignment_summary.csv").set_index(["pair", "metric"])
    assert summary.loc[("name:symbol", "dcka"), "null"] == "moments" and summary.loc[("name:id", "mknn"), "null"] == (
        "permutations"
    )
    assert summary.loc[("name:symbol", "dcka"), "p_value"] < 0.01 < 0.05 < summary.loc[("name:id", "dcka"), "p_value"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["cka_permutations"] == 0 and manifest["cka_null"]["permutations"] == 0
