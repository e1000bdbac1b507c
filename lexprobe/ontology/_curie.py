"""CURIE normalization: every identifier lexprobe handles is a ``PREFIX:LOCAL`` string, never an int."""

from __future__ import annotations

import re

from lexprobe.exceptions import OntologyError

__all__ = ["normalize_curie", "PREFIX_PADDING"]

#: Zero-padding of the local part by prefix (``None``: keep as is, e.g. HGNC ids are unpadded).
PREFIX_PADDING: dict[str, int | None] = {"HP": 7, "GO": 7, "HGNC": None, "MONDO": 7, "CHEBI": None}

_CANONICAL_PREFIX = {p.upper(): p for p in PREFIX_PADDING}
# an OBO PURL: http://purl.obolibrary.org/obo/HP_0001250 (the only IRI form besides identifiers.org HGNC)
_PURL_RE = re.compile(r"^https?://purl\.obolibrary\.org/obo/([A-Za-z][A-Za-z0-9]*)_(\w+)$", re.IGNORECASE)
_CURIE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9.]*)([:_])(\w+)$")
_HGNC_IRI_RE = re.compile(r"^https?://identifiers\.org/hgnc[:/](\d+)$", re.IGNORECASE)


def normalize_curie(value: str, *, prefix: str | None = None) -> str:
    """Return ``value`` as a normalized CURIE.

    Rewrites only forms it knows: the prefixes of :data:`PREFIX_PADDING` (HP, GO, HGNC, MONDO, CHEBI) in
    any case and with ``:`` or ``_`` (``HP_0001250``, ``hp:0001250``), unpadded local parts of those
    (``GO:8150`` -> ``GO:0008150``), OBO PURL IRIs (``http://purl.obolibrary.org/obo/UBERON_0000948`` ->
    ``UBERON:0000948``), identifiers.org HGNC IRIs and, when ``prefix`` is given, a bare local id (``11998``
    with ``prefix="HGNC"`` -> ``HGNC:11998``). Any other ``PREFIX:LOCAL`` CURIE is returned as given:
    ``UBERON:0000948`` and ``gene:1`` stay, and ``gene_1`` (unknown prefix, underscore) is no CURIE at all,
    so a user's own ids are never rewritten.

    Raises
    ------
    OntologyError
        If ``value`` is not an identifier in any of these forms.
    """
    text = str(value).strip()
    if prefix is not None and text.isascii() and text.isdigit():
        text = f"{prefix}:{text}"
    m = _HGNC_IRI_RE.match(text)
    if m:
        return f"HGNC:{int(m.group(1))}"
    m = _PURL_RE.match(text)
    if m is not None:
        raw_prefix, local = m.group(1), m.group(2)
    else:
        m = _CURIE_RE.match(text)
        if m is None or (m.group(2) == "_" and m.group(1).upper() not in _CANONICAL_PREFIX):
            raise OntologyError(f"{value!r} is not an identifier; expected a CURIE such as HP:0001250")
        raw_prefix, local = m.group(1), m.group(3)
    canonical = _CANONICAL_PREFIX.get(raw_prefix.upper(), raw_prefix)
    if local.isascii() and local.isdigit() and canonical in PREFIX_PADDING:
        width = PREFIX_PADDING[canonical]
        local = str(int(local)).zfill(width) if width else str(int(local))
    return f"{canonical}:{local}"
