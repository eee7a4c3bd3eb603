"""Fixtures of the finetune tests: a tiny byte-level BPE tokenizer trained on the fly, and tiny models."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

SPECIALS = ["<|endoftext|>", "<pad>"]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    """A byte-level BPE in the transformers format (what every biomamba tokenizer directory holds)."""
    from biomamba.tokenizer import train_tokenizer

    return train_tokenizer(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=0,
        special_tokens=SPECIALS,
        eos_token=SPECIALS[0],
        pad_token=SPECIALS[1],
    )


GENERIC_TEXT = [
    "Question: Does aspirin reduce the risk of stroke? Answer: yes",
    "Context: The trial enrolled 120 patients with hypertension. Answer: no maybe",
    "CHIEF COMPLAINT: chest pain. HOSPITAL COURSE: the patient improved and was discharged home.",
    "(A) metformin (B) insulin (C) aspirin (D) warfarin (E) heparin",
] * 20


@pytest.fixture(scope="session")
def make_tokenizer():
    """The tokenizer builder, for tests that train one on their own text."""
    return build_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer(GENERIC_TEXT, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """A tiny random GPT-2 saved as a model directory with its tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_mamba2_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """A tiny random biomamba Mamba2 saved as a model directory with its tokenizer."""
    from biomamba.models import create_model, save_model

    model = create_model(
        "tiny",
        seed=0,
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("mamba2") / "model"
    save_model(model, path, tokenizer)
    return path


@pytest.fixture(params=["mamba2", "gpt2"])
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """Each test using this runs once per family."""
    return request.getfixturevalue(f"tiny_{request.param}_dir")
