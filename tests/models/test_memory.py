"""The scan never materialises per-position states ([batch, length, heads, headdim, state]).

A dispatch mode records the largest tensor any operation produces during forward + backward, and a
saved-tensor hook the elements kept for backward. The largest tensors must be the chunk x chunk scores
(batch x length x heads x chunk) or the per-chunk boundary states (batch x length/chunk x heads x headdim x
state), far below per-position states (what transformers' old fallback built).
"""

from __future__ import annotations

import torch
from tests.models.conftest import random_ids, tiny_model
from torch.utils._python_dispatch import TorchDispatchMode


class _LargestOutput(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _largest(d_state: int, chunk: int, recompute: bool = True) -> tuple[int, int, int]:
    model = tiny_model(
        d_model=32, d_state=d_state, headdim=4, ngroups=1, chunk_size=chunk, vocab_size=16
    ).train()
    model.config.recompute_scan = recompute
    ids = random_ids(2, 64, seed=0, vocab=16)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel()
        return t

    with _LargestOutput() as mode, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids).loss.backward()
    c = model.config
    per_position_states = 2 * 64 * c.nheads * c.headdim * d_state
    return mode.largest, saved[0], per_position_states


def test_no_tensor_scales_with_length_times_state():
    largest, _, per_position = _largest(d_state=64, chunk=8)
    b, length, h, p, n, q = 2, 64, 16, 4, 64, 8
    bound = max(b * length * h * q, b * (length // q + 1) * h * p * n)
    assert largest <= bound
    assert largest * 4 < per_position


def test_growth_follows_chunk_not_state():
    small_state, _, _ = _largest(d_state=16, chunk=32)
    big_state, _, _ = _largest(d_state=64, chunk=32)
    assert big_state == small_state  # 4x the state: the largest tensor (the chunk scores) is unchanged
    big_chunk, _, _ = _largest(d_state=16, chunk=64)
    assert big_chunk >= small_state * 2  # the chunk x chunk scores dominate


def test_recompute_scan_saves_less_for_backward_with_same_gradients():
    _, saved_recompute, _ = _largest(d_state=16, chunk=32, recompute=True)
    _, saved_plain, _ = _largest(d_state=16, chunk=32, recompute=False)
    assert saved_recompute < saved_plain * 0.8
