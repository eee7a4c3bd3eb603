"""Text generation for every model family, streaming or not: greedy, temperature, top-p, stop strings.

Mamba2 decodes from its recurrent cache, O(1) work and memory per new token: each prompt is prefilled on
its own (no padding ever enters the state; rows may have different lengths), the per-prompt caches are
stacked, and finished rows are dropped from the batch. transformers models decode with their KV cache,
prompts left-padded with an attention mask and matching position ids. Both live behind `DecodeState`
(`biomamba.models.decode_state`), whose rows may also join a batch that is already decoding. `stream_generate`
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
from torch import nn

from biomamba.models.decoding import BatchDecoder, GenerationRequest


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
