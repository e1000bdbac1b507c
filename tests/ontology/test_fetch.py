"""``fetch_ontology`` against a local HTTP server: the file, its provenance, and each failure as one error."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lexprobe.exceptions import DataFormatError, NetworkError, OntologyError
from lexprobe.ontology import fetch_ontology

TOY = b"format-version: 1.2\n\n[Term]\nid: TOY:0000001\nname: root\n"


@pytest.fixture()
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server on 127.0.0.1 for the files of a folder, plus /slow.obo (answers after 3 s) and /moved.obo."""
    served = tmp_path_factory.mktemp("served")
    (served / "toy.obo").write_bytes(TOY)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self) -> None:
            if self.path == "/slow.obo":
                time.sleep(3)  # the client has given up by now
                return
            if self.path == "/moved.obo":
                self.send_response(302)
                self.send_header("Location", "/toy.obo")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_download_is_written_with_its_provenance_and_a_new_release_replaces_it(server, tmp_path: Path) -> None:
    base, served = server
    out = tmp_path / "out"
    sha = hashlib.sha256(TOY).hexdigest()
    (path,) = fetch_ontology("go", out, urls=(f"{base}/toy.obo",), checksums={"toy.obo": f"sha256:{sha}"})
    assert path == out / "toy.obo" and path.read_bytes() == TOY
    meta = json.loads((out / "toy.obo.source.json").read_text())
    assert meta["url"] == f"{base}/toy.obo" and meta["sha256"] == sha and meta["bytes"] == len(TOY)
    assert meta["last_modified"]  # the server's date of the release
    (served / "toy.obo").write_bytes(TOY + b"\n[Term]\nid: TOY:0000002\nname: leaf\n")
    fetch_ontology("go", out, urls=(f"{base}/toy.obo",))  # no cache: fetching again gets the new release
    assert b"TOY:0000002" in path.read_bytes()
    assert _files(out) == ["toy.obo", "toy.obo.source.json"]  # no temporary file left


def test_a_redirect_is_followed_and_the_files_own_headers_are_kept(server, tmp_path: Path) -> None:
    base, _ = server
    (path,) = fetch_ontology("go", tmp_path, urls=(f"{base}/moved.obo",))
    assert path.name == "moved.obo" and path.read_bytes() == TOY
    assert json.loads((tmp_path / "moved.obo.source.json").read_text())["last_modified"]


def test_an_http_error_is_one_network_error_and_keeps_the_old_file(server, tmp_path: Path) -> None:
    base, _ = server
    (tmp_path / "gone.obo").write_bytes(b"the release downloaded last time")
    with pytest.raises(NetworkError, match=r"^cannot download .*/gone\.obo \(HTTP 404 File not found\); check"):
        fetch_ontology("go", tmp_path, urls=(f"{base}/gone.obo",))
    assert (tmp_path / "gone.obo").read_bytes() == b"the release downloaded last time"
    assert _files(tmp_path) == ["gone.obo"]


def test_a_wrong_checksum_writes_nothing(server, tmp_path: Path) -> None:
    base, _ = server
    (tmp_path / "toy.obo").write_bytes(b"old")
    with pytest.raises(DataFormatError, match="does not match its checksum: expected sha256:00ff, got sha256:"):
        fetch_ontology("go", tmp_path, urls=(f"{base}/toy.obo",), checksums={"toy.obo": "sha256:00ff"})
    assert (tmp_path / "toy.obo").read_bytes() == b"old" and _files(tmp_path) == ["toy.obo"]
    # another algorithm, pooch's ALG:HEX form
    md5 = hashlib.md5(TOY).hexdigest()
    fetch_ontology("go", tmp_path, urls=(f"{base}/toy.obo",), checksums={"toy.obo": f"md5:{md5}"})
    assert (tmp_path / "toy.obo").read_bytes() == TOY


def test_a_silent_server_times_out_within_the_timeout(server, tmp_path: Path) -> None:
    base, _ = server
    start = time.monotonic()
    with pytest.raises(NetworkError, match=r"slow\.obo \(no answer within 0\.5 s\)"):
        fetch_ontology("go", tmp_path, urls=(f"{base}/slow.obo",), timeout=0.5)
    assert time.monotonic() - start < 2.5
    assert _files(tmp_path) == []


def test_no_network_is_one_network_error() -> None:
    # port 9 on localhost: nothing listens, so the connection is refused at once, as offline
    with pytest.raises(NetworkError, match=r"^cannot download http://127\.0\.0\.1:9/x\.obo \(Connection refused\)"):
        fetch_ontology("go", "/nonexistent-never-created", urls=("http://127.0.0.1:9/x.obo",), timeout=5)


@pytest.mark.parametrize(
    ("checksums", "message"),
    [
        ({"other.obo": "00"}, r"checksums given for \['other.obo'\], which are not downloaded"),
        ({"x.obo": "sha256:not-hex"}, "give a hex digest"),
        ({"x.obo": "crc99:00"}, "give a hex digest"),
    ],
)
def test_bad_checksums_are_refused_before_any_download(tmp_path: Path, checksums: dict, message: str) -> None:
    with pytest.raises(OntologyError, match=message):
        fetch_ontology("go", tmp_path / "out", urls=("http://127.0.0.1:9/x.obo",), checksums=checksums)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", ["notaurl", "file:///etc/hostname", "ftp://example.org/go.obo"])
def test_only_http_urls_are_downloaded(tmp_path: Path, url: str) -> None:
    with pytest.raises(OntologyError, match="give an http"):
        fetch_ontology("go", tmp_path, urls=(url,))
    assert _files(tmp_path) == []


def test_an_unknown_release_names_the_known_ones_and_the_closest(tmp_path: Path) -> None:
    with pytest.raises(OntologyError, match="cannot fetch 'mesh'; choose one of hgnc, hpo, go, go-annotations"):
        fetch_ontology("mesh", tmp_path)
    with pytest.raises(OntologyError, match=r"cannot fetch 'go-annotation' \(did you mean 'go-annotations'\?\);"):
        fetch_ontology("go-annotation", tmp_path)
    assert not any(tmp_path.iterdir())
