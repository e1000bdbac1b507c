"""Loading the upstream files a user downloads: HGNC (both dialects), OBO, generic tables; the cache."""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from lexprobe.exceptions import DataFormatError, LexprobeWarning, OntologyError
from lexprobe.ontology import Ontology, _load, data_dir, load_ontology
from lexprobe.ontology._generic import read_snapshot
from lexprobe.runs import sha256_file

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("name", ["hgnc_complete_set_sample.txt", "hgnc_custom_sample.tsv"])
def test_both_hgnc_dialects_give_the_same_table(name: str, cache: Path) -> None:
    ont = load_ontology(DATA / name)
    assert ont.name == "hgnc" and ont.kind == "hgnc"
    terms = ont.terms.set_index("id")
    assert terms.loc["HGNC:1100", "symbol"] == "BRCA1"
    assert terms.loc["HGNC:1100", "alias_symbols"] == ("RNF53", "BRCC1", "PPP1R53", "FANCS")
    assert terms.loc["HGNC:37133", "previous_symbols"] == ("NCRNA00181", "A1BGAS", "A1BG-AS")
    assert terms.loc["HGNC:11998", "category"] == "gene with protein product"
    assert terms.loc["HGNC:37133", "pop_hgnc_synonyms"] == 4
    assert ont.default_popularity == "pop_hgnc_synonyms"


def test_official_and_custom_dialects_agree_row_for_row(cache: Path) -> None:
    a = load_ontology(DATA / "hgnc_complete_set_sample.txt").terms.sort_values("id").reset_index(drop=True)
    b = load_ontology(DATA / "hgnc_custom_sample.tsv").terms.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_hgnc_cross_references_keep_their_upstream_form_in_both_dialects(cache: Path) -> None:
    for name in ("hgnc_complete_set_sample.txt", "hgnc_custom_sample.tsv"):
        terms = load_ontology(DATA / name).terms.set_index("symbol")
        assert terms.loc["BRCA1", "ncbi_gene_id"] == "672"
        assert terms.loc["BRCA1", "uniprot_ids"] == ("P38398",)
        assert terms.loc["BRCA1", "ensembl_gene_id"] == "ENSG00000012048"
        assert terms.loc["TP53", "mgi_ids"] == ("MGI:98834",)
        assert terms.loc["A1BG-AS1", "uniprot_ids"] == () and terms.loc["A1BG-AS1", "mgi_ids"] == ()
        assert terms.loc["BRCA1", "alias_symbols"] == ("RNF53", "BRCC1", "PPP1R53", "FANCS")


def test_hgnc_popularity_comes_from_genes_to_phenotype_beside_the_file(
    tmp_path: Path, cache: Path, shared_data: Path
) -> None:
    shutil.copy(DATA / "hgnc_custom_sample.tsv", tmp_path / "hgnc.tsv")
    shutil.copy(shared_data / "genes_to_phenotype.txt.gz", tmp_path / "genes_to_phenotype.txt.gz")
    terms = load_ontology(tmp_path / "hgnc.tsv").terms.set_index("id")
    assert terms.loc["HGNC:11998", "pop_hpo_annotations"] > 50  # TP53
    assert terms.loc["HGNC:37133", "pop_hpo_annotations"] == 0  # an antisense RNA


def test_a_generic_table_normalizes_ids_and_keeps_popularity(cache: Path) -> None:
    ont = load_ontology(DATA / "terms.csv")
    assert ont.kind == "table" and ont.name == "terms"
    assert list(ont.terms["id"]) == ["MONDO:0005148", "MONDO:0005015", "MONDO:0004975"]
    assert ont.terms.loc[0, "synonyms"] == ("NIDDM", "adult-onset diabetes")
    assert ont.popularity_columns == ("pop_mentions",)
    assert ont.terms["pop_mentions"].tolist() == [120.0, 300.0, 250.0]


