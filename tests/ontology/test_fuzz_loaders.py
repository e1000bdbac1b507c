"""Property-based fuzz of the ontology loaders through ``load_ontology(path)``.

Whatever the bytes of a file (OBO, HGNC TSV, a generic TSV/CSV, each also gzip-compressed or a truncated
gzip), loading it either raises one of lexprobe's own errors or gives a valid term table. Inputs are random
garbage and near-valid files: the test fixtures with mutations (dropped columns, duplicate ids, non-UTF-8 and
NUL bytes, byte-order marks, mixed line endings, huge fields, truncation, bad tag lines...).

Sized for CI: a fixed example sequence (derandomize, no example database), well under a minute on 2 cores.
``LEXPROBE_FUZZ_EXAMPLES=<n>`` runs a longer random search instead.
"""

from __future__ import annotations

import codecs
import gzip
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexprobe.exceptions import DataFormatError, LexprobeError, LexprobeWarning
from lexprobe.ontology import LIST_COLUMNS, TERM_COLUMNS, Ontology, load_ontology

DATA = Path(__file__).resolve().parents[1] / "data"

#: a longer, random (not derandomized) search: LEXPROBE_FUZZ_EXAMPLES=5000 pytest tests/ontology/test_fuzz_loaders.py
_EXPLORE = int(os.environ.get("LEXPROBE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXPLORE or 100,
    deadline=None,
    derandomize=not _EXPLORE,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # fuzz_dir is shared; each example writes its own subfolder
    ],
)

_GENERIC_TSV = (
    b"id\tname\tsymbol\tsynonyms\talt_ids\tcategory\tpop_mentions\n"
    b"HP_0001250\tSeizure\tSZ\tfits|convulsions\tHP:0001251\tneuro\t12\n"
    b"gene_1\tfirst gene\tG1\t\t\t\t3\n"
    b"http://purl.obolibrary.org/obo/UBERON_0000948\theart\t\tcardium; cor\t\torgan\t7.5\n"
)
#: name -> (file name, bytes) of a valid file of each kind
BASES: dict[str, tuple[str, bytes]] = {
    "obo": ("hp.obo", (DATA / "hp_sample.obo").read_bytes()),
    "go_obo": ("go.obo", (DATA / "go_sample.obo").read_bytes()),
    "hgnc": ("hgnc_complete_set.txt", (DATA / "hgnc_complete_set_sample.txt").read_bytes()),
    "hgnc_custom": ("hgnc_custom.tsv", (DATA / "hgnc_custom_sample.tsv").read_bytes()),
    "csv": ("terms.csv", (DATA / "terms.csv").read_bytes()),
    "tsv": ("terms.tsv", _GENERIC_TSV),
}

_BAD_LINES = [
    b"[Term",
    b"[Term]",
    b"[Typedef]",
    b"[Instance]",
    b"[Foo]",
    b"id:",
    b"id: HP:0000001",
    b"id: gene_1",
    b"name:",
    b"is_a:",
    b"is_a: HP:9999999",
    b"is_a: HP:0000001 {",
    b'synonym: "unterminated',
    b'synonym: "x" NOTASCOPE []',
    b"xref: ",
    b"relationship: part_of",
    b"relationship: part_of HP:0000005",
    b"is_obsolete: maybe",
    b"replaced_by: not an id",
    b'def: "text" [broken',
    b"format-version: 9.9",
    b"ontology:",
    b"data-version:",
    b"no colon at all",
    b":",
    b"!",
    b"\\",
    b'"',
    b'"""',
    b",,,,",
    b"\t\t\t\t",
    b"id,name",
    b"hgnc_id\tsymbol\tname",
    b"HGNC:5\tA1BG\tdup",
    b"HGNC:abc\tX\tnot a number",
    b"\tno id\tstill a name",
    b"x\ty\tz\tw\tv\tu\tt\ts\tr\tq\tp\to\tn\tm",
    b"pop_x",
    b"\xff\xfe\x00",
    b"\xe9t\xe9",
    b"\x00\x00\x00",
    "\u2028sep\u2029".encode(),
    "\U0001f600 emoji".encode(),
]


