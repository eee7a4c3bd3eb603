"""CausalLMLoss: label smoothing changes the loss, and on a padded vocabulary (Mamba2 pads to a multiple of 16)
it spreads its mass over the tokenizer's ids only, never over the padded rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from biomamba.train import CausalLMLoss
from biomamba.train.batches import IGNORE_INDEX

from .helpers import tiny_gpt2


class _Logits(torch.nn.Module):
    """A 'model' whose output is a fixed leaf tensor, so the gradient w.r.t. the logits can be read."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.logits)


def _batch(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, (2, 6), generator=gen)
    labels[0, :2] = IGNORE_INDEX
    return {"input_ids": torch.zeros(2, 6, dtype=torch.long), "labels": labels}


def test_label_smoothing_changes_the_loss_as_torch_defines_it() -> None:
    model, batch = tiny_gpt2(dropout=0.0), _batch(64)
    plain = CausalLMLoss()(model, batch)
    smooth = CausalLMLoss(label_smoothing=0.1)(model, batch)
    assert int(plain.num_targets) == int(smooth.num_targets) == 10
    assert not torch.allclose(plain.loss_sum, smooth.loss_sum)
    logits = model(input_ids=batch["input_ids"]).logits.reshape(-1, 64)
    expected = F.cross_entropy(logits, batch["labels"].reshape(-1), reduction="sum", label_smoothing=0.1)
    torch.testing.assert_close(smooth.loss_sum, expected)
    # vocab_size equal to the output width is the same computation (nothing padded)
    torch.testing.assert_close(
        CausalLMLoss(label_smoothing=0.1, vocab_size=64)(model, batch).loss_sum, expected
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_smoothing_puts_no_mass_on_padded_vocabulary_rows(smoothing: float) -> None:
    from biomamba.models import create_model

    mamba = create_model({"d_model": 32, "n_layer": 2, "vocab_size": 50, "d_state": 8, "headdim": 8}, seed=0)
    real, padded = mamba.config.vocab_size, mamba.config.padded_vocab_size
    assert (real, padded) == (50, 64)
    batch = _batch(real)
    logits = mamba(input_ids=batch["input_ids"]).logits.detach().requires_grad_(True)
    assert logits.shape[-1] == padded
    out = CausalLMLoss(label_smoothing=smoothing, vocab_size=real)(_Logits(logits), batch)
    out.loss_sum.backward()
    # d(sum of CE)/d(logits) = softmax - target per counted position: recover the target distribution
    keep = batch["labels"] != IGNORE_INDEX
    target = (logits.softmax(-1) - logits.grad)[keep].detach()
    torch.testing.assert_close(target[:, real:], torch.zeros(10, padded - real), atol=1e-6, rtol=0)
    torch.testing.assert_close(target.sum(-1), torch.ones(10))
    hot = F.one_hot(batch["labels"][keep], padded).float()
    uniform = torch.zeros(padded).index_fill_(0, torch.arange(real), 1.0 / real)
    torch.testing.assert_close(target, (1 - smoothing) * hot + smoothing * uniform, atol=1e-6, rtol=1e-5)
    assert torch.equal(logits.grad[~keep], torch.zeros_like(logits.grad[~keep]))
