"""lexprobe's command-line interface (installed as ``lexprobe.cli``)."""
