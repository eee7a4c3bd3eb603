"""Text generation for every model family, streaming or not: greedy, temperature, top-p, stop strings.

Mamba2 decodes from its recurrent cache, O(1) work and memory per new token: each prompt is prefilled on
its own (no padding ever enters the state; rows may have different lengths), the per-prompt caches are
stacked, and finished rows are dropped from the batch. transformers models decode with their KV cache,
prompts left-padded with an attention mask and matching position ids.

Stop strings end a row at their first occurrence in the generated text; the stop string itself is not
returned. While streaming, text that could still turn out to be the start of a stop string (or an
incomplete UTF-8 character) is held back until it is decided, so a client never sees text that is later
taken back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from biomamba.models.loading import family, unwrap
from biomamba.models.mamba2 import Mamba2Cache, Mamba2LMHeadModel


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


@dataclass
class _Row:
    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of the generated text already streamed
    text: str = ""
    finish_reason: str | None = None


def _sample(
    logits: Tensor, *, greedy: bool, temperature: float, top_p: float, generator: torch.Generator | None
) -> Tensor:
    """Next token per row from last-position logits [B, V] (fp32)."""
    if greedy or temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        cumulative = sorted_probs.cumsum(dim=-1)
        # keep the smallest set whose mass reaches top_p (the top token is always kept)
        drop = cumulative - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _holdback(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might still become (the start of) a stop string or a UTF-8 char."""
    keep = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                keep = max(keep, k)
                break
    if text.endswith("\ufffd"):
        keep = max(keep, len(text) - len(text.rstrip("\ufffd")))
    return keep


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


class _Decoder:
    """Family-specific prefill/step behind one interface: `prefill(rows) -> logits`, `step(tokens)`."""

    def __init__(self, model: nn.Module, prompts: list[list[int]], pad_id: int) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.is_mamba = isinstance(unwrap(model), Mamba2LMHeadModel) or family(model) == "mamba2"
        self.prompts = prompts
        self.pad_id = pad_id
        self.cache: Any = None

    def prefill(self) -> Tensor:
        if self.is_mamba:
            caches, logits = [], []
            for ids in self.prompts:
                cache = unwrap(self.model).allocate_cache(1, device=self.device)
                x = torch.tensor([ids], device=self.device)
                logits.append(self.model(input_ids=x, cache=cache, logits_to_keep=1).logits[:, -1])
                caches.append(cache)
            self.cache = Mamba2Cache.cat(caches)
            return torch.cat(logits, 0)
        width = max(len(p) for p in self.prompts)
        ids = torch.full((len(self.prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(self.prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        self.mask = mask.to(self.device)
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids.to(self.device), attention_mask=self.mask, position_ids=positions, use_cache=True
        )
        self.cache = out.past_key_values
        self.next_position = positions[:, -1:] + 1
        return out.logits[:, -1].float()

    def step(self, tokens: Tensor) -> Tensor:
        if self.is_mamba:
            return self.model(input_ids=tokens[:, None], cache=self.cache, logits_to_keep=1).logits[:, -1]
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.next_position,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        self.next_position = self.next_position + 1
        return out.logits[:, -1].float()

    def keep(self, rows: Tensor) -> bool:
        """Drop finished rows from the batch when the family allows it cheaply (Mamba2 caches do)."""
        if self.is_mamba:
            self.cache = self.cache.select(rows)
            return True
        return False


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
    interleave (one per active row per step); concatenating a row's ``text`` gives its final text."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if max_new_tokens < 0:
        raise ValueError("max_new_tokens must be >= 0")
    if not 0.0 < top_p <= 1.0:
        raise ValueError("top_p must be in (0, 1]")
    stops = [s for s in (stop or []) if s]
    encoded = _encode_prompts(tokenizer, list(prompts))
    eos = tokenizer.eos_token_id if stop_at_eos else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    vocab = len(tokenizer)
    rows = [_Row(prompt_tokens=len(ids)) for ids in encoded]
    if max_new_tokens == 0:
        for i in range(len(rows)):
            yield StreamEvent(i, "", None, True, "length")
        return
    generator = None
    decoder = _Decoder(model, encoded, pad)
    if seed is not None:
        generator = torch.Generator(device=decoder.device).manual_seed(seed)
    logits = decoder.prefill()
    active = list(range(len(rows)))  # row index of each batch position
    for _ in range(max_new_tokens):
        logits[:, vocab:] = float("-inf")  # padded embedding rows are not tokens
        tokens = _sample(logits, greedy=greedy, temperature=temperature, top_p=top_p, generator=generator)
        for pos, row_idx in enumerate(active):
            if rows[row_idx].finish_reason is None:  # rows kept in a batch that cannot shrink stay silent
                yield _advance(
                    rows[row_idx], row_idx, int(tokens[pos]), tokenizer, eos, stops, max_new_tokens
                )
        still = [pos for pos, row_idx in enumerate(active) if rows[row_idx].finish_reason is None]
        if not still:
            return
        if len(still) < len(active) and decoder.keep(torch.tensor(still, device=decoder.device)):
            active = [active[p] for p in still]
            tokens = tokens[still]
        logits = decoder.step(tokens)


def _advance(
    row: _Row, index: int, token: int, tokenizer: Any, eos: int | None, stops: list[str], limit: int
) -> StreamEvent:
    """Add one token to a row; decide what text may be emitted now and whether the row is done."""
    if eos is not None and token == eos:
        row.finish_reason = "eos"
        return StreamEvent(index, row.text[row.emitted :], token, True, "eos")
    row.tokens.append(token)
    text = tokenizer.decode(row.tokens, skip_special_tokens=True)
    hits = [text.find(s) for s in stops if s in text]
    if hits:
        row.text = text[: min(hits)]
        row.finish_reason = "stop"
        return StreamEvent(index, row.text[row.emitted :], token, True, "stop")
    row.text = text
    if len(row.tokens) >= limit:
        row.finish_reason = "length"
        return StreamEvent(index, text[row.emitted :], token, True, "length")
    safe = len(text) - _holdback(text, stops)
    delta = text[row.emitted : safe] if safe > row.emitted else ""
    row.emitted = max(row.emitted, safe)
    return StreamEvent(index, delta, token, False, None)


def generate(
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
) -> Generation | list[Generation]:
    """Generate continuations; a single string prompt gives one `Generation`, a list gives a list."""
    single = isinstance(prompts, str)
    items = [prompts] if single else list(prompts)
    texts = ["" for _ in items]
    tokens: list[list[int]] = [[] for _ in items]
    reasons = ["length" for _ in items]
    for event in stream_generate(
        model,
        tokenizer,
        items,
        max_new_tokens,
        temperature,
        top_p,
        stop,
        greedy,
        seed=seed,
        stop_at_eos=stop_at_eos,
    ):
        texts[event.index] += event.text
        if event.token_id is not None and event.finish_reason not in ("eos",):
            tokens[event.index].append(event.token_id)
        if event.finished:
            reasons[event.index] = event.finish_reason or "length"
    encoded = _encode_prompts(tokenizer, items)
    results = [Generation(texts[i], tokens[i], reasons[i], len(encoded[i])) for i in range(len(items))]
    return results[0] if single else results
