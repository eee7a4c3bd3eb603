"""Tiny Mamba2 models (dt/D/norm weights random too) and a Metaspace tokenizer for the models-stage tests."""

from __future__ import annotations

import pytest
import torch
from tests.factories.models import mamba2_randomized as tiny_model
from tests.factories.tokenizers import metaspace_tokenizer


@pytest.fixture
def model():
    return tiny_model()


def random_ids(batch: int, length: int, seed: int = 1, vocab: int = 90) -> torch.Tensor:
    """Token ids [batch, length] in the tiny models' vocabulary, the same for the same arguments."""
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


TEXT = [
    "the patient was given aspirin for chest pain and recovered",
    "mutations in the brca1 gene increase the risk of breast cancer",
    "the protein binds to the receptor and activates the pathway",
    "insulin resistance is a hallmark of type two diabetes",
    "the trial measured blood pressure in older adults",
] * 20


def build_tokenizer(vocab_size: int = 90):
    """90 tokens by default: the tiny models' vocabulary."""
    return metaspace_tokenizer(TEXT, vocab_size)


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()
