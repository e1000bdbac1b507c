"""``lexprobe study`` never mixes settings, and keeps every folder inside ``--out`` (fast: the stages are
stand-ins that write the manifests the real stages write)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

from lexprobe import plan
from lexprobe import study as study_module
from lexprobe.exceptions import LexprobeError, OutputError, StudyError
from lexprobe.runs import atomic_write_json, make_manifest, safe_name, write_manifest
from lexprobe.study import run_study

runner = CliRunner()
TERMS = 12


def _obo(path: Path, header: str = "toy", terms: int = TERMS) -> Path:
    stanzas = "".join(f"[Term]\nid: TOY:{i:07d}\nname: toy term number {i}\n\n" for i in range(1, terms + 1))
    path.write_text(f"format-version: 1.2\nontology: {header}\n\n{stanzas}", encoding="utf-8")
    return path


class FakeStages:
    """Stand-ins for the seven stages: each writes the manifest its real stage writes, and is counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str]] = []
        for name in ("align", "lexicalization", "train", "evaluate", "fewshot", "correlate", "report"):
            monkeypatch.setattr(study_module, f"_{name}", getattr(self, name))

    def _ontology(self, ontology: str):
        from lexprobe.ontology import load_ontology

        return load_ontology(ontology)

    def align(self, config, where, lm, progress=None) -> None:
        self.calls.append(("align", str(where)))
        if progress:  # as the real stage reports its work
            progress("measuring", 0, 2)
            progress("measuring", 2, 2)
        ontology, seed = config.ontology, config.seed
        pairs = [f"{a}:{b}" for a, b in config.resolved_pairs(self._ontology(ontology).name)]
        record = {"config": dataclasses.asdict(config) | {"pairs_resolved": pairs}}
        record |= {"inputs": {"ontology": self._ontology(ontology).describe()}, "seed": seed}
        write_manifest(where, make_manifest(stage="align", outputs={}, **record))

    def lexicalization(self, config, where, lm, progress=None) -> None:
        self.calls.append(("lexicalization", str(where)))
        ontology, seed = config.ontology, config.seed
        fields = list(config.resolved_fields(self._ontology(ontology).name))
        record = {"config": dataclasses.asdict(config) | {"fields_resolved": fields}}
        record |= {"inputs": {"ontology": self._ontology(ontology).describe()}, "seed": seed}
        write_manifest(where, make_manifest(stage="lexicalization", outputs={}, **record))

    def train(self, ontology, task, where, model, spec, seed, device, dtype, progress=None) -> None:
        self.calls.append(("train", str(where)))
        config = plan.train_config(ontology, task, model, spec, seed, device, dtype)
        ont = self._ontology(ontology)
        atomic_write_json(where / "train_config.json", {"config": config.to_dict()})
        atomic_write_json(where / "adapter" / "adapter_config.json", {})
        inputs = {"ontology": ontology, "source": ont.source, "release": ont.release, "data_checksum": ont.checksum}
        manifest = make_manifest(
            stage="train", config=config, inputs=inputs, outputs={"seconds": 1.0}, seed=config.seed
        )
        write_manifest(where, manifest)

    def evaluate(self, where, device, seed, progress=None) -> None:
        self.calls.append(("evaluate", str(where)))
        (where / "outcomes.csv").write_text("id\n", encoding="utf-8")
        trained = json.loads((where / "train_config.json").read_text())["config"]
        config = {"baseline_only": False, "max_new_tokens": 8, "prompt_template": 0, "seed": seed}
        manifest = make_manifest(
            stage="evaluate", config=config, inputs={"train_config": trained}, outputs={"seconds": 1.0}, seed=seed
        )
        write_manifest(where, manifest, name="evaluation_manifest.json")

    def fewshot(self, where, device, seed, shots, progress=None) -> None:
        self.calls.append(("fewshot", str(where)))
        shown = where / f"shots-{shots}"
        shown.mkdir(exist_ok=True)
        trained = json.loads((where / "train_config.json").read_text())["config"]
        config = {"baseline_only": True, "max_new_tokens": 8, "prompt_template": 0, "seed": seed, "shots": shots}
        manifest = make_manifest(
            stage="evaluate", config=config, inputs={"train_config": trained}, outputs={"seconds": 1.0}, seed=seed
        )
        write_manifest(shown, manifest, name="evaluation_manifest.json")

    def correlate(self, runs, where, spec, seed, dtype, progress=None) -> None:
        from lexprobe.predict import FEATURES

        self.calls.append(("correlate", str(where)))
        config = {
            "features": dataclasses.asdict(study_module._feature_config(spec, seed, dtype)),
            "predictor_features": list(FEATURES),
            "n_boot": spec.correlate_bootstrap,
        }
        inputs = {"runs": [{"run": str(r.relative_to(where.parent))} for r in runs]}
        write_manifest(where, make_manifest(stage="correlate", config=config, inputs=inputs, seed=seed))

    def report(self, dirs, report, names, model, progress=None) -> None:
        self.calls.append(("report", str(report)))
        report.write_text("<html></html>", encoding="utf-8")

    def ran(self) -> list[str]:
        stages = [stage for stage, _ in self.calls]
        self.calls.clear()
        return stages


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeStages:
    return FakeStages(monkeypatch)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return _obo(tmp_path / "toy.obo")


