"""`lexprobe data list|show|fetch` through Typer's test runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data"


def test_list_shows_each_builtin_with_its_release_and_size() -> None:
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    for expected in ("hgnc", "49,013", "hpo", "2025-01-16", "19,484", "go", "42,442", "pop_hpoa_diseases"):
        assert expected in result.output


def test_show_prints_the_most_popular_terms_first() -> None:
    result = runner.invoke(app, ["data", "show", "hpo", "--popular", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "HP:0000007" in result.output  # Autosomal recessive inheritance: the most annotated term
    assert "HP:0000001" not in result.output


def test_show_reads_a_user_file() -> None:
    result = runner.invoke(app, ["data", "show", str(DATA / "terms.csv")])
    assert result.exit_code == 0, result.output
    assert "MONDO:0005148" in result.output


def _assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "show", "mesh"], "unknown ontology 'mesh'"),
        (["data", "show", str(DATA / "malformed.obo")], "OBO syntax error at line 11"),
        (["data", "show", "/no/such/file.tsv"], "not found"),
        (["data", "show", str(DATA)], "is a directory"),
        (["data", "show", "go", "--annotations", "/no/such.gaf"], "annotations file not found: /no/such.gaf"),
        (["data", "show", "go", "--annotations", str(DATA / "phenotype_sample.hpoa")], "HPO terms only"),
        (["data", "show", "go", "--annotations", str(DATA / "terms.csv")], "not an annotation file"),
        (["data", "show", "hgnc", "--annotations", str(DATA / "goa_sample.gaf")], "already carries"),
        (["data", "show", str(DATA / "terms.csv"), "--annotations", str(DATA / "goa_sample.gaf")], "plain term table"),
        (["data", "show", "hgcn"], "unknown ontology 'hgcn' (did you mean 'hgnc'?); use one of go, hgnc, hpo"),
        (["data", "fetch", "go", "--url", "notaurl"], "give an http(s) URL"),
        (["data", "fetch", "go", "--timeout", "0"], "timeout must be > 0 seconds, got 0.0"),
        (["data", "fetch", "go", "--out", str(DATA / "terms.csv" / "sub")], "cannot create the download directory"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args: list[str], message: str) -> None:
    _assert_one_line_error(runner.invoke(app, args), message)


def test_fetch_takes_one_of_its_releases_and_lists_them() -> None:
    """NAME is a choice: --help lists the releases, and another name is a usage error (exit 2) that lists them."""
    result = runner.invoke(app, ["data", "fetch", "--help"], env={"COLUMNS": "200"})
    assert "NAME" in result.output and "<hgnc|hpo|go|go-annotations>" in result.output
    result = runner.invoke(app, ["data", "fetch", "mesh"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "'mesh' is not one of 'hgnc', 'hpo', 'go', 'go-annotations'" in result.output


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.tsv", b"", "file is empty"),
        ("dup.csv", b"id,name\nHP:0000001,a\nHP_0000001,b\n", "duplicate id HP:0000001"),
        ("cols.tsv", b"identifier\tname\nX:1\tfoo\n", "needs columns id and name; missing id"),
        (
            "latin1.obo",
            "format-version: 1.2\n\n[Term]\nid: X:1\nname: Sjögren\n".encode("latin-1"),
            "not UTF-8 text at line 5",
        ),
        ("dup.obo", b"[Term]\nid: X:1\nname: a\n\n[Term]\nid: X:1\nname: b\n", "duplicate id X:1 at line 6"),
        ("hp.owl", b"<rdf:RDF/>", "OWL and OBO-JSON are not supported"),
        ("hgnc.txt", b"hgnc_id\tname\nHGNC:5\tx\n", "HGNC table has no 'symbol'"),
    ],
)
def test_bad_files_are_one_line_and_nonzero(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    _assert_one_line_error(runner.invoke(app, ["data", "show", str(path)]), message)


def test_show_ranks_by_a_gaf_given_for_the_builtin_go() -> None:
    result = runner.invoke(
        app, ["data", "show", "go", "--annotations", str(DATA / "goa_sample.gaf"), "--popular", "--limit", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "GO:0005515" in result.output and "pop_go_annotations" in result.output


def test_show_hgnc_has_a_symbol_column() -> None:
    result = runner.invoke(app, ["data", "show", "hgnc", "--popular", "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert "symbol" in result.output and "pop_hpo_annotations" in result.output


def test_fetch_through_an_unreachable_mirror_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEXPROBE_FETCH_MIRROR", "http://127.0.0.1:9/mirror")
    result = runner.invoke(app, ["data", "fetch", "hpo", "--out", str(tmp_path), "--timeout", "5"])
    _assert_one_line_error(result, "cannot download http://127.0.0.1:9/mirror/hp.obo")
    assert list(tmp_path.iterdir()) == []


def test_fetch_without_a_network_fails_cleanly_and_leaves_no_file(tmp_path: Path) -> None:
    # port 9 on localhost: nothing listens, so the connection is refused at once, as offline
    result = runner.invoke(
        app,
        [
            "data",
            "fetch",
            "go",
            "--out",
            str(tmp_path),
            "--url",
            "http://127.0.0.1:9/go-basic.obo",
            "--timeout",
            "5",
        ],
    )
    assert result.exit_code == 1
    assert "cannot download http://127.0.0.1:9/go-basic.obo" in result.output
    assert list(tmp_path.iterdir()) == []


def test_fetch_downloads_atomically_with_provenance(tmp_path: Path) -> None:
    import http.server
    import json
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "toy.obo").write_text("format-version: 1.2\n\n[Term]\nid: TOY:0000001\nname: root\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = tmp_path / "downloads"
        url = f"http://127.0.0.1:{server.server_address[1]}/toy.obo"
        result = runner.invoke(app, ["data", "fetch", "go", "--out", str(out), "--url", url])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert (out / "toy.obo").read_text() == (served / "toy.obo").read_text()
    provenance = json.loads((out / "toy.obo.source.json").read_text())
    assert provenance["url"] == url and len(provenance["sha256"]) == 64 and provenance["last_modified"]
    shown = runner.invoke(app, ["data", "show", str(out / "toy.obo")])
    assert "TOY:0000001" in shown.output


def test_fetch_hpo_through_a_mirror_writes_both_release_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import http.server
    import json
    import shutil
    import threading

    served = tmp_path / "mirror"
    served.mkdir()
    shutil.copy(DATA / "hp_sample.obo", served / "hp.obo")
    shutil.copy(DATA / "phenotype_sample.hpoa", served / "phenotype.hpoa")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LEXPROBE_FETCH_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    try:
        result = runner.invoke(app, ["data", "fetch", "hpo", "--out", str(tmp_path / "hpo")])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    for name in ("hp.obo", "phenotype.hpoa"):
        assert (tmp_path / "hpo" / name).read_bytes() == (served / name).read_bytes()
        meta = json.loads((tmp_path / "hpo" / f"{name}.source.json").read_text())
        assert meta["url"].endswith(f"/{name}") and meta["bytes"] == (served / name).stat().st_size
    # the two files load together: the hpoa beside the obo gives the default popularity
    shown = runner.invoke(app, ["data", "show", str(tmp_path / "hpo" / "hp.obo"), "--popular", "--limit", "1"])
    assert shown.exit_code == 0 and "HP:0001250" in shown.output, shown.output


def test_a_limit_below_one_is_a_usage_error() -> None:
    result = runner.invoke(app, ["data", "show", "hpo", "--limit", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "must be at least 1 (or all), got 0" in result.output


def test_show_piped_keeps_every_name_on_one_line() -> None:
    """Piped output is not folded to 80 columns: a gene name stays whole on its row."""
    result = runner.invoke(app, ["data", "show", "hgnc", "-n", "3"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "HGNC:24086" in line]
    assert len(rows) == 1 and "APOBEC1 complementation factor" in rows[0] and "gene with protein product" in rows[0]


def test_show_json_is_the_terms_as_records() -> None:
    import json

    result = runner.invoke(app, ["data", "show", "hgnc", "-n", "2", "--json"])
    assert result.exit_code == 0
    record = json.loads(result.stdout)
    assert record["ontology"] == "hgnc" and [t["symbol"] for t in record["terms"]] == ["A1BG", "A1BG-AS1"]
