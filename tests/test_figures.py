"""The figures: one direction of imports (stages use figures, never the reverse), labels that never overlap,
UMAP as an optional extra, and figures drawn from plain tables."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.text
import numpy as np
import pandas as pd
import pytest

from lexprobe import figures
from lexprobe.exceptions import ReportError

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "docs" / "results" / "calibration-v1"  # the paper tasks: a known set of labels to draw

#: The stage packages and modules; the figures import none of them.
STAGES = ("lexprobe.align", "lexprobe.lexical", "lexprobe.train", "lexprobe.predict", "lexprobe.embed")
#: All a figure may need of lexprobe besides itself: errors, and atomic writes.
FIGURES_MAY_IMPORT = ("lexprobe.figures", "lexprobe.exceptions", "lexprobe.runs")


# --- imports, read from the source with ast -----------------------------------------------------------------


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "cli":  # installed as lexprobe.cli
        parts = ["lexprobe", *parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _owner(module: str) -> str:
    """``lexprobe.train._x`` -> ``lexprobe.train``; ``lexprobe.figures`` -> ``lexprobe.figures``."""
    return ".".join(module.split(".")[:2])


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, module)`` for every import anywhere in ``source`` (top level, under ``TYPE_CHECKING``, inside
    functions), relative imports resolved; ``from a import b`` gives ``a.b`` too, since ``b`` may be a module."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def stage_imports_in_figures(root: Path) -> list[str]:
    """Every import of a lexprobe module other than :data:`FIGURES_MAY_IMPORT` by ``lexprobe/figures``
    (a module or a package) under ``root``."""
    package = root / "lexprobe" / "figures"
    paths = sorted(package.rglob("*.py")) if package.is_dir() else [root / "lexprobe" / "figures.py"]
    bad = []
    for path in paths:
        name = _module_name(path, root)
        for line, module in imported_modules(path.read_text(), name, path.name == "__init__.py"):
            if module.split(".")[0] == "lexprobe" and module != "lexprobe" and _owner(module) not in FIGURES_MAY_IMPORT:
                bad.append(f"{path.relative_to(root)}:{line}: imports {module}")
    return bad


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, module: str, is_package: bool = False) -> list[str]:
    """Uses in ``source`` of another lexprobe package's private names: imported (``from lexprobe.runs import
    _x``, ``import lexprobe.align._metrics``) or reached as attributes (``figures._pyplot()`` after ``from
    lexprobe import figures``, ``lexprobe.figures._pyplot``)."""
    own = _owner(module)
    tree = ast.parse(source)
    bad = []
    for line, imported in imported_modules(source, module, is_package):
        if imported.startswith("lexprobe.") and _owner(imported) != own:
            if any(_is_private(p) for p in imported.split(".")[1:]):
                bad.append(f"{line}: imports {imported}")
    aliases = {}  # local name -> the lexprobe module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lexprobe"):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "lexprobe"
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lexprobe"):
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
            continue
        chain, value = [], node.value
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in aliases:
            target = ".".join([aliases[value.id], *chain])
            if _owner(target) != own:
                bad.append(f"{node.lineno}: uses {target}.{node.attr}")
    return bad


def private_uses_in(root: Path) -> list[str]:
    bad = []
    for path in sorted(p for d in ("lexprobe", "cli") if (root / d).is_dir() for p in (root / d).rglob("*.py")):
        if path.is_relative_to(root / "lexprobe" / "cli"):  # the installed copy's link to cli/
            continue
        name = _module_name(path, root)
        bad += [
            f"{path.relative_to(root)}:{b}" for b in private_uses(path.read_text(), name, path.name == "__init__.py")
        ]
    return bad


def test_the_figures_import_no_stage() -> None:
    assert stage_imports_in_figures(ROOT) == []


def test_no_module_reaches_into_another_packages_private_names() -> None:
    assert private_uses_in(ROOT) == []


@pytest.mark.parametrize(
    ("source", "module", "bad"),
    [
        ("from lexprobe.align import preprocess", "lexprobe.figures._align", True),
        ("from lexprobe import lexical", "lexprobe.figures", True),
        ("if TYPE_CHECKING:\n    from lexprobe.align import AlignmentResult", "lexprobe.figures", True),
        ("def f():\n    import lexprobe.train._data", "lexprobe.figures._train", True),
        ("from .. import predict", "lexprobe.figures._predict", True),
        ("from lexprobe.runs import atomic_path", "lexprobe.figures._style", False),
        ("from lexprobe.figures._style import pyplot", "lexprobe.figures._align", False),
        ("from ._style import pyplot", "lexprobe.figures._align", False),
    ],
)
def test_the_stage_check_sees_every_form_of_import(source: str, module: str, bad: bool, tmp_path: Path) -> None:
    path = tmp_path / "lexprobe" / "figures" / f"{module.rpartition('.')[2]}.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert bool(stage_imports_in_figures(tmp_path)) is bad


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("from lexprobe import figures as fig\nfig._pyplot()", True),
        ("import lexprobe.figures\nlexprobe.figures._pyplot()", True),
        ("import lexprobe.figures as f\nf._style.pyplot()", True),
        ("from lexprobe.figures import _style", True),
        ("from lexprobe import figures\nfigures.pyplot()", False),
        ("from lexprobe.train import _data\n_data._encode()", True),
        ("from lexprobe.predict import _common\n_common._x()", False),  # its own package
        ("from lexprobe.runs import json_default\njson_default.__name__", False),
    ],
)
def test_the_private_check_sees_attributes_as_well_as_imports(source: str, bad: bool) -> None:
    assert bool(private_uses(source, "lexprobe.predict._correlate")) is bad


def test_importing_the_figures_loads_no_stage_and_no_matplotlib() -> None:
    code = "import sys, lexprobe.figures; print(sorted(m for m in sys.modules if m.startswith({!r})))"
    prefixes = (*STAGES, "matplotlib", "umap")
    out = subprocess.run([sys.executable, "-c", code.format(prefixes)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- labels that never overlap ------------------------------------------------------------------------------


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch):
    """The figures a plotting function saved, kept open (``save_figure`` closes them) to be measured."""
    plt = figures.pyplot()
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    monkeypatch.undo()
    for fig in kept:
        plt.close(fig)


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of drawn, non-empty texts of ``fig`` whose rendered boxes overlap by more than half a pixel."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()  # labels of ticks outside the view: matplotlib keeps them but does not draw them
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    hidden |= {id(tick.label1), id(tick.label2)}
    texts = [
        t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden
    ]
    # Text's own extent: an Annotation's would take in its line to the point too
    boxes = [(t.get_text(), matplotlib.text.Text.get_window_extent(t, renderer)) for t in texts]
    pairs = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if width > 0.5 and height > 0.5:
                pairs.append((a, b))
    return pairs


def _gaining_labels(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[str]:
    """The label of each point with a gain above 0.01 in size: the points the figures name."""
    labels = frame["label"] + " (" + frame["model"] + ")"
    return sorted(label for c in columns for label in labels[frame[c].abs() > 0.01])


def test_the_calibration_figure_names_each_task_that_gained_without_overlapping_texts(drawn, tmp_path: Path) -> None:
    loto = pd.read_csv(CALIBRATION / "loto.csv")
    written = figures.plot_calibration(loto, tmp_path)
    assert [p.name for p in written] == ["predictor_calibration.png", "predictor_calibration.svg"]
    (fig,) = drawn
    assert overlapping_texts(fig) == []
    labels = sorted(t.get_text() for t in fig.axes[0].texts if t.get_text())
    assert labels == _gaining_labels(loto, ("measured_gain",))
    assert len(labels) == 8  # hgnc name-to-symbol and symbol-to-name, two models, train and withheld each
    assert "not labelled: 12 of 16 tasks" in fig.axes[0].get_title()


@pytest.mark.parametrize("feature", ["lexicalization", "alignment_z"])
def test_the_task_gain_figures_label_without_overlapping_texts(drawn, feature: str, tmp_path: Path) -> None:
    tasks = pd.read_csv(CALIBRATION / "tasks.csv")
    figures.plot_task_gains(tasks, feature, tmp_path)
    (fig,) = drawn
    assert overlapping_texts(fig) == []
    labels = sorted(t.get_text() for t in fig.axes[0].texts if t.get_text())
    assert labels == _gaining_labels(tasks, ("memorization_gain", "generalization_gain"))


def test_the_overlap_check_sees_overlapping_labels() -> None:
    plt = figures.pyplot()
    fig, ax = plt.subplots()
    for _ in range(2):
        ax.annotate("hgnc name-to-symbol", (0.5, 0.5))
    assert overlapping_texts(fig) == [("hgnc name-to-symbol", "hgnc name-to-symbol")]
    plt.close(fig)


def test_many_labels_on_one_spot_are_spread_into_a_readable_column() -> None:
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    rng = np.random.default_rng(0)
    x, y = np.full(20, 0.5) + rng.normal(0, 1e-3, 20), np.full(20, 0.5)
    written = figures.label_points(ax, x, y, [f"task {i}" for i in range(20)])
    assert len(written) == 20
    assert overlapping_texts(fig) == []
    assert all(5 <= t.get_fontsize() < 7 for t in written)  # shrunk to fit beside the axes, still legible
    rows = sorted(t.xyann[1] for t in written)
    assert rows[0] > 0 and rows[-1] < 1
    plt.close(fig)


@pytest.mark.parametrize(
    ("wanted", "gap", "expected"),
    [
        ([0.1, 0.5, 0.9], 0.1, [0.1, 0.5, 0.9]),  # already apart: unmoved
        ([0.5, 0.5], 0.1, [0.45, 0.55]),  # moved apart symmetrically, as little as possible
        ([0.52, 0.5, 0.51], 0.1, [0.61, 0.41, 0.51]),  # each keeps its rank
        ([1.0, 1.0], 0.2, [0.7, 0.9]),  # shifted down into the column
        ([0.5] * 4, 0.5, [-0.25, 0.25, 0.75, 1.25]),  # too many to fit: centred
        ([], 0.1, []),
    ],
)
def test_spread_positions_keeps_order_and_gap_and_moves_little(wanted, gap, expected) -> None:
    assert figures.spread_positions(np.array(wanted), gap) == pytest.approx(expected)


# --- UMAP, an optional extra --------------------------------------------------------------------------------


def test_without_umap_learn_the_umap_figure_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)
    assert figures.umap_unavailable() == "umap-learn not installed: pip install 'lexprobe[umap]'"
    X = np.random.default_rng(0).standard_normal((30, 4))
    with pytest.raises(ImportError, match=r"pip install 'lexprobe\[umap\]'"):
        figures.plot_umap_pairs({("name", "symbol"): (X, X)}, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        ({}, "`pairs` is empty"),
        ({("name", "id"): (np.zeros((5, 3)), np.zeros((4, 3)))}, r"name:id must be .* got \(5, 3\) and \(4, 3\)"),
        ({("name", "id"): (np.zeros(5), np.zeros(5))}, "2-D arrays"),
    ],
)
def test_umap_pairs_refuses_arrays_that_do_not_pair(pairs, match: str, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=match):
        figures.plot_umap_pairs(pairs, tmp_path)


def test_umap_pairs_draws_each_pair_from_plain_arrays(tmp_path: Path) -> None:
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((60, 8))
    pairs = {("name", "symbol"): (latent + 0.1 * rng.standard_normal((60, 8)), latent)}
    paths = figures.plot_umap_pairs(pairs, tmp_path, titles={("name", "symbol"): "name:symbol at layer 4"})
    assert [p.name for p in paths] == ["umap_pairs.png", "umap_pairs.svg"]
    svg = paths[1].read_text()
    assert "name:symbol at layer 4" in svg and "60 items each" in svg


# --- the other figures, from plain tables -------------------------------------------------------------------


def test_lexicalization_figures_come_from_the_items_and_layers_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = pd.DataFrame(
        {
            "field": np.repeat(["name", "id"], 40),
            "n_tokens": rng.integers(1, 12, 80),
            "score": rng.uniform(0, 1, 80),
            "tokenization_score": rng.uniform(0, 1, 80),
        }
    )
    layers = pd.DataFrame(
        {"field": ["name", "name", "id", "id"], "layer": [0, 1, 0, 1], "probe_accuracy": [0.6, 0.9, 0.4, 0.5]}
    ).assign(probe_baseline=0.45)
    stems = {p.stem for p in figures.plot_lexicalization(items, tmp_path, layers=layers, title="hgnc")}
    assert stems == {"lexicalization_distributions", "tokens_per_item", "probe_by_layer"}
    assert {p.stem for p in figures.plot_lexicalization(items, tmp_path / "no-layers")} == {
        "lexicalization_distributions",
        "tokens_per_item",
    }
    with pytest.raises(ReportError, match="`items` lacks the column"):
        figures.plot_lexicalization(items.drop(columns="n_tokens"), tmp_path)


def test_train_figures_come_from_their_tables_and_skip_empty_ones(tmp_path: Path) -> None:
    losses = pd.DataFrame({"step": range(1, 41), "loss": np.linspace(3, 0.5, 40)})
    assert [p.name for p in figures.plot_loss_curve(losses, tmp_path)] == ["loss_curve.png", "loss_curve.svg"]
    assert figures.plot_loss_curve(pd.DataFrame(), tmp_path / "empty") == []
    curve = pd.DataFrame(
        {
            "split": ["train", "train", "withheld", "withheld"],
            "exposures": [0, 9, 0, 9],
            "accuracy": [0.0, 0.8, 0.0, 0.2],
            "ci_low": [0.0, 0.7, 0.0, 0.1],
            "ci_high": [0.05, 0.9, 0.05, 0.3],
            "loss_mean": [4.0, 0.4, 4.0, 2.5],
        }
    )
    paths = figures.plot_learning_curve(curve, tmp_path, ln_n_targets=5.3, title="hgnc name-to-symbol")
    assert "uniform guess" in paths[1].read_text()
    by_bin = curve.rename(columns={"exposures": "bin"}).assign(model=["baseline", "tuned"] * 2)
    assert len(figures.plot_accuracy_by_bin(by_bin, tmp_path, title="hgnc")) == 2
    assert figures.plot_accuracy_by_bin(pd.DataFrame(), tmp_path / "empty") == []
    assert {p.stem for p in tmp_path.glob("*.png")} == {"loss_curve", "learning_curve", "accuracy_by_bin"}


# --- the stages redraw their recorded figures under the same names ------------------------------------------


def _recorded(run: str, name: str) -> pd.DataFrame | None:
    path = ROOT / "docs" / "results" / run / name
    return pd.read_csv(path) if path.exists() else None


def _published_figures(run: str) -> list[str]:
    """The figures the recorded run wrote, as its manifest lists them: docs/results keeps one format of them,
    or none in a study folder (studies/regenerate_figures.py draws them again), and the stage writes both."""
    manifest = json.loads((ROOT / "docs" / "results" / run / "manifest.json").read_text())
    names = sorted(n for n in manifest["outputs"] if n.endswith((".png", ".svg")))
    stored = {p.name for p in (ROOT / "docs" / "results" / run / "figures").glob("*")}
    assert stored <= set(names)  # nothing stored that the run did not write
    return names


def test_a_recorded_lexicalization_run_redraws_the_figures_it_published(tmp_path: Path) -> None:
    from lexprobe.lexical import LexicalResult, write_lexicalization

    run = "lexicalization-hgnc"
    result = LexicalResult(
        items=_recorded(run, "lexicalization_items.csv"),
        fields=_recorded(run, "lexicalization_fields.csv"),
        layers=_recorded(run, "lexicalization_layers.csv"),
        manifest=json.loads((ROOT / "docs" / "results" / run / "manifest.json").read_text()),
    )
    write_lexicalization(result, tmp_path)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == _published_figures(run)


def test_a_recorded_correlate_run_redraws_the_figures_it_published(tmp_path: Path) -> None:
    from lexprobe.predict import CorrelationResult, write_correlation

    run = "study-smollm2/correlate"
    result = CorrelationResult(
        **{k: _recorded(run, f"{k}.csv") for k in ("items", "tasks", "correlations", "auc", "loto", "holdout")},
        baselines=_recorded(run, "baselines.csv"),
        manifest=json.loads((ROOT / "docs" / "results" / run / "manifest.json").read_text()),
    )
    write_correlation(result, tmp_path)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == _published_figures(run)


def test_every_package_of_the_library_ships_in_the_wheel() -> None:
    """``pyproject.toml`` names its packages one by one: a package missing there (``lexprobe.figures`` since it
    became one) installs as nothing, and ``import lexprobe.figures`` fails on an installed copy."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "lexprobe").rglob("__init__.py")
        if not p.is_relative_to(ROOT / "lexprobe" / "cli") and not p.is_relative_to(ROOT / "lexprobe" / "data")
    }
    assert found - listed == set()
