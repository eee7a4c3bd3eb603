"""Behaviour of biomamba's Mamba2: packing, recurrent decoding, chunk-size invariance, gradients."""

from __future__ import annotations

import pytest
import torch
from tests.models.conftest import random_ids, recurrent_scan, tiny_model

from biomamba.models.mamba2 import Mamba2Cache
from biomamba.models.ssd import segment_ids, ssd_chunked


@pytest.mark.parametrize("chunk", [1, 4, 7, 32])
def test_chunked_scan_equals_recurrence(chunk):
    torch.manual_seed(0)
    b, length, h, p, g, n = 2, 19, 4, 3, 2, 5
    x, B, C = torch.randn(b, length, h, p), torch.randn(b, length, g, n), torch.randn(b, length, g, n)
    dt, A, D = torch.rand(b, length, h), -torch.rand(h) * 2, torch.randn(h)
    seq_idx = torch.tensor([[0] * 6 + [1] * 9 + [2] * 4, [5] * 19])
    seg = segment_ids(seq_idx)
    for s in (None, seg):
        want_y, want_state = recurrent_scan(x, dt, A, B, C, D, s)
        y, state = ssd_chunked(x, dt, A, B, C, chunk, D=D, seg=s)
        assert (y - want_y).abs().max() < 1e-4
        assert (state - want_state).abs().max() < 1e-4


def test_chunk_size_does_not_change_logits(model):
    ids = random_ids(2, 37)
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        for chunk in (1, 3, 16, 64):
            model.config.chunk_size = chunk
            assert (model(input_ids=ids).logits - ref).abs().max() < 1e-4


def test_packed_document_equals_alone(model):
    a, b = random_ids(1, 11, seed=2), random_ids(1, 14, seed=3)
    packed = torch.cat([a, b], dim=1)
    seq_idx = torch.tensor([[0] * 11 + [1] * 14])
    with torch.no_grad():
        alone_a = model(input_ids=a).logits
        alone_b = model(input_ids=b).logits
        both = model(input_ids=packed, seq_idx=seq_idx).logits
        unpacked = model(input_ids=packed).logits
    assert (both[:, :11] - alone_a).abs().max() < 1e-4
    assert (both[:, 11:] - alone_b).abs().max() < 1e-4
    assert (unpacked[:, 11:] - alone_b).abs().max() > 1e-3  # without seq_idx the state does leak


def test_constant_seq_idx_is_a_no_op(model):
    ids = random_ids(2, 20)
    with torch.no_grad():
        assert (
            model(input_ids=ids, seq_idx=torch.zeros_like(ids)).logits - model(input_ids=ids).logits
        ).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("batch", "cuts"),
    [(2, list(range(24))), (1, [0, 2, 13, 14, 30])],
    ids=["token by token", "prefill pieces"],
)
def test_cached_pieces_equal_full_forward(model, batch, cuts):
    """Decoding step by step, and chunked prefill from a cache (pieces shorter and longer than d_conv-1),
    continue exactly where the full forward is."""
    ids = random_ids(batch, cuts[-1])
    with torch.no_grad():
        full = model(input_ids=ids).logits
        cache = model.allocate_cache(batch)
        parts = [
            model(input_ids=ids[:, s:e], cache=cache).logits for s, e in zip(cuts, cuts[1:], strict=False)
        ]
    assert cache.seqlen_offset == cuts[-1]
    assert (torch.cat(parts, 1) - full).abs().max() < 1e-4


def test_cache_select_clone_and_cat(model):
    prompt, answers = random_ids(1, 9), random_ids(3, 5, seed=7)
    with torch.no_grad():
        cache = model.allocate_cache(1)
        model(input_ids=prompt, cache=cache)
        snapshot = cache.clone()
        many = cache.select([0, 0, 0])
        scored = model(input_ids=answers, cache=many).logits
        for row in range(3):
            alone = model(input_ids=torch.cat([prompt, answers[row : row + 1]], 1)).logits[:, 9:]
            assert (scored[row : row + 1] - alone).abs().max() < 1e-4
        assert torch.equal(snapshot.ssm, cache.ssm)  # selecting copied; the original is untouched
        stacked = Mamba2Cache.cat([cache, cache.repeat_interleave(2)])
    assert stacked.batch_size == 3 and torch.equal(stacked.ssm[:, 2], cache.ssm[:, 0])


def test_gradients_reach_every_parameter(model):
    model.train()
    ids = random_ids(2, 18)
    out = model(input_ids=ids, labels=ids, seq_idx=torch.tensor([[0] * 9 + [1] * 9] * 2))
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


def test_gradient_checkpointing_same_grads(model):
    ids = random_ids(2, 12)
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    model(input_ids=ids, labels=ids).loss.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, ref[n], atol=1e-6), n


def test_bf16_close_to_fp32(model):
    ids = random_ids(1, 16)
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        low = model.to(torch.bfloat16)(input_ids=ids).logits
    assert low.dtype == torch.float32
    assert (low - ref).abs().max() < 0.1


def test_padding_mask_is_refused(model):
    ids = random_ids(1, 4)
    with pytest.raises(ValueError, match="seq_idx"):
        model(input_ids=ids, attention_mask=torch.tensor([[0, 1, 1, 1]]))


def test_left_padded_prefill_with_seq_idx_into_cache(model):
    """Rows of different lengths in one prefill: padding is its own segment, so the state after the
    prompt (and the decoding that follows) equals the unpadded prompt's."""
    short, long = random_ids(1, 6, seed=4), random_ids(1, 10, seed=5)
    ids = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long], 0)
    seq_idx = torch.tensor([[0] * 4 + [1] * 6, [1] * 10])
    nxt = random_ids(2, 3, seed=6)
    with torch.no_grad():
        cache = model.allocate_cache(2)
        model(input_ids=ids, seq_idx=seq_idx, cache=cache)
        got = model(input_ids=nxt, cache=cache).logits
        want_short = model(input_ids=torch.cat([short, nxt[:1]], 1)).logits[:, -3:]
        want_long = model(input_ids=torch.cat([long, nxt[1:]], 1)).logits[:, -3:]
    assert (got[:1] - want_short).abs().max() < 1e-4
    assert (got[1:] - want_long).abs().max() < 1e-4


def test_compiles_without_graph_breaks():
    model = tiny_model(n_layer=1).train()
    ids = random_ids(2, 12)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    loss = compiled(input_ids=ids, labels=ids, seq_idx=torch.tensor([[0] * 6 + [1] * 6] * 2)).loss
    loss.backward()
    assert torch.isfinite(loss)
