"""Bundled ontology snapshots (this folder installs as ``lexprobe.data`` so wheels carry them)."""
