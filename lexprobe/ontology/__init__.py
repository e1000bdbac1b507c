"""Ontologies as term tables with popularity: built-in snapshots, OBO (pronto), HGNC TSV, generic tables.

Every source becomes one :class:`Ontology` whose ``terms`` table has the columns of
:data:`TERM_COLUMNS` (id, label, symbol, synonyms, alt_ids, obsolete, replaced_by, previous_symbols,
alias_symbols, namespace, category, exact_synonyms, ncbi_gene_id, uniprot_ids, ensembl_gene_id, mgi_ids,
definition, parents, umls_ids, snomed_ids, enzyme_ids, rgd_ids)
followed by ``pop_*`` popularity columns named for their source.
"""

from __future__ import annotations

from lexprobe.ontology._curie import CURIE_CONVERTER, PREFIX_PADDING, normalize_curie
from lexprobe.ontology._fetch import MIRROR_ENV, UPSTREAM_URLS, fetch_ontology
from lexprobe.ontology._generic import read_snapshot, write_snapshot
from lexprobe.ontology._load import (
    LOADER_VERSION,
    BuiltinInfo,
    builtin_ontologies,
    data_dir,
    earlier_checksums,
    load_ontology,
)
from lexprobe.ontology._table import LIST_COLUMNS, TERM_COLUMNS, Ontology

__all__ = [
    "BuiltinInfo",
    "CURIE_CONVERTER",
    "LIST_COLUMNS",
    "LOADER_VERSION",
    "MIRROR_ENV",
    "Ontology",
    "PREFIX_PADDING",
    "TERM_COLUMNS",
    "UPSTREAM_URLS",
    "builtin_ontologies",
    "data_dir",
    "earlier_checksums",
    "fetch_ontology",
    "load_ontology",
    "normalize_curie",
    "read_snapshot",
    "write_snapshot",
]
