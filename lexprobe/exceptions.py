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
    """Base class of every error lexprobe raises on purpose.

    Examples
    --------
    >>> from lexprobe.align import mutual_knn
    >>> try:
    ...     mutual_knn([[0.0, 1.0]] * 3, [[1.0, 0.0]] * 3)
    ... except LexprobeError as err:  # an AlignmentError, and a ValueError too
    ...     print(f"{type(err).__name__}: {err}")
    AlignmentError: `X` has 3 rows; at least 4 are needed
    """


class OntologyError(LexprobeError, ValueError):
    """An ontology name, file or table is unknown, missing or unusable.

    Examples
    --------
    >>> err = OntologyError("unknown ontology 'hgcn'")
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class DataFormatError(OntologyError):
    """A data file is malformed (bad OBO syntax, missing TSV columns, duplicate ids).

    Examples
    --------
    >>> err = DataFormatError("terms.tsv: missing column 'label'")
    >>> isinstance(err, LexprobeError), isinstance(err, OntologyError)
    (True, True)
    """


class TaskError(LexprobeError, ValueError):
    """A mapping task or split cannot be built as asked (unknown field, too few terms).

    Examples
    --------
    >>> err = TaskError("unknown field 'nam'")
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class ModelError(LexprobeError, ValueError):
    """A model cannot be found or loaded.

    Examples
    --------
    >>> err = ModelError("cannot load model 'smollm'")
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class EmbeddingError(LexprobeError, ValueError):
    """Hidden-state extraction was asked for something impossible (bad layer, empty field).

    Examples
    --------
    >>> err = EmbeddingError('layer 40 is out of range')
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class AlignmentError(LexprobeError, ValueError):
    """Alignment inputs are invalid (shapes, k out of range, non-finite values).

    Examples
    --------
    >>> err = AlignmentError('`X` has 3 rows; at least 4 are needed')
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class LexicalizationError(LexprobeError, ValueError):
    """Invalid lexicalization inputs: fields, sample size, layer, or a probe with too few categories.

    Examples
    --------
    >>> err = LexicalizationError('the probe needs two categories')
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class ResourceError(LexprobeError, MemoryError):
    """The machine ran out of a resource (memory) and the operation cannot continue.

    Examples
    --------
    >>> err = ResourceError('out of memory at batch size 1')
    >>> isinstance(err, LexprobeError), isinstance(err, MemoryError)
    (True, True)
    """


class NetworkError(LexprobeError, ConnectionError):
    """A download was needed and the network could not be reached.

    Examples
    --------
    >>> err = NetworkError('cannot reach the HGNC server')
    >>> isinstance(err, LexprobeError), isinstance(err, ConnectionError)
    (True, True)
    """


class TrainingError(LexprobeError, ValueError):
    """Fine-tuning or its evaluation cannot run as asked (no adapter, empty split, weights that did not move).

    Examples
    --------
    >>> err = TrainingError('the LoRA weights did not change')
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class PredictionError(LexprobeError, ValueError):
    """Correlation or prediction cannot run as asked (a run without outcomes, no calibration, too few tasks).

    Examples
    --------
    >>> err = PredictionError('no calibration runs')
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class ReportError(LexprobeError, ValueError):
    """A report or one of its figures cannot be made (a missing directory, one that holds no run, bad tables).

    Examples
    --------
    >>> err = ReportError('the folder holds no run')
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class StudyError(LexprobeError, ValueError):
    """A study cannot run as asked (an unknown size or stage, an ontology without the tasks asked for).

    Examples
    --------
    >>> err = StudyError("unknown size 'huge'")
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class OutputError(LexprobeError, OSError):
    """An output path cannot be written (a file in the way, a read-only or full file system, no permission).

    Examples
    --------
    >>> err = OutputError('--out is a file')
    >>> isinstance(err, LexprobeError), isinstance(err, OSError)
    (True, True)
    """


class CacheError(LexprobeError, ValueError):
    """A cache listing or clearing was asked for something impossible (an unknown kind, a bad age).

    Examples
    --------
    >>> err = CacheError("unknown kind 'models2'")
    >>> isinstance(err, LexprobeError), isinstance(err, ValueError)
    (True, True)
    """


class LexprobeWarning(UserWarning):
    """Something worked but deserves the user's attention.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("3 of 200 items were cut at --max-length", LexprobeWarning)
    >>> caught[0].category.__name__, str(caught[0].message)
    ('LexprobeWarning', '3 of 200 items were cut at --max-length')
    """


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
