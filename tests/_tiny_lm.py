"""A tiny random causal LM and tokenizer in a local directory, and training-run folders around it, for fast tests.

Two tokenizer kinds, as the default models have them: byte-level BPE (SmolLM2: a newline is the piece ``"Ċ"``, a
space ``"Ġ"``) with a chat template, and a SentencePiece-style one (Gemma: ``"▁"`` for a space, a literal ``"\\n"``
piece) without one, like a base model. The model is a one-layer Llama with random weights: its replies are
nonsense, but generation, batching, stopping and the evaluation's files run exactly as with a real model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: A chat template in SmolLM2's format (user / assistant turns between ``<|im_start|>`` and ``<|im_end|>``).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: hgnc name-to-symbol pairs (real terms, so the scorer's ontology knows them).
PAIRS = [
    ("tumor protein p53", "TP53", "HGNC:11998"),
    ("BRCA1 DNA repair associated", "BRCA1", "HGNC:1100"),
    ("KRAS proto-oncogene, GTPase", "KRAS", "HGNC:6407"),
    ("epidermal growth factor receptor", "EGFR", "HGNC:3236"),
    ("phosphatase and tensin homolog", "PTEN", "HGNC:9588"),
    ("MYC proto-oncogene, bHLH transcription factor", "MYC", "HGNC:7553"),
    ("insulin", "INS", "HGNC:6081"),
    ("albumin", "ALB", "HGNC:399"),
    ("hemoglobin subunit beta", "HBB", "HGNC:4827"),
    ("cystic fibrosis transmembrane conductance regulator", "CFTR", "HGNC:1884"),
]


def _corpus() -> list[str]:
    lines = [f"What is the gene symbol of the gene name {s}? {t}\n" for s, t, _ in PAIRS]
    lines += ["Symbol:\n\nTP53\n", "  \n\t\n", "HGNC:11998 is TP53.\r\n", "a b c\n\nd e f\n"]
    return lines * 3


def make_tokenizer(kind: str, directory: Path):
    """Train and save a small tokenizer of ``kind`` ``"bytelevel"`` (with a chat template) or ``"metaspace"``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "bytelevel":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        tok.train_from_iterator(
            _corpus(), trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=alphabet)
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
        )
        fast.chat_template = CHAT_TEMPLATE
    elif kind == "metaspace":
        specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
        from tokenizers import processors

        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
        )
    else:
        raise ValueError(kind)
    fast.save_pretrained(directory)
    return fast


def make_model_dir(kind: str, directory: Path, seed: int = 0) -> Path:
    """A local model directory (tokenizer, config, random weights) that ``lexprobe.models.load_model`` loads."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(kind, directory)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits than the default init: greedy replies that vary with the prompt
        model.lm_head.weight.mul_(40.0)
    model.save_pretrained(directory)
    return directory


def make_run(run: Path, model_dir: Path, *, n_train: int = 6, n_withheld: int = 4, adapter: bool = False) -> Path:
    """A training-run folder on ``model_dir``: the split, ``train_config.json`` and, with ``adapter``, a LoRA
    adapter (random) and the training manifest, as a finished ``lexprobe train`` leaves them."""
    from lexprobe.runs import atomic_write_json, make_manifest, write_manifest
    from lexprobe.train import TrainConfig

    frame = pd.DataFrame(PAIRS, columns=["source", "target", "id"])
    frame["popularity"] = range(len(frame), 0, -1)
    frame["bin"] = [i % 2 for i in range(len(frame))]
    (run / "split").mkdir(parents=True)
    frame.iloc[:n_train].to_csv(run / "split" / "train.csv", index=False)
    frame.iloc[n_train : n_train + n_withheld].to_csv(run / "split" / "withheld.csv", index=False)
    config = TrainConfig(ontology="hgnc", task="name-to-symbol", model=str(model_dir), dtype="float32", device="cpu")
    atomic_write_json(run / "train_config.json", {"config": config.to_dict()})
    if adapter:
        import warnings

        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        torch.manual_seed(1)
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API deprecated for v6
            lora = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.5)  # peft starts B at zero: the tuned model would be the base
        lora.save_pretrained(run / "adapter")
        write_manifest(run, make_manifest(stage="train", config=config.to_dict()))
    return run


def make_hub_cache(cache: Path, model_dir: Path, repo_id: str, commit: str) -> Path:
    """A Hugging Face hub cache in ``cache`` holding ``model_dir`` as ``repo_id`` at ``commit`` (its ``main``), as a
    download leaves it (``models--org--name/snapshots/<commit>/``, ``refs/main``); point
    ``huggingface_hub.constants.HF_HUB_CACHE`` at it to load ``repo_id`` offline."""
    import shutil

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return cache
