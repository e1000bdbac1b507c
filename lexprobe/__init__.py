"""lexprobe: will fine-tuning an LLM on term-to-identifier mapping generalize, or only memorize?

Built on arXiv 2510.19036 ("From Memorization to Generalization: Fine-Tuning LLMs for Biomedical
Term-to-Identifier Normalization"). The library never prints or exits; the CLI lives in ``lexprobe.cli``.
"""

from __future__ import annotations

from lexprobe.exceptions import (
    AlignmentError,
    DataFormatError,
    EmbeddingError,
    LexprobeError,
    LexprobeWarning,
    ModelError,
    NetworkError,
    OntologyError,
    PredictionError,
    ReportError,
    ResourceError,
    StudyError,
    TaskError,
    TrainingError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AlignmentError",
    "DataFormatError",
    "EmbeddingError",
    "LexprobeError",
    "LexprobeWarning",
    "ModelError",
    "NetworkError",
    "OntologyError",
    "PredictionError",
    "ReportError",
    "ResourceError",
    "StudyError",
    "TaskError",
    "TrainingError",
]
