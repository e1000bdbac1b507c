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
from lexprobe.ontology._io import open_bytes
from lexprobe.ontology._table import finish_term_table, new_term_table

__all__ = ["read_obo", "hpoa_popularity", "gaf_popularity", "OboHeader"]

_HPO_PHENOTYPE_ROOT = "HP:0000118"
_DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")


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
        raise DataFormatError(f"{path}: OBO syntax error at line {line}: {exc.msg} ({text!r})") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{path}: not UTF-8 text at line {line}") from None
    except ValueError as exc:
        raise DataFormatError(f"{path}: cannot read as OBO: {' '.join(str(exc).split())}") from None


def _parents(term) -> list[str]:
    parents = [p.id for p in term.superclasses(distance=1, with_self=False)]
    for relation, targets in term.relationships.items():
        if relation.id == "part_of":
            parents.extend(t.id for t in targets)
    return parents


def read_obo(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, OboHeader]:
    """Read an OBO file into a term table (before popularity) and its header.

    ``category`` is the GO namespace for GO; for HPO, the top-level branch under "Phenotypic abnormality"
    (HP:0000118) a term descends from (the lowest-id branch when several), or for terms outside that
    subtree the child of the root they descend from ("Mode of inheritance", ...).
    ``pop_obo_descendants`` counts each term's is_a / part_of descendants (a structural proxy for how
    general, and so how often mentioned, a term is).
    """
    path = Path(path)
    raw = open_bytes(path)
    ontology = _parse(raw, path)
    header = OboHeader(ontology=(ontology.metadata.ontology or path.name.split(".")[0]))
    version = ontology.metadata.data_version or ""
    match = _DATE_RE.search(version) or _DATE_RE.search(" ".join(ontology.metadata.remarks))
    header["release"] = match.group(1) if match else (version or None)

    rows, parents = [], {}
    for term in ontology.terms():
        try:
            term_id = normalize_curie(term.id)
        except ValueError:
            continue  # terms of imported namespaces with non-CURIE ids
        replaced = sorted(t.id for t in term.replaced_by)
        rows.append(
            {
                "id": term_id,
                "label": (term.name or "").strip(),
                "synonyms": tuple(sorted({s.description for s in term.synonyms if s.description})),
                "alt_ids": tuple(sorted(normalize_curie(a) for a in term.alternate_ids)),
                "obsolete": bool(term.obsolete),
                "replaced_by": normalize_curie(replaced[0]) if replaced else None,
                "namespace": term.namespace or None,
            }
        )
        parents[term_id] = [normalize_curie(p) for p in _parents(term) if p != term.id]
    # pronto's term order is not stable between parses: sort so the same file gives the same table
    frame = new_term_table(sorted(rows, key=lambda r: r["id"]))
    if frame.empty:
        raise DataFormatError(f"{path}: no [Term] stanzas found; is this an OBO file?")
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


def hpoa_popularity(frame: pd.DataFrame, hpoa: str | os.PathLike[str]) -> pd.Series:
    """Distinct diseases annotated directly with each HPO term in ``phenotype.hpoa`` (NOT lines excluded)."""
    # the release file starts with '#' metadata lines before the header
    raw = open_bytes(hpoa).decode("utf-8", errors="replace")
    body = "\n".join(line for line in raw.splitlines() if line and not line.startswith("#"))
    try:
        table = pd.read_csv(io.StringIO(body), sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise DataFormatError(f"{hpoa}: cannot parse as phenotype.hpoa: {exc}") from None
    needed = {"database_id", "hpo_id", "qualifier"}
    if not needed <= set(table.columns):
        raise DataFormatError(f"{hpoa}: phenotype.hpoa needs columns {sorted(needed)}")
    table = table[table["qualifier"].str.upper() != "NOT"]
    counts = table.groupby("hpo_id")["database_id"].nunique()
    return frame["id"].map(counts).fillna(0).astype(float)


def gaf_popularity(frame: pd.DataFrame, gaf: str | os.PathLike[str]) -> pd.Series:
    """Annotation lines per GO term in a GAF 2.x file (lines with a NOT qualifier excluded)."""
    raw = open_bytes(gaf).decode("utf-8", errors="replace")
    counts: dict[str, int] = {}
    n_lines = 0
    for line in raw.splitlines():
        if not line or line.startswith("!"):
            continue
        cols = line.split("\t")
        if len(cols) < 5:
            raise DataFormatError(f"{gaf}: line {n_lines + 1} has {len(cols)} columns; a GAF line has 15-17")
        n_lines += 1
        if "NOT" in cols[3].upper().split("|"):
            continue
        counts[cols[4]] = counts.get(cols[4], 0) + 1
    if n_lines == 0:
        raise DataFormatError(f"{gaf}: no GAF annotation lines found")
    return frame["id"].map(counts).fillna(0).astype(float)


def load_obo_table(
    path: str | os.PathLike[str], annotations: str | os.PathLike[str] | None
) -> tuple[pd.DataFrame, OboHeader, str | None]:
    """OBO term table with popularity; returns the table, header and the default popularity column."""
    frame, header = read_obo(path)
    is_hpo = (header.get("ontology") or "").lower() in {"hp", "hp.obo"} or "HP:0000001" in set(frame["id"])
    is_go = (header.get("ontology") or "").lower() == "go"
    default = None
    if is_go:
        frame = frame.rename(columns={"pop_obo_descendants": "pop_go_descendants"})
        default = "pop_go_descendants"
    if annotations is not None:
        name = Path(annotations).name.lower()
        if is_hpo or "hpoa" in name:
            frame["pop_hpoa_diseases"] = hpoa_popularity(frame, annotations)
            default = "pop_hpoa_diseases"
        else:
            frame["pop_go_annotations"] = gaf_popularity(frame, annotations)
            default = "pop_go_annotations"
    if default is None:
        default = "pop_go_descendants" if is_go else "pop_obo_descendants"
    return finish_term_table(frame, source=str(path)), header, default