def _run(toy: Path, out: Path, **kwargs):
    return run_study([str(toy)], out, size="tiny", tasks=["name-to-id"], **kwargs)


EVERY_STAGE = ["align", "lexicalization", "train", "evaluate", "fewshot", "correlate", "report"]


def test_equal_settings_resume_without_rerunning(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    assert fake.ran() == EVERY_STAGE
    result = _run(toy, out)
    assert fake.ran() == ["report"]
    assert {s["stage"]: s["status"] for s in result.stages if s["stage"] != "report"} == dict.fromkeys(
        EVERY_STAGE[:-1], "resumed"
    )


def test_the_few_shot_baseline_is_resumed_refused_with_other_settings_or_left_out(
    fake: FakeStages, toy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    fake.ran()
    run = out / "toy" / "name-to-id"
    assert (run / "shots-5" / "evaluation_manifest.json").is_file()
    # another K is another folder: the 5-shot baseline stays, the 3-shot one is added
    _run(toy, out, shots=3, stages=["fewshot"])
    assert fake.ran() == ["fewshot"] and (run / "shots-3").is_dir() and (run / "shots-5").is_dir()
    # a baseline recorded with other settings is not silently reused
    recorded = json.loads((run / "shots-5" / "evaluation_manifest.json").read_text())
    recorded["config"]["baseline_only"] = False
    (run / "shots-5" / "evaluation_manifest.json").write_text(json.dumps(recorded))
    with pytest.raises(StudyError, match="fewshot toy/name-to-id/shots-5 was made with other settings"):
        _run(toy, out)
    _run(toy, out, rerun_mismatched=True)
    assert "fewshot" in fake.ran()
    assert json.loads((run / "shots-5" / "evaluation_manifest.json").read_text())["config"]["baseline_only"] is True
    # shots=0 leaves the stage out
    result = _run(toy, tmp_path / "none", shots=0)
    assert "fewshot" not in fake.ran() and not list((tmp_path / "none").rglob("shots-*"))
    assert json.loads((tmp_path / "none" / "manifest.json").read_text())["config"]["shots"] is None
    assert result.runs


def test_progress_counts_the_study_s_parts_and_names_each_part_s_stages(
    fake: FakeStages, toy: Path, tmp_path: Path
) -> None:
    calls: list[tuple[str, int, int]] = []
    _run(toy, tmp_path / "study", progress=lambda *a: calls.append(a))
    parts = [(done, total) for stage, done, total in calls if stage == "study"]
    n = len(EVERY_STAGE)
    assert parts == [(i, n) for i in range(n + 1)]  # 0 at the start, then one more per part run
    assert ("align toy/align: measuring", 2, 2) in calls  # a part's own stages come under its name
    calls.clear()
    _run(toy, tmp_path / "study", progress=lambda *a: calls.append(a))  # resumed parts count too
    assert [d for s, d, _ in calls if s == "study"] == list(range(n + 1))
    assert not any(s.startswith("align") for s, _, _ in calls)


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"model": "other-model"}, "model: 'smollm2-135m' -> 'other-model'"),
        ({"size": "small"}, "size: 'tiny' -> 'small'"),
        ({"seed": 1}, "seed: 0 -> 1"),
    ],
)
def test_other_model_size_or_seed_is_refused(fake: FakeStages, toy: Path, tmp_path: Path, change, shown) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    fake.ran()
    before = (out / "toy" / "align" / "manifest.json").read_bytes()
    size = change.pop("size", "tiny")
    with pytest.raises(StudyError, match="--rerun-mismatched") as caught:
        run_study([str(toy)], out, size=size, tasks=["name-to-id"], **change)
    assert shown in str(caught.value) and "\n" not in str(caught.value)
    assert fake.ran() == [] and (out / "toy" / "align" / "manifest.json").read_bytes() == before
    # without the study's manifest each stage still knows its own settings
    (out / "manifest.json").unlink()
    with pytest.raises(StudyError, match=r"align toy/align was made with other settings \(") as caught:
        run_study([str(toy)], out, size=size, tasks=["name-to-id"], **change)
    assert "--rerun-mismatched" in str(caught.value) and "another --out" in str(caught.value)
    assert fake.ran() == []


