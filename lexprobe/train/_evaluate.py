"""Evaluation: greedy replies of the baseline and the tuned model, scored, summarised and written."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import TrainingError
from lexprobe.figures import plot_accuracy_by_bin
from lexprobe.runs import atomic_path, atomic_write_json, few_shot_dir, make_manifest, write_manifest
from lexprobe.stats import paired_bootstrap_interval, wilson_interval
from lexprobe.tasks import get_task, prompt_templates
from lexprobe.train._config import SPLITS, TrainConfig, is_complete, read_train_config
from lexprobe.train._data import _encode_prompt, format_prompt
from lexprobe.train._scoring import MAX_NEW_TOKENS, _Scorer, outcome_category

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Baseline and tuned exact-match accuracy of a run, per split, bin and item.

    Attributes
    ----------
    run_dir : Path
    predictions : pandas.DataFrame
        One row per split, model and item: raw ``reply``, ``parsed``, ``well_formed``, ``hallucinated``,
        ``match_kind``, ``correct``.
    outcomes : pandas.DataFrame
        One row per item and split: baseline and tuned results side by side and the ``category``.
    summary : pandas.DataFrame
        Accuracy with a Wilson interval per split, model and popularity bin (``bin == "all"`` overall).
    gains : dict
        Per split: baseline and tuned accuracy, ``gain`` (tuned - baseline) with a paired-bootstrap interval,
        and category counts. Empty for a baseline-only evaluation.
    out_dir : Path
        Where the files were written: ``run_dir`` (zero-shot) or ``run_dir/shots-K``.
    shots : int
        Worked examples before each query (0: the training prompt alone).
    shot_pairs : list of dict
        The K train pairs (``source``, ``target``, ``id``) put before every query, then the spare one that
        takes the place of a query's own pair when the query is among them (K + 1 rows; empty when zero-shot).
    generation : dict
        ``n_replies``, ``seconds`` (generation alone) and ``items_per_second``.

    Examples
    --------
    The gains read from ``gains`` (tuned minus baseline accuracy per split):

    >>> result = EvaluationResult(Path("run"), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
    ...                           gains={"train": {"gain": 0.9}, "withheld": {"gain": 0.05}})
    >>> result.memorization_gain, result.generalization_gain
    (0.9, 0.05)
    """

    run_dir: Path
    predictions: pd.DataFrame
    outcomes: pd.DataFrame
    summary: pd.DataFrame
    gains: dict[str, dict[str, Any]]
    out_dir: Path | None = None
    shots: int = 0
    shot_pairs: list[dict[str, str]] = dataclasses.field(default_factory=list)
    generation: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return float(self.generation.get("items_per_second", float("nan")))

    @property
    def memorization_gain(self) -> float:
        return float(self.gains.get("train", {}).get("gain", float("nan")))

    @property
    def generalization_gain(self) -> float:
        return float(self.gains.get("withheld", {}).get("gain", float("nan")))


#: What ``str.splitlines`` (and so :func:`~lexprobe.train.parse_reply`'s "first non-empty line") splits on.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_FIRST_LINE_RE = re.compile(f"[{re.escape(_LINE_BREAKS)}]")
_BYTE_FALLBACK_RE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclasses.dataclass(frozen=True)
class _LineTables:
    """Per token id: its text holds a line break (``breaks``), any non-whitespace (``content``), and
    non-whitespace before its first line break (``content_first``)."""

    breaks: np.ndarray
    content: np.ndarray
    content_first: np.ndarray


_LINE_TABLES: weakref.WeakKeyDictionary[Any, _LineTables] = weakref.WeakKeyDictionary()


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the printable character that stands for each of the 256 bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    shift = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + shift)
            shift += 1
    return {chr(c): b for b, c in zip(printable, codes)}


