"""Errors and warnings raised by lexprobe.

Every error is a :class:`LexprobeError` and also the matching built-in, so callers can catch either
(``except ValueError`` keeps working). The CLI turns any :class:`LexprobeError` into one line on stderr and a
non-zero exit; anything else is a bug. :func:`did_you_mean` is the hint a message gives for a mistyped name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "LexprobeError",
    "OntologyError",
    "DataFormatError",
    "TaskError",
    "ModelError",
    "EmbeddingError",
    "AlignmentError",
    "LexicalizationError",
    "ResourceError",
    "NetworkError",
    "TrainingError",
    "ReportError",
    "PredictionError",
    "StudyError",
    "OutputError",
    "CacheError",
    "LexprobeWarning",
    "did_you_mean",
]


class LexprobeError(Exception):
    """Base class of every error lexprobe raises on purpose."""


class OntologyError(LexprobeError, ValueError):
    """An ontology name, file or table is unknown, missing or unusable."""


class DataFormatError(OntologyError):
    """A data file is malformed (bad OBO syntax, missing TSV columns, duplicate ids)."""


class TaskError(LexprobeError, ValueError):
    """A mapping task or split cannot be built as asked (unknown field, too few terms)."""


class ModelError(LexprobeError, ValueError):
    """A model cannot be found or loaded."""


class EmbeddingError(LexprobeError, ValueError):
    """Hidden-state extraction was asked for something impossible (bad layer, empty field)."""


class AlignmentError(LexprobeError, ValueError):
    """Alignment inputs are invalid (shapes, k out of range, non-finite values)."""


class LexicalizationError(LexprobeError, ValueError):
    """Invalid lexicalization inputs: fields, sample size, layer, or a probe with too few categories."""


class ResourceError(LexprobeError, MemoryError):
    """The machine ran out of a resource (memory) and the operation cannot continue."""


class NetworkError(LexprobeError, ConnectionError):
    """A download was needed and the network could not be reached."""


class TrainingError(LexprobeError, ValueError):
    """Fine-tuning or its evaluation cannot run as asked (no adapter, empty split, weights that did not move)."""


class PredictionError(LexprobeError, ValueError):
    """Correlation or prediction cannot run as asked (a run without outcomes, no calibration, too few tasks)."""


class ReportError(LexprobeError, ValueError):
    """A report or one of its figures cannot be made (a missing directory, one that holds no run, bad tables)."""


class StudyError(LexprobeError, ValueError):
    """A study cannot run as asked (an unknown size or stage, an ontology without the tasks asked for)."""


class OutputError(LexprobeError, OSError):
    """An output path cannot be written (a file in the way, a read-only or full file system, no permission)."""


class CacheError(LexprobeError, ValueError):
    """A cache listing or clearing was asked for something impossible (an unknown kind, a bad age)."""


class LexprobeWarning(UserWarning):
    """Something worked but deserves the user's attention."""


def did_you_mean(value: object, known: Iterable[str]) -> str:
    """The hint for a mistyped name: ``" (did you mean 'hgnc'?)"`` for the known name closest to ``value``, or
    ``""`` when none is close. Case is ignored; the one known name that ``value`` begins (``alias`` ->
    ``alias_symbol``) comes first, else the closest by ``difflib.get_close_matches`` at its default cutoff (0.6).

    >>> did_you_mean("hgcn", ["go", "hgnc", "hpo"])
    " (did you mean 'hgnc'?)"
    """
    names = {str(name).lower(): str(name) for name in known}
    text = str(value).strip().lower()
    starting = [name for name in names if text and name.startswith(text) and name != text]
    close = starting if len(starting) == 1 else difflib.get_close_matches(text, list(names), n=1)
    return f" (did you mean {names[close[0]]!r}?)" if close else ""