def test_rerun_mismatched_reruns_those_stages(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    fake.ran()
    (out / "toy" / "align" / "alignment.csv").write_text("old\n", encoding="utf-8")
    (out / "toy" / "align" / "notes.txt").write_text("mine\n", encoding="utf-8")
    (out / "toy" / "name-to-id" / "checkpoints").mkdir()
    result = _run(toy, out, seed=3, rerun_mismatched=True)
    assert fake.ran() == EVERY_STAGE
    assert all(s["status"] == "done" for s in result.stages)
    # what the old stages wrote is gone (the stand-ins write no alignment.csv), files of others stay
    assert not (out / "toy" / "align" / "alignment.csv").exists()
    assert not (out / "toy" / "name-to-id" / "checkpoints").exists()
    assert (out / "toy" / "align" / "notes.txt").read_text() == "mine\n"
    for manifest in ("toy/align/manifest.json", "toy/name-to-id/manifest.json", "correlate/manifest.json"):
        assert json.loads((out / manifest).read_text())["seed"] == 3, manifest
    study = json.loads((out / "manifest.json").read_text())
    assert study["seed"] == 3 and len(study["outputs"]["stages"]) == len(EVERY_STAGE)
    # and the study now resumes with its new settings
    _run(toy, out, seed=3)
    assert fake.ran() == ["report"]


def test_only_the_mismatched_stage_is_rerun(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    fake.ran()
    path = out / "toy" / "name-to-id" / "evaluation_manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["seed"] = 7
    path.write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match=r"evaluate toy/name-to-id .*seed: 7 -> 0"):
        _run(toy, out)
    _run(toy, out, rerun_mismatched=True)
    assert fake.ran() == ["evaluate", "report"]


def test_a_setting_the_old_manifest_lacks_is_a_mismatch(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    path = out / "toy" / "lexicalization" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["config"]["template"]  # as if made before the setting existed
    path.write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match=r"lexicalization toy/lexicalization .*template: \(not recorded\) -> "):
        _run(toy, out)


def test_other_ontology_data_is_a_mismatch(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    _obo(toy, terms=TERMS + 1)
    with pytest.raises(StudyError, match=r"align toy/align .*inputs\.ontology\.checksum: "):
        _run(toy, out)


def test_a_stage_used_but_not_selected_is_not_silently_mixed(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(toy, out)
    (out / "manifest.json").unlink()
    # the report reads the alignment, which was made with seed 0
    with pytest.raises(StudyError, match="add align to --stages"):
        _run(toy, out, seed=1, stages=["report"], rerun_mismatched=True)
    # stages that read nothing of the others run beside them
    fake.ran()
    _run(toy, out, seed=1, stages=["align"], rerun_mismatched=True)
    assert fake.ran() == ["align"]


def test_cli_refuses_in_one_line_and_reruns_with_the_flag(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = ["study", "--ontology", str(toy), "--tasks", "name-to-id", "--size", "tiny", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--seed", "2"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "seed: 0 -> 2" in result.output and "--rerun-mismatched" in result.output
    result = runner.invoke(app, [*args, "--seed", "2", "--rerun-mismatched"])
    assert result.exit_code == 0, result.output
    assert "re-running" in result.output


# --- folder names ---------------------------------------------------------------------------------------


def test_safe_name() -> None:
    assert safe_name("hgnc") == "hgnc" and safe_name("name-to-id") == "name-to-id"
    assert safe_name("../../../../tmp/x") == ".._.._.._.._tmp_x"
    assert safe_name("a/b") == "a_b" and safe_name("a\\b c") == "a_b_c" and safe_name("gène") == "g_ne"
    for bad in ("", ".", ".."):
        with pytest.raises(OutputError):
            safe_name(bad)
    assert issubclass(OutputError, LexprobeError)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_an_obo_header_cannot_name_a_folder_outside_out(fake: FakeStages, tmp_path: Path) -> None:
    evil = _obo(tmp_path / "evil.obo", header="../../../../tmp/x")
    out = tmp_path / "a" / "b" / "study"
    everything = _files(tmp_path)
    result = run_study([str(evil)], out, size="tiny", tasks=["name-to-id"])
    written = _files(tmp_path) - everything
    assert written and all(p.is_relative_to(out) for p in written)
    assert (out / ".._.._.._.._tmp_x" / "align" / "manifest.json").is_file()
    assert all(r.is_relative_to(out) for r in result.runs)
    assert all(Path(s["dir"]).parts[0] in (".._.._.._.._tmp_x", "correlate", "report.html") for s in result.stages)


def test_slashes_and_dot_dot_in_a_header(fake: FakeStages, tmp_path: Path) -> None:
    slashed = _obo(tmp_path / "slashed.obo", header="a/b")
    run_study([str(slashed)], tmp_path / "s1", size="tiny", tasks=["name-to-id"], stages=["align"])
    assert (tmp_path / "s1" / "a_b" / "align" / "manifest.json").is_file()
    assert not (tmp_path / "s1" / "a").exists()
    dotted = _obo(tmp_path / "dotted.obo", header="..")
    with pytest.raises(StudyError, match="cannot name a folder"):
        run_study([str(dotted)], tmp_path / "s2", size="tiny", tasks=["name-to-id"], stages=["align"])
    assert not (tmp_path / "align").exists()


def test_two_ontologies_cannot_share_a_folder(fake: FakeStages, tmp_path: Path) -> None:
    one, two = _obo(tmp_path / "one.obo", header="a/b"), _obo(tmp_path / "two.obo", header="a_b")
    with pytest.raises(StudyError, match="would share the folder"):
        run_study([str(one), str(two)], tmp_path / "s", size="tiny", tasks=["name-to-id"])


def test_a_folder_linked_outside_out_is_refused(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "toy").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StudyError, match="resolves outside"):
        _run(toy, out)
    assert fake.ran() == [] and not any((tmp_path / "elsewhere").iterdir())


def test_a_study_recorded_before_precision_and_warmup_resumes_in_float32_and_refuses_bfloat16(tmp_path: Path) -> None:
    """The recorded studies predate the dtype and warm-up settings: read as what they were (CPU float32, no
    warm-up), they resume with --dtype float32 and are refused, with the reason, in another precision. They also
    predate the surface-form control of align (read as off) and the CKA null's exact moments (their per-layer
    z was estimated from the shuffles, so `cka_permutations` is not recorded), so until their align stage is
    re-measured (issue 29, item 4) that stage is the one difference, named as such."""
    import shutil

    from lexprobe.models import native_bfloat16

    study = tmp_path / "study"
    shutil.copytree(Path(__file__).resolve().parents[1] / "docs" / "results" / "study-smollm2", study)
    with pytest.raises(
        StudyError,
        match=r"align hgnc/align was made with other settings \(cka_permutations: \(not recorded\) -> 'auto', "
        r"surface_control: False -> True\)",
    ):
        run_study(["hgnc", "hpo", "go"], study, size="small-v1", dtype="float32", stages=["report"])
    if native_bfloat16():
        with pytest.raises(StudyError, match=r"dtype: 'float32' -> 'bfloat16'"):
            run_study(["hgnc", "hpo", "go"], study, size="small-v1", stages=["report"])
    with pytest.raises(StudyError, match=r"size_settings\.epochs: 3\.0 -> 20\.0"):  # today's small trains longer
        run_study(["hgnc", "hpo", "go"], study, size="small", dtype="float32", stages=["report"])


def test_tasks_can_be_named_per_ontology_and_zoo_is_study_v2s_list() -> None:
    from lexprobe.study import PAPER_TASKS, ZOO_STUDY_TASKS, study_tasks

    assert study_tasks("hgnc") == PAPER_TASKS["hgnc"]
    assert study_tasks("hgnc", ["zoo"]) == ZOO_STUDY_TASKS["hgnc"]
    assert study_tasks("go", ["zoo"]) == ZOO_STUDY_TASKS["go"]
    asked = ["hgnc:name-to-locus_type", "go:name-to-namespace", "name-to-id", "go:name-to-id"]
    assert study_tasks("go", asked) == ("name-to-namespace", "name-to-id")
    assert study_tasks("hgnc", asked) == ("name-to-locus_type", "name-to-id")
    assert study_tasks("mine", ["zoo"]) == ("name-to-id", "id-to-name")  # an ontology with no list: the paper's


def test_a_study_runs_each_ontology_s_own_tasks(fake: FakeStages, toy: Path, tmp_path: Path) -> None:
    other = _obo(tmp_path / "other.obo", header="other")
    out = tmp_path / "study"
    result = run_study([str(toy), str(other)], out, size="tiny", tasks=["toy:id-to-name", "other:name-to-id"])
    assert sorted(str(r.relative_to(out)) for r in result.runs) == ["other/name-to-id", "toy/id-to-name"]
    with pytest.raises(StudyError, match="--tasks names tyo, not an ontology of this study"):
        run_study([str(toy)], tmp_path / "typo", size="tiny", tasks=["tyo:name-to-id"])
    with pytest.raises(StudyError, match="other: no task of --tasks is for it"):
        run_study([str(toy), str(other)], tmp_path / "none", size="tiny", tasks=["toy:name-to-id"])


def _evaluated_study(root: Path, seed: int, gains: dict[str, tuple[float, float, float, float]], model: str = "m"):
    """A study folder with its manifest and, per task, the evaluation.json gains (train gain, its low; withheld
    gain, its low)."""
    size = dataclasses.asdict(study_module.SIZES["tiny"])
    config = {"model": model, "dtype": "bfloat16", "size_settings": size}
    write_manifest(root, make_manifest(stage="study", config=config, seed=seed))
    for task, (mem, mem_low, gen, gen_low) in gains.items():
        record = {
            "ontology": "hgnc",
            "task": task,
            "shots": 0,
            "gains": {
                "train": {"gain": mem, "gain_ci_low": mem_low},
                "withheld": {"gain": gen, "gain_ci_low": gen_low},
            },
        }
        atomic_write_json(root / "hgnc" / task / "evaluation.json", record)
    return root


def test_seed_spread_puts_each_task_s_seeds_side_by_side(tmp_path: Path) -> None:
    from lexprobe.study import seed_spread

    a = _evaluated_study(tmp_path / "s0", 0, {"name-to-symbol": (0.9, 0.8, 0.24, 0.15), "name-to-id": (0.9, 0.8, 0, 0)})
    b = _evaluated_study(
        tmp_path / "s1", 1, {"name-to-symbol": (0.95, 0.9, 0.04, -0.01), "id-to-name": (0.5, 0.4, 0, 0)}
    )
    spread = seed_spread([a, b]).set_index("task")
    assert list(spread.index) == ["name-to-symbol"]  # the only task both seeds evaluated
    row = spread.loc["name-to-symbol"]
    assert row["seeds"] == "0,1" and row["generalization_gain_seed0"] == 0.24
    assert row["generalization_gain_spread"] == pytest.approx(0.20)
    assert row["memorization_gain_spread"] == pytest.approx(0.05)
    assert not row["verdicts_agree"]  # generalized with seed 0, only memorized with seed 1
    with pytest.raises(StudyError, match="same seed"):
        seed_spread([a, _evaluated_study(tmp_path / "again", 0, {})])
    with pytest.raises(StudyError, match="not only in their seed"):
        seed_spread([a, _evaluated_study(tmp_path / "other", 2, {}, model="other")])
    with pytest.raises(StudyError, match="not a study"):
        seed_spread([a, tmp_path])


def test_lexprobe_spread_prints_and_writes_the_seeds_side_by_side(tmp_path: Path) -> None:
    import pandas as pd

    a = _evaluated_study(tmp_path / "s0", 0, {"name-to-symbol": (0.9, 0.8, 0.24, 0.15), "name-to-id": (0.9, 0.8, 0, 0)})
    b = _evaluated_study(tmp_path / "s1", 1, {"name-to-symbol": (0.95, 0.9, 0.04, -0.01), "name-to-id": (1, 1, 0, 0)})
    out = tmp_path / "spread"
    result = CliRunner().invoke(app, ["spread", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "hgnc name-to-symbol" in result.output and "+0.24" in result.output and "+0.04" in result.output
    written = pd.read_csv(out / "spread.csv").set_index("task")
    assert written.loc["name-to-symbol", "generalization_gain_spread"] == pytest.approx(0.20)
    assert bool(written.loc["name-to-id", "verdicts_agree"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "spread" and [s["seed"] for s in manifest["inputs"]["studies"]] == [0, 1]
    # nothing in common: one line, no traceback, nothing written
    c = _evaluated_study(tmp_path / "s2", 2, {"id-to-name": (0.5, 0.4, 0, 0)})
    result = CliRunner().invoke(app, ["spread", str(a), str(c), "--out", str(tmp_path / "none")])
    assert result.exit_code != 0 and "nothing to compare" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "none" / "spread.csv").exists()
