"""``fetch_ontology``: download the official upstream release files, atomically, with provenance."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pooch
import requests

from lexprobe.exceptions import DataFormatError, NetworkError, OntologyError, did_you_mean
from lexprobe.runs import atomic_path, atomic_write_json

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


def _reason(exc: requests.RequestException, timeout: float) -> str:
    """Why a download failed, in a few words (requests' own messages nest three exceptions deep)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}".strip()
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))  # "Connection refused", "Name ... not known"
    return errno.group(1).strip() if errno else type(exc).__name__


def _download(url: str, dest: Path, timeout: float, checksum: str | None) -> dict[str, Any]:
    """Stream ``url`` into ``dest`` atomically (pooch's HTTP downloader), check ``checksum``; the headers kept."""
    headers: dict[str, Any] = {}

    def keep_headers(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # called for each response of a redirect chain; the last (the file's) wins
        headers.update(last_modified=response.headers.get("Last-Modified"), etag=response.headers.get("ETag"))

    download = pooch.HTTPDownloader(progressbar=False, timeout=timeout, hooks={"response": keep_headers})
    try:
        with atomic_path(dest) as tmp:
            download(url, str(tmp), None)
            if checksum is not None:
                algorithm, _, expected = checksum.rpartition(":")
                got = pooch.file_hash(str(tmp), alg=algorithm or "sha256")
                if got.lower() != expected.lower():
                    raise DataFormatError(
                        f"{url} does not match its checksum: expected {checksum}, got {algorithm or 'sha256'}:{got}; "
                        f"the download is corrupt or the release changed (nothing written to {dest})"
                    )
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL):
        raise OntologyError(f"cannot download {url!r}: not an http(s) URL; give an http(s) URL") from None
    except requests.RequestException as exc:
        raise NetworkError(
            f"cannot download {url} ({_reason(exc, timeout)}); check the network, or download it by hand and pass "
            f"the file path to --ontology"
        ) from None
    except OSError as exc:  # the download arrived but could not be written
        raise OntologyError(f"cannot write {dest} ({exc.strerror or exc}); pass another --to") from None
    return headers


def fetch_ontology(
    name: str,
    to: str | os.PathLike[str],
    *,
    urls: tuple[str, ...] | None = None,
    timeout: float = 30.0,
    checksums: Mapping[str, str] | None = None,
) -> list[Path]:
    """Download the official release files of ``name`` into ``to``.

    Each file is streamed (pooch's HTTP downloader, on requests) to a temporary file and renamed when complete
    and, if a checksum is given, only when it matches; a ``<file>.source.json`` beside it records the URL, the
    server's Last-Modified and ETag, the download time and the SHA-256. A file already there is replaced by
    the newest release (no caching: fetching is how one updates).

    Parameters
    ----------
    name : {"hgnc", "hpo", "go", "go-annotations"}
    to : path
        Target directory (created).
    urls : tuple of str, optional
        Override the upstream URLs. Without it, ``$LEXPROBE_FETCH_MIRROR`` (a base URL) replaces the host of
        each upstream file, for sites that keep their own mirror.
    timeout : float
        Seconds to wait for a server (to connect, and between bytes).
    checksums : mapping of str to str, optional
        Expected checksum by file name (``{"hp.obo": "sha256:9f86..."}``; pooch's ``alg:hex`` form, SHA-256
        when no algorithm is named), e.g. the ``sha256`` of an earlier ``.source.json`` to insist on that
        release. Upstream releases change, so none is known by default.

    Raises
    ------
    OntologyError
        Unknown name, a checksum for a file that is not downloaded, or the target directory cannot be created.
    NetworkError
        The server could not be reached (no network, DNS failure, timeout, HTTP error).
    DataFormatError
        A download does not match its checksum (nothing is written).

    Examples
    --------
    >>> fetch_ontology("hgcn", "downloads")  # checked before anything is downloaded
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.OntologyError: cannot fetch 'hgcn' (did you mean 'hgnc'?); choose one of hgnc, hpo, go, ...
    >>> paths = fetch_ontology("hpo", "downloads")  # doctest: +SKIP
    """
    if name not in UPSTREAM_URLS:
        raise OntologyError(
            f"cannot fetch {name!r}{did_you_mean(name, UPSTREAM_URLS)}; choose one of {', '.join(UPSTREAM_URLS)}"
        )
    if timeout <= 0:
        raise OntologyError(f"timeout must be > 0 seconds, got {timeout}")
    sources = {url.rstrip("/").rsplit("/", 1)[-1]: url for url in urls or _upstream_urls(name)}
    checksums = _checked_checksums(checksums, sources)
    target = Path(to).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OntologyError(
            f"cannot create the download directory {target} ({exc.strerror}); pass another --to"
        ) from None
    written = []
    for file_name, url in sources.items():
        dest = target / file_name
        headers = _download(url, dest, timeout, checksums.get(file_name))
        _write_source_record(dest, url, headers)
        written.append(dest)
    return written


def _checked_checksums(checksums: Mapping[str, str] | None, sources: Mapping[str, str]) -> dict[str, str]:
    """The expected checksums by file name, each for a file that is downloaded and in ``ALGORITHM:HEX`` form."""
    checksums = dict(checksums or {})
    unknown = sorted(set(checksums) - set(sources))
    if unknown:
        raise OntologyError(f"checksums given for {unknown}, which are not downloaded; the files are {list(sources)}")
    for file_name, checksum in checksums.items():
        algorithm, _, digest = str(checksum).rpartition(":")
        if (algorithm or "sha256") not in hashlib.algorithms_guaranteed or not re.fullmatch(r"[0-9a-fA-F]+", digest):
            raise OntologyError(
                f"checksum of {file_name} is {checksum!r}; give a hex digest, optionally as ALGORITHM:HEX (sha256:...)"
            )
    return checksums


def _write_source_record(dest: Path, url: str, headers: Mapping[str, Any]) -> None:
    """``<file>.source.json`` beside a download: its URL, the server's headers, when, its SHA-256 and size."""
    atomic_write_json(
        dest.with_name(dest.name + ".source.json"),
        {
            "url": url,
            **headers,
            "downloaded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "sha256": pooch.file_hash(str(dest)),
            "bytes": dest.stat().st_size,
        },
    )
