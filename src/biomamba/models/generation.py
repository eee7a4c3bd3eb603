"""Text generation for every model family, streaming or not: greedy, temperature, top-p, stop strings.

Mamba2 decodes from its recurrent cache, O(1) work and memory per new token: each prompt is prefilled on
its own (no padding ever enters the state; rows may have different lengths), the per-prompt caches are
stacked, and finished rows are dropped from the batch. transformers models decode with their KV cache,
prompts left-padded with an attention mask and matching position ids. Both live behind `DecodeState`
(`decode_state(model)`), whose rows may also join a batch that is already decoding. `stream_generate`
runs the server's continuous-batching loop and sampler (`biomamba.models.decoding`), so the two decode alike.

Stop strings end a row at their first occurrence in the generated text; the stop string itself is not
returned. While streaming, text that could still turn out to be the start of a stop string (or an
incomplete UTF-8 character) is held back until it is decided, so a client never sees text that is later
taken back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from biomamba.models.families import family_spec
from biomamba.models.loading import unwrap
from biomamba.models.mamba2 import Mamba2Cache


@dataclass
class StreamEvent:
    """One step of `stream_generate` for one prompt row: the new text (possibly empty while held back)."""

    index: int
    text: str
    token_id: int | None
    finished: bool = False
    finish_reason: str | None = None  # "stop" (stop string), "eos", "length"


@dataclass
class Generation:
    """The result for one prompt."""

    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int


class TextStream:
    """Turns a stream of token ids into text pieces, honouring stop strings and partial UTF-8 characters.

    Text that might be the start of a stop string is held back until it is known not to be one, so a
    stop string never reaches the client.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already emitted
        self.stopped = False

    def feed(self, token_id: int) -> str:
        """Add a token; return the text now safe to emit (possibly empty)."""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""  # a multi-byte character is not complete yet
        for stop in self.stop:
            at = text.find(stop, max(0, self.sent - len(stop)))
            if at != -1:
                self.stopped = True
                piece = text[self.sent : max(at, self.sent)]
                self.sent = max(at, self.sent)
                return piece
        safe = len(text)
        for stop in self.stop:
            for k in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:k]):
                    safe = min(safe, len(text) - k)
                    break
        piece = text[self.sent : safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        return piece

    def flush(self) -> str:
        """Text held back at the end of generation (no stop string followed)."""
        if self.stopped:
            return ""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        piece = text[self.sent :]
        self.sent = len(text)
        return piece


def _encode_prompts(tokenizer: Any, prompts: Sequence[str | Sequence[int]]) -> list[list[int]]:
    encoded = []
    for prompt in prompts:
        ids = list(tokenizer(prompt)["input_ids"]) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not ids:
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            if start is None:
                raise ValueError("empty prompt and the tokenizer has no BOS/EOS token to start from")
            ids = [start]
        encoded.append(ids)
    return encoded


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


@torch.no_grad()
def stream_generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: str | Sequence[str] | Sequence[Sequence[int]],
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop: Sequence[str] | None = None,
    greedy: bool = False,
    *,
    seed: int | None = None,
    stop_at_eos: bool = True,
) -> Iterator[StreamEvent]:
    """Yield `StreamEvent`s as tokens are produced; each row ends with one event where ``finished``.

    ``prompts`` is a string, a list of strings, or a list of token-id lists. Events of different rows
    interleave (one per active row per step); concatenating a row's ``text`` gives its final text.
    The decoding is the server's (`biomamba.models.decoding.DecodingBatch`: one decode loop, one sampler);
    with a ``seed``, row i samples from its own generator seeded ``seed + i``."""
    from biomamba.models.decoding import BatchDecoder, GenerationRequest  # decoding imports this module

    if isinstance(prompts, str):
        prompts = [prompts]
    if max_new_tokens < 0:
        raise ValueError("max_new_tokens must be >= 0")
    if not 0.0 < top_p <= 1.0:
        raise ValueError("top_p must be in (0, 1]")
    encoded = _encode_prompts(tokenizer, list(prompts))
    if max_new_tokens == 0:
        for i in range(len(encoded)):
            yield StreamEvent(i, "", None, True, "length")
        return
    eos = tokenizer.eos_token_id if stop_at_eos else None
    requests = [
        GenerationRequest(
            ids,
            max_new_tokens,
            temperature=0.0 if greedy else temperature,
            top_p=top_p,
            seed=None if seed is None else seed + i,
            stop_token_ids=frozenset() if eos is None else frozenset({eos}),
        )
        for i, ids in enumerate(encoded)
    ]
    texts = [TextStream(tokenizer, stop or ()) for _ in requests]
    streams = [request.stream() for request in requests]
    live = set(range(len(requests)))
    training = model.training  # the decoder puts the model in eval mode; the caller's mode comes back
    try:
        batch = BatchDecoder(model, vocab_size=len(tokenizer)).start()
        batch.add(requests)
        while live:
            for i in sorted(live):  # each live row has exactly one new item: a token, or its end
                token = next(streams[i], None)  # an engine error (e.g. NaN logits) is raised here
                if token is None:  # ended without a token: the EOS
                    live.discard(i)
                    yield StreamEvent(i, texts[i].flush(), eos, True, "eos")
                    continue
                piece = texts[i].feed(token)
                if texts[i].stopped:
                    requests[i].cancelled.set()  # the batch drops the row before its next step
                    live.discard(i)
                    yield StreamEvent(i, piece, token, True, "stop")
                elif len(texts[i].ids) == max_new_tokens:
                    live.discard(i)
                    yield StreamEvent(i, piece + texts[i].flush(), token, True, "length")
                else:
                    yield StreamEvent(i, piece, token, False, None)
            if live:
                batch.step()
    finally:
        model.train(training)


def generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: str | Sequence[str] | Sequence[Sequence[int]],
    *args: Any,
    **kwargs: Any,
) -> Generation | list[Generation]:
    """Generate continuations (the arguments of `stream_generate`); a single string prompt gives one
    `Generation`, a list gives a list."""
    single = isinstance(prompts, str)
    encoded = _encode_prompts(tokenizer, [prompts] if single else list(prompts))
    texts = ["" for _ in encoded]
    tokens: list[list[int]] = [[] for _ in encoded]
    reasons = ["length" for _ in encoded]
    for event in stream_generate(model, tokenizer, encoded, *args, **kwargs):
        texts[event.index] += event.text
        if event.token_id is not None and event.finish_reason != "eos":
            tokens[event.index].append(event.token_id)
        if event.finished:
            reasons[event.index] = event.finish_reason or "length"
    results = [Generation(texts[i], tokens[i], reasons[i], len(ids)) for i, ids in enumerate(encoded)]
    return results[0] if single else results
