"""Tiny models and a tiny tokenizer, built and saved by the tests themselves (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TEXT = [
    "the patient was given aspirin for chest pain",
    "metformin lowers blood glucose in type 2 diabetes",
    "the mitochondria is the powerhouse of the cell",
    "randomized controlled trials reduce bias in medicine",
] * 8


def tiny_tokenizer():
    """A 96-token byte-level BPE tokenizer trained in-process, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def build_model(family: str, seed: int = 0, vocab: int = 300, layers: int = 3):
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
        cfg = GPT2Config(vocab_size=vocab, n_embd=16, n_layer=layers, n_head=2, n_positions=128)
        return GPT2LMHeadModel(cfg)
    common = dict(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
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


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def three_llamas(tmp_path: Path, tokenizer) -> list[Path]:
    return [save_tiny(tmp_path / f"m{i}", "llama", seed=i, tokenizer=tokenizer) for i in range(3)]
