"""What the CLI tests share: the check that bad input is one `error:` line and no traceback."""

from __future__ import annotations

import re

#: A progress or info log line, as a command writes them on stderr when it is not on a terminal.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|DEBUG) ")


def content_lines(output: str) -> list[str]:
    """The non-blank lines of ``output`` other than timestamped INFO/DEBUG log lines (progress)."""
    return [line for line in output.splitlines() if line.strip() and not LOG_LINE.match(line)]


def one_error_line(output: str) -> str:
    """The single non-blank line of ``output`` besides progress log lines, which must start with ``error:``
    (and no traceback)."""
    lines = content_lines(output)
    assert len(lines) == 1, output
    assert lines[0].startswith("error:") and "Traceback" not in output
    return lines[0]
