"""Scoring generated replies: parse the answer, exact match as the design says, categories
(the intervals are in :mod:`lexprobe.stats`)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from lexprobe.exceptions import TrainingError
from lexprobe.tasks import FIELD_COLUMNS, FIELD_KINDS, MULTI_VALUED_FIELDS

MatchKind = Literal["exact", "alt", "none"]
#: Generation budget by target field: ids and symbols are short, names need more.
MAX_NEW_TOKENS: dict[str, int] = {
    "id": 24,
    "symbol": 16,
    "name": 64,
    "label": 64,
    "synonym": 64,
    "alias_symbol": 16,
    "previous_symbol": 16,
    "ncbi_gene": 16,
    "uniprot": 16,
    "ensembl": 24,
    "mgi": 16,
    "namespace": 16,
    "category": 24,
    "locus_type": 24,
    "definition": 128,
    "parent": 64,
    "umls": 16,
    "snomed": 24,
    "enzyme_id": 16,
    "rgd": 16,
}

#: Cross-reference forms (``identifier`` fields), searched anywhere in a reply (case-insensitive); group 1 is
#: the identifier, written back in its upstream form by :data:`_IDENTIFIER_FORMS`.
_IDENTIFIER_RES: dict[str, re.Pattern[str]] = {
    "ncbi_gene": re.compile(r"(?<![\w.])(\d{1,10})(?!\d)(?!\.\d)"),
    "uniprot": re.compile(
        r"(?<![A-Z0-9])([OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2})(?![A-Z0-9])",
        re.IGNORECASE,
    ),
    "ensembl": re.compile(r"(?<![A-Z0-9])(ENSG\d{11})(?!\d)", re.IGNORECASE),
    "mgi": re.compile(r"(?<![A-Z0-9])MGI\s?[:_]\s?(\d+)(?!\d)", re.IGNORECASE),
    "rgd": re.compile(r"(?<![A-Z0-9])RGD\s?[:_]\s?(\d+)(?!\d)", re.IGNORECASE),
    # a UMLS CUI with or without its prefix (C0000737); a SNOMED CT concept id needs its prefix (digits alone
    # are any number); an EC number in full, a "-" for a level not assigned (EC 3.4.-.-)
    "umls": re.compile(r"(?<![A-Z0-9])(?:UMLS\s?[:_]\s?)?(C\d{7})(?!\d)", re.IGNORECASE),
    "snomed": re.compile(r"(?<![A-Z0-9])SNOMED[_ ]?(?:CT)?(?:[_ ]?US)?\s?[:_]\s?(\d{6,18})(?!\d)", re.IGNORECASE),
    "enzyme_id": re.compile(r"(?<![\w.])(\d{1,2}\.(?:\d{1,3}|-)\.(?:\d{1,3}|-)\.(?:n?\d{1,4}|-))(?![\w.]*\d)"),
}
_IDENTIFIER_FORMS = {
    "ncbi_gene": lambda m: str(int(m)),
    "uniprot": str.upper,
    "ensembl": str.upper,
    "mgi": lambda m: f"MGI:{int(m)}",
    "rgd": lambda m: f"RGD:{int(m)}",
    "umls": lambda m: f"UMLS:{m.upper()}",
    "snomed": lambda m: f"SNOMEDCT_US:{int(m)}",
    "enzyme_id": str,
}


_QUOTES = "\"'`*“”‘’«»"
_TRAILING = ".,;:!?" + _QUOTES
_ECHO_RE = re.compile(
    r"^(?:the\s+)?(?:[A-Za-z]+\s+){0,3}(?:symbol|name|term|identifier|id|answer)\s*[:=\-]\s*", re.IGNORECASE
)
_SENTENCE_SYMBOL_RE = re.compile(r"\b(?:is|are|:)\s+[\"'`*]*([A-Za-z0-9][A-Za-z0-9\-@.]*?)[\"'`*]*[.!]?\s*$")


@dataclasses.dataclass(frozen=True)
class ReplyScore:
    """A generated reply, parsed and scored against the target.

    Attributes
    ----------
    parsed : str or None
        The answer extracted from the reply (``None``: nothing parseable).
    well_formed : bool
        Ids: a CURIE of the target's prefix was found; cross-references: one of the field's form. Names,
        symbols and categories: a non-empty answer.
    match_kind : {"exact", "alt", "none"}
        ``"exact"``: the target, or another value of a multi-valued target field (any UniProt accession of
        the gene). ``"alt"``: an alternative id, a previous or alias symbol, or a synonym that maps to the
        target.
    hallucinated : bool
        Ids only: a well-formed id that is no id (primary or alternative) of any term in the ontology.

    Examples
    --------
    >>> ReplyScore("BRCA1", True, "alt").correct  # a previous symbol of the target counts
    True
    >>> ReplyScore("XYZ9", True, "none").correct
    False
    """

    parsed: str | None
    well_formed: bool
    match_kind: MatchKind
    hallucinated: bool = False

    @property
    def correct(self) -> bool:
        """Exact or alternative match (alternatives map to the current primary, as the design says)."""
        return self.match_kind != "none"


def _id_pattern(prefix: str) -> re.Pattern[str]:
    from lexprobe.ontology import PREFIX_PADDING

    width = PREFIX_PADDING.get(prefix)
    digits = rf"\d{{{width}}}" if width else r"\d+"
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(prefix)}\s?[:_]\s?({digits})(?!\d)", re.IGNORECASE)


def _normalize_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def _normalize_category(text: str) -> str:
    """Categories are exact up to case, whitespace and ``_`` for a space (``cellular_component``)."""
    return _normalize_text(text.replace("_", " "))


def _kind(field: str) -> str:
    try:
        return FIELD_KINDS[field]
    except KeyError:
        raise TrainingError(f"`field` must be one of {', '.join(MAX_NEW_TOKENS)}, got {field!r}") from None


def _normalize_identifier(text: str, field: str) -> str | None:
    """A cross-reference in its upstream form (``NCBIGene:0672`` -> ``672``), or ``None`` if it has not that form."""
    m = _IDENTIFIER_RES[field].fullmatch(text.strip())
    return _IDENTIFIER_FORMS[field](m.group(1)) if m else None


def parse_reply(reply: str, field: str, *, prefix: str | None = None) -> str | None:
    """Extract the answer from a generated reply.

    Parameters
    ----------
    reply : str
        The generated text (special tokens removed).
    field : str
        The target field (:data:`lexprobe.tasks.FIELD_KINDS`; ``"id"``, ``"symbol"``, ``"name"``, ...).
    prefix : str, optional
        For ids, the CURIE prefix to look for (``"HGNC"``, ``"HP"``, ``"GO"``).

    Returns
    -------
    str or None
        Ids: the first CURIE of ``prefix`` anywhere in the reply, normalized (``hgnc: 5`` -> ``HGNC:5``;
        HP/GO need their 7 digits). Cross-references: the first of the field's form anywhere in the reply,
        in the upstream form (``672``, ``P38398``, ``ENSG00000012048``, ``MGI:104537``). Names, symbols and
        categories: the first non-empty line without quotes, trailing punctuation or a leading
        ``"Symbol:"``-style echo; for symbols, a one-sentence reply ending in ``... is BRCA1.`` gives the
        last word. ``None`` when nothing is found.

    Examples
    --------
    >>> parse_reply("The answer is hgnc: 11998.", "id", prefix="HGNC")
    'HGNC:11998'
    >>> parse_reply('Symbol: "TP53".', "symbol")
    'TP53'
    >>> parse_reply("I do not know", "id", prefix="HGNC") is None
    True
    """
    kind = _kind(field)
    if kind == "identifier":
        m = _IDENTIFIER_RES[field].search(reply)
        return _IDENTIFIER_FORMS[field](m.group(1)) if m else None
    if kind == "curie":
        if prefix is None:
            raise TrainingError("parse_reply needs the CURIE `prefix` for id targets")
        from lexprobe.ontology import normalize_curie

        m = _id_pattern(prefix).search(reply)
        return normalize_curie(f"{prefix}:{m.group(1)}") if m else None
    line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
    line = _ECHO_RE.sub("", line).strip().strip(_QUOTES).rstrip(_TRAILING).strip()
    if kind == "symbol" and " " in line:
        m = _SENTENCE_SYMBOL_RE.search(line)
        if m:
            line = m.group(1).rstrip(".")
    return line or None


class _Scorer:
    """Scores parsed replies against targets with the ontology's alternative ids, symbols and synonyms."""

    def __init__(self, ontology: Any, field: str) -> None:
        self.ontology = ontology
        self.field = field
        self.kind = _kind(field)
        terms = ontology.terms if ontology is not None else None
        self.ids: set[str] = set(terms["id"]) if terms is not None else set()
        if terms is not None:
            for alts in terms["alt_ids"]:
                self.ids.update(alts)
        normal = _normalize_category if self.kind == "category" else _normalize_text
        # every value of a multi-valued target field, per term: any of them is the answer
        self.answers: dict[str, set[str]] = {}
        column = FIELD_COLUMNS[field]
        if terms is not None and field in MULTI_VALUED_FIELDS and column in terms.columns:
            self.answers = {i: {normal(v) for v in values} for i, values in zip(terms["id"], terms[column]) if values}
        self.synonyms: dict[str, set[str]] = {}
        if terms is not None and self.kind == "text":
            self.synonyms = {
                i: {_normalize_text(s) for s in syns} for i, syns in zip(terms["id"], terms["synonyms"]) if syns
            }

    def score(self, reply: str, target: str, term_id: str | None = None, source: str | None = None) -> ReplyScore:
        scored = self._score(reply, target, term_id)
        if scored.match_kind == "alt" and source is not None and _echoes(scored.parsed, source):
            # the item's own source repeated (a previous symbol asked for its approved one, a synonym for its
            # name) is an alternative of the target, but no answer
            return dataclasses.replace(scored, match_kind="none")
        return scored

    def _score(self, reply: str, target: str, term_id: str | None = None) -> ReplyScore:
        if self.kind == "curie":
            prefix = target.split(":", 1)[0]
            parsed = parse_reply(reply, "id", prefix=prefix)
            if parsed is None:
                return ReplyScore(None, False, "none")
            hallucinated = bool(self.ids) and parsed not in self.ids
            if parsed == target:
                return ReplyScore(parsed, True, "exact")
            resolved = self.ontology.resolve_id(parsed) if self.ontology is not None else None
            return ReplyScore(parsed, True, "alt" if resolved == target else "none", hallucinated)
        parsed = parse_reply(reply, self.field)
        if parsed is None:
            return ReplyScore(None, False, "none")
        if self.kind == "identifier":
            gold = _normalize_identifier(target, self.field) or target.strip()
            wanted = {gold.casefold()} | self.answers.get(term_id or "", set())
            return ReplyScore(parsed, True, "exact" if parsed.casefold() in wanted else "none")
        normal = _normalize_category if self.kind == "category" else _normalize_text
        if normal(parsed) == normal(target) or normal(parsed) in self.answers.get(term_id or "", set()):
            return ReplyScore(parsed, True, "exact")
        if self.kind == "category":
            return ReplyScore(parsed, True, "none")
        if self.field == "symbol" and self.ontology is not None:
            alt = self.ontology.resolve_symbol(parsed) == target
        else:
            alt = _normalize_text(parsed) in self.synonyms.get(term_id or "", set())
        return ReplyScore(parsed, True, "alt" if alt else "none")


