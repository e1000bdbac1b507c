"""Training data: the run's split, prompts as the model sees them, tokenized examples, the collator."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lexprobe.exceptions import TrainingError
from lexprobe.runs import atomic_path
from lexprobe.tasks import make_split
from lexprobe.train._config import SPLITS, TrainConfig

_SPLIT_COLUMNS = ("source", "target", "id", "popularity", "bin")
_IGNORE = -100


def _read_split_dir(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = []
    for name in SPLITS:
        path = directory / f"{name}.csv"
        if not path.is_file():
            raise TrainingError(f"split directory {str(directory)!r} has no {name}.csv; make it with `lexprobe split`")
        frame = pd.read_csv(path, dtype={"source": str, "target": str, "id": str})
        missing = [c for c in _SPLIT_COLUMNS if c not in frame.columns]
        if missing:
            raise TrainingError(f"{path} lacks columns {missing}; expected {list(_SPLIT_COLUMNS)}")
        frames.append(frame[list(_SPLIT_COLUMNS)])
    train, withheld = frames
    if train.empty:
        raise TrainingError(f"{directory / 'train.csv'} has no pairs; nothing to train on")
    return train, withheld


def _check_split_task(directory: Path, config: TrainConfig) -> None:
    """A `lexprobe split` directory records its task; training another task on it would score nonsense."""
    try:
        made = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))["config"]["task"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # a hand-made split without a manifest: trust it
    if made != config.task:
        raise TrainingError(
            f"split directory {str(directory)!r} holds a {made!r} split, not {config.task!r}; pass --task {made} "
            "or another --split"
        )


def _prepare_split(run_dir: Path, config: TrainConfig, split_dir: Path | None, *, write: bool) -> dict[str, Any]:
    """Load the run's split (its own copy, a given directory, or a new one) and, if ``write``, store it."""
    own = run_dir / "split"
    ontology_info: dict[str, Any] = {}
    if (own / "train.csv").is_file() and (own / "withheld.csv").is_file():
        train, withheld = _read_split_dir(own)
        source = str(own)
        # a resumed run keeps the provenance its first start recorded (the data its split was drawn from)
        try:
            started = json.loads((run_dir / "train_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            started = {}
        recorded = started.get("ontology") if isinstance(started, dict) else None
        ontology_info = dict(recorded) if isinstance(recorded, dict) else {}
    elif split_dir is not None:
        train, withheld = _read_split_dir(Path(split_dir))
        source = str(split_dir)
        _check_split_task(Path(split_dir), config)
    else:
        from lexprobe.ontology import load_ontology

        ont = load_ontology(config.ontology)
        split = make_split(
            ont,
            config.task,
            bins=config.bins,
            per_bin=config.per_bin,
            popularity=config.popularity,
            seed=config.seed,
            categories=config.categories,
        )
        train, withheld = split.train, split.withheld
        source = "make_split"
        ontology_info = {"source": ont.source, "release": ont.release, "data_checksum": ont.checksum}
    if write and source != str(own):
        for name, frame in (("train", train), ("withheld", withheld)):
            with atomic_path(own / f"{name}.csv") as tmp:
                frame.to_csv(tmp, index=False)
    return {"train": train, "withheld": withheld, "from": source, "ontology": ontology_info}


def format_prompt(tokenizer: Any, text: str) -> str:
    """The prompt string as the model sees it: a chat user turn when the tokenizer has a chat template.

    Without one (a base model) the prompt is the text itself, with no trailing space: the answer's first
    token then carries its own leading space (``"▁BRCA"``), as the symbol would in running text, instead of
    a lone space token followed by a word split as if it began a line.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> format_prompt(SimpleNamespace(chat_template=None), "Symbol of insulin: ")  # a base model's tokenizer
    'Symbol of insulin:'
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    return text.rstrip()


def _encode_prompt(tokenizer: Any, text: str) -> list[int]:
    chat = bool(getattr(tokenizer, "chat_template", None))
    # a chat template writes its own special tokens; a plain prompt gets the tokenizer's (e.g. BOS)
    return list(tokenizer(format_prompt(tokenizer, text), add_special_tokens=not chat)["input_ids"])


def encode_completion(tokenizer: Any, text: str, prompt: list[int], target: str) -> list[int]:
    """The target's tokens as they follow the prompt.

    After a chat turn the answer starts a new message, so it is tokenized alone. After a plain prompt it
    follows a space: the tokens are those of ``prompt + " " + target`` past the prompt's, so that the split
    is the one the model would read (falling back to ``" " + target`` alone if the prompt's tokens change).

    Examples
    --------
    A stand-in tokenizer with one id per character (a real one comes from :func:`lexprobe.models.load_model`):

    >>> class Chars:
    ...     chat_template = None
    ...     def __call__(self, text, add_special_tokens=True):
    ...         return {"input_ids": [ord(c) for c in text]}
    >>> prompt = [ord(c) for c in "Symbol of insulin?"]
    >>> "".join(map(chr, encode_completion(Chars(), "Symbol of insulin?", prompt, "INS")))  # after a space
    ' INS'
    """
    if getattr(tokenizer, "chat_template", None):
        return list(tokenizer(target, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(format_prompt(tokenizer, text) + " " + target, add_special_tokens=True)["input_ids"])
    if full[: len(prompt)] == prompt and len(full) > len(prompt):
        return full[len(prompt) :]
    return list(tokenizer(" " + target, add_special_tokens=False)["input_ids"])


def build_examples(pairs: pd.DataFrame, templates: Sequence[Any], tokenizer: Any) -> list[dict[str, list[int]]]:
    """Tokenized training examples: each pair under each template, loss on the completion and EOS only.

    Parameters
    ----------
    pairs : pandas.DataFrame
        Columns ``source`` and ``target``.
    templates : sequence of PromptTemplate
    tokenizer : transformers tokenizer

    Returns
    -------
    list of dict
        ``input_ids``, ``labels`` (-100 on prompt positions) and ``attention_mask``, one per
        (pair, template), pair-major.

    Raises
    ------
    TrainingError
        If the tokenizer has no EOS token.

    Examples
    --------
    Two pairs under two prompt paraphrases, with a stand-in tokenizer (one id per character, EOS 0):

    >>> from lexprobe.tasks import prompt_templates
    >>> class Chars:
    ...     chat_template, eos_token_id = None, 0
    ...     def __call__(self, text, add_special_tokens=True):
    ...         return {"input_ids": [ord(c) for c in text]}
    >>> pairs = pd.DataFrame({"source": ["insulin", "albumin"], "target": ["INS", "ALB"]})
    >>> examples = build_examples(pairs, prompt_templates("hgnc", "name-to-symbol", 2), Chars())
    >>> len(examples)
    4
    >>> [[chr(i) if i else "<eos>" for i in ex["labels"] if i != -100] for ex in examples[:2]]  # what is learned
    [[' ', 'I', 'N', 'S', '<eos>'], [' ', 'I', 'N', 'S', '<eos>']]
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TrainingError("the tokenizer has no EOS token; the model cannot learn where an answer ends")
    examples = []
    for source, target in zip(pairs["source"].astype(str), pairs["target"].astype(str)):
        for template in templates:
            text = template.render(source)
            prompt = _encode_prompt(tokenizer, text)
            completion = encode_completion(tokenizer, text, prompt, target) + [eos]
            examples.append(
                {
                    "input_ids": prompt + completion,
                    "labels": [_IGNORE] * len(prompt) + completion,
                    "attention_mask": [1] * (len(prompt) + len(completion)),
                }
            )
    return examples


def completion_collator(tokenizer: Any, model: Any = None) -> Any:
    """The batch collator of training: transformers' ``DataCollatorForSeq2Seq``, padding on the right.

    ``input_ids`` are padded with the tokenizer's pad token and ``attention_mask`` with 0 (``tokenizer.pad``),
    ``labels`` with -100, so padding is never learned while the real EOS, the same id when pad == eos, is.
    The right side is forced on a shallow copy of the tokenizer (the tokenizer itself is left as it is: Gemma's
    pads on the left by default, and generation pads on the left): training reads positions from the start.

    Given the ``model`` to train, and when it can (:func:`scores_labelled_positions_only`), each batch also
    carries ``logits_to_keep`` (the positions whose next token is learned in some row of the batch) and
    ``shift_labels`` (the next-token labels at those positions): the model then projects onto its vocabulary
    only where a label is scored, instead of at every prompt position too. The loss and every gradient are
    those of the full projection (the positions left out carry label -100 and add nothing); the saving is the
    output layer's share of the step, largest for large vocabularies (Gemma's 262,144 tokens).

    Raises
    ------
    TrainingError
        If the tokenizer has no pad token.

    Examples
    --------
    A tokenizer without a pad token is refused before anything is imported (:func:`~lexprobe.models.load_model`
    sets it to EOS):

    >>> from types import SimpleNamespace
    >>> completion_collator(SimpleNamespace(pad_token_id=None))
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.TrainingError: the tokenizer has no pad token; set tokenizer.pad_token (...)
    """
    if tokenizer.pad_token_id is None:
        raise TrainingError("the tokenizer has no pad token; set tokenizer.pad_token (load_model sets it to EOS)")
    import copy

    from transformers import DataCollatorForSeq2Seq

    right = copy.copy(tokenizer)
    right.padding_side = "right"
    collate = DataCollatorForSeq2Seq(right, padding=True, label_pad_token_id=_IGNORE, return_tensors="pt")
    if model is None or not scores_labelled_positions_only(model):
        return collate
    return _LabelledPositions(collate)


def scores_labelled_positions_only(model: Any) -> bool:
    """Whether training ``model`` may compute its logits at the labelled positions only: its forward takes
    ``logits_to_keep`` (transformers' causal LMs do), its loss takes ``shift_labels`` (transformers'
    ``ForCausalLMLoss``), and it sits on one device (spread over several by ``device_map``, the index would
    have to follow the hidden states from device to device).

    Examples
    --------
    >>> class Causal:  # forward and loss as transformers' causal LMs define them
    ...     def forward(self, input_ids, logits_to_keep=0): ...
    ...     def loss_function(self, logits, labels, shift_labels=None): ...
    >>> class Older:  # a forward that computes logits at every position
    ...     def forward(self, input_ids): ...
    ...     def loss_function(self, logits, labels): ...
    >>> scores_labelled_positions_only(Causal()), scores_labelled_positions_only(Older())
    (True, False)
    """
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        takes_keep = "logits_to_keep" in inspect.signature(type(base).forward).parameters
        loss = getattr(base, "loss_function", None)
        takes_shift = loss is not None and "shift_labels" in inspect.signature(loss).parameters
    except (TypeError, ValueError):
        return False
    devices = set((getattr(base, "hf_device_map", None) or {}).values())
    return takes_keep and takes_shift and len(devices) <= 1


class _LabelledPositions:
    """Adds ``logits_to_keep`` and ``shift_labels`` to the batches of a right-padding collator."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.collate(features)
        labels = batch["labels"]
        shift = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=_IGNORE)
        keep = torch.nonzero((shift != _IGNORE).any(dim=0)).flatten()
        batch["logits_to_keep"] = keep
        batch["shift_labels"] = shift[:, keep].contiguous()
        return batch