def test_a_generic_table_rewrites_only_known_id_forms(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "mine.tsv"
    path.write_text(
        "id\tname\n"
        "gene_1\tfirst gene\n"
        "gene:2\tsecond gene\n"
        "HP_0001250\tSeizure\n"
        "hp:0001251\tAtaxia\n"
        "http://purl.obolibrary.org/obo/UBERON_0000948\theart\n"
        "UBERON_0002107\tliver\n"
    )
    ont = load_ontology(path)
    assert list(ont.terms["id"]) == [
        "gene_1",
        "gene:2",
        "HP:0001250",
        "HP:0001251",
        "UBERON:0000948",
        "UBERON_0002107",
    ]
    assert ont.resolve_id("gene_1") == "gene_1" and ont.resolve_id("gene:1") is None
    assert ont.resolve_id("hp_0001250") == "HP:0001250"


def test_an_obo_keeps_its_own_underscore_ids(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "mine.obo"
    path.write_text(
        "format-version: 1.2\nontology: mine\n\n"
        "[Term]\nid: gene_1\nname: first gene\n\n"
        "[Term]\nid: gene_2\nname: second gene\nis_a: gene_1\n\n"
        "[Term]\nid: hp_0000001\nname: All\n"
    )
    terms = load_ontology(path).terms.set_index("id")
    assert sorted(terms.index) == ["HP:0000001", "gene_1", "gene_2"]
    assert terms.loc["gene_1", "pop_obo_descendants"] == 1


def test_gzip_obo_parses_and_second_load_comes_from_the_cache(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    obo = tmp_path / "toy.obo.gz"
    text = (DATA / "malformed.obo").read_text().replace("is_a TOY", "is_a: TOY")
    text += "\n[Term]\nid: TOY:0000003\nname: old\nis_obsolete: true\nreplaced_by: TOY:0000002\n"
    obo.write_bytes(gzip.compress(text.encode()))
    first = load_ontology(obo)
    assert first.name == "toy"
    assert first.terms.set_index("id").loc["TOY:0000001", "pop_obo_descendants"] == 1
    assert first.resolve_id("TOY:0000003") == "TOY:0000002"
    assert list(cache.joinpath("ontology").glob("*.json.gz"))

    def refuse(*args, **kwargs):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(_load, "load_obo_table", refuse)
    second = load_ontology(obo)
    pd.testing.assert_frame_equal(first.terms, second.terms)


class _Boom:
    def __reduce__(self):
        return (Path("/nonexistent/lexprobe-pickle-ran").touch, ())


@pytest.mark.parametrize(
    "garbage",
    [
        b"not gzip",
        b"",
        gzip.compress(b"{not json"),
        gzip.compress(json.dumps({"not": "an ontology"}).encode()),
        gzip.compress(json.dumps({"format": "lexprobe-ontology-cache", "version": 1, "n_rows": 3}).encode()),
        gzip.compress(pickle.dumps(_Boom())),
    ],
)
def test_a_corrupt_cache_is_dropped_and_rebuilt_with_a_warning(tmp_path: Path, cache: Path, garbage: bytes) -> None:
    first = load_ontology(DATA / "terms.csv")
    (entry,) = cache.joinpath("ontology").glob("*.json.gz")
    entry.write_bytes(garbage)
    with pytest.warns(LexprobeWarning, match="dropping unreadable ontology cache"):
        again = load_ontology(DATA / "terms.csv")
    pd.testing.assert_frame_equal(again.terms, first.terms)
    # and the rebuilt table replaced the bad file: the next load reads it without a warning
    assert json.loads(gzip.decompress(entry.read_bytes()))["format"] == "lexprobe-ontology-cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(load_ontology(DATA / "terms.csv").terms, first.terms)


def test_an_old_pickle_cache_is_removed_unread(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_ontology(DATA / "terms.csv")
    (entry,) = cache.joinpath("ontology").glob("*.json.gz")
    pkl = entry.with_name(entry.name.removesuffix(".json.gz") + ".pkl")
    pkl.write_bytes(pickle.dumps(_Boom()))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    load_ontology(DATA / "terms.csv")
    assert not pkl.exists()


@pytest.mark.parametrize("name", ["hgnc_complete_set_sample.txt", "hp_sample.obo", "terms.csv"])
def test_the_cache_round_trip_keeps_the_table_exactly(name: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_ontology(DATA / name)
    (entry,) = cache.joinpath("ontology").glob("*.json.gz")
    cached = _load._read_cache(entry)
    pd.testing.assert_frame_equal(cached.terms, first.terms, check_exact=True)
    assert list(cached.terms.dtypes) == list(first.terms.dtypes)
    for column in ("synonyms", "alt_ids", "previous_symbols", "alias_symbols"):
        assert all(isinstance(v, tuple) for v in cached.terms[column]), column
        assert cached.terms[column].tolist() == first.terms[column].tolist()
    assert [c for c in cached.terms.columns if c.startswith("pop_")] == list(first.popularity_columns)
    for field in ("name", "release", "checksum", "kind", "popularity_columns", "default_popularity"):
        assert getattr(cached, field) == getattr(first, field), field


def test_the_cache_round_trip_keeps_odd_values(tmp_path: Path, cache: Path) -> None:
    terms = pd.DataFrame(
        {
            "id": ["X:1", "X:2", "X:3"],
            "label": ["a", None, 'c\t|"quoted"\n'],
            "synonyms": [(), ("b|c", "ü"), ("",)],
            "obsolete": [False, True, False],
            "extra": [1, "two", float("nan")],
            "pop_a": [1.5, float("nan"), float("inf")],
            "pop_b": pd.array([1, None, 3], dtype="Int64"),
            "count": [1, 2, 3],
        }
    )
    ont = Ontology(
        name="x",
        terms=terms,
        source="s",
        release=None,
        checksum="c",
        kind="table",
        popularity_columns=("pop_a", "pop_b"),
        default_popularity="pop_a",
    )
    path = tmp_path / "x.json.gz"
    _load._write_cache(path, ont)
    back = _load._read_cache(path)
    pd.testing.assert_frame_equal(back.terms, terms, check_exact=True)
    assert back.terms.loc[1, "synonyms"] == ("b|c", "ü") and back.terms.loc[1, "extra"] == "two"


def test_a_table_the_cache_cannot_hold_exactly_is_not_cached(tmp_path: Path) -> None:
    terms = pd.DataFrame({"id": ["X:1"], "when": pd.to_datetime(["2024-01-01"])})
    ont = Ontology(
        name="x",
        terms=terms,
        source="s",
        release=None,
        checksum="c",
        kind="table",
        popularity_columns=(),
        default_popularity=None,
    )
    _load._write_cache(tmp_path / "x.json.gz", ont)
    assert not (tmp_path / "x.json.gz").exists()


def test_the_cache_does_not_lend_one_file_name_to_a_copy(tmp_path: Path, cache: Path) -> None:
    shutil.copy(DATA / "terms.csv", tmp_path / "diseases.csv")
    assert load_ontology(DATA / "terms.csv").name == "terms"
    copy = load_ontology(tmp_path / "diseases.csv")
    assert copy.name == "diseases" and copy.source == str(tmp_path / "diseases.csv")


def test_use_cache_false_neither_reads_nor_writes_the_cache(cache: Path) -> None:
    load_ontology(DATA / "terms.csv", use_cache=False)
    assert not list(cache.joinpath("ontology").glob("*"))


@pytest.mark.slow
def test_second_load_of_go_basic_comes_from_the_cache(
    tmp_path: Path, cache: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_ontology(shared_data / "go-basic.obo.gz")

    def refuse(*args, **kwargs):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(_load, "load_obo_table", refuse)
    second = load_ontology(shared_data / "go-basic.obo.gz")
    pd.testing.assert_frame_equal(first.terms, second.terms)
    # phenotype.hpoa.gz lies beside go-basic.obo.gz in shared/data: it must not be taken for GO popularity
    assert first.popularity_columns == ("pop_go_descendants",)


@pytest.mark.slow
def test_the_bundled_snapshots_equal_a_rebuild_from_the_upstream_files(tmp_path: Path, shared_data: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", Path(__file__).resolve().parents[2] / "data" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    meta = build.build(shared_data, tmp_path)
    shipped = json.loads((data_dir() / "snapshots.json").read_text())
    assert meta == shipped
    for name, entry in meta["ontologies"].items():
        # byte for byte (the writer is deterministic), and as tables
        assert sha256_file(tmp_path / entry["file"]) == sha256_file(data_dir() / entry["file"])
        pd.testing.assert_frame_equal(read_snapshot(tmp_path / entry["file"]), load_ontology(name).terms)


@pytest.mark.parametrize(
    ("content", "name", "match"),
    [
        ("id\tdescription\nX:1\tfoo\n", "bad.tsv", "needs columns id and name; missing name"),
        ("id,name\nX:1,a\nX:1,b\n", "dup.csv", "duplicate id X:1"),
        ("", "empty.tsv", "file is empty"),
        ("hgnc_id\tstatus\nHGNC:5\tApproved\n", "hgnc.txt", "has no 'symbol'"),
        ("id,name,pop_x\nX:1,a,many\n", "pop.csv", "popularity column 'pop_x' has non-numeric values"),
    ],
)
def test_bad_tables_fail_with_one_clear_message(
    tmp_path: Path, cache: Path, content: str, name: str, match: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFormatError, match=match):
        load_ontology(path)


def test_a_plain_table_takes_no_annotations_and_a_directory_is_no_file(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(OntologyError, match="--annotations does not apply to .*terms.csv, a plain term table"):
        load_ontology(DATA / "terms.csv", annotations=DATA / "goa_sample.gaf")
    with pytest.raises(OntologyError, match="is a directory; give an OBO, HGNC or TSV/CSV file"):
        load_ontology(tmp_path)


def test_unknown_names_and_missing_files_are_ontology_errors(cache: Path) -> None:
    with pytest.raises(OntologyError, match="unknown ontology 'mesh'; use one of go, hgnc, hpo"):
        load_ontology("mesh")
    with pytest.raises(OntologyError, match=r"unknown ontology 'HPO2' \(did you mean 'hpo'\?\); use one of go, hgnc"):
        load_ontology("HPO2")
    with pytest.raises(OntologyError, match="ontology file not found: /no/such.obo"):
        load_ontology("/no/such.obo")
    with pytest.raises(OntologyError, match="no ontology given; use one of go, hgnc, hpo"):
        load_ontology("  ")


def test_a_gaf_file_gives_go_annotation_popularity(tmp_path: Path) -> None:
    gaf = tmp_path / "goa_human.gaf"
    lines = ["!gaf-version: 2.2"]
    for gene, term, qualifier in [
        ("P04637", "GO:0005634", "located_in"),  # nucleus, twice
        ("P38398", "GO:0005634", "located_in"),
        ("P38398", "GO:0006281", "involved_in"),  # DNA repair
        ("P38398", "GO:0005739", "NOT|located_in"),  # a NOT line does not count
    ]:
        lines.append(
            "\t".join(
                [
                    "UniProtKB",
                    gene,
                    "X",
                    qualifier,
                    term,
                    "PMID:1",
                    "IDA",
                    "",
                    "C",
                    "",
                    "",
                    "protein",
                    "taxon:9606",
                    "20240101",
                    "UniProt",
                ]
            )
        )
    gaf.write_text("\n".join(lines) + "\n")
    go = load_ontology("go", annotations=gaf)
    assert go.default_popularity == "pop_go_annotations"
    assert "pop_go_descendants" in go.popularity_columns
    pop = go.terms.set_index("id")["pop_go_annotations"]
    assert pop["GO:0005634"] == 2 and pop["GO:0006281"] == 1 and pop["GO:0005739"] == 0
    assert go.checksum != load_ontology("go").checksum
    bad = tmp_path / "bad.gaf"
    bad.write_text("!gaf-version: 2.2\nUniProtKB\tP04637\n")
    with pytest.raises(DataFormatError, match="line 2 has 2 tab-separated columns"):
        load_ontology("go", annotations=bad)
    bad.write_text("UniProtKB\tP04637\n")  # no GAF header and too few columns: not told apart from other files
    with pytest.raises(DataFormatError, match="not an annotation file lexprobe reads"):
        load_ontology("go", annotations=bad)


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("excel.csv", "id,name\r\nHP:0001250,Seizure\r\n", "table"),
        (
            "hgnc_complete_set.txt",
            "hgnc_id\tsymbol\tname\tstatus\r\nHGNC:11998\tTP53\ttumor protein p53\tApproved\r\n",
            "hgnc",
        ),
    ],
)
def test_a_byte_order_mark_does_not_hide_the_first_column(
    tmp_path: Path, cache: Path, name: str, content: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))
    ont = load_ontology(path)
    assert ont.kind == kind
    assert ont.terms["id"].tolist() in (["HP:0001250"], ["HGNC:11998"])