def _echoes(parsed: str | None, source: str) -> bool:
    """Whether a parsed reply is the item's source again (case and whitespace aside)."""
    return parsed is not None and _normalize_text(parsed) == _normalize_text(str(source))


def score_reply(
    reply: str,
    target: str,
    *,
    field: str,
    ontology: Any = None,
    term_id: str | None = None,
    source: str | None = None,
) -> ReplyScore:
    """Parse ``reply`` and score it against ``target`` (the design's exact-match rules).

    Ids match exactly after CURIE normalization; cross-references (NCBI Gene, UniProt, Ensembl, MGI) exactly
    in their upstream form after normalization; symbols and names case-insensitively after whitespace
    normalization (HGNC symbols are unique regardless of case); categories exactly up to case and ``_``. With an
    ``ontology`` and ``term_id``, any value of a multi-valued target field (another UniProt accession, exact
    synonym or alias of the term) is an exact match. With an ``ontology``, an alternative id, a previous or
    alias symbol, or (names, given ``term_id``) a synonym of the target counts as correct with
    ``match_kind="alt"``, and ids that exist nowhere in it are flagged ``hallucinated``. An alternative that is
    the item's own ``source`` repeated (a previous symbol given back for its approved symbol) is no answer.

    Parameters
    ----------
    reply : str
    target : str
        The gold answer, normalized as the task makes it.
    field : str
        The target field (a key of :data:`MAX_NEW_TOKENS`).
    ontology : Ontology, optional
    term_id : str, optional
        The target term's id (for synonyms and multi-valued targets).
    source : str, optional
        The item's source text: an alternative match equal to it is scored ``"none"``.

    Returns
    -------
    ReplyScore

    Examples
    --------
    >>> score = score_reply("tp53", "TP53", field="symbol")
    >>> score.correct, score.match_kind  # symbols compare case-insensitively
    (True, 'exact')
    """
    if field not in MAX_NEW_TOKENS:
        raise TrainingError(f"`field` must be one of {', '.join(MAX_NEW_TOKENS)}, got {field!r}")
    return _Scorer(ontology, field).score(reply, target, term_id, source)


def outcome_category(baseline_correct: bool, tuned_correct: bool) -> str:
    """The paper's per-item category: ``gained``, ``lost``, ``correct both`` or ``incorrect both``.

    Examples
    --------
    >>> outcome_category(False, True), outcome_category(True, False), outcome_category(True, True)
    ('gained', 'lost', 'correct both')
    """
    if baseline_correct and tuned_correct:
        return "correct both"
    if tuned_correct:
        return "gained"
    if baseline_correct:
        return "lost"
    return "incorrect both"
