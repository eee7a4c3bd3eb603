"""The decoding state of a running batch, one class per model family, behind one interface.

Mamba2 decodes from its recurrent cache (each prompt prefilled on its own, the per-prompt caches stacked,
finished rows dropped); transformers models from their KV cache, prompts left-padded with an attention mask
and matching position ids. Rows may join a batch that is already decoding. Its own module because both the
decode loop (`models.decoding`) and `models.generation` use it, and generation runs that loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from biomamba.models.families import family_spec
from biomamba.models.loading import unwrap
from biomamba.models.mamba2 import Mamba2Cache


class DecodeState:
    """The decoding state of a running batch, for one model family: rows join and leave between steps.

    Why one class per family: a batch that changes while it decodes (continuous batching in the server)
    needs family-specific state surgery, and `stream_generate` and the server must do it the same way.
    Rows are numbered in join order; `join` appends, `keep` drops, `step` advances every row by one token.
    """

    batch_size: int = 0

    def join(self, prompts: Sequence[Sequence[int]]) -> Tensor:
        """Prefill `prompts` and append them as new rows; fp32 next-token logits [len(prompts), V]."""
        raise NotImplementedError

    def step(self, tokens: Tensor) -> Tensor:
        """Feed one token per row (LongTensor [B]); fp32 next-token logits [B, V]."""
        raise NotImplementedError

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only these rows (in this order)."""
        raise NotImplementedError

    def can_join(self, prompt_lengths: Sequence[int]) -> bool:
        """Whether prompts of these lengths may `join` this batch now (always, when it is empty)."""
        return True


class Mamba2State(DecodeState):
    """Mamba2: each prompt is prefilled alone (no padding ever enters an SSM state) and the O(1)-size
    recurrent states are stacked, so joining and leaving are row concatenation and selection."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.cache: Mamba2Cache | None = None

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return 0 if self.cache is None else self.cache.batch_size

    def join(self, prompts: Sequence[Sequence[int]]) -> Tensor:
        caches, logits = [], []
        for ids in prompts:
            cache = unwrap(self.model).allocate_cache(1, device=self.device)
            x = torch.tensor([list(ids)], device=self.device)
            logits.append(self.model(input_ids=x, cache=cache, logits_to_keep=1).logits[:, -1].float())
            caches.append(cache)
        self.cache = Mamba2Cache.cat(([self.cache] if self.cache is not None else []) + caches)
        return torch.cat(logits, 0)

    def step(self, tokens: Tensor) -> Tensor:
        x = tokens.to(self.device)[:, None]
        return self.model(input_ids=x, cache=self.cache, logits_to_keep=1).logits[:, -1].float()

    def keep(self, rows: Sequence[int]) -> None:
        if self.cache is not None:
            self.cache = self.cache.select(list(rows)) if len(rows) else None


class KVCacheState(DecodeState):
    """transformers models: rows left-padded to a common width with an attention mask and position ids
    counted over real tokens, so a padded row computes what it would alone. A joining group is prefilled
    on its own cache, then both caches are left-padded to one width and stacked; leaving rows are
    selected out and all-padding leading columns trimmed."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self._reset()

    def _reset(self) -> None:
        self.cache: Any = None
        self.mask = torch.zeros(0, 0, dtype=torch.long, device=self.device)
        self.next_position = torch.zeros(0, 1, dtype=torch.long, device=self.device)

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.mask.shape[0]

    def can_join(self, prompt_lengths: Sequence[int]) -> bool:
        if self.cache is None:
            return True
        width = max([self.mask.shape[1], *prompt_lengths])
        return all(_resizable(layer, width) for layer in _layers(self.cache))

    def join(self, prompts: Sequence[Sequence[int]]) -> Tensor:
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.long)  # padding: masked out, any id does
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(list(p))
            mask[i, width - len(p) :] = 1
        mask = mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids.to(self.device), attention_mask=mask, position_ids=positions, use_cache=True
        )
        if self.cache is None:
            self.cache, self.mask = out.past_key_values, mask
        else:
            self.cache, self.mask = _stack_caches(self.cache, self.mask, out.past_key_values, mask)
        self.next_position = torch.cat([self.next_position, positions[:, -1:] + 1])
        return out.logits[:, -1].float()

    def step(self, tokens: Tensor) -> Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        out = self.model(
            input_ids=tokens.to(self.device)[:, None],
            attention_mask=self.mask,
            position_ids=self.next_position,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        self.next_position = self.next_position + 1
        return out.logits[:, -1].float()

    def keep(self, rows: Sequence[int]) -> None:
        if not len(rows):
            self._reset()  # empty: the next join starts a fresh cache
            return
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.next_position = self.next_position[index]
        lead = int((self.mask.sum(0) > 0).long().argmax())  # first column some row still attends to
        if lead > 0 and all(_resizable(layer, 0) for layer in _layers(self.cache)):
            for layer in _layers(self.cache):
                _set_kv(layer, layer.keys[..., lead:, :], layer.values[..., lead:, :])
            self.mask = self.mask[:, lead:]


def _layers(cache: Any) -> list[Any]:
    return list(getattr(cache, "layers", []))


def _resizable(layer: Any, width: int) -> bool:
    """A dynamic cache layer that stores every position and still will at `width` (a sliding-window
    layer only until its window fills: then it drops positions, and padding can no longer be added)."""
    from transformers.cache_utils import DynamicLayer

    if not isinstance(layer, DynamicLayer) or layer.keys is None:
        return False
    if getattr(layer, "cumulative_length", layer.keys.shape[-2]) != layer.keys.shape[-2]:
        return False
    window = getattr(layer, "sliding_window", None)
    return window is None or max(width, layer.keys.shape[-2]) < window - 1


def _set_kv(layer: Any, keys: Tensor, values: Tensor) -> None:
    layer.keys, layer.values = keys, values
    if hasattr(layer, "cumulative_length"):
        layer.cumulative_length = keys.shape[-2]


def _stack_caches(cache: Any, mask: Tensor, other: Any, other_mask: Tensor) -> tuple[Any, Tensor]:
    """Rows of `other` appended to `cache`, the narrower one left-padded (masked out) to a common width."""
    width = max(mask.shape[1], other_mask.shape[1])

    def pad(t: Tensor, dim: int) -> Tensor:
        missing = width - t.shape[dim]
        if missing == 0:
            return t
        shape = list(t.shape)
        shape[dim] = missing
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    for mine, theirs in zip(_layers(cache), _layers(other), strict=True):
        keys = torch.cat([pad(mine.keys, -2), pad(theirs.keys, -2)])
        values = torch.cat([pad(mine.values, -2), pad(theirs.values, -2)])
        _set_kv(mine, keys, values)
    return cache, torch.cat([pad(mask, 1), pad(other_mask, 1)])


def decode_state(model: nn.Module) -> DecodeState:
    """An empty `DecodeState` of the kind the model's family declares (`FamilySpec.decode_state`)."""
    if family_spec(model).decode_state == "recurrent":
        return Mamba2State(model)
    return KVCacheState(model)
