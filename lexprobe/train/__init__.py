"""LoRA fine-tuning of a causal LM on a mapping task, and exact-match evaluation before and after.

The paper's outcome variable is what fine-tuning does: accuracy on the trained pairs (memorization) and on
withheld pairs (generalization), before (baseline: the model without the adapter) and after (tuned).

Run directory
-------------
One directory holds one run; every file is written atomically::

    RUN/
      split/train.csv, split/withheld.csv   the pairs (source, target, id, popularity, bin), as `lexprobe split`
      train_config.json                     the exact TrainConfig and LoRA settings (written before training)
      checkpoints/checkpoint-N/             Trainer checkpoints; `train` on this directory resumes from the last
      adapter/                              peft ``save_pretrained`` (adapter_config.json, adapter_model.*) naming
                                            the base by its Hugging Face id (and hub commit), so
                                            ``PeftModel.from_pretrained(base, "adapter")`` works anywhere, and a
                                            README.md model card (base, task, how to load it)
      loss.csv, loss_curve.png/.svg         the training loss per logged step
      manifest.json                         how the adapter was made (stage "train")
      predictions.csv                       raw replies, parsed answers and scores, per split and model
      outcomes.csv                          one row per item and split: baseline vs tuned, and the category
      evaluation_summary.csv                accuracy with Wilson intervals, overall and per popularity bin
      evaluation.json                       the same plus gains and category counts
      evaluation_manifest.json              how the evaluation was made (stage "evaluate"), with its generation
                                            speed (``outputs.items_per_second``)
      accuracy_by_bin.png/.svg              accuracy per popularity bin, baseline and tuned
      shots-K/                              a K-shot evaluation (``evaluate --shots K``): the same evaluation
                                            files, apart from the zero-shot ones above; its manifest and
                                            evaluation.json record ``shots`` and the train pairs used as shots

Evaluation is greedy; a reply ends at EOS or at the first line break after some text (the scorer reads the first
non-empty line). A K-shot prompt puts K train pairs (drawn once with the evaluation's seed; never the query's own
pair) before the query: earlier user / assistant turns under a chat template, ``question answer`` lines for a
base model.

Training examples are ``prompt -> target + EOS`` for every train pair and each of the first ``templates``
prompt paraphrases (the paper trained with five per pair and the bare target as completion). The prompt goes
through the tokenizer's chat template as a user turn when it has one. The loss is on the completion and EOS
only: labels are masked by position, never by token id, so EOS is learned even when the pad token is EOS.

The training part runs unchanged on CPU (float32) and GPU (bfloat16 where supported), and under
``torchrun`` / ``accelerate launch`` with several processes (the Trainer's DDP; gloo on CPU); only the main
process writes files.
"""

from __future__ import annotations

from lexprobe.stats import paired_bootstrap_interval, wilson_interval
from lexprobe.train._config import RESUME_FREE, SPLITS, TrainConfig, is_complete, read_train_config
from lexprobe.train._curve import CurveResult, evaluate_curve, snapshot_points
from lexprobe.train._data import (
    build_examples,
    completion_collator,
    encode_completion,
    format_prompt,
    scores_labelled_positions_only,
)
from lexprobe.train._evaluate import (
    EvaluationResult,
    draw_shots,
    encode_formatted,
    evaluate_run,
    few_shot_prompt,
    generate_replies,
    shots_for,
)
from lexprobe.train._progress import progress_callback
from lexprobe.train._scoring import MAX_NEW_TOKENS, ReplyScore, outcome_category, parse_reply, score_reply
from lexprobe.train._trainer import TrainResult, last_good_checkpoint, train_lora

__all__ = [
    "CurveResult",
    "last_good_checkpoint",
    "evaluate_curve",
    "snapshot_points",
    "MAX_NEW_TOKENS",
    "RESUME_FREE",
    "SPLITS",
    "EvaluationResult",
    "ReplyScore",
    "TrainConfig",
    "TrainResult",
    "build_examples",
    "completion_collator",
    "scores_labelled_positions_only",
    "draw_shots",
    "encode_completion",
    "encode_formatted",
    "shots_for",
    "evaluate_run",
    "few_shot_prompt",
    "format_prompt",
    "generate_replies",
    "is_complete",
    "outcome_category",
    "paired_bootstrap_interval",
    "parse_reply",
    "progress_callback",
    "read_train_config",
    "score_reply",
    "train_lora",
    "wilson_interval",
]
