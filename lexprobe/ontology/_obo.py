"""OBO ontologies (HPO, GO, any other) through pronto, with alt-id, obsolete and popularity maps."""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from lexprobe.exceptions import DataFormatError
from lexprobe.ontology._curie import normalize_curie
from lexprobe.ontology._io import clip, open_bytes
from lexprobe.ontology._popularity import add_annotation_popularity
from lexprobe.ontology._table import finish_term_table, new_term_table

__all__ = ["read_obo", "load_obo_table", "obo_ontology_name", "OboHeader"]

_HPO_PHENOTYPE_ROOT = "HP:0000118"
_DATE_RE = re.compile(r"(\d{4}-\d{2}(?:-\d{2})?)")
# a stanza header and its id line (blank lines between allowed): to find duplicate ids before pronto merges them
_STANZA_ID_RE = re.compile(rb"^\[(Term|Typedef|Instance)\][ \t]*\r?\n(?:[ \t]*\r?\n)*id:[ \t]*(\S+)", re.MULTILINE)
# a file's own id that is no CURIE of a known prefix (gene_1): kept as given, never rewritten to gene:1
_OWN_ID_RE = re.compile(r"^[A-Za-z][\w.]*_\w+$")
# a line that is only a "!" comment
_COMMENT_LINE_RE = re.compile(rb"^[ \t]*![^\r\n]*", re.MULTILINE)
# cross-references read into their own columns, by the prefix of an OBO ``xref:`` (kept as written: UMLS:C0000737)
_XREF_COLUMNS = {"umls_ids": "UMLS", "snomed_ids": "SNOMEDCT_US"}
# ids a term table keeps short names for (header "ontology: hp" -> "hpo")
_SHORT_NAMES = {"hp": "hpo", "go": "go"}


def obo_ontology_name(head: str) -> str | None:
    """The ``ontology:`` header tag of an OBO file's text (lower case, ``.obo`` dropped); ``hp`` -> ``hpo``."""
    for line in head.splitlines():
        if line.startswith("["):
            break
        if line.startswith("ontology:"):
            value = line.split(":", 1)[1].split("!")[0].strip().lower().removesuffix(".obo")
            return _SHORT_NAMES.get(value, value) or None
    return None


def _prescan(raw: bytes, path: Path) -> None:
    """Fail with the line number on what pronto would mangle: non-UTF-8 bytes and duplicate ids.

    pronto merges two stanzas with the same id silently, and reports invalid UTF-8 without a position.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}: not UTF-8 text at line {line} (byte 0x{raw[exc.start]:02x}); re-save the file as UTF-8"
        ) from None
    first_seen: dict[tuple[bytes, bytes], int] = {}
    for match in _STANZA_ID_RE.finditer(raw):
        key = (match.group(1), match.group(2))
        if key in first_seen:
            line = raw[: match.start(2)].count(b"\n") + 1
            first = raw[: first_seen[key]].count(b"\n") + 1
            raise DataFormatError(
                f"{path}: duplicate id {clip(match.group(2).decode())} at line {line} (first at line {first}); "
                "each [Term] id must occur once"
            )
        first_seen[key] = match.start(2)


class OboHeader(dict):
    """The OBO header fields lexprobe uses: ``ontology`` and ``release``."""


def _parse(raw: bytes, path: Path):
    import pronto

    try:
        with warnings.catch_warnings():
            # pronto warns about guessed encodings and unknown relations; the bytes are UTF-8 by contract
            warnings.simplefilter("ignore")
            return pronto.Ontology(io.BytesIO(raw), encoding="utf-8", threads=1)
    except SyntaxError as exc:
        line = exc.lineno if exc.lineno is not None else "?"
        text = (exc.text or "").strip()
        raise DataFormatError(
            f"{path}: OBO syntax error at line {line}: {clip(exc.msg, 200)} ({clip(text)!r})"
        ) from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{path}: not UTF-8 text at line {line}") from None
    except KeyError as exc:
        # pronto links is_a parents after parsing and fails on a parent the file never defines
        missing = str(exc.args[0]) if exc.args else "?"
        where = re.search(rb"^is_a:[ \t]*" + re.escape(missing.encode()) + rb"\b", raw, re.MULTILINE)
        line = raw[: where.start()].count(b"\n") + 1 if where else "?"
        raise DataFormatError(
            f"{path}: line {line}: is_a parent {clip(missing)} is not defined in the file; pronto cannot read an OBO "
            "with dangling parents: add its [Term] stanza or remove the line"
        ) from None
    except (ValueError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        message = clip(" ".join(str(exc).split()), 300)
        if message.startswith("could not find a parser"):
            message = "it does not start like one (format-version:, ontology: or a [Term] stanza)"
        raise DataFormatError(f"{path}: cannot read as OBO: {message}") from None
    except BaseException as exc:
        # fastobo (Rust) panics on some malformed input instead of raising; pyo3 makes that a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        detail = clip(" ".join(str(exc).split()), 200)
        raise DataFormatError(f"{path}: cannot read as OBO: the parser failed on malformed input ({detail})") from None


def _synonyms(term) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every synonym of a term, and its EXACT ones; each sorted, without duplicates."""
    try:
        synonyms = term.synonyms
    except ValueError:
        # pronto refuses a synonym whose type (e.g. "EXACT HP:0034334") the header does not declare, and
        # only when asked for it; the synonym text itself is fine, so read it from the parsed data
        synonyms = term._data().synonyms
    texts = [(s.description.strip(), s.scope) for s in synonyms if s.description and s.description.strip()]
    every = tuple(sorted({text for text, _scope in texts}))
    exact = tuple(sorted({text for text, scope in texts if scope == "EXACT"}))
    return every, exact


