"""Tiny corpora and models for the trainer tests (built here, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.factories import models
from tests.factories.corpora import token_corpus

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
    splits = {"train": _documents(rng, train_docs, 1, VOCAB)}
    ranges = {"pubmed": (1, 32), "c4": (32, VOCAB), "wikipedia": (1, VOCAB)}
    for domain in heldout:
        splits[f"heldout/{domain}"] = _documents(rng, 30, *ranges[domain])
    return token_corpus(root, splits, vocab_size=VOCAB, eos_token_id=EOS)


def tiny_gpt2(seed: int = 0, dropout: float = 0.1):
    return models.gpt2(VOCAB, positions=64, dropout=dropout, seed=seed)


def tiny_mamba2(seed: int = 0):
    return models.mamba2(VOCAB, seed=seed)
