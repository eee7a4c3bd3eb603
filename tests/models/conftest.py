"""Tiny Mamba2 models (dt/D/norm weights random too) and a Metaspace tokenizer for the models-stage tests."""

from __future__ import annotations

import pytest
from tests.factories.models import mamba2_randomized as tiny_model
from tests.factories.tokenizers import metaspace_tokenizer


@pytest.fixture
def model():
    return tiny_model()


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
