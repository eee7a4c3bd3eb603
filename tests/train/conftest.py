from __future__ import annotations

from pathlib import Path

import pytest
from tests.factories.recipes import GPT2_ARCHITECTURE, train_recipe

from .helpers import make_corpus


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "corpus")


@pytest.fixture
def tiny_recipe(corpus: Path) -> dict:
    """A complete recipe training a tiny GPT-2 from scratch (dropout on, so RNG state matters on resume)."""
    return train_recipe(
        corpus,
        seed=3,
        architecture=GPT2_ARCHITECTURE,
        max_steps=12,
        lr=3e-3,
        schedule="wsd",
        warmup_ratio=0.1,
        ema_decay=0.9,
        layer_lr_decay=0.9,
        label_smoothing=0.05,
        save_every=3,
        keep_last=2,
    )
