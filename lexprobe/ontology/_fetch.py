"""``fetch_ontology``: download the official upstream release files, atomically, with provenance."""

from __future__ import annotations

import datetime as _dt
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from lexprobe.exceptions import NetworkError, OntologyError
from lexprobe.runs import atomic_path, atomic_write_json, sha256_file

__all__ = ["UPSTREAM_URLS", "MIRROR_ENV", "fetch_ontology"]

#: Official release files per source (see data/README.md).
UPSTREAM_URLS: dict[str, tuple[str, ...]] = {
    "hgnc": ("https://storage.googleapis.com/public-download-files/hgnc/tsv/tsv/hgnc_complete_set.txt",),
    "hpo": (
        "http://purl.obolibrary.org/obo/hp.obo",
        "https://github.com/obophenotype/human-phenotype-ontology/releases/latest/download/phenotype.hpoa",
    ),
    "go": ("http://purl.obolibrary.org/obo/go/go-basic.obo",),
    "go-annotations": ("https://current.geneontology.org/annotations/goa_human.gaf.gz",),
}


#: Environment variable naming a mirror: ``$LEXPROBE_FETCH_MIRROR/<file name>`` replaces each upstream URL.
MIRROR_ENV = "LEXPROBE_FETCH_MIRROR"


def _upstream_urls(name: str) -> tuple[str, ...]:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return UPSTREAM_URLS[name]
    return tuple(f"{mirror.rstrip('/')}/{url.rstrip('/').rsplit('/', 1)[-1]}" for url in UPSTREAM_URLS[name])


def fetch_ontology(
    name: str,
    to: str | os.PathLike[str],
    *,
    urls: tuple[str, ...] | None = None,
    timeout: float = 30.0,
) -> list[Path]:
    """Download the official release files of ``name`` into ``to``.

    Each file is written to a temporary file and renamed when complete; a ``<file>.source.json`` beside it
    records the URL, the server's Last-Modified, the download time and the SHA-256.

    Parameters
    ----------
    name : {"hgnc", "hpo", "go", "go-annotations"}
    to : path
        Target directory (created).
    urls : tuple of str, optional
        Override the upstream URLs. Without it, ``$LEXPROBE_FETCH_MIRROR`` (a base URL) replaces the host of
        each upstream file, for sites that keep their own mirror.
    timeout : float
        Seconds to wait for a server.

    Raises
    ------
    OntologyError
        Unknown name, or the target directory cannot be created.
    NetworkError
        The server could not be reached (no network, DNS failure, HTTP error).
    """
    if name not in UPSTREAM_URLS:
        raise OntologyError(f"cannot fetch {name!r}; choose one of {', '.join(UPSTREAM_URLS)}")
    if timeout <= 0:
        raise OntologyError(f"timeout must be > 0 seconds, got {timeout}")
    target = Path(to).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OntologyError(
            f"cannot create the download directory {target} ({exc.strerror}); pass another --to"
        ) from None
    written = []
    for url in urls or _upstream_urls(name):
        dest = target / url.rstrip("/").rsplit("/", 1)[-1]
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
                with open(tmp, "wb") as fh:
                    shutil.copyfileobj(response, fh)
                headers = {"last_modified": response.headers.get("Last-Modified"), "etag": response.headers.get("ETag")}
        except ValueError as exc:  # urllib: "unknown url type"
            raise OntologyError(f"cannot download {url!r}: {exc}; give an http(s) URL") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise NetworkError(
                f"cannot download {url} ({reason}); check the network, or download it by hand and pass "
                f"the file path to --ontology"
            ) from None
        except OSError as exc:  # the download arrived but could not be written
            raise OntologyError(f"cannot write {dest} ({exc.strerror or exc}); pass another --to") from None
        atomic_write_json(
            dest.with_name(dest.name + ".source.json"),
            {
                "url": url,
                **headers,
                "downloaded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "sha256": sha256_file(dest),
                "bytes": dest.stat().st_size,
            },
        )
        written.append(dest)
    return written