_TAGS = [
    b"id",
    b"name",
    b"alt_id",
    b"is_a",
    b"synonym",
    b"replaced_by",
    b"is_obsolete",
    b"namespace",
    b"relationship",
    b"def",
    b"xref",
    b"subset",
    b"consider",
    b"intersection_of",
    b"ontology",
    b"data-version",
    b"remark",
    b"synonymtypedef",
]
#: cell or tag values that have broken parsers before: odd ids, numbers, quotes, separators
_CELLS = [
    "",
    " ",
    "HP:0000001",
    "HP_0000005",
    "hp:1",
    "HGNC:5",
    "HGNC:",
    "HGNC:x",
    "5",
    "gene_1",
    "http://purl.obolibrary.org/obo/GO_0008150",
    "http://example.org/x_1",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "1e400",
    "-1",
    "0x10",
    " 3 ",
    "1,000",
    "true",
    "Withdrawn",
    "symbol withdrawn, see HGNC:5",
    "Entry Withdrawn",
    "a|b|c",
    "|||",
    ";;",
    '"quoted"',
    '"',
    '"HP:0000001" EXACT []',
    "\u00e9\u00e8",
    "\u00b2",
    "\u0662",
    "{",
    "[",
    "]",
    "!",
]


def _lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\n")


@st.composite
def mutation(draw: st.DrawFn, raw: bytes) -> bytes:
    """One change to ``raw`` of the kinds that break real files."""
    lines = _lines(raw)
    kind = draw(
        st.sampled_from(
            [
                "drop_column",
                "duplicate_line",
                "delete_line",
                "insert_line",
                "non_utf8",
                "nul",
                "bom",
                "mixed_endings",
                "huge_field",
                "truncate",
                "header_only",
                "empty",
                "swap_separator",
                "flip_byte",
                "random_text_line",
                "blank_lines",
                "tag_line",
                "replace_cell",
                "duplicate_block",
            ]
        )
    )
    at = draw(st.integers(min_value=0, max_value=max(len(lines) - 1, 0)))
    if kind == "drop_column":
        sep = b"\t" if b"\t" in raw else b","
        col = draw(st.integers(min_value=0, max_value=12))
        return b"\n".join(sep.join(c for i, c in enumerate(line.split(sep)) if i != col) for line in lines)
    if kind == "duplicate_line":
        return b"\n".join(lines[: at + 1] + [lines[at]] + lines[at + 1 :])
    if kind == "delete_line":
        return b"\n".join(lines[:at] + lines[at + 1 :])
    if kind == "insert_line":
        return b"\n".join(lines[:at] + [draw(st.sampled_from(_BAD_LINES))] + lines[at:])
    if kind == "random_text_line":
        text = draw(st.text(max_size=40)).encode("utf-8", errors="surrogatepass")
        return b"\n".join(lines[:at] + [text] + lines[at:])
    if kind == "non_utf8":
        junk = draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3", b"\x80\x81", b"\xed\xa0\x80", b"\xf8\x88\x80"]))
        pos = draw(st.integers(min_value=0, max_value=len(raw)))
        return raw[:pos] + junk + raw[pos:]
    if kind == "nul":
        pos = draw(st.integers(min_value=0, max_value=len(raw)))
        return raw[:pos] + b"\x00" * draw(st.integers(min_value=1, max_value=3)) + raw[pos:]
    if kind == "bom":
        bom = draw(st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF8 * 2]))
        return bom + raw
    if kind == "mixed_endings":
        ending = [b"\r\n", b"\r", b"\n"]
        return b"".join(line + ending[draw(st.integers(0, 2))] for line in lines)
    if kind == "huge_field":
        size = draw(st.sampled_from([1_000, 70_000, 300_000]))
        filler = draw(st.sampled_from([b"x", b"\t", b",", b'"', b"a b "]))
        return b"\n".join(lines[:at] + [lines[at] + filler * size] + lines[at + 1 :])
    if kind == "truncate":
        return raw[: draw(st.integers(min_value=0, max_value=len(raw)))]
    if kind == "header_only":
        return lines[0] + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"  \n\t\n", codecs.BOM_UTF8]))
    if kind == "swap_separator":
        a, b = draw(st.sampled_from([(b"\t", b","), (b",", b"\t"), (b"\t", b";"), (b": ", b"\t")]))
        return raw.replace(a, b)
    if kind == "flip_byte":
        if not raw:
            return raw
        pos = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        return raw[:pos] + bytes([draw(st.integers(0, 255))]) + raw[pos + 1 :]
    if kind == "tag_line":
        tag = draw(st.sampled_from(_TAGS))
        value = draw(st.one_of(st.sampled_from(_CELLS), st.text(max_size=30))).encode("utf-8", errors="surrogatepass")
        return b"\n".join(lines[:at] + [tag + b": " + value] + lines[at:])
    if kind == "replace_cell":
        sep = b"\t" if b"\t" in raw else b","
        cells = lines[at].split(sep)
        col = draw(st.integers(min_value=0, max_value=max(len(cells) - 1, 0)))
        value = draw(st.one_of(st.sampled_from(_CELLS), st.text(max_size=30))).encode("utf-8", errors="surrogatepass")
        cells[col] = value
        return b"\n".join(lines[:at] + [sep.join(cells)] + lines[at + 1 :])
    if kind == "duplicate_block":
        end = draw(st.integers(min_value=at, max_value=min(at + 12, len(lines))))
        return b"\n".join(lines[:end] + lines[at:end] + lines[end:])
    # blank_lines
    return b"\n".join(lines[:at] + [b""] * draw(st.integers(1, 3)) + lines[at:])


