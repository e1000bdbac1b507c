"""CURIE normalization: every identifier lexprobe handles is a ``PREFIX:LOCAL`` string, never an int."""

from __future__ import annotations

import re

import curies

from lexprobe.exceptions import OntologyError

__all__ = ["normalize_curie", "PREFIX_PADDING", "CURIE_CONVERTER"]

#: Zero-padding of the local part by prefix (``None``: keep as is, e.g. HGNC ids are unpadded).
PREFIX_PADDING: dict[str, int | None] = {"HP": 7, "GO": 7, "HGNC": None, "MONDO": 7, "CHEBI": None}

_LOCAL_RE = re.compile(r"\w+")
# an OBO PURL of a prefix the converter does not know: http://purl.obolibrary.org/obo/UBERON_0000948
_PURL_RE = re.compile(r"^https?://purl\.obolibrary\.org/obo/([A-Za-z][A-Za-z0-9]*)_(\w+)$", re.IGNORECASE)
_CURIE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9.]*)([:_])(\w+)$")


class _PaddingConverter(curies.Converter):
    """A converter whose identifiers are checked (``\\w+``) and zero-padded as :data:`PREFIX_PADDING` says."""

    def standardize_identifier(self, standard_prefix: str, identifier: str, *, strict: bool = False) -> str | None:
        if not _LOCAL_RE.fullmatch(identifier):
            if strict:
                raise curies.IdentifierStandardizationError(identifier)
            return None
        if identifier.isascii() and identifier.isdigit():
            width = PREFIX_PADDING.get(standard_prefix)
            return str(int(identifier)).zfill(width) if width else str(int(identifier))
        return identifier


def _record(prefix: str) -> curies.Record:
    # URI prefix synonyms are lower case: IRIs are looked up lower-cased (scheme and host are case-insensitive,
    # and the old forms `hp_`, `HGNC` in a path were accepted in any case)
    iris = [f"{scheme}://purl.obolibrary.org/obo/{prefix}_" for scheme in ("http", "https")]
    if prefix == "HGNC":  # not an OBO ontology: identifiers.org is its IRI, the PURL form is still read
        iris = [f"{scheme}://identifiers.org/hgnc{sep}" for scheme in ("https", "http") for sep in ":/"] + iris
    synonyms = sorted({iri.lower() for iri in iris} - {iris[0]})
    return curies.Record(
        prefix=prefix, prefix_synonyms=[prefix.lower()], uri_prefix=iris[0], uri_prefix_synonyms=synonyms
    )


#: The known prefixes as a :class:`curies.Converter`: canonical prefix, its lower-case synonym, OBO PURLs (http
#: and https) and, for HGNC, identifiers.org IRIs. ``expand("HP:0001250")`` gives the OBO PURL,
#: ``expand("HGNC:5")`` ``https://identifiers.org/hgnc:5``.
CURIE_CONVERTER: curies.Converter = _PaddingConverter([_record(p) for p in PREFIX_PADDING])


def _known_iri(text: str) -> curies.ReferenceTuple | None:
    """An IRI of a known prefix, matched case-insensitively; the local part keeps its case."""
    if "://" not in text or not text.isascii():  # ASCII: lower() keeps the length, so the local part lines up
        return None
    lowered = text.lower()
    ref = CURIE_CONVERTER.parse_uri(lowered)
    if ref is None or ("//identifiers.org/" in lowered and not ref.identifier.isdigit()):  # HGNC numbers only
        return None
    local = CURIE_CONVERTER.standardize_identifier(ref.prefix, text[len(text) - len(ref.identifier) :])
    return None if local is None else curies.ReferenceTuple(ref.prefix, local)


def normalize_curie(value: str, *, prefix: str | None = None) -> str:
    """Return ``value`` as a normalized CURIE.

    Rewrites only forms it knows: the prefixes of :data:`PREFIX_PADDING` (HP, GO, HGNC, MONDO, CHEBI) in
    any case and with ``:`` or ``_`` (``HP_0001250``, ``hp:0001250``), unpadded local parts of those
    (``GO:8150`` -> ``GO:0008150``), OBO PURL IRIs (``http://purl.obolibrary.org/obo/UBERON_0000948`` ->
    ``UBERON:0000948``), identifiers.org HGNC IRIs and, when ``prefix`` is given, a bare local id (``11998``
    with ``prefix="HGNC"`` -> ``HGNC:11998``). Any other ``PREFIX:LOCAL`` CURIE is returned as given:
    ``UBERON:0000948`` and ``gene:1`` stay, and ``gene_1`` (unknown prefix, underscore) is no CURIE at all,
    so a user's own ids are never rewritten. The known prefixes and their IRIs are :data:`CURIE_CONVERTER`.

    Raises
    ------
    OntologyError
        If ``value`` is not an identifier in any of these forms.

    Examples
    --------
    >>> normalize_curie("HP_0001250"), normalize_curie("http://purl.obolibrary.org/obo/GO_8150")
    ('HP:0001250', 'GO:0008150')
    >>> normalize_curie("11998", prefix="HGNC"), normalize_curie("gene:1")
    ('HGNC:11998', 'gene:1')
    """
    text = str(value).strip()
    if prefix is not None and text.isascii() and text.isdigit():
        text = f"{prefix}:{text}"
    ref = _known_iri(text)
    if ref is not None:
        return CURIE_CONVERTER.format_curie(*ref)
    m = _PURL_RE.match(text) or _CURIE_RE.match(text)
    if m is not None:
        raw_prefix, local = m.group(1), m.group(m.lastindex)
        # curies matches prefixes case-sensitively; each known prefix has its lower-case form as a synonym
        known = CURIE_CONVERTER.parse_curie(f"{raw_prefix.lower()}:{local}")
        if known is not None:
            return CURIE_CONVERTER.format_curie(*known)
        if m.re is _PURL_RE or m.group(2) == ":":
            return f"{raw_prefix}:{local}"
    raise OntologyError(f"{value!r} is not an identifier; expected a CURIE such as HP:0001250")
