from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import make_corpus


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "corpus")


@pytest.fixture
def tiny_recipe(corpus: Path) -> dict:
    """A complete recipe training a tiny GPT-2 from scratch (dropout on, so RNG state matters on resume)."""
    return {
        "name": "tiny",
        "seed": 3,
        "train": {
            "corpus": str(corpus),
            "architecture": {
                "model_type": "gpt2",
                "n_embd": 32,
                "n_layer": 2,
                "n_head": 2,
                "n_positions": 64,
            },
            "seq_len": 32,
            "micro_batch_size": 2,
            "global_batch_size": 4,
            "max_steps": 12,
            "lr": 3e-3,
            "schedule": "wsd",
            "warmup_ratio": 0.1,
            "ema_decay": 0.9,
            "layer_lr_decay": 0.9,
            "label_smoothing": 0.05,
            "save_every": 3,
            "keep_last": 2,
            "progress": False,
        },
    }