@st.composite
def loader_input(draw: st.DrawFn, sources: tuple[str, ...]) -> tuple[str, bytes]:
    """A file name and its bytes: a mutated fixture or garbage, maybe gzip-compressed or a cut-off gzip."""
    source = draw(st.sampled_from(sources))
    if source == "garbage":
        name = draw(st.sampled_from(["x.obo", "x.tsv", "x.csv", "x.txt"]))
        raw = draw(st.binary(max_size=300))
    elif source == "garbage_text":
        name = draw(st.sampled_from(["x.obo", "x.tsv", "x.csv", "x.txt"]))
        prefix = draw(st.sampled_from([b"", b"format-version: 1.2\n", b"id\tname\n", b"id,name\n", b"hgnc_id\t"]))
        raw = prefix + draw(st.text(max_size=200)).encode("utf-8", errors="surrogatepass")
    else:
        name, raw = BASES[source]
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            raw = draw(mutation(raw))
    compression = draw(st.sampled_from(["none", "none", "none", "none", "gzip", "truncated_gzip"]))
    if compression != "none":
        packed = gzip.compress(raw, mtime=0)
        if compression == "truncated_gzip":
            packed = packed[: draw(st.integers(min_value=2, max_value=max(len(packed) - 1, 2)))]
        raw = packed
        name += draw(st.sampled_from([".gz", ""]))
    return name, raw


def check_table(ontology: Ontology) -> None:
    """What every loaded ontology promises: the convention columns, unique non-empty string ids, text labels."""
    terms = ontology.terms
    assert list(terms.columns[: len(TERM_COLUMNS)]) == list(TERM_COLUMNS)
    assert len(terms) > 0
    ids = terms["id"].tolist()
    assert all(isinstance(i, str) and i.strip() for i in ids), ids[:5]
    assert len(set(ids)) == len(ids)
    assert all(label is None or isinstance(label, str) for label in terms["label"].tolist())
    for column in LIST_COLUMNS:
        assert all(isinstance(v, tuple) and all(isinstance(x, str) for x in v) for v in terms[column].tolist())
    for column in ontology.popularity_columns:
        assert terms[column].dtype == float
    assert ontology.default_popularity is None or ontology.default_popularity in ontology.popularity_columns


