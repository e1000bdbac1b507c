"""Calibration v3's fields: definitions, is_a parents, UMLS / SNOMED CT xrefs (OBO), EC numbers and RGD ids (HGNC)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lexprobe.exceptions import DataFormatError
from lexprobe.ontology import load_ontology

DATA = Path(__file__).resolve().parents[1] / "data"

# real stanzas of hp.obo 2025-01-16 (HP:0001250 cut to its def, xrefs and is_a; HP:0012638's is_a cut so the
# sample is closed), plus a toy term with two is_a parents and a part_of, and xrefs of the forms that are
# not read: another prefix, none at all, a UMLS prefix with nothing after it
OBO = """format-version: 1.2
data-version: hp/releases/2025-01-16
ontology: hp

[Term]
id: HP:0000001
name: All

[Term]
id: HP:0000118
name: Phenotypic abnormality
def: "A phenotypic abnormality." [HPO:probinson]
is_a: HP:0000001 ! All

[Term]
id: HP:0012638
name: Abnormal nervous system physiology
def: "A functional anomaly of the nervous system." [HPO:probinson]
xref: UMLS:C4022810
is_a: HP:0000118 ! Phenotypic abnormality

[Term]
id: HP:0001250
name: Seizure
SEIZURE_DEF
xref: SNOMEDCT_US:128613002
xref: SNOMEDCT_US:246545002
xref: SNOMEDCT_US:313307000
xref: SNOMEDCT_US:84757009
xref: SNOMEDCT_US:91175000
xref: UMLS:C0014544
xref: UMLS:C0036572
is_a: HP:0012638 ! Abnormal nervous system physiology

[Term]
id: HP:0009999
name: Toy seizure of the brain
def: "A toy term:   two parents,
 a part_of." []
