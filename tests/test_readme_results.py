"""Every number in the README's results table comes from a file the tool wrote (docs/results/)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
METRIC_NAMES = {"mutual kNN": "mknn", "debiased CKA": "dcka", "linear CKA": "cka"}


def readme_rows() -> list[list[str]]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| pair | metric | best layer |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_readme_alignment_table_matches_the_recorded_run() -> None:
    summary = pd.read_csv(ROOT / "docs" / "results" / "align-hgnc" / "alignment_summary.csv")
    summary = summary.set_index(["pair", "metric"])
    rows = readme_rows()
    assert len(rows) >= 6
    for pair, metric, layer, value, null, effect, ratio in rows:
        recorded = summary.loc[(pair, METRIC_NAMES[metric])]
        assert int(layer) == recorded["best_layer"]
        assert value == f"{recorded['value']:.3f}"
        assert null == f"{recorded['null_max_mean']:.3f}"
        assert effect == f"{recorded['effect']:+.3f}"
        assert ratio == f"{recorded['ratio_to_name_symbol']:.2f}"


def test_the_recorded_run_says_how_it_was_made() -> None:
    manifest = json.loads((ROOT / "docs" / "results" / "align-hgnc" / "manifest.json").read_text())
    assert manifest["config"]["ontology"] == "hgnc" and manifest["config"]["limit"] == 2000
    assert manifest["config"]["permutations"] == 100 and manifest["seed"] == 0
    assert manifest["inputs"]["model"]["name"] == "smollm2-135m"
    assert manifest["inputs"]["ontology"]["checksum"] == json.loads((ROOT / "data" / "snapshots.json").read_text())[
        "ontologies"
    ]["hgnc"]["sha256"]
