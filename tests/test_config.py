"""The stage configs' one record form (issue 33): ``to_dict`` / ``from_dict``, ``.extraction``, shared defaults.

``tests/data/recorded_configs.json`` holds the ``config`` of a few published manifests and training runs under
``docs/results``, as they were recorded (older ones lack settings added since), so a change that made them
unreadable, or made a run record other keys, fails here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lexprobe.align import AlignmentConfig
from lexprobe.embed import EXTRACTION_FIELDS, ExtractionConfig
from lexprobe.exceptions import AlignmentError, LexicalizationError
from lexprobe.exposure import ExposureConfig
from lexprobe.lexical import LexicalConfig
from lexprobe.models import RECORDED_BEFORE
from lexprobe.predict import FeatureConfig
from lexprobe.runs import atomic_write_json
from lexprobe.train import TrainConfig, read_train_config

RECORDED = json.loads((Path(__file__).parent / "data" / "recorded_configs.json").read_text(encoding="utf-8"))
STAGES = {
    "align": AlignmentConfig,
    "lexicalization": LexicalConfig,
    "features": FeatureConfig,
    "exposure": ExposureConfig,
}

#: Every stage config with settings other than its defaults, tuples included (JSON turns them into lists).
CONFIGS = [
    ExtractionConfig(
        layers=(0, -1),
        pool="last",
        template="gene {text}",
        prefix="none",
        include_special=True,
        batch_size=4,
        storage_dtype="float16",
        max_length=32,
    ),
    AlignmentConfig(
        ontology="hgnc",
        pairs=("name:symbol", "name:id"),
        categories=("gene with protein product",),
        layers=(0, 3),
        metrics=("mknn", "cka"),
        cka_permutations=5,
        permutations=10,
        seed=2,
        batch_size=8,
        surface_control=False,
    ),
    LexicalConfig(ontology="hgnc", fields=("name", "symbol"), categories=(), layers=(1, 2), probe_layers=(1,), layer=2),
    FeatureConfig(layers=(0, -1), pool="last", k=5, per_split=None, permutations=20, dtype="float32"),
    ExposureConfig(shots=2, seed=1, n_candidates=5, min_k=0.5, batch_size=4),
    TrainConfig(
        ontology="hgnc",
        task="name-to-symbol",
        categories=("gene with protein product",),
        target_modules=("q_proj", "v_proj"),
        snapshots=(1.0, 5.0),
        dtype="float32",
        revision="main",
    ),
]


def _name(config: object) -> str:
    return type(config).__name__


@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_a_config_reads_back_from_its_json_record(config) -> None:
    record = json.loads(json.dumps(config.to_dict(), allow_nan=False))
    assert type(config).from_dict(record) == config
    assert config.to_dict() == dataclasses.asdict(config)  # what manifests recorded before: flat field names
    assert list(record) == [f.name for f in dataclasses.fields(config)]


def test_from_dict_leaves_out_what_is_no_field_and_defaults_what_is_missing() -> None:
    record = {"ontology": "hgnc", "layers": [0, 1], "pairs_resolved": ["name:symbol"], "setting_of_later": 3}
    assert AlignmentConfig.from_dict(record) == AlignmentConfig(ontology="hgnc", layers=(0, 1))


def test_from_dict_checks_like_the_constructor() -> None:
    with pytest.raises(AlignmentError, match="--metrics"):
        AlignmentConfig.from_dict({"ontology": "hgnc", "metrics": ["nope"]})
    with pytest.raises(LexicalizationError, match="--k"):
        LexicalConfig.from_dict({"ontology": "hgnc", "k": 0})


def _published(stage: str) -> list[tuple[str, str]]:
    return [(stage, path) for path in RECORDED[stage]]


@pytest.mark.parametrize(("stage", "path"), [p for stage in STAGES for p in _published(stage)])
def test_a_published_manifests_config_reads_back_and_records_the_same(stage: str, path: str) -> None:
    recorded = RECORDED[stage][path]
    cls = STAGES[stage]
    again = json.loads(json.dumps(cls.from_dict(recorded).to_dict()))
    fields = {f.name for f in dataclasses.fields(cls)}
    assert {k: again[k] for k in recorded if k in fields} == {k: v for k, v in recorded.items() if k in fields}


@pytest.mark.parametrize(("stage", "path"), _published("train"))
def test_a_published_train_config_reads_back_and_records_the_same(tmp_path: Path, stage: str, path: str) -> None:
    recorded = RECORDED[stage][path]
    atomic_write_json(tmp_path / "train_config.json", {"config": recorded})
    again = json.loads(json.dumps(read_train_config(tmp_path).to_dict()))
    if recorded["dtype"] is None:  # written before the precision was recorded
        recorded = recorded | {"dtype": RECORDED_BEFORE["dtype"]}
    assert {k: again[k] for k in recorded} == recorded


def test_the_published_records_include_old_and_new_ones() -> None:
    """The fixture is worth its name: records without later settings, and with what the run resolved."""
    assert all("surface_control" not in c for c in RECORDED["align"].values())  # published before issue 29
    assert any("batch_size" not in c for c in RECORDED["align"].values())
    assert any("batch_size" in c for c in RECORDED["align"].values())
    assert all("pairs_resolved" in c for c in RECORDED["align"].values())
    assert any(c["dtype"] is None for c in RECORDED["train"].values())
    assert any(c.get("snapshots") for c in RECORDED["train"].values())


@pytest.mark.parametrize("cls", [AlignmentConfig, LexicalConfig, FeatureConfig], ids=lambda c: c.__name__)
def test_extraction_is_the_configs_own_extraction_settings(cls) -> None:
    required = {} if cls is FeatureConfig else {"ontology": "hgnc"}
    settings = {"layers": (0, -1), "pool": "last", "template": "the gene {text}", "prefix": "none", "batch_size": 4}
    assert cls(**required, **settings).extraction == ExtractionConfig(**settings)
    assert cls(**required).extraction == ExtractionConfig()
    assert set(EXTRACTION_FIELDS) <= {f.name for f in dataclasses.fields(cls)}


#: Settings named alike that mean something of their config's own (a training or scoring batch, not extraction).
OWN = {(ExposureConfig, "batch_size"), (TrainConfig, "batch_size")}


def test_a_setting_two_configs_share_has_one_default() -> None:
    defaults: dict[str, dict[str, object]] = {}
    for cls in (ExtractionConfig, AlignmentConfig, LexicalConfig, FeatureConfig, ExposureConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if (cls, f.name) not in OWN and f.default is not dataclasses.MISSING:
                defaults.setdefault(f.name, {})[cls.__name__] = f.default
    shared = {name: by for name, by in defaults.items() if len(by) > 1}
    assert {name: by for name, by in shared.items() if len(set(map(repr, by.values()))) > 1} == {}
    expected = {*EXTRACTION_FIELDS, "model", "dtype", "limit", "categories", "k", "preprocess", "seed", "permutations"}
    assert expected <= set(shared)
