"""Helpers of the tests: tiny models and tokenizer for the serve tests (built in-process; nothing is downloaded)."""

from __future__ import annotations

import torch

TEXT = [
    "the patient was given aspirin for chest pain",
    "metformin lowers blood glucose in type 2 diabetes",
    "randomized controlled trials reduce bias in medicine",
] * 8


def tiny_tokenizer():
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


def tiny_model(family: str, vocab: int = 300):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if family == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(vocab_size=vocab, n_embd=16, n_layer=2, n_head=2, n_positions=256)
        ).eval()
    if family == "mamba2":
        from biomamba.models import create_model

        return create_model("tiny", vocab_size=vocab, seed=0).eval()
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(cfg).eval()
