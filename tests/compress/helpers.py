"""Helpers of the tests: tiny models and a tiny tokenizer, built and saved by the tests themselves (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

TEXT = [
    "the patient was given aspirin for chest pain",
    "metformin lowers blood glucose in type 2 diabetes",
    "the mitochondria is the powerhouse of the cell",
    "randomized controlled trials reduce bias in medicine",
] * 8


def tiny_tokenizer():
    """A 300-token byte-level BPE trained in-process by the tokenizer stage, wrapped for transformers."""
    from biomamba.tokenizer import train_tokenizer

    return train_tokenizer(
        TEXT, vocab_size=300, min_frequency=0, special_tokens=["<eos>"], eos_token="<eos>", pad_token="<eos>"
    )


def build_model(family: str, seed: int = 0, vocab: int = 300, layers: int = 3, hidden: int = 16):
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    torch.manual_seed(seed)
    if family == "gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=2, n_positions=128)
        return GPT2LMHeadModel(cfg)
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    if family == "mistral":
        return MistralForCausalLM(MistralConfig(**common))
    return LlamaForCausalLM(LlamaConfig(**common))


def save_tiny(path: Path, family: str = "llama", seed: int = 0, tokenizer=None, **kw) -> Path:
    model = build_model(family, seed, **kw)
    model.save_pretrained(path)
    (tokenizer or tiny_tokenizer()).save_pretrained(path)
    return path


MEDQA = [
    ("Which drug lowers blood glucose?", ["metformin", "aspirin", "heparin", "morphine"], "A"),
    ("Which organ produces insulin?", ["liver", "pancreas", "kidney", "spleen"], "B"),
    ("Aspirin is given for which pain?", ["knee", "tooth", "chest", "back"], "C"),
    ("What reduces bias in medicine?", ["opinion", "anecdote", "case series", "randomized trials"], "D"),
    ("The powerhouse of the cell is the", ["mitochondria", "nucleus", "ribosome", "membrane"], "A"),
    ("Type 2 diabetes is treated with", ["insulin only", "metformin", "antibiotics", "surgery"], "B"),
]


def write_medqa(path: Path) -> Path:
    """A MedQA (4 options) task file in its original JSON-lines format."""
    import json

    lines = []
    for question, options, answer in MEDQA:
        opts = dict(zip("ABCD", options, strict=True))
        lines.append(
            json.dumps({"question": question, "options": opts, "answer_idx": answer, "answer": opts[answer]})
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_corpus(path: Path, tokenizer) -> Path:
    """A corpus dir with one held-out domain (biomamba-shards/1), tokenized with `tokenizer`."""
    import json

    import numpy as np

    from biomamba.data.shards import write_shard

    docs = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in TEXT]
    record = write_shard(path, "heldout/pubmed/shard-00000.bin", docs, np.dtype("<u2"))
    manifest = {
        "format": "biomamba-shards/1",
        "dtype": "<u2",
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "splits": {"heldout/pubmed": {"shards": [record.to_json()]}},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path
