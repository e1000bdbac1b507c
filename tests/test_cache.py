"""Listing and clearing the cache: entries described from their own metadata, removed only when not in use."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pytest
from _tiny_lm import make_model_dir

from lexprobe.cache import clear_entries, list_entries, parse_age
from lexprobe.exceptions import CacheError, OutputError
from lexprobe.runs import default_out_dir

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    from lexprobe.models import load_model

    return load_model(str(make_model_dir("bytelevel", tmp_path_factory.mktemp("tiny") / "model")), dtype="float32")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LEXPROBE_CACHE", str(root))
    return root


def _embed(model, texts, keys):
    from lexprobe.embed import ExtractionConfig, extract_hidden_states

    return extract_hidden_states(texts, keys=keys, model=model, config=ExtractionConfig(layers=(0, 1)))


def _by_kind(entries, kind):
    return [e for e in entries if e.kind == kind]


GENES = (["tumor protein p53", "insulin", "albumin"], ["HGNC:11998", "HGNC:6081", "HGNC:399"])


def test_an_embedding_entry_says_what_it_holds(cache: Path, tiny_model) -> None:
    result = _embed(tiny_model, *GENES)
    _embed(tiny_model, GENES[1], GENES[1])  # the ids themselves

    entries = _by_kind(list_entries(), "embeddings")
    assert len(entries) == 2 and all(e.complete for e in entries)
    names = next(e for e in entries if e.details["field"] == "name")
    assert {"ontology": "hgnc", "n_items": 3, "n_layers": 2, "dtype": "float32"}.items() <= names.details.items()
    assert names.model == tiny_model.name
    assert names.size == sum(p.stat().st_size for p in names.path.iterdir())
    assert names.size > result.array.nbytes
    assert "hgnc name: 3 items x 2 layers, float32" in names.description
    assert {e.details["field"] for e in entries} == {"name", "id"}
    assert list_entries("ontology") == []


def test_unfinished_work_is_listed_as_such(cache: Path, tiny_model) -> None:
    from lexprobe.embed import _write_shard

    work = cache / "embeddings" / ("a" * 20 + ".partial")
    work.mkdir(parents=True)
    _write_shard(work, [0, 1], np.zeros((2, 2, 32), dtype=np.float32), np.zeros((2, 3)))
    conversion = cache / "models" / ".SmolLM2-0123456789abcdef-v1.abcd1234"
    conversion.mkdir(parents=True)
    (conversion / "model.safetensors").write_bytes(b"0" * 100)

    entries = list_entries()
    partial = next(e for e in entries if e.path == work)
    assert not partial.complete and partial.details["n_items_done"] == 2
    assert "2 items done" in partial.description
    assert not next(e for e in entries if e.path == conversion).complete

    assert [e.path for e in clear_entries(incomplete_only=True).removed] == sorted([work, conversion])
    assert not work.exists() and not conversion.exists()


def test_ontology_and_converted_model_entries_are_described(cache: Path) -> None:
    from lexprobe.ontology import load_ontology

    load_ontology(str(DATA / "hp_sample.obo"))
    (cache / "models" / "m-0123456789abcdef-v1").mkdir(parents=True)
    model = cache / "models" / "m-0123456789abcdef-v1"
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2}))
    (model / "lexprobe-complete.json").write_text(json.dumps({"gguf_sha256": "x", "files": {"config.json": 999}}))

    entries = list_entries()
    (ontology,) = _by_kind(entries, "ontology")
    assert ontology.complete and ontology.details["ontology"] == "hpo" and ontology.details["n_rows"] > 0
    (converted,) = _by_kind(entries, "model")
    assert not converted.complete  # its marker lists config.json at another size: rebuilt on next use
    assert converted.details["n_layers"] == 2


def test_clear_filters_by_kind_model_and_age_and_frees_what_it_says(cache: Path, tiny_model) -> None:
    _embed(tiny_model, *GENES)
    from lexprobe.ontology import load_ontology

    load_ontology(str(DATA / "hp_sample.obo"))
    before = list_entries()
    total = sum(e.size for e in before)

    assert clear_entries(model="gemma*").removed == []
    assert clear_entries(older_than="1d").removed == []  # everything was used just now
    planned = clear_entries(kind="embeddings", dry_run=True)
    assert len(planned.removed) == 1 and planned.bytes_freed > 0
    assert list_entries() == before  # a dry run removes nothing

    done = clear_entries(kind="embeddings", model=tiny_model.name.upper())  # names compare without case
    assert done.bytes_freed == planned.bytes_freed
    assert _by_kind(list_entries(), "embeddings") == []
    assert sum(e.size for e in list_entries()) == total - done.bytes_freed

    old = dt.datetime.now().timestamp() - 40 * 86400
    for path in (cache / "ontology").iterdir():
        os.utime(path, (old, old))
    assert len(clear_entries(older_than="30d").removed) == 1


def test_an_entry_whose_lock_is_held_is_kept(cache: Path, tiny_model) -> None:
    from filelock import FileLock

    _embed(tiny_model, *GENES)
    (entry,) = list_entries("embeddings")
    with FileLock(str(entry.lock)):  # what a running extraction of this key holds
        result = clear_entries()
        assert entry not in result.removed
        assert [e.path for e, _ in result.skipped] == [entry.path]
        assert "in use" in result.skipped[0][1]
    assert entry.path.is_dir()
    assert clear_entries().removed == [entry] and not entry.path.exists()


def test_clear_never_follows_a_link_out_of_the_cache(cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (cache / "embeddings").mkdir(parents=True)
    (cache / "embeddings" / "elsewhere").symlink_to(outside)

    assert [e.kind for e in list_entries()] == ["other"]
    result = clear_entries()
    assert (outside / "keep.txt").read_text() == "mine"
    assert (cache / "embeddings" / "elsewhere").is_symlink()  # lexprobe did not make the link: it stays too
    assert [e.path.name for e, _ in result.skipped] == ["elsewhere"]


def _users_files(folder: Path) -> list[Path]:
    """A thesis and a project folder, as a user keeps them."""
    (folder / "project").mkdir(parents=True)
    (folder / "project" / "main.py").write_text("print('mine')")
    (folder / "thesis.pdf").write_bytes(b"%PDF-1.7 mine")
    return [folder / "project" / "main.py", folder / "thesis.pdf"]


def test_clear_refuses_a_folder_that_is_not_lexprobes_cache(cache: Path) -> None:
    from lexprobe.ontology import load_ontology

    mine = _users_files(cache)
    load_ontology(str(DATA / "hp_sample.obo"))  # a run with LEXPROBE_CACHE pointing at the user's folder
    assert len(list_entries("ontology")) == 1 and not (cache / "CACHEDIR.TAG").exists()

    for kwargs in ({}, {"dry_run": True}, {"kind": "ontology"}):
        with pytest.raises(CacheError, match=r"does not look like lexprobe's cache .* holds 'project', 'thesis.pdf'"):
            clear_entries(**kwargs)
    assert all(p.is_file() for p in mine) and len(list_entries("ontology")) == 1


def test_another_tools_cache_tag_does_not_make_a_folder_lexprobes(cache: Path) -> None:
    mine = _users_files(cache)
    (cache / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n# pip\n")
    with pytest.raises(CacheError, match="does not look like lexprobe's cache"):
        clear_entries()
    assert all(p.is_file() for p in mine)


def test_a_new_cache_is_tagged_and_an_untagged_one_of_lexprobes_own_files_is_recognised(cache: Path) -> None:
    from lexprobe.ontology import load_ontology
    from lexprobe.runs import cache_dir

    assert (cache_dir() / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    load_ontology(str(DATA / "hp_sample.obo"))
    (cache / "CACHEDIR.TAG").unlink()  # a cache made before the tag: nothing but lexprobe's names
    (cache / "rates.json").write_text('{"version": 1, "records": []}')
    assert [e.kind for e in list_entries()] == ["ontology", "rates"]  # the tag itself is not an entry
    assert (cache / "CACHEDIR.TAG").is_file()  # tagged when lexprobe next used it
    assert len(clear_entries().removed) == 2


def test_clear_removes_only_what_lexprobe_wrote(cache: Path) -> None:
    from lexprobe.ontology import load_ontology

    load_ontology(str(DATA / "hp_sample.obo"))  # a tagged cache, into which a user then put things
    mine = _users_files(cache)
    for path in (
        "models/llama-3/config.json",
        "models/gguf/notes.txt",
        "models/.hidden/x",
        "embeddings/notes.txt",
        "ontology/mine.json.gz",
        "ontology/.draft.tmp",
    ):
        (cache / path).parent.mkdir(parents=True, exist_ok=True)
        (cache / path).write_text("mine")
        mine.append(cache / path)

    result = clear_entries()
    assert [e.kind for e in result.removed] == ["ontology"]
    assert {e.kind for e, _ in result.skipped} == {"other"}
    assert all("not written by lexprobe" in why for _, why in result.skipped)
    assert all(p.is_file() for p in mine)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400), ("90s", 90), ("1.5m", 90)]
)
def test_ages_read_with_units(text: str, seconds: float) -> None:
    assert parse_age(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["30", "d", "3x", "-1d", "", "1e9d", "inf d"])
def test_a_bad_age_is_an_error_naming_the_form(bad: str) -> None:
    with pytest.raises(CacheError, match="--older-than must be a number and a unit"):
        parse_age(bad)


@pytest.mark.parametrize("huge", ["99999999999d", "1000000000d", "99999999999999999999w", "9" * 400 + "s"])
def test_an_age_too_long_for_a_timedelta_is_an_error_not_an_overflow(huge: str) -> None:
    with pytest.raises(CacheError, match=r"must be at most 999999999d, got '\d+[dws]'; give a shorter age"):
        parse_age(huge)
    assert parse_age("999999999d").days == 999999999


def test_a_bad_kind_or_negative_age_is_an_error(cache: Path) -> None:
    with pytest.raises(CacheError, match="unknown cache kind 'models'; use one of embeddings"):
        list_entries("models")
    with pytest.raises(CacheError, match="must not be negative"):
        clear_entries(older_than=dt.timedelta(days=-1))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("smollm2-135m", "runs/smollm2-135m/align-hgnc"),
        ("SmolLM2-135M", "runs/smollm2-135m/align-hgnc"),
        ("google/gemma-3-270m", "runs/google--gemma-3-270m/align-hgnc"),
        ("/models/SmolLM2-135M-Instruct.Q4_1.gguf", "runs/SmolLM2-135M-Instruct.Q4_1/align-hgnc"),
        ("./weights/Llama-3.1-8B/", "runs/Llama-3.1-8B/align-hgnc"),
    ],
)
def test_default_out_dirs_differ_per_model(model: str, expected: str) -> None:
    assert default_out_dir("align", "hgnc", model) == Path(expected)


def test_default_out_dir_names_a_file_ontology_by_its_stem(tmp_path: Path) -> None:
    assert default_out_dir("embed", "data/my.terms.tsv.gz", "smollm2-135m", root=tmp_path) == (
        tmp_path / "smollm2-135m" / "embed-my.terms"
    )
    assert default_out_dir("align", "../../x.obo", "a/b") == Path("runs/a--b/align-x")
    with pytest.raises(OutputError, match="cannot name a folder"):
        default_out_dir("align", "hgnc", "..")
