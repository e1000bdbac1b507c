"""Errors and warnings raised by lexprobe.

Every error is a :class:`LexprobeError` and also the matching built-in, so callers can catch either
(``except ValueError`` keeps working). The CLI turns any :class:`LexprobeError` into one line on stderr and a
non-zero exit; anything else is a bug.
"""

from __future__ import annotations

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