def _curie(value: str) -> str | None:
    """The id normalized when of a known form; an id such as ``gene_1`` as given; ``None`` for non-ids."""
    try:
        return normalize_curie(value)
    except ValueError:
        text = str(value).strip()
        return text if _OWN_ID_RE.match(text) else None


def _curies(values) -> list[str]:
    return sorted({c for c in map(_curie, values) if c is not None})


def _is_a_parents(term) -> list[str]:
    """The ids of a term's direct ``is_a`` parents (not ``part_of``), sorted."""
    return _curies(p.id for p in term.superclasses(distance=1, with_self=False) if p.id != term.id)


def _definition(data) -> str | None:
    """The text of a term's ``def:`` without its ``[refs]``, whitespace-normalised; ``None`` when it has none."""
    text = " ".join(str(data.definition or "").split())
    return text or None


def _xrefs(data) -> dict[str, tuple[str, ...]]:
    """The term's UMLS and SNOMED CT cross-references, each column's sorted, in their upstream form
    (``UMLS:C0000737``, ``SNOMEDCT_US:21522001``). An xref of another prefix, or without one, is not read."""
    out: dict[str, set[str]] = {column: set() for column in _XREF_COLUMNS}
    for xref in data.xrefs:
        prefix, sep, local = str(xref.id).strip().partition(":")
        for column, wanted in _XREF_COLUMNS.items():
            if sep and prefix == wanted and local.strip() and not any(c.isspace() for c in local.strip()):
                out[column].add(f"{wanted}:{local.strip()}")
    return {column: tuple(sorted(values)) for column, values in out.items()}


def _parents(term, data) -> list[str]:
    parents = [p.id for p in term.superclasses(distance=1, with_self=False) if p.id != term.id]
    # from the raw data: pronto's term.relationships raises KeyError on relations the header does not declare
    parents.extend(data.relationships.get("part_of", ()))
    return _curies(parents)


