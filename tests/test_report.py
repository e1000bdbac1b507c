"""The HTML report over recorded and synthetic run directories, and the figures of the correlate stage."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _report_data import draw_correlate_figures, make_items, make_loto, make_tasks, write_correlate_dir

from lexprobe.exceptions import ReportError
from lexprobe.figures import (
    plot_accuracy_by_popularity,
    plot_calibration,
    plot_gain_vs_feature,
    plot_task_gains,
)
from lexprobe.report import build_report, find_run_dirs
from lexprobe.runs import write_result_dir

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
RECORDED = [RESULTS / name for name in ("align-hgnc", "lexicalization-hgnc", "train-hgnc-name-to-symbol")]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def correlate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_correlate_dir(tmp_path_factory.mktemp("runs") / "correlate-synthetic")


@pytest.fixture(scope="module")
def report(correlate_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    path = build_report([*RECORDED, correlate_dir], out, title="lexprobe <test> report")
    return path, path.read_text(encoding="utf-8")


def shown_manifests(page: str) -> list[str]:
    """The text of every manifest shown (each in a <pre>), unescaped."""
    return [html.unescape(m) for m in re.findall(r"<pre>(.*?)</pre>", page, flags=re.DOTALL)]


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


# --- the report ---


def test_report_is_self_contained_and_refers_to_nothing_outside(report: tuple[Path, str]) -> None:
    _, page = report
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE)
    assert not re.search(r"@import|url\(", page)
    assert page.count("<style>") == 1 and "<script" not in page
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert refs and all(r.startswith(("#", "data:")) for r in refs)
    assert "Content-Security-Policy" in page


def test_every_figure_is_an_embedded_png_that_decodes(report: tuple[Path, str], correlate_dir: Path) -> None:
    from PIL import Image

    _, page = report
    pngs = embedded_pngs(page)
    shots = [s for d in RECORDED for s in sorted(d.glob("shots-*"))]  # K-shot evaluations show after their run
    folders = [*RECORDED, *shots, correlate_dir]
    expected = sum(len(list(d.glob("*.png")) + list((d / "figures").glob("*.png"))) for d in folders)
    assert len(pngs) == expected >= 5 + 3 + 2
    for data in pngs:
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.width > 0 and image.height > 0
    for stem in ("accuracy_by_popularity", "gain_vs_lexicalization", "task_gains_alignment_z"):
        assert f'alt="figures/{stem}.png"' in page


def test_every_run_shows_its_heading_manifest_and_summary_tables(report: tuple[Path, str], correlate_dir: Path) -> None:
    _, page = report
    shown = shown_manifests(page)
    for directory in [*RECORDED, correlate_dir]:
        manifest = json.loads((directory / "manifest.json").read_text())
        assert json.dumps(manifest, indent=2, sort_keys=True) in shown
    evaluation = json.loads((RECORDED[2] / "evaluation_manifest.json").read_text())
    assert json.dumps(evaluation, indent=2, sort_keys=True) in shown
    n_shots = sum(1 for d in RECORDED for _ in d.glob("shots-*"))
    assert page.count("<details>") == len(RECORDED) + n_shots + 2
    for heading in (
        "align · hgnc · name:symbol, name:id, symbol:id · smollm2-135m",
        "lexicalization · hgnc · name, symbol, id · smollm2-135m",
        "train · hgnc · name-to-symbol · smollm2-135m",
        "correlate · 2 tasks",
    ):
        assert heading in page
    for caption in (
        "alignment_summary.csv",
        "lexicalization_fields.csv",
        "evaluation_summary.csv",
        "evaluation.json",
        "tasks.csv",
        "correlations.csv",
        "auc.csv",
    ):
        assert f"<caption>{caption}" in page
    # train: only the rows over all bins (2 splits x 2 models), numbers to 3 significant digits
    train = page.split('id="run-3"')[1].split('id="run-4"')[0]
    summary = train.split("<caption>evaluation_summary.csv")[1].split("</table>")[0]
    assert summary.count("<tr>") == 1 + 4
    assert '<td class="num">0.87</td>' in summary and '<td class="num">0.816</td>' in summary
    assert 'href="#run-4"' in page and 'href="#versions"' in page  # table of contents


def test_text_from_files_is_escaped_and_versions_and_inputs_are_listed(
    report: tuple[Path, str], correlate_dir: Path
) -> None:
    _, page = report
    assert "&lt;few items&gt; &amp; not significant" in page and "<few items>" not in page
    assert "<title>lexprobe &lt;test&gt; report</title>" in page
    versions = page.split('id="versions"')[1]
    for package in ("lexprobe", "python", "numpy", "pandas", "matplotlib"):
        assert f"<td>{package}</td>" in versions
    assert f"<code>{html.escape(str(correlate_dir))}</code>" in page
    assert re.search(r"created \d{4}-\d\d-\d\dT", page)


def test_study_directory_without_manifest_collects_its_runs_in_order(correlate_dir: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    (study / "b-run").mkdir(parents=True)
    (study / "a-group" / "inner").mkdir(parents=True)
    (study / "notes").mkdir()
    for directory, stage in ((study / "b-run", "predict"), (study / "a-group" / "inner", "mystery")):
        write_result_dir(
            directory,
            {"prediction.csv" if stage == "predict" else "numbers.csv": pd.DataFrame({"verdict": ["generalizes"]})},
            stage=stage,
            record={"config": {"ontology": "hpo", "task": "name-to-id", "model": "m"}, "inputs": {}, "seed": 1},
        )
    assert find_run_dirs([study, study / "b-run"]) == [study / "a-group" / "inner", study / "b-run"]
    page = build_report([study], tmp_path / "out" / "report.html").read_text()
    assert "predict · hpo · name-to-id · m" in page and "loto.csv is not in this run directory" in page
    assert "mystery · hpo" in page and "<caption>numbers.csv" in page  # unknown stage: every CSV


def test_study_manifest_lists_itself_then_its_runs(correlate_dir: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_result_dir(study, {}, stage="study", record={"config": {}, "inputs": {"runs": 1}, "seed": 0})
    manifest = json.loads((study / "manifest.json").read_text())
    manifest["outputs"] = {str(correlate_dir): True}
    (study / "manifest.json").write_text(json.dumps(manifest))
    assert find_run_dirs([study]) == [study, correlate_dir]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "nowhere", r"run directory .*nowhere does not exist"),
        (lambda tmp: tmp, r"is not a lexprobe run: no manifest.json"),
        (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", r"file.txt is not a directory"),
        (
            lambda tmp: (tmp / "manifest.json").write_text("{not json") and tmp,
            r"manifest.json is not valid JSON",
        ),
    ],
)
def test_what_is_not_a_run_is_a_report_error(tmp_path: Path, make, message: str) -> None:
    (tmp_path / "empty-subdir").mkdir()
    with pytest.raises(ReportError, match=message):
        build_report([make(tmp_path)], tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_no_run_dirs_or_a_directory_as_out_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no run directory given"):
        build_report([], tmp_path / "report.html")
    with pytest.raises(ReportError, match="is a directory"):
        build_report(RECORDED[:1], tmp_path)


# --- the figures ---


@pytest.mark.parametrize("labels", [("hgnc name-to-symbol",), tuple(f"o{i} t{i}" for i in range(8))])
def test_correlate_figures_write_png_and_svg_for_one_or_many_tasks(tmp_path: Path, labels: tuple[str, ...]) -> None:
    items = make_items(labels)
    tasks = make_tasks(items)
    written = draw_correlate_figures(items, tasks, make_loto(tasks), tmp_path)
    stems = ["accuracy_by_popularity", "gain_vs_lexicalization", "gain_vs_alignment"]
    stems += ["task_gains_alignment_z", "predictor_calibration"]
    assert written == [tmp_path / f"{stem}.{ext}" for stem in stems for ext in ("png", "svg")]
    for path in written:
        assert path.stat().st_size > 1000
    assert all(path.read_bytes().startswith(PNG_SIGNATURE) for path in written if path.suffix == ".png")


def test_two_models_get_their_own_labels_and_a_side_by_side_gain_figure(tmp_path: Path) -> None:
    from lexprobe.figures import plot_gains_by_model

    tasks = make_tasks(make_items(("hgnc name-to-symbol", "go name-to-id")))
    both = pd.concat([tasks, tasks.assign(model="gemma3-270m", generalization_gain=float("nan"))], ignore_index=True)
    written = plot_gains_by_model(both, tmp_path)
    assert [p.name for p in written] == ["gains_by_model.png", "gains_by_model.svg"]
    svg = (tmp_path / "gains_by_model.svg").read_text()
    assert "gemma3-270m" in svg and "smollm2-135m" in svg and "go name-to-id" in svg
    plot_task_gains(both, "alignment_z", tmp_path)  # a missing gain draws no bar; labels name the model
    assert "hgnc name-to-symbol (gemma3-270m)" in (tmp_path / "task_gains_alignment_z.svg").read_text()
    with pytest.raises(ReportError, match="lacks the column.*model"):
        plot_gains_by_model(tasks.drop(columns="model"), tmp_path)


def test_gain_figure_takes_a_stem_label_and_split_and_survives_no_items(tmp_path: Path) -> None:
    items = make_items(("hgnc name-to-symbol",)).drop(columns="label")  # label rebuilt from ontology and task
    written = plot_gain_vs_feature(
        items, "log_popularity", directory=tmp_path, split="train", stem="memo", xlabel="log(1 + count)"
    )
    assert [p.name for p in written] == ["memo.png", "memo.svg"]
    assert "log(1 + count)" in (tmp_path / "memo.svg").read_text()
    assert plot_gain_vs_feature(items.iloc[:0], "alignment", directory=tmp_path / "empty")[0].stat().st_size > 1000


def test_figure_inputs_without_their_columns_are_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"`items` lacks the column\(s\) bin"):
        plot_accuracy_by_popularity(make_items().drop(columns="bin"), tmp_path)
    with pytest.raises(ReportError, match="`tasks` lacks the column"):
        plot_task_gains(pd.DataFrame({"alignment_z": [1.0]}), "alignment_z", tmp_path)
    with pytest.raises(ReportError, match="lacks the column.*measured_gain"):
        plot_calibration(make_loto(make_tasks(make_items())).drop(columns="measured_gain"), tmp_path)


def test_an_evaluation_without_its_training_manifest_is_recognized_by_the_evaluation_manifest(tmp_path: Path) -> None:
    for name in ("evaluation_manifest.json", "evaluation_summary.csv", "evaluation.json"):
        shutil.copy(RECORDED[2] / name, tmp_path / name)
    page = build_report([tmp_path], tmp_path / "report.html").read_text()
    assert "evaluate · hgnc · name-to-symbol · smollm2-135m" in page
    assert "<caption>evaluation_summary.csv" in page and "<caption>evaluation.json" in page


# --- what a received run directory may not pull in ---


def test_links_out_of_a_run_directory_are_never_read_into_the_report(tmp_path: Path) -> None:
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY----- SECRET-KEY-BYTES")
    secret_png = tmp_path / "home" / "private.png"
    secret_png.write_bytes(PNG_SIGNATURE + b"\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2 + b"SECRET-KEY-BYTES")
    study = tmp_path / "received"
    run = study / "run"
    write_result_dir(
        run,
        {"prediction.csv": pd.DataFrame({"verdict": ["generalizes"]})},
        stage="predict",
        record={"config": {"ontology": "hpo", "task": "name-to-id", "model": "m"}, "inputs": {}, "seed": 1},
    )
    (run / "figures").mkdir()
    (run / "secret_manifest.json").symlink_to(secret)  # a manifest-like name the layout does not give
    (run / "evaluation_manifest.json").symlink_to(secret)  # a name it gives, pointing out
    (run / "loto.csv").symlink_to(secret)  # a table the stage shows
    (run / "evaluation.json").symlink_to(secret)
    (run / "stolen.png").symlink_to(secret_png)
    (run / "figures" / "stolen.png").symlink_to(secret_png)
    (study / "home").symlink_to(tmp_path / "home", target_is_directory=True)  # a study searched for runs
    (tmp_path / "home" / "manifest.json").write_text(json.dumps({"stage": "mystery", "config": {}}))
    (tmp_path / "home" / "keys.csv").write_text("key\nSECRET-KEY-BYTES\n")
    # an unknown stage shows every CSV: a linked one is left out too
    other = study / "other"
    write_result_dir(other, {"numbers.csv": pd.DataFrame({"a": [1]})}, stage="mystery", record=_RECORD)
    (other / "keys.csv").symlink_to(tmp_path / "home" / "keys.csv")

    assert find_run_dirs([study]) == [other, run]
    page = build_report([study], tmp_path / "report.html").read_text()
    assert "SECRET-KEY-BYTES" not in page
    assert len(embedded_pngs(page)) == 0 and "stolen.png is a link out of the run directory" in page
    assert "loto.csv is a link out of the run directory" in page and "secret_manifest.json</summary>" not in page
    assert "<caption>prediction.csv" in page and "<caption>numbers.csv" in page


def test_a_manifest_linked_from_outside_does_not_make_a_run(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"stage": "align", "secret": "SECRET"}))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").symlink_to(outside)
    with pytest.raises(ReportError, match="is not a lexprobe run"):
        build_report([tmp_path / "run"], tmp_path / "report.html")


def test_links_inside_the_run_directory_are_followed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_result_dir(run, {"numbers.csv": pd.DataFrame({"a": [7]})}, stage="mystery", record=_RECORD)
    (run / "data").mkdir()
    (run / "numbers.csv").rename(run / "data" / "numbers.csv")
    (run / "numbers.csv").symlink_to(Path("data") / "numbers.csv")
    page = build_report([run], tmp_path / "report.html").read_text()
    assert "<caption>numbers.csv" in page


_RECORD = {"config": {"ontology": "hpo"}, "inputs": {}, "seed": 0}


def test_pooling_warnings_and_the_worst_token_norm_ratio_are_shown(tmp_path: Path) -> None:
    run = tmp_path / "align-run"
    shutil.copytree(RECORDED[0], run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["token_norms"] = {
        "name": [{"layer": 11, "max_over_median": 1.3}, {"layer": 12, "max_over_median": 183.0}],
        "id": [{"layer": 3, "max_over_median": 2.5}],
    }
    manifest["warnings"] = ["name: a pooled token's hidden-state norm is over 20x the median <b>"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    page = build_report([run], tmp_path / "report.html").read_text()
    assert '<p class="warning">warning: name: a pooled token' in page and "&lt;b&gt;" in page
    assert "name 183.0x (layer 12), id 2.5x (layer 3)" in page
