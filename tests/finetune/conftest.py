"""Fixtures of the finetune tests: a tiny byte-level BPE with a pad token, and tiny models of both families."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from tests.factories import models
from tests.factories.tokenizers import bpe_tokenizer

SPECIALS = ["<|endoftext|>", "<pad>"]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    """A byte-level BPE with a pad token apart from EOS (padding must not look like the end of a text)."""
    return bpe_tokenizer(texts, vocab_size, specials=SPECIALS, pad=SPECIALS[1])


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
    path = tmp_path_factory.mktemp("gpt2")
    return models.save_dir(path, models.gpt2_for(tokenizer, positions=256), tokenizer)


@pytest.fixture(scope="session")
def tiny_mamba2_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """A tiny random biomamba Mamba2 saved as a model directory with its tokenizer."""
    path = tmp_path_factory.mktemp("mamba2") / "model"
    return models.save_dir(path, models.mamba2_for(tokenizer), tokenizer)


@pytest.fixture(params=["mamba2", "gpt2"])
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """Each test using this runs once per family."""
    return request.getfixturevalue(f"tiny_{request.param}_dir")