def _token_texts(tokenizer: Any) -> list[str]:
    """The text of every token id as ``decode([id], skip_special_tokens=True)`` gives it, read off the vocabulary.

    Decoding 262k ids one at a time (Gemma) takes seconds; mapping the token strings takes a fraction: byte-level
    BPE (``"Ċ"`` is a newline, ``"Ġ"`` a space) through GPT-2's byte alphabet, SentencePiece (``"▁"`` a space,
    ``"<0x0A>"`` a byte) by its markers. Added tokens are their own text (special ones none). A vocabulary of
    neither kind is decoded id by id.
    """
    n = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
    added = {int(i): ("" if t.special else str(t.content)) for i, t in tokenizer.added_tokens_decoder.items()}
    for i in tokenizer.all_special_ids:
        added[int(i)] = ""
    plain = [(i, t) for i, t in enumerate(tokens) if i not in added and t is not None]
    decoder = _byte_decoder()
    alphabet = set(decoder)
    texts = [""] * n
    if plain and all(alphabet.issuperset(t) for _, t in plain):
        for i, t in plain:
            texts[i] = bytes(decoder[c] for c in t).decode("utf-8", errors="replace")
    elif any("▁" in t for _, t in plain):

        def byte(m: re.Match[str]) -> str:
            value = int(m.group(1), 16)
            return chr(value) if value < 0x80 else "\ufffd"

        for i, t in plain:
            texts[i] = _BYTE_FALLBACK_RE.sub(byte, t.replace("▁", " "))
    else:  # pragma: no cover - neither byte-level BPE nor SentencePiece
        return [tokenizer.decode([i], skip_special_tokens=True) for i in range(n)]
    for i, text in added.items():
        if 0 <= i < n:
            texts[i] = text
    return texts


def _tables_from_texts(texts: Sequence[str]) -> _LineTables:
    breaks = np.fromiter((_FIRST_LINE_RE.search(t) is not None for t in texts), bool, len(texts))
    content = np.fromiter((bool(t.strip()) for t in texts), bool, len(texts))
    first = np.fromiter((bool(_FIRST_LINE_RE.split(t, 1)[0].strip()) for t in texts), bool, len(texts))
    return _LineTables(breaks=breaks, content=content, content_first=first)


def _line_tables(tokenizer: Any) -> _LineTables:
    """The line-break tables of a tokenizer, computed once per tokenizer object (again if tokens were added)."""
    try:
        cached = _LINE_TABLES[tokenizer]
        if len(cached.breaks) == len(tokenizer):
            return cached
    except (KeyError, TypeError):
        pass
    tables = _tables_from_texts(_token_texts(tokenizer))
    try:
        _LINE_TABLES[tokenizer] = tables
    except TypeError:  # not weakly referenceable: recomputed next time
        pass
    return tables


def _first_line_stop(tables: _LineTables, width: int) -> Any:
    """A stopping criterion: a row is done when it emits a line break after some non-whitespace text.

    A reply that opens with blank lines (Gemma 3 base often writes ``"\\n\\nThe ..."``) goes on to its first
    non-empty line, which is all :func:`~lexprobe.train.parse_reply` reads; ``width`` is where generated
    tokens begin (every row is left-padded to it). Ids past the tokenizer's (a padded output layer) count as
    neither text nor line break.
    """
    import torch
    from transformers import StoppingCriteria

    found = {"cpu": tuple(torch.from_numpy(t) for t in (tables.breaks, tables.content, tables.content_first))}
    size = len(tables.breaks)

    class StopAfterFirstLine(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            key = str(input_ids.device)
            if key not in found:
                found[key] = tuple(t.to(input_ids.device) for t in found["cpu"])
            breaks, content, first = found[key]
            generated = input_ids[:, width:]
            known = generated < size
            generated = torch.where(known, generated, 0)
            text = content[generated] & known
            last, last_known = generated[:, -1], known[:, -1]
            return breaks[last] & last_known & (text[:, :-1].any(dim=1) | first[last])

    return StopAfterFirstLine()


def generate_replies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 32,
    stop_at_newline: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy replies to ``prompts`` (formatted as in training), batched with left padding.

    Prompts are sorted by length so batches carry little padding; the replies come back in input order.
    With ``stop_at_newline`` a reply ends at EOS or at the first line break after some non-whitespace text
    (the scorer reads the first non-empty line only), so a model that would ramble on stops early.

    Examples
    --------
    A one-layer Llama with random weights and a word-level tokenizer of nine words, built offline (a real pair
    comes from :func:`lexprobe.models.load_model`): its replies are nonsense, the batching and decoding are real.

    >>> import torch
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    >>> words = ["<pad>", "<eos>", "<unk>", "symbol", "of", "insulin", "INS", "albumin", "ALB"]
    >>> backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    >>> backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    >>> tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")
    >>> _ = torch.manual_seed(0)
    >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32,
    ...                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
    ...                                      pad_token_id=0, eos_token_id=1)).eval()
    >>> generate_replies(model, tokenizer, ["symbol of insulin", "symbol of albumin"], max_new_tokens=3)
    ['of INS INS', 'albumin albumin albumin']
    """
    encoded = [_encode_prompt(tokenizer, p) for p in prompts]
    return _generate(
        model,
        tokenizer,
        encoded,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop_at_newline=stop_at_newline,
        progress=progress,
    )


def _generate(
    model: Any,
    tokenizer: Any,
    encoded: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int,
    stop_at_newline: bool,
    progress: Callable[[int], None] | None,
) -> list[str]:
    import torch
    from transformers import GenerationConfig, StoppingCriteriaList

    order = np.argsort([len(e) for e in encoded], kind="stable")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    generation = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id
    )
    tables = _line_tables(tokenizer) if stop_at_newline else None
    device = next(model.parameters()).device
    replies: list[str] = [""] * len(encoded)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    hook = head.register_forward_pre_hook(_contiguous_input) if isinstance(head, torch.nn.Module) else None
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(encoded[i])
                input_ids[row, width - n :] = torch.tensor(list(encoded[i]), dtype=torch.long)
                attention[row, width - n :] = 1
            stops = StoppingCriteriaList([_first_line_stop(tables, width)] if tables is not None else [])
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    generation_config=generation,
                    stopping_criteria=stops,
                )
            for row, i in enumerate(chunk):
                replies[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True)
            if progress is not None:
                progress(len(chunk))
    finally:
        if hook is not None:
            hook.remove()
    return replies


def _contiguous_input(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook of the output layer: its input made contiguous. The prefill hands it the last position
    of each prompt, a strided view, and torch's CPU bfloat16 matmul with a 262k-row vocabulary (Gemma 3) takes
    a path 300 times slower on it (5 s against 0.015 s per batch); the values, and the replies, are the same
    (benchmarks/bench_generation_head.py)."""
    first = args[0]
    return (first.contiguous(), *args[1:]) if hasattr(first, "contiguous") else args


