"""Tiny Mamba2 models (dt/D/norm weights random too) and a Metaspace tokenizer for the models-stage tests."""

from __future__ import annotations

import pytest
import torch
from tests.factories.models import mamba2_randomized as tiny_model
from tests.factories.tokenizers import CLINICAL_TEXT, metaspace_tokenizer


@pytest.fixture
def model():
    return tiny_model()


def random_ids(batch: int, length: int, seed: int = 1, vocab: int = 90) -> torch.Tensor:
    """Token ids [batch, length] in the tiny models' vocabulary, the same for the same arguments."""
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def recurrent_scan(x, dt, A, B, C, D=None, seg=None):
    """The SSM recurrence h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t, y_t = C_t h_t + D x_t, step by step in
    float64: the definition the chunked scan must reproduce. The state restarts wherever `seg` changes.
    Returns (y [b, l, h, p], final state [b, h, p, n])."""
    x, dt, A, B, C = (t.double() for t in (x, dt, A, B, C))
    b, length, h, p = x.shape
    rep = h // B.shape[2]
    Bh, Ch = B.repeat_interleave(rep, dim=2), C.repeat_interleave(rep, dim=2)
    state = torch.zeros(b, h, p, B.shape[-1], dtype=torch.float64)
    ys = []
    for t in range(length):
        if seg is not None and t > 0:
            state = state * (seg[:, t] == seg[:, t - 1]).double()[:, None, None, None]
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]
        state = state * decay + (x[:, t] * dt[:, t, :, None])[..., None] * Bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = torch.stack(ys, dim=1)
    return (y if D is None else y + x * D.double()[:, None]), state


@pytest.fixture(scope="session")
def tokenizer():
    """90 tokens (the tiny models' vocabulary), trained on the clinical sentences the other stages' tests use."""
    return metaspace_tokenizer(CLINICAL_TEXT, 90)
