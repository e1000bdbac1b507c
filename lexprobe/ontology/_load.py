"""``load_ontology``: a built-in name or a user file in, an :class:`Ontology` out (cached)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from lexprobe.exceptions import LexprobeWarning, OntologyError, did_you_mean
from lexprobe.ontology._generic import read_snapshot, table_from_generic
from lexprobe.ontology._hgnc import is_hgnc_header, load_hgnc_table
from lexprobe.ontology._io import first_line, head_text, read_table
from lexprobe.ontology._obo import load_obo_table, obo_ontology_name
from lexprobe.ontology._popularity import add_annotation_popularity
from lexprobe.ontology._table import Ontology
from lexprobe.runs import atomic_path, cache_dir, config_key, sha256_file

__all__ = ["load_ontology", "builtin_ontologies", "BuiltinInfo", "data_dir", "earlier_checksums", "LOADER_VERSION"]

logger = logging.getLogger(__name__)

#: Bump when a loader's output changes, so cached parses of user files are rebuilt.
LOADER_VERSION = 7

_BESIDE = {
    "hgnc": ("genes_to_phenotype.txt", "genes_to_phenotype.txt.gz"),
    "hpo": ("phenotype.hpoa", "phenotype.hpoa.gz"),
}


@dataclasses.dataclass(frozen=True)
class BuiltinInfo:
    """Provenance of a built-in ontology snapshot (from ``data/snapshots.json``).

    Examples
    --------
    >>> info = builtin_ontologies()["hgnc"]
    >>> info.file, info.release, info.default_popularity
    ('hgnc.terms.tsv.gz', '2024-07', 'pop_hpo_annotations')
    """

    name: str
    file: str
    description: str
    release: str
    licence: str
    n_terms: int
    popularity_columns: tuple[str, ...]
    default_popularity: str
    kind: str
    sources: tuple[dict, ...]
    sha256: str = ""
    #: Checksums of earlier snapshots with the same terms and values in every column they had (this one only
    #: adds columns): results recorded against them read identical data.
    earlier_sha256: tuple[str, ...] = ()


def data_dir() -> Path:
    """The directory of the bundled snapshots (``data/`` of the project, ``lexprobe/data`` when installed).

    Examples
    --------
    >>> (data_dir() / "snapshots.json").is_file()
    True
    """
    return Path(str(resources.files("lexprobe.data")))


def builtin_ontologies() -> dict[str, BuiltinInfo]:
    """The built-in ontologies and their provenance.

    Examples
    --------
    >>> sorted(builtin_ontologies())
    ['go', 'hgnc', 'hpo']
    >>> builtin_ontologies()["hpo"].n_terms
    19484
    """
    meta = json.loads((data_dir() / "snapshots.json").read_text(encoding="utf-8"))
    return {
        name: BuiltinInfo(
            name=name,
            file=entry["file"],
            description=entry["description"],
            release=entry["release"],
            licence=entry["licence"],
            n_terms=entry["n_terms"],
            popularity_columns=tuple(entry["popularity_columns"]),
            default_popularity=entry["default_popularity"],
            kind=entry["kind"],
            sources=tuple(entry["sources"]),
            sha256=entry.get("sha256", ""),
            earlier_sha256=tuple(entry.get("earlier_sha256", ())),
        )
        for name, entry in meta["ontologies"].items()
    }


def earlier_checksums(checksum: str) -> tuple[str, ...]:
    """Checksums of earlier bundled snapshots that hold the same data as the snapshot with ``checksum``.

    A snapshot that only adds columns keeps its terms and every value the earlier one had, so a run recorded
    against the earlier checksum read exactly what it would read now (``data/snapshots.json``,
    ``earlier_sha256``). ``()`` for any other checksum.

    Examples
    --------
    >>> hgnc = load_ontology("hgnc")
    >>> len(earlier_checksums(hgnc.checksum))  # the two snapshots before its columns were added
    2
    >>> earlier_checksums("not a snapshot's checksum")
    ()
    """
    for info in builtin_ontologies().values():
        if checksum and info.sha256 == checksum:
            return info.earlier_sha256
    return ()


def _load_builtin(info: BuiltinInfo) -> Ontology:
    path = data_dir() / info.file
    return Ontology(
        name=info.name,
        terms=read_snapshot(path),
        source=f"bundled:data/{info.file}",
        release=info.release,
        checksum=sha256_file(path),
        kind=info.kind,
        popularity_columns=info.popularity_columns,
        default_popularity=info.default_popularity,
    )


def _beside(path: Path, kind: str) -> Path | None:
    for candidate in _BESIDE.get(kind, ()):
        if (path.parent / candidate).is_file():
            return path.parent / candidate
    return None


def _sniff(path: Path) -> tuple[str, str]:
    """The loader a file needs (``obo``, ``hgnc`` or ``table``) and its first 64 KiB of text."""
    if path.is_dir():
        raise OntologyError(f"{path} is a directory; give an OBO, HGNC or TSV/CSV file")
    lower = path.name.lower().removesuffix(".gz")
    if lower.endswith((".owl", ".json", ".ofn", ".ttl")):
        raise OntologyError(f"{path}: OWL and OBO-JSON are not supported; give the .obo release instead")
    head = head_text(path)
    line = first_line(head)
    if lower.endswith(".obo") or line.startswith(("format-version:", "[Term]", "data-version:", "ontology:")):
        return "obo", head
    columns = [c.strip().strip('"') for c in line.split("\t" if "\t" in line else ",")]
    return ("hgnc" if is_hgnc_header(columns) else "table"), head


def _annotations_for(path: Path, kind: str, obo_name: str | None, annotations: Path | None) -> Path | None:
    """The popularity file to use: the one given, else one lying beside an hp.obo or HGNC table."""
    if annotations is not None:
        if kind == "table":
            raise OntologyError(
                f"--annotations does not apply to {path}, a plain term table; add pop_* columns to it instead "
                "(annotations are for OBO files: a GAF or phenotype.hpoa, and HGNC tables: genes_to_phenotype)"
            )
        if not annotations.is_file():
            raise OntologyError(f"annotations file not found: {annotations}")
        return annotations
    if kind == "obo" and (obo_name == "hpo" or path.name.lower().startswith("hp.")):
        return _beside(path, "hpo")
    if kind == "hgnc":
        return _beside(path, "hgnc")
    return None


def _load_file(path: Path, annotations: Path | None, use_cache: bool) -> Ontology:
    kind, head = _sniff(path)
    obo_name = obo_ontology_name(head) if kind == "obo" else None
    annotations = _annotations_for(path, kind, obo_name, annotations)
    checksums = [sha256_file(path)] + ([sha256_file(annotations)] if annotations else [])
    checksum = checksums[0] if len(checksums) == 1 else config_key(*checksums)
    source = str(path) + (f" + {annotations}" if annotations else "")
    # the file name is in the key because a file without an ontology: header is named after it
    key = config_key(LOADER_VERSION, kind, checksums, path.name.split(".")[0])
    cache_file = cache_dir("ontology") / f"{key}{_CACHE_SUFFIX}"
    if use_cache:
        (cache_file.parent / f"{key}.pkl").unlink(missing_ok=True)  # an old pickle cache: never loaded
    if use_cache and cache_file.is_file():
        try:
            cached = _read_cache(cache_file)
            logger.info("ontology %s from cache %s", path, cache_file)
            return dataclasses.replace(cached, source=source)
        except Exception as exc:  # a corrupt or stale cache is dropped and rebuilt, never used
            warnings.warn(
                f"dropping unreadable ontology cache {cache_file} ({' '.join(str(exc).split())[:200]}); "
                f"parsing {path} again",
                LexprobeWarning,
                stacklevel=3,
            )
            cache_file.unlink(missing_ok=True)
    release = None
    if kind == "obo":
        terms, header, default = load_obo_table(path, annotations)
        name, release = header["name"], header.get("release")
    elif kind == "hgnc":
        terms = load_hgnc_table(path, annotations)
        name = "hgnc"
        default = "pop_hpo_annotations" if "pop_hpo_annotations" in terms.columns else "pop_hgnc_synonyms"
    else:
        terms = table_from_generic(read_table(path), path)
        pops = [c for c in terms.columns if c.startswith("pop_")]
        name, default = path.name.split(".")[0], (pops[0] if pops else None)
    ontology = Ontology(
        name=name,
        terms=terms,
        source=source,
        release=release,
        checksum=checksum,
        kind=kind,
        popularity_columns=tuple(c for c in terms.columns if c.startswith("pop_")),
        default_popularity=default,
    )
    if use_cache:
        _write_cache(cache_file, ontology)
    return ontology


#: The parsed-ontology cache is gzip JSON (data, never code: a pickle would run whatever its writer put in it).
_CACHE_SUFFIX = ".json.gz"
_CACHE_FORMAT = "lexprobe-ontology-cache"
_CACHE_VERSION = 1
#: Column dtypes the cache stores exactly (object columns hold str, None, numbers, bools or tuples of those).
_CACHE_DTYPES = ("object", "bool", "float64", "float32", "int64", "int32", "Int64", "boolean", "str", "string")
#: Dtypes whose missing values are stored as JSON null.
_NULLABLE = ("Int64", "boolean", "str", "string")
_SCALARS = (str, bool, int, float)


def _column_record(name: str, series: pd.Series) -> dict:
    dtype = str(series.dtype)
    if dtype not in _CACHE_DTYPES:
        raise TypeError(f"column {name!r} has dtype {dtype}, which the cache does not store")
    if dtype != "object":
        values = [None if pd.isna(v) else v for v in series.tolist()] if dtype in _NULLABLE else series.tolist()
        return {"name": name, "dtype": dtype, "values": values}
    values, tuples = [], []
    for i, value in enumerate(series.tolist()):
        if isinstance(value, tuple):
            tuples.append(i)
            value = list(value)
            items = value
        else:
            items = [value]
        if not all(v is None or isinstance(v, _SCALARS) for v in items):
            raise TypeError(f"column {name!r} holds a {type(value).__name__}, which the cache does not store")
        values.append(value)
    return {"name": name, "dtype": dtype, "values": values, "tuples": tuples}


def _write_cache(cache_file: Path, ontology: Ontology) -> None:
    """Store a parsed ontology as gzip JSON (atomically); a table the format cannot hold exactly is not cached."""
    terms = ontology.terms
    try:
        if not isinstance(terms.index, pd.RangeIndex) or terms.index.start != 0 or terms.index.step != 1:
            raise TypeError("the table's index is not 0..n-1")
        columns = [_column_record(str(c), terms[c]) for c in terms.columns]
        if [c["name"] for c in columns] != list(terms.columns):
            raise TypeError("column names are not all strings")
        fields = {f.name: getattr(ontology, f.name) for f in dataclasses.fields(ontology) if f.name != "terms"}
        blob = json.dumps(
            {
                "format": _CACHE_FORMAT,
                "version": _CACHE_VERSION,
                "ontology": fields,
                "n_rows": len(terms),
                "columns": columns,
            },
            allow_nan=True,
        )
    except (TypeError, ValueError) as exc:
        logger.info("not caching %s: %s", ontology.source, exc)
        return
    with atomic_path(cache_file) as tmp:
        tmp.write_bytes(gzip.compress(blob.encode("utf-8"), mtime=0))


def _read_cache(cache_file: Path) -> Ontology:
    """The :class:`Ontology` stored by :func:`_write_cache`; any deviation from the format raises."""
    data = json.loads(gzip.decompress(cache_file.read_bytes()).decode("utf-8"))
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT or data.get("version") != _CACHE_VERSION:
        raise ValueError("not a lexprobe ontology cache of this version")
    n = int(data["n_rows"])
    series = {}
    for column in data["columns"]:
        name, dtype, values = column["name"], column["dtype"], column["values"]
        if dtype not in _CACHE_DTYPES or not isinstance(values, list) or len(values) != n:
            raise ValueError(f"column {name!r} is malformed")
        if dtype == "object":
            values = list(values)
            for i in column["tuples"]:
                values[i] = tuple(values[i])
            if any(isinstance(v, list) for v in values):
                raise ValueError(f"column {name!r} holds a list not marked as a tuple")
            array = np.empty(n, dtype=object)
            array[:] = values
            series[name] = pd.Series(array, dtype=object)
        else:
            series[name] = pd.Series(values, dtype=dtype)
    terms = pd.DataFrame(series, index=pd.RangeIndex(n))
    fields = data["ontology"]
    fields["popularity_columns"] = tuple(fields["popularity_columns"])
    return Ontology(terms=terms, **fields)


def load_ontology(
    spec: str | os.PathLike[str],
    *,
    annotations: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> Ontology:
    """Load an ontology as a term table with popularity.

    Parameters
    ----------
    spec : str or path
        A built-in name (``"hgnc"``, ``"hpo"``, ``"go"``: bundled snapshots, offline) or a path to an
        upstream file: HGNC TSV (official ``hgnc_complete_set.txt`` or custom download), any OBO file, or a
        TSV/CSV with ``id, name[, symbol, synonyms, pop_*]``. Format from the extension and content; gzip ok.
    annotations : str or path, optional
        Popularity source, told apart by content: ``phenotype.hpoa`` for HPO (``pop_hpoa_diseases``), a GAF
        file for GO (``pop_go_annotations``; ``pop_gaf_annotations`` for other OBO ontologies),
        ``genes_to_phenotype.txt`` for an HGNC table (``pop_hpo_annotations``). It becomes the default
        popularity. When not given, ``phenotype.hpoa[.gz]`` beside an ``hp.obo`` and
        ``genes_to_phenotype.txt[.gz]`` beside an HGNC table are used. Not allowed for plain term tables
        (give them ``pop_*`` columns) or the built-in ``hgnc`` (which already has HPO annotations).
    use_cache : bool
        Reuse the parsed table of a file seen before (keyed by checksums), in ``$LEXPROBE_CACHE/ontology``.

    Returns
    -------
    Ontology

    Raises
    ------
    OntologyError
        Unknown name, missing file, unsupported format.
    DataFormatError
        Malformed file (the message names the line for OBO), missing columns, duplicate ids.

    Examples
    --------
    >>> hpo = load_ontology("hpo")  # the bundled snapshot; a path reads an OBO or TSV file
    >>> hpo.name, len(hpo), hpo.terms.set_index("id").loc["HP:0001250", "label"]
    ('hpo', 19484, 'Seizure')
    >>> load_ontology("hgcn")
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.OntologyError: unknown ontology 'hgcn' (did you mean 'hgnc'?); use one of go, hgnc, hpo ...
    """
    text = str(spec).strip()
    builtins = builtin_ontologies()
    if not text:
        raise OntologyError(f"no ontology given; use one of {', '.join(sorted(builtins))} or a path to a file")
    if text.lower() in builtins and not Path(text).exists():
        ontology = _load_builtin(builtins[text.lower()])
        if annotations is not None:
            ontology = _with_annotations(ontology, Path(annotations).expanduser())
        return ontology
    path = Path(text).expanduser()
    if not path.exists():
        if os.sep in text or "." in text:
            raise OntologyError(f"ontology file not found: {text}")
        raise OntologyError(
            f"unknown ontology {text!r}{did_you_mean(text, builtins)}; use one of {', '.join(sorted(builtins))} "
            "or a path to an OBO/TSV file"
        )
    return _load_file(path, Path(annotations).expanduser() if annotations else None, use_cache)


def _with_annotations(ontology: Ontology, annotations: Path) -> Ontology:
    if ontology.name == "hgnc":
        raise OntologyError(
            "the built-in hgnc already carries pop_hpo_annotations; to use another genes_to_phenotype file, "
            "load an HGNC table from a file path (lexprobe data fetch hgnc) with --annotations"
        )
    if not annotations.is_file():
        raise OntologyError(f"annotations file not found: {annotations}")
    terms, column = add_annotation_popularity(
        ontology.terms, annotations, ontology=ontology.name, source=f"built-in {ontology.name}"
    )
    return dataclasses.replace(
        ontology,
        terms=terms,
        checksum=config_key(ontology.checksum, sha256_file(annotations)),
        source=f"{ontology.source} + {annotations}",
        popularity_columns=tuple(sorted({*ontology.popularity_columns, column})),
        default_popularity=column,
    )
