"""``load_ontology``: a built-in name or a user file in, an :class:`Ontology` out (cached)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
from importlib import resources
from pathlib import Path

from lexprobe.exceptions import DataFormatError, OntologyError
from lexprobe.ontology._generic import read_snapshot, table_from_generic
from lexprobe.ontology._hgnc import is_hgnc_header, load_hgnc_table
from lexprobe.ontology._io import first_line, open_bytes, read_table
from lexprobe.ontology._obo import load_obo_table
from lexprobe.ontology._table import Ontology
from lexprobe.runs import atomic_path, cache_dir, config_key, sha256_file

__all__ = ["load_ontology", "builtin_ontologies", "BuiltinInfo", "data_dir", "LOADER_VERSION"]

logger = logging.getLogger(__name__)

#: Bump when a loader's output changes, so cached parses of user files are rebuilt.
LOADER_VERSION = 2

_BESIDE = {
    "hgnc": ("genes_to_phenotype.txt", "genes_to_phenotype.txt.gz"),
    "hpo": ("phenotype.hpoa", "phenotype.hpoa.gz"),
}


@dataclasses.dataclass(frozen=True)
class BuiltinInfo:
    """Provenance of a built-in ontology snapshot (from ``data/snapshots.json``)."""

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


def data_dir() -> Path:
    """The directory of the bundled snapshots (``data/`` of the project, ``lexprobe/data`` when installed)."""
    return Path(str(resources.files("lexprobe.data")))


def builtin_ontologies() -> dict[str, BuiltinInfo]:
    """The built-in ontologies and their provenance."""
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
        )
        for name, entry in meta["ontologies"].items()
    }


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


def _sniff(path: Path) -> str:
    lower = path.name.lower().removesuffix(".gz")
    raw = open_bytes(path)
    head = first_line(raw)
    if lower.endswith(".obo") or head.startswith(("format-version:", "[Term]")):
        return "obo"
    if lower.endswith((".owl", ".json")):
        raise OntologyError(f"{path}: OWL and OBO-JSON are not supported; give the .obo release instead")
    columns = [c.strip().strip('"') for c in head.split("\t" if "\t" in head else ",")]
    return "hgnc" if is_hgnc_header(columns) else "table"


def _name_for(path: Path, kind: str, header: dict | None) -> str:
    if kind == "hgnc":
        return "hgnc"
    if header:
        ontology = (header.get("ontology") or "").lower().removesuffix(".obo")
        return {"hp": "hpo", "go": "go"}.get(ontology, ontology or path.name.split(".")[0])
    return path.name.split(".")[0]


def _load_file(path: Path, annotations: Path | None, use_cache: bool) -> Ontology:
    kind = _sniff(path)
    if kind == "obo" and annotations is None:
        annotations = _beside(path, "hpo")
    if kind == "hgnc" and annotations is None:
        annotations = _beside(path, "hgnc")
    checksums = [sha256_file(path)] + ([sha256_file(annotations)] if annotations else [])
    checksum = checksums[0] if len(checksums) == 1 else config_key(*checksums)
    source = str(path) + (f" + {annotations}" if annotations else "")
    cache_file = cache_dir("ontology") / f"{config_key(LOADER_VERSION, kind, checksums)}.pkl"
    if use_cache and cache_file.is_file():
        try:
            with open(cache_file, "rb") as fh:
                cached = pickle.load(fh)
            return dataclasses.replace(cached, source=source)
        except Exception:  # a corrupt or stale cache is rebuilt, never used
            logger.warning("ignoring unreadable ontology cache %s", cache_file)
    header = None
    if kind == "obo":
        terms, header, default = load_obo_table(path, annotations)
        release = header.get("release")
    elif kind == "hgnc":
        terms = load_hgnc_table(path, annotations)
        default = "pop_hpo_annotations" if "pop_hpo_annotations" in terms.columns else "pop_hgnc_synonyms"
        release = None
    else:
        terms = table_from_generic(read_table(path), path)
        pops = [c for c in terms.columns if c.startswith("pop_")]
        default = pops[0] if pops else None
        release = None
    ontology = Ontology(
        name=_name_for(path, kind, header),
        terms=terms,
        source=source,
        release=release,
        checksum=checksum,
        kind=kind,
        popularity_columns=tuple(c for c in terms.columns if c.startswith("pop_")),
        default_popularity=default,
    )
    if use_cache:
        with atomic_path(cache_file) as tmp, open(tmp, "wb") as fh:
            pickle.dump(ontology, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return ontology


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
        Popularity source: ``phenotype.hpoa`` for HPO, a GAF file for GO, ``genes_to_phenotype.txt`` for
        HGNC. For a file ``spec``, the HPO files are also picked up when they lie beside it.
        For the built-in ``go``, a GAF adds ``pop_go_annotations`` and makes it the default.
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
    """
    text = str(spec)
    builtins = builtin_ontologies()
    if text.lower() in builtins and not Path(text).exists():
        ontology = _load_builtin(builtins[text.lower()])
        if annotations is not None:
            ontology = _with_annotations(ontology, Path(annotations))
        return ontology
    path = Path(text).expanduser()
    if not path.exists():
        if os.sep in text or "." in text:
            raise OntologyError(f"ontology file not found: {text}")
        raise OntologyError(
            f"unknown ontology {text!r}; use one of {', '.join(sorted(builtins))} or a path to an OBO/TSV file"
        )
    return _load_file(path, Path(annotations) if annotations else None, use_cache)


def _with_annotations(ontology: Ontology, annotations: Path) -> Ontology:
    from lexprobe.ontology._obo import gaf_popularity, hpoa_popularity

    terms = ontology.terms.copy()
    if ontology.name == "go":
        column, values = "pop_go_annotations", gaf_popularity(terms, annotations)
    elif ontology.name == "hpo":
        column, values = "pop_hpoa_diseases", hpoa_popularity(terms, annotations)
    elif ontology.name == "hgnc":
        raise DataFormatError(
            "the built-in hgnc already carries pop_hpo_annotations; to use another genes_to_phenotype file, "
            "load the HGNC table from a file path"
        )
    else:  # pragma: no cover - builtins are the three above
        raise OntologyError(f"no annotation loader for {ontology.name!r}")
    terms[column] = values
    pops = tuple(sorted({*ontology.popularity_columns, column}))
    return dataclasses.replace(
        ontology,
        terms=terms,
        checksum=config_key(ontology.checksum, sha256_file(annotations)),
        source=f"{ontology.source} + {annotations}",
        popularity_columns=pops,
        default_popularity=column,
    )
