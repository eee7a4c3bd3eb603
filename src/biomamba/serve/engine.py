"""Batched token generation for any biomamba model family, with per-request sampling and streaming.

Why not `model.generate`: a server batches requests that differ in length, temperature, top-p, seed and
stopping point, and must stream each one's tokens as they appear. The decoder below runs ONE forward pass
per step for the whole batch and hands each row's token to that request's own queue.

Batching per family:
- transformers models (GPT-2, Llama, Mistral, ...): prompts left-padded with an attention mask and
  position ids counted over real tokens, so padding changes nothing; the KV cache grows with the batch.
- biomamba's Mamba2: an SSM has no padding mask, so each prompt is prefilled on its own (its exact state)
  and the O(1)-size recurrent states are stacked (`Mamba2Cache.cat`) for a joint decode.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

_DONE = object()


@dataclass
class GenerationRequest:
    """One prompt to continue, with its own sampling settings; tokens arrive on `tokens` (then _DONE)."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: frozenset[int] = frozenset()
    tokens: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def stream(self, timeout: float | None = None) -> Iterator[int]:
        """Yield generated token ids until the request finishes; re-raise an engine error."""
        while True:
            item = self.tokens.get(timeout=timeout)
            if item is _DONE:
                if self.error is not None:
                    raise self.error
                return
            yield item


class _Row:
    """Decoding state of one request inside a batch."""

    def __init__(self, request: GenerationRequest, device: torch.device) -> None:
        self.request = request
        self.produced = 0
        self.done = False
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(request.seed if request.seed is not None else int(time.time_ns() % 2**63))

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.request.tokens.put(_DONE)


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """Greedy at temperature 0; otherwise nucleus sampling from softmax(logits / temperature)."""
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p  # always keeps the top token
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


class BatchDecoder:
    """Runs the forward passes of a batch; knows how each model family keeps its decoding state."""

    def __init__(self, model: torch.nn.Module, vocab_size: int | None = None) -> None:
        from biomamba.models import family

        self.model = model.eval()
        self.family = family(model)
        self.device = next(model.parameters()).device
        self.vocab_size = vocab_size  # logits beyond the tokenizer's vocabulary (padding) are never sampled

    @torch.inference_mode()
    def run(self, requests: Sequence[GenerationRequest]) -> None:
        """Decode every request to completion (or cancellation), streaming tokens to their queues."""
        rows = [_Row(r, self.device) for r in requests]
        try:
            if self.family == "mamba2":
                logits, step = self._prefill_mamba2([r.prompt_ids for r in requests])
            else:
                logits, step = self._prefill_padded([r.prompt_ids for r in requests])
            while True:
                next_ids = self._emit(rows, logits)
                if all(row.done for row in rows):
                    break
                logits = step(torch.tensor(next_ids, device=self.device)[:, None])
        except BaseException as exc:  # the error belongs to each waiting request, not to the worker
            for row in rows:
                row.request.error = row.request.error or exc
                row.finish()
            if not isinstance(exc, Exception):
                raise
        finally:
            for row in rows:
                row.finish()

    def _emit(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        if self.vocab_size is not None and logits.shape[-1] > self.vocab_size:
            logits = logits[:, : self.vocab_size]
        next_ids = []
        for row, row_logits in zip(rows, logits, strict=True):
            if row.done or row.request.cancelled.is_set():
                row.finish()
                next_ids.append(0)
                continue
            req = row.request
            token = sample_next(row_logits, req.temperature, req.top_p, row.generator)
            next_ids.append(token)
            row.produced += 1
            if token in req.stop_token_ids:
                row.finish()
                continue
            req.tokens.put(token)
            if row.produced >= req.max_new_tokens:
                row.finish()
        return next_ids

    def _prefill_mamba2(
        self, prompts: list[list[int]]
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        from biomamba.models import Mamba2Cache

        caches, last = [], []
        for ids in prompts:
            cache = self.model.allocate_cache(1)
            out = self.model(input_ids=torch.tensor([ids], device=self.device), cache=cache, logits_to_keep=1)
            caches.append(cache)
            last.append(out.logits[:, -1])
        cache = Mamba2Cache.cat(caches)

        def step(tokens: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=tokens, cache=cache, logits_to_keep=1).logits[:, -1]

        return torch.cat(last), step

    def _prefill_padded(
        self, prompts: list[list[int]]
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(prompt)
            mask[i, width - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        state = {"past": out.past_key_values, "mask": mask, "pos": positions[:, -1:]}

        def step(tokens: torch.Tensor) -> torch.Tensor:
            state["mask"] = torch.cat([state["mask"], torch.ones_like(tokens)], dim=-1)
            state["pos"] = state["pos"] + 1
            out = self.model(
                input_ids=tokens,
                attention_mask=state["mask"],
                position_ids=state["pos"],
                past_key_values=state["past"],
                use_cache=True,
            )
            state["past"] = out.past_key_values
            return out.logits[:, -1]

        return out.logits[:, -1], step


class BatchingEngine:
    """A worker thread that groups waiting requests into batches for one `BatchDecoder`.

    The first waiting request waits at most `batch_wait_s` for others; requests that arrive while a batch
    runs form the next batch. Bounded: `max_queue` waiting requests, beyond which `submit` refuses.
    """

    def __init__(
        self, decoder: BatchDecoder, max_batch_size: int = 8, batch_wait_s: float = 0.005, max_queue: int = 64
    ) -> None:
        self.decoder = decoder
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self._queue: queue.Queue[GenerationRequest] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self.batch_sizes: list[int] = []  # observed, for tests and metrics
        self._thread = threading.Thread(target=self._loop, name="biomamba-engine", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest) -> bool:
        """Queue a request; False when the queue is full (the caller answers 429) or the engine stopped."""
        if self._stop.is_set():
            return False
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            return False
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(
                        self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            live = [r for r in batch if not r.cancelled.is_set()]
            for r in batch:
                if r.cancelled.is_set():
                    r.tokens.put(_DONE)
            if live:
                self.batch_sizes.append(len(live))
                self.decoder.run(live)

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests, finish the running batch, and fail whatever still waits."""
        self._stop.set()
        self._thread.join(timeout)
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            request.error = RuntimeError("server shutting down")
            request.tokens.put(_DONE)


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


def generate_text(
    decoder: BatchDecoder,
    tokenizer: Any,
    prompt: str,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: Sequence[str] = (),
) -> Iterator[str]:
    """Stream the continuation of one prompt as text pieces (used by `biomamba generate`)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] or [eos_id(tokenizer)]
    request = GenerationRequest(
        ids, max_new_tokens, temperature, top_p, seed, stop_token_ids=frozenset({eos_id(tokenizer)} - {None})
    )
    worker = threading.Thread(target=decoder.run, args=([request],), daemon=True)
    worker.start()
    text = TextStream(tokenizer, stop)
    finished = False
    try:
        for token in request.stream():
            piece = text.feed(token)
            if piece:
                yield piece
            if text.stopped:
                break
        else:
            finished = True
        tail = text.flush()
        if tail:
            yield tail
    finally:
        request.cancelled.set()
        if not finished:  # let the decoder see the cancellation and end the row
            with contextlib.suppress(Exception):
                for _ in request.stream(timeout=30):
                    pass
        worker.join(30)


def eos_id(tokenizer: Any) -> int | None:
    return getattr(tokenizer, "eos_token_id", None)
