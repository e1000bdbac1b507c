"""studies/regenerate_figures.py draws the figures docs/results leaves out again from the tables kept there."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def regen():
    spec = importlib.util.spec_from_file_location("regenerate_figures", ROOT / "studies" / "regenerate_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _is_png(path: Path, smallest: int = 10_000) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        size = image.size
    return path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > smallest and min(size) > 200


def _copy_tables(source: Path, target: Path) -> Path:
    """A copy of a recorded run without its figures."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.png", "*.svg", "report.html"))
    return target


def test_an_align_run_gets_its_by_layer_figure_back_and_the_umap_is_named_as_needing_the_model(
    regen, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy_tables(RESULTS / "align-hgnc-all", tmp_path / "align")
    assert regen.main([str(run)]) == 0
    assert _is_png(run / "figures" / "alignment_by_layer.png")
    assert not list(run.rglob("*.svg"))  # PNG only unless --svg
    printed = capsys.readouterr().out
    assert "cannot" in printed and "umap_pairs.png" in printed and "needs the embeddings" in printed
    kept = (run / "figures" / "alignment_by_layer.png").read_bytes()
    outcomes = regen.regenerate([run], svg=True)  # a figure that is there is kept; the SVG is drawn
    by_name = {o.path.name: o.status for o in outcomes}
    assert by_name == {
        "alignment_by_layer.png": "kept",
        "alignment_by_layer.svg": "drawn",
        "umap_pairs.png": "cannot",
        "umap_pairs.svg": "cannot",
    }
    assert (run / "figures" / "alignment_by_layer.png").read_bytes() == kept
    assert "<svg" in (run / "figures" / "alignment_by_layer.svg").read_text(encoding="utf-8")


def test_a_study_training_run_and_its_few_shot_evaluation_get_their_figures_back(regen, tmp_path: Path) -> None:
    run = _copy_tables(RESULTS / "study-v2-smollm2" / "hgnc" / "name-to-symbol", tmp_path / "name-to-symbol")
    listed = regen.regenerate([run], dry_run=True)
    assert {o.status for o in listed} == {"would draw"} and not list(run.rglob("*.png"))
    outcomes = regen.regenerate([run])
    expected = [run / "loss_curve.png", run / "accuracy_by_bin.png", run / "shots-5" / "accuracy_by_bin.png"]
    assert sorted(o.path for o in outcomes if o.status == "drawn") == sorted(expected)
    assert all(_is_png(p) for p in expected)


def test_a_correlate_run_gets_back_every_figure_its_manifest_lists(regen, tmp_path: Path) -> None:
    run = _copy_tables(RESULTS / "study-smollm2" / "correlate", tmp_path / "correlate")
    regen.regenerate([run])
    recorded = json.loads((run / "manifest.json").read_text())["outputs"]
    pngs = sorted(n for n in recorded if n.endswith(".png"))
    assert len(pngs) == 6 and sorted(p.name for p in (run / "figures").iterdir()) == pngs
    assert all(_is_png(run / "figures" / n) for n in pngs)


def test_a_study_report_shows_its_runs_in_the_study_order_with_every_figure_there(regen, tmp_path: Path) -> None:
    import re

    study = _copy_tables(RESULTS / "study-smollm2", tmp_path / "study")
    shutil.copy(
        RESULTS / "study-smollm2" / "hgnc" / "align" / "figures" / "umap_pairs.png", study / "hgnc/align/figures"
    )
    report = regen.study_report(study)
    page = report.read_text(encoding="utf-8")
    assert report == study / "report.html" and "<title>lexprobe study: hgnc, hpo, go with smollm2-135m</title>" in page
    headings = re.findall(r"<h2>\d+\. ([a-z]+) · (\w+)", page)
    assert headings[:2] == [("align", "hgnc"), ("lexicalization", "hgnc")] and headings[-1][0] == "correlate"
    assert page.count("data:image/png;base64,") == 1  # the one figure in the folder
    assert regen.study_report(study) is None  # there already: kept
    assert regen.study_report(study / "correlate") is None  # not a study folder
