"""OBO files through pronto: real HPO and GO stanzas, the maps built beside pronto, and malformed files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lexprobe.exceptions import DataFormatError, OntologyError
from lexprobe.ontology import load_ontology

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def hpo_dir(tmp_path: Path) -> Path:
    """An hp.obo with its phenotype.hpoa beside it, as an HPO release directory holds them."""
    folder = tmp_path / "hpo-release"
    folder.mkdir()
    shutil.copy(DATA / "hp_sample.obo", folder / "hp.obo")
    shutil.copy(DATA / "phenotype_sample.hpoa", folder / "phenotype.hpoa")
    return folder


def test_hp_obo_picks_up_phenotype_hpoa_beside_it(hpo_dir: Path, cache: Path) -> None:
    ont = load_ontology(hpo_dir / "hp.obo")
    assert (ont.name, ont.kind, ont.release) == ("hpo", "obo", "2025-01-16")
    assert ont.default_popularity == "pop_hpoa_diseases"
    assert ont.popularity_columns == ("pop_hpoa_diseases", "pop_obo_descendants")
    assert "phenotype.hpoa" in ont.source
    pop = ont.terms.set_index("id")["pop_hpoa_diseases"]
    # Seizure: 4 distinct diseases; the NOT line is left out, and OMIM:618557 listed again under the alt id
    # HP:0002479 counts once
    assert pop["HP:0001250"] == 4
    assert pop["HP:0000007"] == 3
    assert pop["HP:0000707"] == 0  # not propagated from Seizure to its ancestors


def test_hp_obo_without_annotations_ranks_by_structure(cache: Path) -> None:
    ont = load_ontology(DATA / "hp_sample.obo")  # no phenotype.hpoa beside the fixture
    assert ont.popularity_columns == ("pop_obo_descendants",)
    assert ont.default_popularity == "pop_obo_descendants"
    assert ont.terms.set_index("id").loc["HP:0000118", "pop_obo_descendants"] == 4


def test_hpo_terms_get_their_top_level_branch_as_category(cache: Path) -> None:
    terms = load_ontology(DATA / "hp_sample.obo").terms.set_index("id")
    assert terms.loc["HP:0001250", "category"] == "Abnormality of the nervous system"
    assert terms.loc["HP:0012759", "category"] == "Abnormality of the nervous system"
    assert terms.loc["HP:0000007", "category"] == "Mode of inheritance"
    assert terms.loc["HP:0000001", "category"] is None


def test_alt_ids_and_obsolete_ids_resolve_to_the_current_term(cache: Path) -> None:
    ont = load_ontology(DATA / "hp_sample.obo")
    terms = ont.terms.set_index("id")
    assert "HP:0002479" in terms.loc["HP:0001250", "alt_ids"]
    assert ont.resolve_id("HP:0002479") == "HP:0001250"
    assert ont.resolve_id("http://purl.obolibrary.org/obo/HP_0002479") == "HP:0001250"
    # replaced_by points outside the sample: kept as given, as pronto's own accessor would raise
    assert terms.loc["HP:0000057", "obsolete"] and terms.loc["HP:0000057", "replaced_by"] == "HP:0008665"
    assert ont.resolve_id("HP:0000057") == "HP:0008665"
    assert ont.resolve_id("HP:0000002") is None
    assert "HP:0000057" not in set(ont.active()["id"])


def test_synonyms_of_undeclared_synonym_types_are_kept(cache: Path) -> None:
    # 'synonym: "biallelic_autosomal" EXACT HP:0034334 []' without a synonymtypedef in the header
    terms = load_ontology(DATA / "hp_sample.obo").terms.set_index("id")
    assert "biallelic_autosomal" in terms.loc["HP:0000007", "synonyms"]


def test_exact_synonyms_are_kept_apart_from_related_and_broad_ones(cache: Path) -> None:
    """`exact_synonyms` (the `synonym` task field) holds the EXACT scope only, the undeclared-type one included;
    `synonyms` keeps every scope."""
    terms = load_ontology(DATA / "hp_sample.obo").terms.set_index("id")
    assert terms.loc["HP:0000007", "exact_synonyms"] == ("Autosomal recessive", "biallelic_autosomal")
    assert "Autosomal recessive form" in terms.loc["HP:0000007", "synonyms"]
    assert "Brain and/or spinal cord issue" not in terms.loc["HP:0000707", "exact_synonyms"]
    assert "Neurologic abnormalities" in terms.loc["HP:0000707", "exact_synonyms"]


def test_go_obo_counts_descendants_and_uses_namespaces(cache: Path) -> None:
    ont = load_ontology(DATA / "go_sample.obo")
    assert (ont.name, ont.release) == ("go", "2024-07-17")
    assert ont.popularity_columns == ("pop_go_descendants",)
    terms = ont.terms.set_index("id")
    # is_a and part_of both count: reproduction is part_of-parent of reproductive process
    assert terms.loc["GO:0008150", "pop_go_descendants"] == 2
    assert terms.loc["GO:0000003", "pop_go_descendants"] == 1
    assert terms.loc["GO:0003674", "pop_go_descendants"] == 2
    assert (terms["category"] == terms["namespace"]).all()
    assert terms["namespace"].value_counts().to_dict() == {
        "biological_process": 3,
        "molecular_function": 3,
        "cellular_component": 2,
    }
    assert ont.resolve_id("GO:19952") == "GO:0000003"


def test_go_obo_ignores_a_phenotype_hpoa_lying_beside_it(tmp_path: Path, cache: Path) -> None:
    shutil.copy(DATA / "go_sample.obo", tmp_path / "go-basic.obo")
    shutil.copy(DATA / "phenotype_sample.hpoa", tmp_path / "phenotype.hpoa")
    ont = load_ontology(tmp_path / "go-basic.obo")
    assert ont.popularity_columns == ("pop_go_descendants",)
    assert ont.source == str(tmp_path / "go-basic.obo")


def test_go_obo_with_a_gaf_ranks_by_annotations(cache: Path) -> None:
    ont = load_ontology(DATA / "go_sample.obo", annotations=DATA / "goa_sample.gaf")
    assert ont.default_popularity == "pop_go_annotations"
    assert ont.popularity_columns == ("pop_go_annotations", "pop_go_descendants")
    pop = ont.terms.set_index("id")["pop_go_annotations"]
    # protein binding: 3 lines + 1 under its alt id GO:0001948; the NOT line is left out
    assert pop["GO:0005515"] == 4
    assert pop["GO:0005634"] == 2
    assert pop["GO:0008150"] == 0


def test_gzipped_obo_loads_like_the_plain_file(tmp_path: Path, cache: Path) -> None:
    packed = tmp_path / "go_sample.obo.gz"
    packed.write_bytes(gzip.compress((DATA / "go_sample.obo").read_bytes()))
    pd.testing.assert_frame_equal(load_ontology(packed).terms, load_ontology(DATA / "go_sample.obo").terms)


def test_an_obo_without_an_ontology_header_is_named_after_its_file(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "mini.obo"
    path.write_text("format-version: 1.2\n\n[Term]\nid: MINI:0000001\nname: root\n")
    ont = load_ontology(path)
    assert ont.name == "mini" and ont.release is None
    assert ont.default_popularity == "pop_obo_descendants"


def _obo(body: str) -> str:
    return "format-version: 1.2\nontology: toy\n\n" + body


@pytest.mark.parametrize(
    ("content", "match"),
    [
        # pronto's own syntax error, with its line
        (
            _obo("[Term]\nid: TOY:0000001\nname: root\n\n[Term]\nid: TOY:0000002\nis_a TOY:0000001\n"),
            "OBO syntax error at line 10",
        ),
        # pronto would merge these two stanzas silently
        (
            _obo("[Term]\nid: TOY:0000001\nname: root\n\n[Term]\nid: TOY:0000001\nname: again\n"),
            r"duplicate id TOY:0000001 at line 9 \(first at line 5\)",
        ),
        # pronto fails on a KeyError after parsing
        (
            _obo("[Term]\nid: TOY:0000001\nname: root\nis_a: TOY:0000099\n"),
            "line 7: is_a parent TOY:0000099 is not defined",
        ),
        (_obo("[Typedef]\nid: part_of\nname: part of\n"), "no \\[Term\\] stanzas found"),
    ],
)
def test_malformed_obo_fails_with_the_file_and_line(tmp_path: Path, cache: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.obo"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.obo: .*" + match):
        load_ontology(path)


def test_the_malformed_fixture_names_its_line(cache: Path) -> None:
    with pytest.raises(DataFormatError, match=r"malformed\.obo: OBO syntax error at line 11: .*is_a TOY"):
        load_ontology(DATA / "malformed.obo")


def test_a_latin1_obo_is_refused_with_the_line_not_misread(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "latin1.obo"
    path.write_bytes(_obo("[Term]\nid: TOY:0000001\nname: Sjögren syndrome\n").encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.obo: not UTF-8 text at line 6 \(byte 0xf6\)"):
        load_ontology(path)


def test_a_utf8_obo_keeps_its_accents(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "utf8.obo"
    path.write_bytes(_obo("[Term]\nid: TOY:0000001\nname: Sjögren syndrome\n").encode("utf-8"))
    assert load_ontology(path).terms.loc[0, "label"] == "Sjögren syndrome"


@pytest.mark.parametrize(
    ("annotations", "error", "match"),
    [
        ("phenotype_sample.hpoa", DataFormatError, "gives popularity to HPO terms only, but .* is ontology 'go'"),
        ("terms.csv", DataFormatError, "not an annotation file lexprobe reads"),
        ("no-such.gaf", OntologyError, "annotations file not found: .*no-such.gaf"),
    ],
)
def test_wrong_annotations_for_an_obo_fail_clearly(cache: Path, annotations: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        load_ontology(DATA / "go_sample.obo", annotations=DATA / annotations)


def test_a_gaf_of_another_ontology_is_refused(cache: Path) -> None:
    with pytest.raises(DataFormatError, match="none of the 4 annotated ids .* are terms of this ontology"):
        load_ontology(DATA / "hp_sample.obo", annotations=DATA / "goa_sample.gaf")


def test_a_gaf_line_with_too_few_columns_names_the_line(tmp_path: Path, cache: Path) -> None:
    gaf = tmp_path / "short.gaf"
    lines = (DATA / "goa_sample.gaf").read_text().splitlines()
    gaf.write_text("\n".join(lines[:4] + ["UniProtKB\tP04637\tTP53\tenables\tGO:0005515"]) + "\n")
    with pytest.raises(DataFormatError, match=r"short\.gaf: line 5 has 5 tab-separated columns"):
        load_ontology(DATA / "go_sample.obo", annotations=gaf)


def test_hpoa_without_its_columns_is_refused(tmp_path: Path, cache: Path) -> None:
    hpoa = tmp_path / "phenotype.hpoa"
    hpoa.write_text("#version: 2025-01-16\ndatabase_id\thpo_id\nOMIM:1\tHP:0001250\n")
    with pytest.raises(DataFormatError, match=r"phenotype.hpoa needs columns .*missing \['qualifier'\]"):
        load_ontology(DATA / "hp_sample.obo", annotations=hpoa)


@pytest.mark.parametrize("name", ["hp.owl", "go.json"])
def test_owl_and_obo_json_are_refused_with_a_hint(tmp_path: Path, cache: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("{}")
    with pytest.raises(OntologyError, match="OWL and OBO-JSON are not supported; give the .obo release"):
        load_ontology(path)


@pytest.mark.slow
def test_real_hp_obo_with_the_hpoa_beside_it_equals_the_builtin(cache: Path, shared_data: Path) -> None:
    ont = load_ontology(shared_data / "hp.obo.gz")  # phenotype.hpoa.gz lies beside it
    assert ont.name == "hpo" and ont.release == "2025-01-16"
    assert ont.default_popularity == "pop_hpoa_diseases"
    pd.testing.assert_frame_equal(ont.terms, load_ontology("hpo").terms)


def test_windows_line_endings_and_a_byte_order_mark_are_read(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "windows.obo"
    text = _obo("[Term]\nid: TOY:0000001\nname: root\n\n[Term]\nid: TOY:0000002\nname: child\nis_a: TOY:0000001\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    ont = load_ontology(path)
    assert ont.name == "toy"
    assert ont.terms["label"].tolist() == ["root", "child"]
    assert ont.terms["pop_obo_descendants"].tolist() == [1, 0]
