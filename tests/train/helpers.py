"""Tiny corpora and models for the trainer tests (built here, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from biomamba.data.shards import FORMAT_VERSION, token_dtype, write_shard
from biomamba.utils.atomic import write_json

VOCAB = 64
EOS = 0


def _documents(rng: np.random.Generator, count: int, low: int, high: int, lo_len: int = 5, hi_len: int = 40):
    docs = []
    for _ in range(count):
        length = int(rng.integers(lo_len, hi_len))
        # A learnable pattern: each doc counts upward from a random start within its id range.
        start = int(rng.integers(low, high))
        body = [low + (start - low + i) % (high - low) for i in range(length)]
        docs.append([*body, EOS])
    return docs


def make_corpus(
    root: Path, *, train_docs: int = 200, heldout: tuple[str, ...] = ("pubmed", "c4"), seed: int = 0
):
    """A corpus directory in the biomamba-shards/1 format with a train split and held-out domains."""
    rng = np.random.default_rng(seed)
    dtype = token_dtype(VOCAB)
    splits = {}
    record = write_shard(root, "train/shard-00000.bin", _documents(rng, train_docs, 1, VOCAB), dtype)
    splits["train"] = {"shards": [record.to_json()]}
    ranges = {"pubmed": (1, 32), "c4": (32, VOCAB), "wikipedia": (1, VOCAB)}
    for domain in heldout:
        low, high = ranges[domain]
        rec = write_shard(root, f"heldout/{domain}/shard-00000.bin", _documents(rng, 30, low, high), dtype)
        splits[f"heldout/{domain}"] = {"shards": [rec.to_json()]}
    write_json(
        root / "manifest.json",
        {
            "format": FORMAT_VERSION,
            "dtype": dtype.str,
            "vocab_size": VOCAB,
            "eos_token_id": EOS,
            "splits": splits,
        },
    )
    return root


def tiny_gpt2(seed: int = 0, dropout: float = 0.1):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
    )
    return GPT2LMHeadModel(config)


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def tiny_mamba2(seed: int = 0):
    from biomamba.models import create_model

    return create_model(
        {"d_model": 32, "n_layer": 2, "vocab_size": VOCAB, "d_state": 8, "headdim": 8, "chunk_size": 8},
        seed=seed,
    )
