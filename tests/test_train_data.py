"""The training collator on tiny tokenizers: loss on the completion and EOS only, padding on the right."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _tiny_lm import PAIRS, make_tokenizer

from lexprobe.exceptions import TrainingError
from lexprobe.tasks import prompt_templates
from lexprobe.train import build_examples, completion_collator


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])  # pad == eos with a chat template; pad != eos, base
def test_labels_are_ignored_exactly_on_prompt_and_padding_and_eos_is_learned(kind: str, tmp_path: Path) -> None:
    tok = make_tokenizer(kind, tmp_path)
    tok.padding_side = "left"  # as Gemma's tokenizer comes, and as generation pads
    pairs = pd.DataFrame({"source": [p[0] for p in PAIRS[:4]], "target": [p[1] for p in PAIRS[:4]]})
    examples = build_examples(pairs, prompt_templates("hgnc", "name-to-symbol", 2), tok)
    batch = completion_collator(tok)(examples)
    assert tok.padding_side == "left"  # the caller's tokenizer is not changed
    width = max(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (8, width)
    lengths = {len(e["input_ids"]) for e in examples}
    assert len(lengths) > 1  # some rows are padded
    for row, (example, target) in enumerate(zip(examples, [t for t in pairs["target"] for _ in range(2)])):
        n = len(example["input_ids"])
        completion = tok(target, add_special_tokens=False)["input_ids"] if tok.chat_template else None
        labels = batch["labels"][row].tolist()
        n_prompt = next(i for i, label in enumerate(labels) if label != -100)
        # -100 exactly on the prompt and on the padding; every completion token and the final EOS are learned
        assert labels[:n_prompt] == [-100] * n_prompt and labels[n:] == [-100] * (width - n)
        assert labels[n_prompt:n] == example["input_ids"][n_prompt:]
        assert labels[n - 1] == tok.eos_token_id and -100 not in labels[n_prompt:n]
        assert tok.decode(labels[n_prompt : n - 1]).strip() == target
        if completion is not None:
            assert labels[n_prompt : n - 1] == completion
        # padded on the right, with the pad id and attention 0
        assert batch["input_ids"][row].tolist() == example["input_ids"] + [tok.pad_token_id] * (width - n)
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)


def test_a_tokenizer_without_a_pad_token_is_refused(tmp_path: Path) -> None:
    tok = make_tokenizer("metaspace", tmp_path)
    tok.pad_token = None
    with pytest.raises(TrainingError, match="no pad token"):
        completion_collator(tok)


def test_the_output_layer_runs_where_a_label_is_scored_with_the_same_loss_and_gradients(tmp_path: Path) -> None:
    """With the model given, batches carry ``logits_to_keep`` (positions whose next token some row learns) and
    ``shift_labels``; the model's loss and every gradient equal those of the projection at every position."""
    import torch
    from _tiny_lm import make_model_dir
    from transformers import AutoModelForCausalLM

    from lexprobe.train import scores_labelled_positions_only

    directory = make_model_dir("metaspace", tmp_path / "m")
    tok = make_tokenizer("metaspace", directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    assert scores_labelled_positions_only(model)
    pairs = pd.DataFrame({"source": [p[0] for p in PAIRS[:4]], "target": [p[1] for p in PAIRS[:4]]})
    examples = build_examples(pairs, prompt_templates("hgnc", "name-to-symbol", 2), tok)
    full = completion_collator(tok)(examples)
    kept = completion_collator(tok, model)(examples)
    assert "logits_to_keep" not in full
    assert torch.equal(kept["labels"], full["labels"]) and torch.equal(kept["input_ids"], full["input_ids"])
    keep, shift = kept["logits_to_keep"], kept["shift_labels"]
    assert 0 < len(keep) < full["input_ids"].shape[1]  # prompt positions are left out
    for row in range(len(examples)):
        learned = [i for i in range(full["labels"].shape[1] - 1) if full["labels"][row, i + 1] != -100]
        assert set(learned) <= set(keep.tolist())  # every scored position is kept
        assert shift[row].tolist() == [
            int(full["labels"][row, i + 1]) if i + 1 < full["labels"].shape[1] else -100 for i in keep.tolist()
        ]

    def loss_and_grads(batch):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    loss_full, grads_full = loss_and_grads(full)
    loss_kept, grads_kept = loss_and_grads(kept)
    torch.testing.assert_close(loss_kept, loss_full, rtol=1e-6, atol=0)
    for a, b in zip(grads_kept, grads_full):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_model_that_cannot_keep_some_logits_gets_the_plain_collator(tmp_path: Path) -> None:
    from lexprobe.train import scores_labelled_positions_only

    class Plain:
        def forward(self, input_ids=None, labels=None): ...

    tok = make_tokenizer("metaspace", tmp_path)
    assert not scores_labelled_positions_only(Plain())
    batch = completion_collator(tok, Plain())(
        build_examples(
            pd.DataFrame({"source": ["a b"], "target": ["AB"]}), prompt_templates("hgnc", "name-to-symbol", 1), tok
        )
    )
    assert "logits_to_keep" not in batch and "shift_labels" not in batch
