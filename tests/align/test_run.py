"""run_alignment's orchestration on precomputed (synthetic) hidden states: tables, layer-max null, outputs."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lexprobe.embed
from lexprobe.align import AlignmentConfig, cantelli_bound, run_alignment, write_alignment
from lexprobe.embed import EmbeddingSet
from lexprobe.exceptions import AlignmentError

N_LAYERS, DIM = 4, 16


class FakeModel:
    """Stands in for a LoadedModel: run_alignment only records its description."""

    def describe(self) -> dict:
        return {"name": "fake", "source": "test", "checksum": "0" * 64}


def _latent(key: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(key.encode())).standard_normal(DIM)


def fake_extract(texts, *, keys, model, config, cache_dir=None, **_):
    """Names and symbols share a per-term latent vector (strongly at layer 2); ids are noise."""
    field = "id" if texts[0].startswith("HGNC:") else "text"
    layers = list(range(N_LAYERS))
    array = np.empty((N_LAYERS, len(keys), DIM), np.float32)
    for li in layers:
        for r, (key, text) in enumerate(zip(keys, texts)):
            noise = np.random.default_rng(zlib.crc32(f"{field}|{li}|{text}".encode())).standard_normal(DIM)
            weight = 0.0 if field == "id" else (2.0 if li == 2 else 0.5)
            array[li, r] = weight * _latent(key) + noise
    return EmbeddingSet(
        array=array,
        keys=list(keys),
        texts=list(texts),
        layers=layers,
        manifest={"inputs": {}},
        n_tokens=[len(text.split()) for text in texts],
    )


@pytest.fixture()
def fake_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexprobe.embed, "extract_hidden_states", fake_extract)


def config(**overrides) -> AlignmentConfig:
    base = dict(ontology="hgnc", limit=120, metrics=("mknn", "cka", "dcka"), permutations=40, bootstrap=30)
    return AlignmentConfig(**(base | overrides))


def test_run_alignment_finds_the_planted_pair_at_its_layer_and_guards_the_best_layer_choice(fake_embeddings) -> None:
    result = run_alignment(config(), model=FakeModel())
    table, summary = result.table, result.summary.set_index(["pair", "metric"])
    assert list(table.columns[:10]) == [
        "pair", "layer", "metric", "value", "null_mean", "null_sd", "z", "p_value", "ci_low", "ci_high",
    ]  # fmt: skip
    assert len(table) == 3 * N_LAYERS * 3 and set(table["n_items"]) == {120}
    for metric in ("mknn", "dcka"):
        best = summary.loc[("name:symbol", metric)]
        assert best["best_layer"] == 2 and best["z"] > 5
        assert summary.loc[("name:id", metric), "p_value"] > 0.01  # ids carry no signal: at the null
        assert summary.loc[("name:symbol", metric), "ratio_to_name_symbol"] == 1.0
        assert abs(summary.loc[("name:id", metric), "ratio_to_name_symbol"]) < 0.2
    # the null of a chosen layer is the maximum over layers: never below any single layer's null mean
    for (pair, metric), row in summary.iterrows():
        per_layer = table[(table["pair"] == pair) & (table["metric"] == metric)]
        assert row["null_max_mean"] >= per_layer["null_mean"].max() - 1e-12
    # CKA intervals only at the best layer by default; mknn at every layer
    dcka = table[(table["pair"] == "name:symbol") & (table["metric"] == "dcka")].set_index("layer")
    assert dcka["ci_low"].notna().sum() == 1 and dcka.loc[2, "ci_low"] < dcka.loc[2, "value"] < dcka.loc[2, "ci_high"]
    assert table.loc[table["metric"] == "mknn", "ci_low"].notna().all()


def test_run_alignment_is_reproducible_with_a_seed_and_changes_with_another(fake_embeddings) -> None:
    a = run_alignment(config(permutations=10, bootstrap=0), model=FakeModel()).table
    b = run_alignment(config(permutations=10, bootstrap=0), model=FakeModel()).table
    c = run_alignment(config(permutations=10, bootstrap=0, seed=1), model=FakeModel()).table
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["null_mean"], c["null_mean"])


def test_write_alignment_writes_tables_and_a_manifest_atomically(fake_embeddings, tmp_path: Path) -> None:
    result = run_alignment(config(permutations=5, bootstrap=0, pairs=("name:symbol",)), model=FakeModel())
    written = write_alignment(result, tmp_path / "out", figures=False)
    names = {"alignment.csv", "alignment_summary.csv", "retrieval_by_rank.csv", "manifest.json"}
    assert {p.name for p in written} == names
    retrieval = pd.read_csv(tmp_path / "out" / "retrieval_by_rank.csv")
    best = int(result.summary["best_layer"].iloc[0])
    assert set(retrieval["direction"]) == {"name -> symbol", "symbol -> name"} and (retrieval["layer"] == best).all()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stage"] == "align" and manifest["seed"] == 0
    assert manifest["config"]["pairs_resolved"] == ["name:symbol"] and manifest["config"]["preprocess"] == "standardize"
    assert len(manifest["inputs"]["ontology"]["checksum"]) == 64 and "numpy" in manifest["versions"]
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert len(pd.read_csv(tmp_path / "out" / "alignment.csv")) == N_LAYERS * 3


def test_the_manifest_carries_each_fields_token_norm_diagnostics_and_warnings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def with_norms(texts, **kwargs):
        result = fake_extract(texts, **kwargs)
        ratio = 150.0 if texts[0].startswith("HGNC:") else 1.2
        norms = [{"layer": layer, "max_over_median": ratio} for layer in result.layers]
        result.manifest = {"inputs": {}, "outputs": {"token_norms": norms}, "warnings": [f"sink {ratio}"]}
        return result

    monkeypatch.setattr(lexprobe.embed, "extract_hidden_states", with_norms)
    result = run_alignment(config(permutations=5, bootstrap=0, pairs=("name:id",)), model=FakeModel())
    write_alignment(result, tmp_path / "out", figures=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["prefix"] == "auto"
    assert {f: rows[0]["max_over_median"] for f, rows in manifest["token_norms"].items()} == {"name": 1.2, "id": 150.0}
    assert manifest["warnings"][:2] == ["name: sink 1.2", "id: sink 150.0"]
    # 5 permutations: the p-value's floor is said, since z alone would overstate the evidence
    assert manifest["warnings"][2:] == [
        "with 5 permutations no p-value can be below 1/6 = 0.167 however large z is, and z rests on the sd of "
        "5 null values; use --permutations 100 or more for evidence"
    ]
    assert not any(
        "permutations" in w for w in run_alignment(config(permutations=100), model=FakeModel()).manifest["warnings"]
    )


def test_figures_show_each_metric_by_layer_as_png_and_svg(fake_embeddings, tmp_path: Path) -> None:
    from lexprobe.figures import plot_alignment_by_layer

    result = run_alignment(config(permutations=5, bootstrap=0), model=FakeModel())
    paths = plot_alignment_by_layer(result.table, tmp_path, title="hgnc")
    assert sorted(p.suffix for p in paths) == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"metrics": ("mknn", "magic")}, "--metrics must be from"),
        ({"metrics": ()}, "--metrics must be from"),
        ({"preprocess": "whiten"}, "--preprocess must be one of"),
        ({"permutations": -1}, "--permutations and --bootstrap must be >= 0"),
        ({"ci_layers": "some"}, "--ci-layers must be best or all"),
        ({"k": 0}, "--k must be >= 1"),
        ({"retrieval_k": 0}, "--retrieval-k must be >= 1"),
        ({"retrieval_map": "cca"}, "--retrieval-map must be one of ridge, procrustes, none"),
        ({"limit": 3}, "--limit must be at least 5"),
        ({"pairs": ("name",)}, "a pair must look like name:symbol"),
        ({"pairs": ("name:name",)}, "a pair must look like name:symbol"),
    ],
)
def test_config_rejects_bad_values_with_the_option_named(overrides: dict, match: str) -> None:
    with pytest.raises(AlignmentError, match=match):
        config(**overrides)


def test_k_larger_than_the_sample_is_refused_before_any_embedding(fake_embeddings) -> None:
    with pytest.raises(AlignmentError, match=r"--k must be in \[1, n_items - 1\] = \[1, 9\], got 10"):
        run_alignment(config(limit=10), model=FakeModel())


def test_categories_widen_the_sample_beyond_the_default_protein_coding_genes(fake_embeddings) -> None:
    default = run_alignment(config(permutations=0, bootstrap=0), model=FakeModel())
    every = run_alignment(config(permutations=0, bootstrap=0, categories=()), model=FakeModel())
    assert set(default.terms["category"]) == {"gene with protein product"}
    assert len(set(every.terms["category"])) > 3  # RNA genes, pseudogenes... every locus type
    assert every.manifest["config"]["categories"] == ()


def test_above_the_threshold_neighbours_are_approximate_and_their_recall_is_recorded(
    fake_embeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lexprobe.align._metrics as metrics

    exact = run_alignment(config(permutations=10, bootstrap=0), model=FakeModel())
    monkeypatch.setattr(metrics, "ANN_MIN_ITEMS", 100)
    approximate = run_alignment(config(permutations=10, bootstrap=0), model=FakeModel())
    assert exact.manifest["neighbours"]["search"] == "exact"
    record = approximate.manifest["neighbours"]
    assert record["search"] == "hnsw" and record["recall_queries"] == 120
    fields = ("name", "symbol", "id", "name (controlled)", "symbol (controlled)", "id (controlled)")
    assert set(record["recall"]) == {f"{f}@{layer}" for f in fields for layer in range(N_LAYERS)}
    assert record["recall_min"] == min(record["recall"].values()) >= 0.95
    mknn = [t[t["metric"] == "mknn"].set_index(["pair", "layer"])["value"] for t in (exact.table, approximate.table)]
    assert (mknn[0] - mknn[1]).abs().max() <= 0.05  # approximate lists, nearly the exact values
    cka = [t[t["metric"] == "cka"]["value"].to_numpy() for t in (exact.table, approximate.table)]
    np.testing.assert_array_equal(*cka)  # CKA does not use the neighbour lists


def test_without_umap_learn_the_umap_figure_is_skipped_logged_once_and_recorded(
    fake_embeddings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import sys

    result = run_alignment(config(permutations=5, bootstrap=0, pairs=("name:symbol",)), model=FakeModel())
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn, the extra `umap`, were not installed
    with caplog.at_level("WARNING"):
        write_alignment(result, tmp_path / "out")
    hint = "umap-learn not installed: pip install 'lexprobe[umap]'"
    assert [r.getMessage() for r in caplog.records] == [f"the UMAP figure is skipped: {hint}"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["figures_skipped"] == {"umap": hint}
    assert "figures" in manifest["timings"] and "umap" not in manifest["timings"]
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "alignment_by_layer.png",
        "alignment_by_layer.svg",
        "retrieval_by_rank.png",
        "retrieval_by_rank.svg",
    ]


def test_the_umap_figure_draws_each_pair_at_its_best_layer(fake_embeddings, tmp_path: Path) -> None:
    pytest.importorskip("umap")
    result = run_alignment(config(permutations=5, bootstrap=0, pairs=("name:symbol", "name:id")), model=FakeModel())
    write_alignment(result, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "figures_skipped" not in manifest and {"figures", "umap"} <= set(manifest["timings"])
    svg = (tmp_path / "out" / "figures" / "umap_pairs.svg").read_text()
    best = result.summary.set_index(["pair", "metric"]).loc[("name:symbol", "mknn"), "best_layer"]
    assert f"name:symbol at layer {best} (mknn" in svg and "120 items each" in svg


def test_per_layer_z_of_cka_is_exact_whatever_the_number_of_shuffles(fake_embeddings) -> None:
    few = run_alignment(config(permutations=8, bootstrap=0), model=FakeModel()).table
    many = run_alignment(config(permutations=60, bootstrap=0), model=FakeModel()).table
    cka = few["metric"].isin(("cka", "dcka"))
    # exact moments: the same null mean, sd and z with 8 or 60 shuffles; only the empirical p moves
    for column in ("null_mean", "null_sd", "z"):
        np.testing.assert_allclose(few.loc[cka, column], many.loc[cka, column], rtol=1e-12)
    assert not np.allclose(few.loc[~cka, "null_sd"], many.loc[~cka, "null_sd"])  # mknn's come from its shuffles


def test_with_no_cka_shuffle_the_summary_bounds_p_from_the_moments(fake_embeddings) -> None:
    result = run_alignment(config(permutations=30, cka_permutations=0, bootstrap=0), model=FakeModel())
    table, summary = result.table, result.summary.set_index(["pair", "metric"])
    cka = table["metric"].isin(("cka", "dcka"))
    assert (table.loc[cka, "n_permutations"] == 0).all() and (table.loc[~cka, "n_permutations"] == 30).all()
    np.testing.assert_allclose(table.loc[cka, "p_value"], cantelli_bound(table.loc[cka, "z"].to_numpy()))
    assert set(summary.loc[summary.index.get_level_values("metric") != "mknn", "null"]) == {"moments"}
    assert set(summary.xs("mknn", level="metric")["null"]) == {"permutations"}
    for (pair, metric), row in summary.drop(index="mknn", level="metric").iterrows():
        layers = table[(table["pair"] == pair) & (table["metric"] == metric)]
        z_at_best = (row["value"] - layers["null_mean"]) / layers["null_sd"]
        assert row["z"] == pytest.approx(z_at_best.min())
        assert row["p_value"] == pytest.approx(min(1.0, cantelli_bound(z_at_best.to_numpy()).sum()))
        assert row["null_max_mean"] == pytest.approx(layers["null_mean"].max()) and np.isnan(row["null_max_sd"])
    planted = summary.loc[("name:symbol", "dcka")]
    assert planted["best_layer"] == 2 and planted["p_value"] < 0.01  # z is large enough for the bound to tell
    assert summary.loc[("name:id", "dcka"), "p_value"] > 0.05  # noise: the bound says nothing
    assert any("Cantelli" in w and "name:id" in w for w in result.manifest["warnings"])
    assert result.manifest["cka_null"]["permutations"] == 0


def test_auto_runs_cka_shuffles_only_up_to_the_size_where_they_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    import lexprobe.align._run as run

    auto = AlignmentConfig(ontology="hgnc", permutations=100)
    assert auto.resolved_cka_permutations(2000) == 100
    assert auto.resolved_cka_permutations(run.CKA_MOMENTS_ONLY_ITEMS + 1) == 0
    assert AlignmentConfig(ontology="hgnc", cka_permutations=7).resolved_cka_permutations(50_000) == 7
    for bad in (-1, "some", 2.5, True):
        with pytest.raises(AlignmentError, match="--cka-permutations must be auto or >= 0"):
            AlignmentConfig(ontology="hgnc", cka_permutations=bad)
