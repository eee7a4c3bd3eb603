"""biomamba's Mamba2 against transformers' Mamba2ForCausalLM on the same weights (fp32, CPU)."""

from __future__ import annotations

import torch
from tests.models.conftest import tiny_model
from transformers import Mamba2ForCausalLM

from biomamba.models import load_model, save_model


def _ids(batch: int, length: int, vocab: int = 90, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_logits_match_transformers(tmp_path):
    ours = tiny_model()
    save_model(ours, tmp_path / "m")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert theirs.lm_head.weight.data_ptr() == theirs.backbone.embeddings.weight.data_ptr()
    ids = _ids(2, 21)  # not a multiple of the chunk size: padding path too
    with torch.no_grad():
        ref = theirs(input_ids=ids).logits
        got = ours(input_ids=ids).logits
        loaded = load_model(tmp_path / "m")(input_ids=ids).logits
    assert got.shape == ref.shape == (2, 21, 96)
    assert (got - ref).abs().max().item() <= 1e-4
    assert torch.equal(loaded, got)


def test_loads_transformers_written_checkpoint(tmp_path):
    ours = tiny_model(seed=3)
    save_model(ours, tmp_path / "a")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "a")
    theirs.save_pretrained(tmp_path / "b")
    back = load_model(tmp_path / "b")
    ids = _ids(1, 13)
    with torch.no_grad():
        assert (back(input_ids=ids).logits - theirs.eval()(input_ids=ids).logits).abs().max() <= 1e-4


def test_loss_matches_transformers(tmp_path):
    ours = tiny_model(seed=5)
    save_model(ours, tmp_path / "m")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = _ids(2, 16)
    labels = ids.clone()
    labels[0, :5] = -100
    with torch.no_grad():
        a = ours(input_ids=ids, labels=labels).loss
        b = theirs(input_ids=ids, labels=labels).loss
    assert abs(a.item() - b.item()) <= 1e-5