# --- few-shot prompts ------------------------------------------------------------------------------------------


def few_shot_prompt(tokenizer: Any, template: Any, shots: Sequence[tuple[str, str]], source: str) -> str:
    """The prompt string as the model sees it, with ``shots`` (source, target) worked examples before the query.

    With a chat template the shots are earlier user / assistant turns and the query the last user turn; without
    one (a base model) each shot is a line ``render(source) + " " + target`` and the query follows on its own line,
    formatted as :func:`~lexprobe.train.format_prompt` does. No shots: exactly ``format_prompt`` of the query.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> template = prompt_templates("hgnc", "name-to-symbol", 1)[0]
    >>> base_model = SimpleNamespace(chat_template=None)  # a tokenizer without a chat template
    >>> print(few_shot_prompt(base_model, template, [("albumin", "ALB")], "insulin"))
    What is the HGNC gene symbol of the gene name albumin? ALB
    What is the HGNC gene symbol of the gene name insulin?
    """
    query = template.render(source)
    if not shots:
        return format_prompt(tokenizer, query)
    if getattr(tokenizer, "chat_template", None):
        messages = []
        for shot_source, shot_target in shots:
            messages.append({"role": "user", "content": template.render(shot_source)})
            messages.append({"role": "assistant", "content": shot_target})
        messages.append({"role": "user", "content": query})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    lines = [f"{template.render(s).rstrip()} {t}" for s, t in shots]
    return "\n".join([*lines, format_prompt(tokenizer, query)])


