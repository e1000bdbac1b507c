"""The built-in snapshots: counts against the upstream releases, popularity, id and symbol maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from lexprobe.exceptions import OntologyError
from lexprobe.ontology import TERM_COLUMNS, builtin_ontologies, load_ontology

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def hgnc():
    return load_ontology("hgnc")


@pytest.fixture(scope="module")
def hpo():
    return load_ontology("hpo")


@pytest.fixture(scope="module")
def go():
    return load_ontology("go")


def test_every_builtin_has_the_convention_columns_and_popularity() -> None:
    for name, info in builtin_ontologies().items():
        ont = load_ontology(name)
        assert tuple(ont.terms.columns[: len(TERM_COLUMNS)]) == TERM_COLUMNS
        assert ont.default_popularity in ont.popularity_columns
        assert all(c.startswith("pop_") for c in ont.popularity_columns)
        assert len(ont) == info.n_terms
        assert ont.terms["id"].is_unique
        assert (ont.terms[list(ont.popularity_columns)] >= 0).all().all()
        assert len(ont.checksum) == 64


def test_hgnc_counts_match_the_2024_07_release(hgnc) -> None:
    # counted in hgnc_entries.tsv: 43,837 Approved, 1,795 Entry Withdrawn, 3,381 Symbol Withdrawn;
    # 19,281 approved genes of locus type "gene with protein product"
    assert len(hgnc) == 49013
    assert len(hgnc.active()) == 43837
    coding = hgnc.active()["category"] == "gene with protein product"
    assert int(coding.sum()) == 19281


def test_hgnc_rows_carry_symbols_aliases_and_withdrawn_replacements(hgnc) -> None:
    terms = hgnc.terms.set_index("id")
    assert terms.loc["HGNC:11998", "symbol"] == "TP53"
    assert terms.loc["HGNC:11998", "label"] == "tumor protein p53"
    assert "p53" in terms.loc["HGNC:11998", "alias_symbols"]
    assert terms.loc["HGNC:6", "obsolete"]
    assert terms.loc["HGNC:6", "replaced_by"] == "HGNC:12469"
    assert hgnc.resolve_id("HGNC:6") == "HGNC:12469"
    assert hgnc.resolve_symbol("p53") == "TP53"
    assert hgnc.resolve_symbol("brca1") == "BRCA1"
    # BRCC1 is an alias of both BRCA1 and ICE2: ambiguous, so not resolved
    assert hgnc.resolve_symbol("BRCC1") is None


def test_hgnc_popularity_ranks_well_studied_disease_genes_high(hgnc) -> None:
    pop = hgnc.active().set_index("symbol")["pop_hpo_annotations"]
    assert pop["TP53"] > pop.quantile(0.95)
    assert pop["BRCA1"] > pop.quantile(0.9)
    assert (pop == 0).mean() > 0.5  # most genes have no HPO phenotype links


def test_hpo_counts_obsoletes_and_alt_ids(hpo) -> None:
    assert len(hpo) == 19484
    assert int(hpo.terms["obsolete"].sum()) == 450
    assert hpo.release == "2025-01-16"
    assert hpo.resolve_id("HP:0002479") == "HP:0001250"  # an alt id of Seizure
    assert hpo.resolve_id("HP_0000057") == "HP:0008665"  # obsolete, replaced_by
    assert hpo.resolve_id("HP:9999999") is None


def test_hpo_categories_are_the_top_level_phenotype_branches(hpo) -> None:
    terms = hpo.terms.set_index("id")
    assert terms.loc["HP:0001250", "category"] == "Abnormality of the nervous system"
    assert terms.loc["HP:0000002", "category"] == "Growth abnormality"
    assert terms.loc["HP:0000007", "category"] == "Mode of inheritance"


def test_hpo_popularity_is_disease_annotations(hpo) -> None:
    pop = hpo.active().set_index("id")["pop_hpoa_diseases"]
    assert pop["HP:0001250"] > 1000  # Seizure
    assert pop["HP:0001263"] > 1000  # Global developmental delay
    assert pop.median() < 10


def test_go_counts_per_namespace(go) -> None:
    counts = go.terms["namespace"].value_counts().to_dict()
    assert counts == {"biological_process": 27186, "molecular_function": 11198, "cellular_component": 4058}
    assert (go.terms["category"] == go.terms["namespace"]).all()
    assert go.default_popularity == "pop_go_descendants"
    assert go.resolve_id("GO:0019952") == "GO:0000003"  # alt id of "reproduction"


def test_a_gaf_gives_the_builtin_go_annotation_popularity() -> None:
    ont = load_ontology("go", annotations=DATA / "goa_sample.gaf")
    assert ont.default_popularity == "pop_go_annotations"
    assert ont.popularity_columns == ("pop_go_annotations", "pop_go_descendants")
    pop = ont.terms.set_index("id")["pop_go_annotations"]
    assert (pop["GO:0005515"], pop["GO:0005634"], pop["GO:0043231"]) == (4, 2, 1)
    assert int((pop > 0).sum()) == 3
    assert ont.source == f"bundled:data/go.terms.tsv.gz + {DATA / 'goa_sample.gaf'}"
    assert ont.checksum != load_ontology("go").checksum


def test_another_hpoa_replaces_the_builtin_hpo_popularity() -> None:
    ont = load_ontology("hpo", annotations=DATA / "phenotype_sample.hpoa")
    pop = ont.terms.set_index("id")["pop_hpoa_diseases"]
    assert pop["HP:0001250"] == 4 and pop["HP:0000007"] == 3 and int((pop > 0).sum()) == 3


def test_the_builtin_hgnc_takes_no_other_annotations() -> None:
    with pytest.raises(OntologyError, match="the built-in hgnc already carries pop_hpo_annotations"):
        load_ontology("hgnc", annotations=DATA / "goa_sample.gaf")


def test_builtin_names_are_case_insensitive_and_list_their_provenance() -> None:
    assert load_ontology("HPO").name == "hpo"
    infos = builtin_ontologies()
    assert sorted(infos) == ["go", "hgnc", "hpo"]
    for info in infos.values():
        assert info.licence and info.release and (DATA.parents[1] / "data" / info.file).is_file()
        assert info.default_popularity in info.popularity_columns
