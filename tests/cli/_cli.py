"""What the CLI tests share: the check that bad input is one `error:` line and no traceback."""

from __future__ import annotations


def one_error_line(output: str) -> str:
    """The single non-blank line of ``output``, which must start with ``error:`` (and no traceback)."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error:") and "Traceback" not in output
    return lines[0]