def encode_formatted(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a prompt already formatted for the model (as :func:`_encode_prompt` adds special tokens).

    Examples
    --------
    A stand-in tokenizer with one id per character that puts BOS (1) first when asked for special tokens:

    >>> class Chars:
    ...     chat_template = None
    ...     def __call__(self, text, add_special_tokens=True):
    ...         return {"input_ids": [1] * add_special_tokens + [ord(c) for c in text]}
    >>> encode_formatted(Chars(), "Hi")  # no chat template: the tokenizer's BOS is added
    [1, 72, 105]
    """
    chat = bool(getattr(tokenizer, "chat_template", None))
    return list(tokenizer(text, add_special_tokens=not chat)["input_ids"])


def draw_shots(train: pd.DataFrame, shots: int, seed: int) -> pd.DataFrame:
    """``shots + 1`` train pairs drawn without replacement by ``numpy.random.default_rng(seed)``, in draw order.

    The first ``shots`` go before every query; the last one stands in for a query that is itself among them.

    Examples
    --------
    >>> train = pd.DataFrame({"source": ["insulin", "albumin", "tumor protein p53"], "target": ["INS", "ALB", "TP53"],
    ...                       "id": ["HGNC:6081", "HGNC:399", "HGNC:11998"]})
    >>> draw_shots(train, 1, seed=0)["target"].tolist()  # one shot, and one spare
    ['ALB', 'TP53']
    """
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(train), size=shots + 1, replace=False)
    return train.iloc[rows][["source", "target", "id"]].astype(str).reset_index(drop=True)


def shots_for(drawn: pd.DataFrame, shots: int, source: str, term_id: str) -> list[int]:
    """Rows of ``drawn`` to put before a query: the first ``shots`` that are not the query's own pair (same id or
    same source text).

    Raises
    ------
    TrainingError
        The split repeats the query's term so often that fewer than ``shots`` other pairs were drawn.

    Examples
    --------
    >>> drawn = pd.DataFrame({"source": ["insulin", "albumin"], "target": ["INS", "ALB"],
    ...                       "id": ["HGNC:6081", "HGNC:399"]})
    >>> shots_for(drawn, 1, "albumin", "HGNC:399"), shots_for(drawn, 1, "hemoglobin subunit beta", "HGNC:4827")
    ([0], [0])
    >>> shots_for(drawn, 1, "insulin", "HGNC:6081")  # the query's own pair is never its shot
    [1]
    """
    keep = [j for j, (s, i) in enumerate(zip(drawn["source"], drawn["id"])) if s != source and i != term_id]
    if len(keep) < shots:
        raise TrainingError(
            f"the train split repeats {term_id!r} ({source!r}): fewer than {shots} other pairs among the drawn "
            f"shots; remove the repeated pairs or use another --seed"
        )
    return keep[:shots]


def _summary_rows(frame: pd.DataFrame, split: str, which: str, field: str) -> list[dict[str, Any]]:
    rows = []
    groups = [("all", frame)] + [(str(b), g) for b, g in frame.groupby("bin", sort=True)]
    for label, g in groups:
        n, k = len(g), int(g["correct"].sum())
        low, high = wilson_interval(k, n)
        well = int(g["well_formed"].sum())
        hall = int(g["hallucinated"].sum())
        rows.append(
            {
                "split": split,
                "model": which,
                "bin": label,
                "n": n,
                "n_correct": k,
                "accuracy": k / n if n else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "n_exact": int((g["match_kind"] == "exact").sum()),
                "n_alt": int((g["match_kind"] == "alt").sum()),
                "n_well_formed": well,
                "n_hallucinated": hall if field == "id" else 0,
                "hallucinated_share": (hall / well if well else float("nan")) if field == "id" else float("nan"),
            }
        )
    return rows


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    splits: Sequence[str] = SPLITS,
    baseline_only: bool = False,
    shots: int = 0,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    device: str | None = None,
    dtype: str | None = None,
    device_map: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvaluationResult:
    """Exact-match accuracy of the base model (baseline) and the model with the run's adapter (tuned).

    Template 0 is the prompt, formatted as in training; replies are greedy and end at EOS or at the first line
    break after some text. Writes ``predictions.csv``, ``outcomes.csv``, ``evaluation_summary.csv``,
    ``evaluation.json``, ``evaluation_manifest.json`` and ``accuracy_by_bin.png/.svg`` into ``run_dir``, or
    with ``shots > 0`` into ``run_dir/shots-K`` (zero-shot and few-shot results are kept apart).

    Parameters
    ----------
    run_dir : path
        A run directory made by :func:`train_lora`.
    splits : sequence of {"train", "withheld"}
    baseline_only : bool
        Evaluate the model without the adapter only (the run need not have finished training).
    shots : int
        Few-shot baseline: K worked examples before each query, K train pairs drawn once with
        ``numpy.random.default_rng(seed)`` from ``split/train.csv`` (K + 1 are drawn: a query that is among the
        first K gets the spare instead of itself). Every model evaluated gets the same K-shot prompts; see
        :func:`few_shot_prompt`. 0 (default): the training prompt alone.
    batch_size, max_new_tokens
        Generation batch and budget (default by target field, :data:`MAX_NEW_TOKENS`).
    n_boot, seed
        Paired-bootstrap resamples for the gain intervals, and their seed (which also draws the shots).
    device, dtype : str, optional
        Default: the run's training settings.
    device_map : str, optional
        ``"auto"`` spreads a model too large for one GPU over the devices (see :func:`lexprobe.models.load_model`).
    progress : callable, optional
        Called as ``progress("loading model", 0 or 1, 1)`` around the model's load, then
        ``progress("generating", n_replies_done, n_replies)`` after each generation batch (baseline and tuned
        replies on every split count towards one total).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    TrainingError
        Missing run directory or config, no adapter for a tuned evaluation, an unknown or empty split, ``shots``
        negative or not smaller than the number of train pairs.

    Examples
    --------
    The run's settings are checked before any model is loaded:

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()  # removed when the example ends
    >>> run = tmp.name
    >>> config = TrainConfig("hgnc", "name-to-symbol", dtype="float32")
    >>> _ = (Path(run) / "train_config.json").write_text(json.dumps({"config": config.to_dict()}))
    >>> evaluate_run(run, splits=("test",))
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.TrainingError: `splits` must be from train, withheld, got ['test']
    >>> evaluate_run(run, baseline_only=False)  # a tuned evaluation needs the finished adapter
    Traceback (most recent call last):
    ...
    lexprobe.exceptions.TrainingError: ... has no finished adapter; run `lexprobe train` on it to finish, ...
    """
    run_dir = Path(run_dir)
    config = read_train_config(run_dir)
    splits, shots = _checked_splits_and_shots(run_dir, splits, shots, baseline_only)
    pairs, drawn = _read_pairs(run_dir, splits, shots, seed)
    out_dir = _evaluation_dir(run_dir, shots)
    started = time.perf_counter()
    task, template, scorer = _task_prompt_scorer(config)
    budget = max_new_tokens or MAX_NEW_TOKENS.get(task.target, 32)
    lm = _load_base(config, progress, device=device, dtype=dtype, device_map=device_map)
    models = ["baseline"] if baseline_only else ["baseline", "tuned"]
    records, generation = _generate_replies(
        lm, template, scorer, run_dir, models, pairs, drawn, shots, budget, batch_size=batch_size, progress=progress
    )
    result = _assemble(run_dir, pd.DataFrame(records), splits, models, task.target, n_boot=n_boot, seed=seed)
    shot_pairs = drawn.to_dict(orient="records") if drawn is not None else []
    result = dataclasses.replace(result, out_dir=out_dir, shots=shots, shot_pairs=shot_pairs, generation=generation)
    seconds = time.perf_counter() - started
    out_dir.mkdir(exist_ok=True)
    _write_evaluation(
        out_dir, result, config, lm, budget=budget, baseline_only=baseline_only, seed=seed, seconds=seconds
    )
    return result


def _evaluation_dir(run_dir: Path, shots: int) -> Path:
    """Where an evaluation with ``shots`` worked examples writes: the run directory, or its ``shots-K``."""
    out_dir = few_shot_dir(run_dir, shots) if shots else run_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"{out_dir} is in the way of the {shots}-shot evaluation: it is not a folder; move it")
    return out_dir


def _task_prompt_scorer(config: TrainConfig) -> tuple[Any, Any, _Scorer]:
    """The run's task, its training prompt (template 0) and the scorer of its replies."""
    from lexprobe.ontology import load_ontology

    ontology = load_ontology(config.ontology)
    task = get_task(ontology, config.task)
    template = prompt_templates(config.ontology, task, 1)[0]
    return task, template, _Scorer(ontology, task.target)


