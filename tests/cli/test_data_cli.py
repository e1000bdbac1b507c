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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "show", "mesh"], "unknown ontology 'mesh'"),
        (["data", "show", str(DATA / "malformed.obo")], "OBO syntax error at line 11"),
        (["data", "show", "/no/such/file.tsv"], "not found"),
        (["data", "fetch", "mesh"], "cannot fetch 'mesh'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_fetch_without_a_network_fails_cleanly_and_leaves_no_file(tmp_path: Path) -> None:
    # port 9 on localhost: nothing listens, so the connection is refused at once, as offline
    result = runner.invoke(
        app,
        [
            "data",
            "fetch",
            "go",
            "--to",
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
        result = runner.invoke(app, ["data", "fetch", "go", "--to", str(out), "--url", url])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert (out / "toy.obo").read_text() == (served / "toy.obo").read_text()
    provenance = json.loads((out / "toy.obo.source.json").read_text())
    assert provenance["url"] == url and len(provenance["sha256"]) == 64 and provenance["last_modified"]
    shown = runner.invoke(app, ["data", "show", str(out / "toy.obo")])
    assert "TOY:0000001" in shown.output
