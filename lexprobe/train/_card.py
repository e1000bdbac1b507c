"""What a saved adapter says about itself: the base it loads against (``adapter_config.json``) and a model card."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import lexprobe
from lexprobe.runs import atomic_write_text
from lexprobe.train._config import TrainConfig


@dataclasses.dataclass(frozen=True)
class AdapterBase:
    """The base model an adapter names, so that ``PeftModel.from_pretrained`` can be pointed at it anywhere.

    Attributes
    ----------
    name_or_path : str
        The base's Hugging Face id for named and hub models (``HuggingFaceTB/SmolLM2-135M-Instruct``); for a local
        directory or GGUF file, the path as given, or relative to the run folder when the model lies inside it.
    revision : str or None
        The hub commit a hub model was trained at (peft's ``revision``: ``AutoPeftModel`` loads the base there).
    record : dict
        The base model's :meth:`lexprobe.models.LoadedModel.describe`, for the card.
    """

    name_or_path: str
    revision: str | None
    record: dict[str, Any]

    @classmethod
    def of(cls, lm: Any, run_dir: str | os.PathLike[str]) -> AdapterBase:
        """The base of adapters trained on the loaded model ``lm`` in ``run_dir``."""
        record = lm.describe(run_dir=run_dir)
        return cls(name_or_path=record["hf_id"] or record["source"], revision=record["revision"], record=record)


def model_card(
    base: AdapterBase,
    config: TrainConfig,
    *,
    n_train: int,
    example: tuple[str, str] | None = None,
    snapshot: float | None = None,
) -> str:
    """The ``README.md`` saved beside an adapter: the base (id, revision or checksum), the task, how to load it.

    Parameters
    ----------
    base : AdapterBase
    config : TrainConfig
        The run's (resolved) configuration.
    n_train : int
        Train pairs.
    example : (prompt, answer), optional
        One training prompt as the first template renders it, and its answer.
    snapshot : float, optional
        For a learning-curve snapshot: the exposures per pair it was saved at.
    """
    from huggingface_hub import ModelCard, ModelCardData

    record = base.record
    data = ModelCardData(
        base_model=base.name_or_path if record["hf_id"] else None,
        library_name="peft",
        pipeline_tag="text-generation",
        tags=["lora", "lexprobe", config.ontology, config.task],
    )
    budget = f"{config.exposures:g} exposures per pair" if config.exposures is not None else "see manifest.json"
    if snapshot is not None:
        budget = f"snapshot at {snapshot:g} exposures per pair (of {budget})"
    lines = [
        f"# LoRA adapter: {config.ontology} {config.task} on {base.name_or_path}",
        "",
        f"Made by `lexprobe train` (lexprobe {getattr(lexprobe, '__version__', 'unknown')}): a LoRA adapter that "
        f"maps {config.ontology} terms as the task `{config.task}` asks, trained on {n_train} pairs of a "
        "popularity-balanced split, to measure memorization (trained pairs) against generalization (withheld "
        "pairs). The run folder's `manifest.json` and `train_config.json` record everything else.",
        "",
        "## Base model",
        "",
        *_base_lines(base),
        "",
        "## Task and training",
        "",
        f"- ontology `{config.ontology}`, task `{config.task}`, {config.templates} prompt paraphrase(s), {budget}",
        f"- LoRA r={config.lora_r}, alpha={config.lora_alpha}, dropout={config.lora_dropout:g}, "
        f"target modules {_modules(config.target_modules)}; AdamW lr={config.lr:g}, {config.lr_scheduler} schedule, "
        f"batch {config.batch_size} x {config.grad_accum}, seed {config.seed}, {config.dtype}"
        + (", base in 4-bit NF4 (QLoRA)" if config.load_in_4bit else ""),
        "- loss on the answer and EOS only; the prompt goes through the tokenizer's chat template as a user turn "
        "where the tokenizer has one",
    ]
    if example is not None:
        lines += ["", "One training example (prompt, then answer):", "", "```text", example[0], "", example[1], "```"]
    lines += ["", "## How to load it", "", *_loading(base, config)]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def _base_lines(base: AdapterBase) -> list[str]:
    record = base.record
    if record["origin"]:  # a named model: trained on a GGUF file's dequantized weights
        return [
            f"- Hugging Face id: `{record['hf_id']}`",
            f"- trained on its GGUF conversion `{record['source']}` (SHA-256 `{record['checksum']}`), dequantized "
            f"to float32 by lexprobe; the file was published at {record['origin']}",
            "- the adapter also loads on the hub id's own (unquantized) weights, a base that differs from the one it "
            "was trained on by the GGUF's quantization; `lexprobe.models.load_model` gives the exact base",
        ]
    if record["hf_id"]:
        return [f"- Hugging Face id: `{record['hf_id']}`", f"- revision (hub commit): `{record['revision']}`"]
    return [
        f"- a local model: `{record['source']}` (not on the hub; digest `{record['checksum']}`)",
        "- `adapter_config.json` names this path as its base: load the same model files to use the adapter",
    ]


def _modules(target: str | tuple[str, ...]) -> str:
    return f"`{target}`" if isinstance(target, str) else ", ".join(f"`{t}`" for t in target)


def _loading(base: AdapterBase, config: TrainConfig) -> list[str]:
    revision = f', revision="{base.revision}"' if base.revision else ""
    lines = [
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'base = AutoModelForCausalLM.from_pretrained("{base.name_or_path}"{revision})',
        f'tokenizer = AutoTokenizer.from_pretrained("{base.name_or_path}"{revision})',
        'model = PeftModel.from_pretrained(base, "path/to/this/adapter")',
        "```",
    ]
    if base.record["origin"]:
        lines += [
            "",
            "The exact base this adapter was trained on, with lexprobe:",
            "",
            "```python",
            "from lexprobe.models import load_model",
            "",
            f'lm = load_model("{base.record["name"]}", head=True)',
            'model = PeftModel.from_pretrained(lm.model, "path/to/this/adapter")',
            "```",
        ]
    if config.load_in_4bit:
        lines += ["", "It was trained on the base in 4-bit NF4; it also loads on the base in 16 or 32 bits."]
    return lines


def write_model_card(folder: Path, text: str) -> Path:
    """Write ``text`` as ``folder/README.md`` (replacing the stub peft writes), atomically."""
    return atomic_write_text(folder / "README.md", text)