def _load_base(config: TrainConfig, progress: Callable[[str, int, int], None] | None, **options: Any) -> Any:
    """The run's base model, with ``progress("loading model", 0 or 1, 1)`` around its load."""
    if progress is not None:
        progress("loading model", 0, 1)
    lm = config.load_base(**options)
    if progress is not None:
        progress("loading model", 1, 1)
    return lm


def _generation_speed(total: int, generating: float) -> dict[str, float]:
    """The ``generation`` record of an evaluation: replies, seconds generating them, replies per second."""
    return {
        "n_replies": float(total),
        "seconds": generating,
        "items_per_second": total / generating if generating > 0 else float("nan"),
    }


def _checked_splits_and_shots(
    run_dir: Path, splits: Sequence[str], shots: int, baseline_only: bool
) -> tuple[tuple[str, ...], int]:
    """The splits (deduplicated) and shots of an evaluation, checked, and the adapter checked when it is needed."""
    splits = tuple(dict.fromkeys(splits))
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise TrainingError(f"`splits` must be from {', '.join(SPLITS)}, got {list(splits)}")
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 0:
        raise TrainingError(f"`shots` must be a whole number >= 0, got {shots!r}")
    shots = int(shots)
    if not baseline_only and not is_complete(run_dir):
        raise TrainingError(
            f"{str(run_dir)!r} has no finished adapter; run `lexprobe train` on it to finish, or pass --baseline"
        )
    if not baseline_only:
        _check_adapter(run_dir)  # now, not after the baseline's generation
    return splits, shots