def read_obo(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, OboHeader]:
    """Read an OBO file into a term table (before popularity) and its header.

    ``category`` is the GO namespace for GO; for HPO, the top-level branch under "Phenotypic abnormality"
    (HP:0000118) a term descends from (the lowest-id branch when several), or for terms outside that
    subtree the child of the root they descend from ("Mode of inheritance", ...).
    ``pop_obo_descendants`` counts each term's is_a / part_of descendants (a structural proxy for how
    general, and so how often mentioned, a term is). ``definition`` is the ``def:`` text without its
    ``[refs]``; ``parents`` the names of the direct ``is_a`` parents (not ``part_of``) in their ids' order;
    ``umls_ids`` and ``snomed_ids`` the ``xref: UMLS:...`` and ``xref: SNOMEDCT_US:...`` lines as written.
    """
    path = Path(path)
    raw = open_bytes(path)
    _prescan(raw, path)
    # whole-line "!" comments make fastobo panic; blank them, keeping every line where it was
    ontology = _parse(_COMMENT_LINE_RE.sub(b"", raw), path)
    header = OboHeader(ontology=(ontology.metadata.ontology or path.name.split(".")[0]))
    version = ontology.metadata.data_version or ""
    match = _DATE_RE.search(version) or _DATE_RE.search(" ".join(ontology.metadata.remarks))
    header["release"] = match.group(1) if match else (version or None)

    rows, parents = [], {}
    for term in ontology.terms():
        term_id = _curie(term.id)
        if term_id is None:
            continue  # terms of imported namespaces with non-CURIE ids
        # the raw ids, not pronto's Term objects: those raise on ids the file does not define
        # (a replaced_by pointing outside an extract, say)
        data = term._data()
        replaced = _curies(data.replaced_by)
        synonyms, exact = _synonyms(term)
        rows.append(
            {
                "id": term_id,
                "label": (term.name or "").strip(),
                "synonyms": synonyms,
                "exact_synonyms": exact,
                "alt_ids": tuple(_curies(data.alternate_ids)),
                "obsolete": bool(term.obsolete),
                "replaced_by": replaced[0] if replaced else None,
                "namespace": term.namespace or None,
                "definition": _definition(data),
                "parents": tuple(_is_a_parents(term)),
                **_xrefs(data),
            }
        )
        parents[term_id] = _parents(term, data)
    # pronto's term order is not stable between parses: sort so the same file gives the same table
    frame = new_term_table(sorted(rows, key=lambda r: r["id"]))
    if frame.empty:
        raise DataFormatError(f"{path}: no [Term] stanzas found; is this an OBO file?")
    # the parents' names, in the parents' id order (a parent with no name, or not in the table, is left out)
    labels = {i: label for i, label in zip(frame["id"], frame["label"]) if label}
    frame["parents"] = [tuple(labels[p] for p in ids if p in labels) for ids in frame["parents"].tolist()]
    ancestors = _ancestors(parents)
    descendants: dict[str, int] = dict.fromkeys(parents, 0)
    for term_ancestors in ancestors.values():
        for a in term_ancestors:
            if a in descendants:
                descendants[a] += 1
    frame["pop_obo_descendants"] = frame["id"].map(descendants).fillna(0)
    frame["category"] = _categories(frame, parents, ancestors)
    return frame, header


def _ancestors(parents: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    memo: dict[str, frozenset[str]] = {}
    for start in parents:
        stack = [(start, False)]
        while stack:
            node, expanded = stack.pop()
            if node in memo:
                continue
            todo = [p for p in parents.get(node, ()) if p not in memo and p in parents]
            if expanded or not todo:
                acc: set[str] = set()
                for p in parents.get(node, ()):
                    acc.add(p)
                    acc |= memo.get(p, frozenset())
                memo[node] = frozenset(acc)
            else:
                stack.append((node, True))
                stack.extend((p, False) for p in todo)
    return memo


def _categories(frame: pd.DataFrame, parents: dict[str, list[str]], ancestors: dict[str, frozenset[str]]) -> list:
    labels = dict(zip(frame["id"], frame["label"]))
    if _HPO_PHENOTYPE_ROOT in parents:
        roots = {t for t, ps in parents.items() if not ps}
        top = {t for t, ps in parents.items() if _HPO_PHENOTYPE_ROOT in ps}
        top_other = {t for t, ps in parents.items() if set(ps) & roots and t != _HPO_PHENOTYPE_ROOT}
        out = []
        for term_id in frame["id"]:
            lineage = ancestors.get(term_id, frozenset()) | {term_id}
            branch = sorted(lineage & top) or sorted(lineage & top_other)
            if term_id == _HPO_PHENOTYPE_ROOT:
                out.append(labels[term_id])
            else:
                out.append(labels.get(branch[0]) if branch else None)
        return out
    return list(frame["namespace"])


def load_obo_table(
    path: str | os.PathLike[str], annotations: str | os.PathLike[str] | None
) -> tuple[pd.DataFrame, OboHeader, str]:
    """OBO term table with popularity; returns the table, header and the default popularity column.

    Popularity: ``pop_obo_descendants`` (``pop_go_descendants`` for GO) always; with ``annotations``,
    ``pop_hpoa_diseases`` (phenotype.hpoa, HPO only) or ``pop_go_annotations`` / ``pop_gaf_annotations``
    (a GAF file), which then becomes the default.
    """
    frame, header = read_obo(path)
    name = _SHORT_NAMES.get(header["ontology"].lower().removesuffix(".obo"), header["ontology"].lower())
    if name != "hpo" and "HP:0000001" in set(frame["id"]):
        name = "hpo"  # an hp.obo without its ontology: header line
    header["name"] = name
    default = "pop_obo_descendants"
    if name == "go":
        frame = frame.rename(columns={"pop_obo_descendants": "pop_go_descendants"})
        default = "pop_go_descendants"
    if annotations is not None:
        frame, default = add_annotation_popularity(frame, annotations, ontology=name, source=str(path))
    return finish_term_table(frame, source=str(path)), header, default
