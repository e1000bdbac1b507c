"""Shared test set-up: offline, seeded, with the model cache kept between runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests never reach a model hub; the converted default model is cached between runs in the project.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LEXPROBE_CACHE", str(ROOT / ".cache" / "lexprobe"))


@pytest.fixture(autouse=True)
def _logging_as_before():
    """A CLI command configures logging for its process (`cli/_progress.setup_logging`); in the test process
    that would outlive the command, so each test leaves the logging configuration as it found it."""
    import logging

    root, ours = logging.getLogger(), logging.getLogger("lexprobe")
    handlers, levels = list(root.handlers), (root.level, ours.level)
    verbosity = os.environ.get("TRANSFORMERS_VERBOSITY")
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(levels[0])
    ours.setLevel(levels[1])
    if verbosity is None:
        os.environ.pop("TRANSFORMERS_VERBOSITY", None)
    else:
        os.environ["TRANSFORMERS_VERBOSITY"] = verbosity


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The upstream snapshots in ``../shared/data`` (present on developer machines and CI)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