def _read_pairs(
    run_dir: Path, splits: tuple[str, ...], shots: int, seed: int
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame | None]:
    """The pairs of each split evaluated, and with ``shots`` the train pairs drawn as worked examples."""
    pairs = {}
    for s in (*splits, "train") if shots else splits:
        path = run_dir / "split" / f"{s}.csv"
        if s in pairs:
            continue
        if not path.is_file():
            raise TrainingError(f"{str(run_dir)!r} has no split/{s}.csv; re-run `lexprobe train` on it")
        frame = pd.read_csv(path, dtype={"source": str, "target": str, "id": str})
        if frame.empty and s in splits:
            raise TrainingError(f"split {s!r} of {str(run_dir)!r} has no pairs; evaluate another --split")
        pairs[s] = frame
    if not shots:
        return pairs, None
    n_train = len(pairs["train"])
    if shots >= n_train:
        raise TrainingError(
            f"`shots` must be smaller than the number of train pairs ({n_train} in "
            f"{run_dir / 'split' / 'train.csv'}), got {shots}"
        )
    drawn = draw_shots(pairs["train"], shots, seed)
    pairs = {s: pairs[s] for s in splits}
    for frame in pairs.values():  # a repeated term is told now, not after the model has loaded
        for src, term_id in zip(frame["source"].astype(str), frame["id"].astype(str)):
            shots_for(drawn, shots, src, term_id)
    return pairs, drawn


def _generation_ticker(progress: Callable[[str, int, int], None] | None, total: int) -> Callable[[int], None]:
    """Report ``("generating", 0, total)`` now; the returned ``tick(n)`` counts ``n`` more replies done."""
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress("generating", done[0], total)

    if progress is not None:
        progress("generating", 0, total)
    return tick


def _encode_prompts(
    tokenizer: Any, template: Any, pairs: Mapping[str, pd.DataFrame], drawn: pd.DataFrame | None, shots: int
) -> tuple[dict[str, list[list[int]]], dict[str, list[str]]]:
    """Each split's prompts as token ids, and with shots the ids of the worked examples each prompt shows."""
    encoded: dict[str, list[list[int]]] = {}
    used: dict[str, list[str]] = {}
    for s, frame in pairs.items():
        sources = frame["source"].astype(str).tolist()
        if drawn is None:
            encoded[s] = [_encode_prompt(tokenizer, template.render(x)) for x in sources]
            continue
        encoded[s], used[s] = [], []
        for x, term_id in zip(sources, frame["id"].astype(str)):
            rows = shots_for(drawn, shots, x, term_id)
            examples = [(drawn["source"][j], drawn["target"][j]) for j in rows]
            encoded[s].append(encode_formatted(tokenizer, few_shot_prompt(tokenizer, template, examples, x)))
            used[s].append(";".join(drawn["id"][j] for j in rows))
    return encoded, used


