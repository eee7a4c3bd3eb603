"""Tiny Mamba2 models for the models-stage tests (built and saved by the tests themselves)."""

from __future__ import annotations

import pytest
import torch

from biomamba.models.mamba2 import Mamba2Config, Mamba2LMHeadModel


def tiny_config(**overrides) -> Mamba2Config:
    base = dict(d_model=32, n_layer=2, vocab_size=90, d_state=8, headdim=8, ngroups=2, chunk_size=8)
    base.update(overrides)
    return Mamba2Config(**base)


def tiny_model(seed: int = 0, **overrides) -> Mamba2LMHeadModel:
    """Random tiny model whose dt/D/norm weights are also randomised, so no code path hides behind
    initial values of 1 or 0."""
    torch.manual_seed(seed)
    model = Mamba2LMHeadModel(tiny_config(**overrides))
    model.init_weights(seed=seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D")):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            if name.endswith("dt_bias"):
                p.add_(torch.randn_like(p))
    return model.eval()


@pytest.fixture
def model() -> Mamba2LMHeadModel:
    return tiny_model()


TEXT = [
    "the patient was given aspirin for chest pain and recovered",
    "mutations in the brca1 gene increase the risk of breast cancer",
    "the protein binds to the receptor and activates the pathway",
    "insulin resistance is a hallmark of type two diabetes",
    "the trial measured blood pressure in older adults",
] * 20


def build_tokenizer(vocab_size: int = 90):
    """A tiny BPE tokenizer (Metaspace, so decoded text keeps its spaces) wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>", "<pad>", "<unk>"])
    tok.train_from_iterator(TEXT, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()