def load_or_own_error(path: Path, *, use_cache: bool) -> Ontology | None:
    """Load ``path``; return ``None`` when lexprobe refused it with its own one-line error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LexprobeWarning)
            return load_ontology(path, use_cache=use_cache)
    except LexprobeError as exc:
        message = str(exc)
        # one short line that names the file, whatever the file holds (a 300 kB line is not echoed)
        assert message.strip() and "\n" not in message.strip(), message[:500]
        assert str(path) in message, message[:500]
        assert len(message) < 1000, message[:500]
        return None


@pytest.fixture()
def fuzz_dir(monkeypatch: pytest.MonkeyPatch):
    with tempfile.TemporaryDirectory(prefix="lexprobe-fuzz-") as tmp:
        monkeypatch.setenv("LEXPROBE_CACHE", os.path.join(tmp, "cache"))
        yield Path(tmp)


#: each kind of input is fuzzed on its own, so each gets its share of examples
SOURCES = {
    "obo": ("obo", "go_obo"),
    "hgnc": ("hgnc", "hgnc_custom"),
    "table": ("csv", "tsv"),
    "garbage": ("garbage", "garbage_text"),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
@FUZZ
@given(data=st.data(), use_cache=st.booleans())
def test_loaders_give_a_valid_table_or_their_own_error(
    fuzz_dir: Path, kind: str, data: st.DataObject, use_cache: bool
) -> None:
    name, raw = data.draw(loader_input(SOURCES[kind]), label="file")
    with tempfile.TemporaryDirectory(dir=fuzz_dir) as tmp:
        path = Path(tmp) / name
        path.write_bytes(raw)
        ontology = load_or_own_error(path, use_cache=use_cache)
        if ontology is not None:
            check_table(ontology)
            if use_cache:  # a second load comes from the cache and is the same table
                again = load_or_own_error(path, use_cache=True)
                assert again is not None
                assert again.terms.equals(ontology.terms)


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_unmutated_fixtures_load(base: str, compression: str, fuzz_dir: Path) -> None:
    name, raw = BASES[base]
    if compression == "gzip":
        name, raw = name + ".gz", gzip.compress(raw, mtime=0)
    path = fuzz_dir / name
    path.write_bytes(raw)
    check_table(load_ontology(path, use_cache=False))


# what the fuzz found, kept as plain examples: each used to crash, hang on, or silently misread the file
_HUGE = "x" * 300_000


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("hgnc.txt", b"hgnc_id\tsymbol\tname\tstatus\n", "HGNC table has a header but no genes"),
        (
            "hgnc.txt",
            b"hgnc_id\tsymbol\tname\nHGNC:5\tA1BG\ta\nHGNC:abc\tX\tb\n",
            r"data row 2: 'HGNC:abc' is not an HGNC id",
        ),
        ("terms.csv", b"id,name,pop_x\n", "the table has a header but no terms"),
        ("terms.csv", b"id,name\nX:1,a,extra\n", "line 2 has 3 fields but the header has 2"),
        ("terms.tsv", b"id\tname\nX:1\ta\nX:2\tb\tc\t\n", "Expected 2 fields in line 3, saw 4"),
        ("terms.csv", b"id,name\nX:1,a\x00b\n", "NUL byte at line 2"),
        ("terms.csv", b"id,name\nX:1,caf\xe9\n", r"not UTF-8 text at line 2 \(byte 0xe9\)"),
        (
            "terms.csv",
            b"id,name,pop_x\nX:1,a,inf\n",
            r"popularity column 'pop_x' has infinite values \(first: data row 1",
        ),
        ("terms.csv", b"id,name,pop_x\nX:1,a,3\nX:2,b,many\n", r"has non-numeric values \(first: data row 2, 'many'\)"),
        (
            "big.obo",
            f"format-version: 1.2\n\n[Term]\nid: X:1\nname: a\nis_a: X:1{_HUGE}\n".encode(),
            r"OBO syntax error at line 6|is_a parent X:1x+\.\.\. \(300,003 characters\)",
        ),
    ],
)
def test_what_the_fuzz_found_fails_with_one_clear_line(fuzz_dir: Path, name: str, content: bytes, match: str) -> None:
    path = fuzz_dir / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=match) as caught:
        load_ontology(path, use_cache=False)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 600


def test_whole_line_comments_in_an_obo_do_not_crash_the_parser(fuzz_dir: Path) -> None:
    # fastobo panicked (a BaseException, past every except Exception) on a line holding only "!"
    text = (DATA / "go_sample.obo").read_text().replace("name: binding\n", "name: binding\n! a comment\n!\n")
    path = fuzz_dir / "go.obo"
    path.write_text("! leading comment\n" + text)
    assert len(load_ontology(path, use_cache=False)) == 8