def _generate_replies(
    lm: Any,
    template: Any,
    scorer: _Scorer,
    run_dir: Path,
    models: Sequence[str],
    pairs: Mapping[str, pd.DataFrame],
    drawn: pd.DataFrame | None,
    shots: int,
    budget: int,
    *,
    batch_size: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every model's scored replies on every split, and the ``generation`` record (replies, seconds, speed)."""
    total = sum(len(p) for p in pairs.values()) * len(models)
    tick = _generation_ticker(progress, total)
    encoded, used = _encode_prompts(lm.tokenizer, template, pairs, drawn, shots)
    records = []
    model = lm.model
    generating = 0.0
    for which in models:
        if which == "tuned":
            model = _with_adapter(lm.model, run_dir / "adapter")
        for s, frame in pairs.items():
            logger.info("generating %d %s replies on the %s pairs", len(frame), which, s)
            began = time.perf_counter()
            replies = _generate(
                model,
                lm.tokenizer,
                encoded[s],
                max_new_tokens=budget,
                batch_size=batch_size,
                stop_at_newline=True,
                progress=tick,
            )
            generating += time.perf_counter() - began
            scored = _score_frame(frame, replies, scorer, split=s, which=which)
            if s in used:
                for record, ids in zip(scored, used[s]):
                    record["shot_ids"] = ids
            records += scored
    return records, _generation_speed(total, generating)


def _retrain(run_dir: Path) -> str:
    return f"re-train it: delete {run_dir / 'adapter'} and re-run the `lexprobe train` command that made {run_dir}"


def _check_adapter(run_dir: Path) -> None:
    """Read the adapter's config and the headers of its weights, so a damaged adapter is told before any work.

    Raises
    ------
    TrainingError
        An unreadable ``adapter_config.json`` or one without ``peft_type``; missing, truncated or corrupt weights.
    """
    adapter = run_dir / "adapter"
    path = adapter / "adapter_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"the adapter of {run_dir} is damaged: {path} cannot be read ({_short(exc)}); {_retrain(run_dir)}"
        ) from None
    if not isinstance(data, dict) or not data.get("peft_type"):
        raise TrainingError(f"the adapter of {run_dir} is damaged: {path} has no peft_type; {_retrain(run_dir)}")
    weights = sorted(adapter.glob("adapter_model*.safetensors"))
    if not weights and not any(adapter.glob("adapter_model*.bin")):
        raise TrainingError(f"the adapter of {run_dir} has no weights (adapter_model.safetensors); {_retrain(run_dir)}")
    from safetensors import safe_open

    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as fh:
                fh.keys()
        except Exception as exc:  # SafetensorError (truncated, bad header) derives from Exception only
            raise TrainingError(
                f"the adapter of {run_dir} is damaged: {file} is truncated or corrupt ({_short(exc)}); "
                f"{_retrain(run_dir)}"
            ) from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _with_adapter(model: Any, adapter: Path) -> Any:
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API deprecated for v6
        try:
            tuned = PeftModel.from_pretrained(model, str(adapter))
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # an adapter that does not fit this model, or damaged past the headers
            raise TrainingError(
                f"cannot load the adapter {adapter} ({_short(exc)}); {_retrain(adapter.parent)}"
            ) from None
    return tuned.eval()


def _score_frame(frame: pd.DataFrame, replies: list[str], scorer: _Scorer, *, split: str, which: str) -> list[dict]:
    records = []
    for row, reply in zip(frame.itertuples(index=False), replies):
        score = scorer.score(reply, str(row.target), str(row.id), str(row.source))
        records.append(
            {
                "split": split,
                "model": which,
                "id": row.id,
                "source": row.source,
                "target": row.target,
                "popularity": row.popularity,
                "bin": int(row.bin),
                "reply": reply,
                "parsed": score.parsed,
                "well_formed": score.well_formed,
                "hallucinated": score.hallucinated,
                "match_kind": score.match_kind,
                "correct": score.correct,
            }
        )
    return records


def _assemble(
    run_dir: Path, predictions: pd.DataFrame, splits: Sequence[str], models: Sequence[str], field: str, **boot: Any
) -> EvaluationResult:
    keys = ["split", "id", "source", "target", "popularity", "bin"]
    summary_rows: list[dict[str, Any]] = []
    outcomes = predictions[predictions["model"] == "baseline"][keys].reset_index(drop=True)
    for which in models:
        part = predictions[predictions["model"] == which].reset_index(drop=True)
        for column in ("parsed", "match_kind", "correct"):
            outcomes[f"{which}_{column}"] = part[column].to_numpy()
        if field == "id":
            outcomes[f"{which}_hallucinated"] = part["hallucinated"].to_numpy()
        for s in splits:
            summary_rows += _summary_rows(part[part["split"] == s], s, which, field)
    gains: dict[str, dict[str, Any]] = {}
    if "tuned" in models:
        outcomes["category"] = [
            outcome_category(b, t) for b, t in zip(outcomes["baseline_correct"], outcomes["tuned_correct"])
        ]
        for s in splits:
            o = outcomes[outcomes["split"] == s]
            b, t = o["baseline_correct"].to_numpy(bool), o["tuned_correct"].to_numpy(bool)
            low, high = paired_bootstrap_interval(b, t, **boot)
            counts = o["category"].value_counts()
            gains[s] = {
                "n": len(o),
                "baseline": float(b.mean()),
                "tuned": float(t.mean()),
                "gain": float(t.mean() - b.mean()),
                "gain_ci_low": low,
                "gain_ci_high": high,
                **{c: int(counts.get(c, 0)) for c in ("gained", "lost", "correct both", "incorrect both")},
            }
    return EvaluationResult(
        run_dir=run_dir, predictions=predictions, outcomes=outcomes, summary=pd.DataFrame(summary_rows), gains=gains
    )


