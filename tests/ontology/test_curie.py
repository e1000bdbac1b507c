"""CURIE normalization: every input form becomes one canonical string."""

from __future__ import annotations

import pytest

from lexprobe.exceptions import OntologyError
from lexprobe.ontology import normalize_curie


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HP:0001250", "HP:0001250"),
        ("HP_0001250", "HP:0001250"),
        ("hp:0001250", "HP:0001250"),
        ("http://purl.obolibrary.org/obo/HP_0001250", "HP:0001250"),
        ("https://purl.obolibrary.org/obo/GO_0008150", "GO:0008150"),
        ("GO:8150", "GO:0008150"),
        ("go_0008150", "GO:0008150"),
        ("HGNC:11998", "HGNC:11998"),
        ("hgnc:011998", "HGNC:11998"),
        ("https://identifiers.org/hgnc:11998", "HGNC:11998"),
        ("  HP:0001250\n", "HP:0001250"),
        ("MONDO_0005148", "MONDO:0005148"),
        ("UBERON:0000948", "UBERON:0000948"),
    ],
)
def test_input_forms_normalize_to_one_curie(raw: str, expected: str) -> None:
    assert normalize_curie(raw) == expected


def test_a_bare_number_needs_a_prefix() -> None:
    assert normalize_curie("11998", prefix="HGNC") == "HGNC:11998"
    with pytest.raises(OntologyError, match="'11998' is not an identifier"):
        normalize_curie("11998")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("gene:1", "gene:1"),
        ("UBERON:0000948", "UBERON:0000948"),
        ("http://purl.obolibrary.org/obo/UBERON_0000948", "UBERON:0000948"),
        ("HP:1250", "HP:0001250"),
        ("Hp_0001250", "HP:0001250"),
    ],
)
def test_only_known_forms_are_rewritten(raw: str, expected: str) -> None:
    assert normalize_curie(raw) == expected


@pytest.mark.parametrize("raw", ["gene_1", "my_gene_2", "UBERON_0000948", "http://example.org/ids/X_1"])
def test_unknown_underscore_ids_and_other_iris_are_no_curies(raw: str) -> None:
    with pytest.raises(OntologyError, match="is not an identifier"):
        normalize_curie(raw)


def test_non_ascii_digits_are_not_padded_as_numbers() -> None:
    assert normalize_curie("HP:\u00b2") == "HP:\u00b2"
    with pytest.raises(OntologyError, match="is not an identifier"):
        normalize_curie("\u00b2", prefix="HGNC")


@pytest.mark.parametrize("raw", ["", "seizure", "HP 0001250", "HP:"])
def test_non_identifiers_are_rejected(raw: str) -> None:
    with pytest.raises(OntologyError, match="is not an identifier"):
        normalize_curie(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://PURL.OBOLIBRARY.ORG/OBO/hp_1250", "HP:0001250"),  # scheme, host and a known prefix in any case
        ("http://identifiers.org/HGNC/011998", "HGNC:11998"),
        ("https://purl.obolibrary.org/obo/CHEBI_15377", "CHEBI:15377"),
        ("http://purl.obolibrary.org/obo/MONDO_abc", "MONDO:abc"),  # a known prefix's letters keep their case
    ],
)
def test_iris_of_known_prefixes_match_in_any_case(raw: str, expected: str) -> None:
    assert normalize_curie(raw) == expected


@pytest.mark.parametrize("raw", ["https://identifiers.org/hgnc:TP53", "http://purl.obolibrary.org/obo/HP_0001250/x"])
def test_iris_with_a_malformed_local_part_are_rejected(raw: str) -> None:
    with pytest.raises(OntologyError, match="is not an identifier"):
        normalize_curie(raw)


def test_the_converter_expands_known_prefixes_to_iris_that_normalize_back() -> None:
    from lexprobe.ontology import CURIE_CONVERTER

    assert CURIE_CONVERTER.expand("HP:0001250") == "http://purl.obolibrary.org/obo/HP_0001250"
    assert CURIE_CONVERTER.expand("HGNC:11998") == "https://identifiers.org/hgnc:11998"
    assert CURIE_CONVERTER.expand("UBERON:0000948") is None  # unknown prefixes are kept, never expanded
    for curie in ("HP:0001250", "GO:0008150", "HGNC:11998", "MONDO:0005148", "CHEBI:15377"):
        assert normalize_curie(CURIE_CONVERTER.expand(curie)) == curie