xref: C0000001
xref: UMLS:
xref: MESH:D012640
xref: SNOMED_CT:91175000
is_a: HP:0012638 ! Abnormal nervous system physiology
is_a: HP:0001250 ! Seizure
relationship: part_of HP:0000118 ! Phenotypic abnormality
""".replace(
    "SEIZURE_DEF",
    'def: "A seizure is an intermittent abnormality of nervous system physiology characterized by a transient '
    'occurrence of signs and/or symptoms due to abnormal excessive or synchronous neuronal activity in the brain." '
    "[https://orcid.org/0000-0002-0736-9199, PMID:15816939]",
)


@pytest.fixture()
def hpo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "hp.obo"
    path.write_text(OBO, encoding="utf-8")
    return load_ontology(path).terms.set_index("id")


def test_an_obo_definition_is_its_text_without_the_refs(hpo: pd.DataFrame) -> None:
    assert hpo.loc["HP:0001250", "definition"].startswith("A seizure is an intermittent abnormality")
    assert hpo.loc["HP:0001250", "definition"].endswith("neuronal activity in the brain.")
    assert "PMID" not in hpo.loc["HP:0001250", "definition"] and "[" not in hpo.loc["HP:0001250", "definition"]
    assert hpo.loc["HP:0009999", "definition"] == "A toy term: two parents, a part_of."
    assert hpo.loc["HP:0000001", "definition"] is None


def test_parents_are_the_names_of_the_direct_is_a_parents_in_id_order(hpo: pd.DataFrame) -> None:
    # HP:0001250 before HP:0012638 (id order, not the file's); the part_of parent HP:0000118 left out
    assert hpo.loc["HP:0009999", "parents"] == ("Seizure", "Abnormal nervous system physiology")
    assert hpo.loc["HP:0001250", "parents"] == ("Abnormal nervous system physiology",)
    assert hpo.loc["HP:0000001", "parents"] == ()


def test_umls_and_snomed_xrefs_keep_their_upstream_form(hpo: pd.DataFrame) -> None:
    assert hpo.loc["HP:0001250", "umls_ids"] == ("UMLS:C0014544", "UMLS:C0036572")
    assert hpo.loc["HP:0001250", "snomed_ids"] == (
        "SNOMEDCT_US:128613002",
        "SNOMEDCT_US:246545002",
        "SNOMEDCT_US:313307000",
        "SNOMEDCT_US:84757009",
        "SNOMEDCT_US:91175000",
    )
    assert hpo.loc["HP:0012638", "umls_ids"] == ("UMLS:C4022810",) and hpo.loc["HP:0012638", "snomed_ids"] == ()


def test_an_xref_without_a_prefix_or_of_another_prefix_is_not_read(hpo: pd.DataFrame) -> None:
    # as the loaders treat an alt_id that is no id: left out, the term kept
    assert hpo.loc["HP:0009999", "umls_ids"] == () and hpo.loc["HP:0009999", "snomed_ids"] == ()
    assert hpo.loc["HP:0009999", "label"] == "Toy seizure of the brain"


def test_a_malformed_xref_line_is_one_data_format_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "bad.obo"
    path.write_text(OBO.replace("xref: UMLS:C4022810", "xref: UMLS: C4022810"), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.obo: OBO syntax error at line 19") as info:
        load_ontology(path)
    assert "\n" not in str(info.value)


def test_the_hpo_fields_are_tasks_of_an_obo_file(hpo: pd.DataFrame, tmp_path: Path) -> None:
    from lexprobe.tasks import ontology_fields, task_pairs

    ont = load_ontology(tmp_path / "hp.obo")
    assert {"definition", "parent", "umls", "snomed"} <= set(ontology_fields(ont))
    assert not {"enzyme_id", "rgd"} & set(ontology_fields(ont))
    pairs = task_pairs(ont, "name-to-umls").set_index("id")
    assert pairs.loc["HP:0001250", "target"] == "UMLS:C0014544"  # the first value trains; any value scores


HGNC_CUSTOM = (
    "HGNC ID\tApproved symbol\tApproved name\tStatus\tRat genome database ID(supplied by RGD)\tLocus type\t"
    "Enzyme IDs\n"
    "HGNC:17929\tAADAT\taminoadipate aminotransferase\tApproved\tRGD:2948\tgene with protein product\t"
    "2.6.1.39, 2.6.1.7\n"
    "HGNC:411\tALDH3B2\taldehyde dehydrogenase 3 family member B2\tApproved\tRGD:1584166, RGD:1585230\t"
    "gene with protein product\t1.2.1.5\n"
    "HGNC:37133\tA1BG-AS1\tA1BG antisense RNA 1\tApproved\t\tRNA, long non-coding\t\n"
)
HGNC_OFFICIAL = (
    "hgnc_id\tsymbol\tname\tlocus_type\tstatus\trgd_id\tenzyme_id\n"
    "HGNC:17929\tAADAT\taminoadipate aminotransferase\tgene with protein product\tApproved\tRGD:2948\t"
    '"2.6.1.39|2.6.1.7"\n'
    "HGNC:411\tALDH3B2\taldehyde dehydrogenase 3 family member B2\tgene with protein product\tApproved\t"
    '"RGD:1584166|RGD:1585230"\t1.2.1.5\n'
    "HGNC:37133\tA1BG-AS1\tA1BG antisense RNA 1\tRNA, long non-coding\tApproved\t\t\n"
)


@pytest.mark.parametrize("text", [HGNC_CUSTOM, HGNC_OFFICIAL], ids=["custom download", "official complete set"])
def test_hgnc_enzyme_and_rgd_ids_in_both_column_spellings(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "hgnc.tsv"
    path.write_text(text, encoding="utf-8")
    terms = load_ontology(path).terms.set_index("symbol")
    assert terms.loc["AADAT", "enzyme_ids"] == ("2.6.1.39", "2.6.1.7")
    assert terms.loc["AADAT", "rgd_ids"] == ("RGD:2948",)
    assert terms.loc["ALDH3B2", "rgd_ids"] == ("RGD:1584166", "RGD:1585230")
    assert terms.loc["ALDH3B2", "enzyme_ids"] == ("1.2.1.5",)
    assert terms.loc["A1BG-AS1", "enzyme_ids"] == () and terms.loc["A1BG-AS1", "rgd_ids"] == ()


def test_the_hgnc_samples_carry_rgd_ids_in_both_dialects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    for name in ("hgnc_complete_set_sample.txt", "hgnc_custom_sample.tsv"):
        terms = load_ontology(DATA / name).terms.set_index("symbol")
        assert terms.loc["TP53", "rgd_ids"] == ("RGD:3889",) and terms.loc["A1BG-AS1", "rgd_ids"] == ()
        assert terms["enzyme_ids"].map(len).sum() == 0


def test_the_bundled_snapshots_hold_the_new_fields() -> None:
    hpo = load_ontology("hpo").terms
    assert int(hpo["definition"].notna().sum()) == 16454  # every def: of hp.obo 2025-01-16
    seizure = hpo.set_index("id").loc["HP:0001250"]
    assert seizure["parents"] == ("Abnormal nervous system physiology",)
    assert seizure["umls_ids"] == ("UMLS:C0014544", "UMLS:C0036572") and len(seizure["snomed_ids"]) == 5
    go = load_ontology("go").terms
    assert go["definition"].isna().all()  # the shipped go-basic.obo has no def: lines
    assert go.set_index("id").loc["GO:0000242", "parents"] == ("cellular anatomical entity",)
    hgnc = load_ontology("hgnc").terms.set_index("symbol")
    assert hgnc.loc["AADAT", "enzyme_ids"] == ("2.6.1.39", "2.6.1.7")
    assert hgnc.loc["A1BG", "rgd_ids"] == ("RGD:69417",)