def _write_evaluation(
    run_dir: Path,
    result: EvaluationResult,
    config: TrainConfig,
    lm: Any,
    *,
    budget: int,
    baseline_only: bool,
    seed: int,
    seconds: float,
) -> None:
    for name, frame in (
        ("predictions.csv", result.predictions),
        ("outcomes.csv", result.outcomes),
        ("evaluation_summary.csv", result.summary),
    ):
        with atomic_path(run_dir / name) as tmp:
            frame.to_csv(tmp, index=False, quoting=_csv_quoting(frame))
    overall = result.summary[result.summary["bin"] == "all"]
    by_bin = result.summary[result.summary["bin"] != "all"]
    report = {
        "ontology": config.ontology,
        "task": config.task,
        "model": config.model,
        "shots": result.shots,
        "accuracy": overall.to_dict(orient="records"),
        "accuracy_by_bin": by_bin.to_dict(orient="records"),
        "gains": result.gains,
        "memorization_gain": result.gains.get("train", {}).get("gain"),
        "generalization_gain": result.gains.get("withheld", {}).get("gain"),
        "scoring": "exact match; ids after CURIE normalization, names and symbols case-insensitive; "
        "alternative ids, previous/alias symbols and synonyms count as correct (match_kind 'alt')",
        "intervals": "accuracy: Wilson score 95%; gain: paired bootstrap percentile 95% over items",
    }
    if result.shots:
        report["shot_pairs"] = result.shot_pairs[: result.shots]
        report["spare_shot_pair"] = result.shot_pairs[result.shots]
    atomic_write_json(run_dir / "evaluation.json", report)
    shot_title = f" ({result.shots}-shot)" if result.shots else ""
    _plot_accuracy_by_bin(by_bin, run_dir, title=f"{config.ontology} {config.task}{shot_title}")
    config_record: dict[str, Any] = {
        "baseline_only": baseline_only,
        "max_new_tokens": budget,
        "prompt_template": 0,
        "seed": seed,
        "shots": result.shots,
        "stop": "eos, or a line break after the first non-blank text",
    }
    if result.shots:
        config_record["shot_pairs"] = result.shot_pairs[: result.shots]
        config_record["spare_shot_pair"] = result.shot_pairs[result.shots]
    write_manifest(
        run_dir,
        make_manifest(
            stage="evaluate",
            config=config_record,
            inputs={"train_config": config.to_dict(), "model": lm.describe(), "adapter": not baseline_only},
            outputs={n: True for n in ("predictions.csv", "outcomes.csv", "evaluation_summary.csv", "evaluation.json")}
            | {
                "seconds": seconds,
                "generation_seconds": result.generation.get("seconds"),
                "n_replies": int(result.generation.get("n_replies", 0)),
                "items_per_second": result.generation.get("items_per_second"),
            },
            seed=seed,
        ),
        name="evaluation_manifest.json",
    )


def _csv_quoting(frame: pd.DataFrame) -> int:
    """``csv.QUOTE_MINIMAL``, or every text quoted when a text holds a carriage return: the csv writer leaves a
    lone ``"\\r"`` unquoted and pandas then reads it as the end of a row (a reply that stopped at one)."""
    import csv

    texts = frame.select_dtypes(include=["object", "string"])
    has_cr = any(texts[c].astype(str).str.contains("\r", regex=False).any() for c in texts.columns)
    return csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL


def _plot_accuracy_by_bin(by_bin: pd.DataFrame, directory: Path, *, title: str) -> None:
    plot_accuracy_by_bin(by_bin, directory, title=title)
