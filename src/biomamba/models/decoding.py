"""Batched token decoding for every model family, with per-request sampling and streaming.

Why not `model.generate`: a server batches requests that differ in length, temperature, top-p, seed and
stopping point, and streams each one's tokens. A `DecodingBatch` runs ONE forward pass per step for all its
rows and hands each row's token to that request's own queue; requests join between steps and leave when
they finish or are cancelled (continuous batching). The per-family state surgery is
`biomamba.models.decode_state.DecodeState`. Here, in models, so the server (`serve.engine`), `biomamba
generate` and the quantization table (`compress.report`) decode alike; `models.gguf` runs GGUF through it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from biomamba.models.decode_state import decode_state

_DONE = object()  # a request's queue ends with this

SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.Generator.manual_seed accepts


def check_seed(seed: int | None) -> None:
    """Refuse a seed torch cannot take, with a message naming the accepted range."""
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise ValueError(f"seed must be between -2**63 and 2**64-1, got {seed}")


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

    def stream(
        self, timeout: float | None = None, abandoned: Callable[[], bool] | None = None, poll_s: float = 0.1
    ) -> Iterator[int]:
        """Yield generated token ids until the request finishes; re-raise an engine error.

        `timeout` bounds the wait for each token (queue.Empty past it). `abandoned` is asked every
        `poll_s` (a client that hung up), whether tokens flow or not: if true, the request is cancelled
        and the stream ends, so the engine stops spending steps on it.
        """
        checked = time.monotonic()
        while True:
            item = self._next(timeout, abandoned, poll_s)
            if abandoned is not None and time.monotonic() - checked >= poll_s:
                checked = time.monotonic()
                if abandoned():
                    item = None
            if item is None:
                self.cancelled.set()
                return
            if item is _DONE:
                if self.error is not None:
                    raise self.error
                return
            yield item

    def _next(self, timeout: float | None, abandoned: Callable[[], bool] | None, poll_s: float) -> Any:
        """The next queue item; None when the client is found gone while waiting."""
        if abandoned is None:
            return self.tokens.get(timeout=timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            try:
                return self.tokens.get(timeout=max(wait, 0.0))
            except queue.Empty:
                if abandoned():
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def fail(self, exc: BaseException) -> None:
        """End the request with an error (its waiter re-raises it)."""
        self.error = self.error or exc
        self.tokens.put(_DONE)


class _Row:
    """Decoding state of one request inside a batch; building it validates the seed."""

    def __init__(self, request: GenerationRequest, device: torch.device) -> None:
        check_seed(request.seed)
        self.request = request
        self.produced = 0
        self.done = False
        self.next_token = 0
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


class DecodingBatch:
    """The requests decoding together: new ones join between steps, finished or cancelled ones leave.

    Faults stay with the requests that caused them: a request whose row cannot be built (a bad seed) or
    whose prefill raises fails alone, before it touches the running batch; a failing decode step fails the
    rows of that step (their state is lost) and leaves the batch empty and usable.
    """

    def __init__(self, decoder: BatchDecoder) -> None:
        self.decoder = decoder
        self.state = decoder.new_state()
        self.rows: list[_Row] = []

    def __len__(self) -> int:
        return len(self.rows)

    def can_join(self, request: GenerationRequest) -> bool:
        """Whether `request` may join now (a sliding-window KV cache that filled up takes no one)."""
        return not self.rows or self.state.can_join([len(request.prompt_ids)])

    def add(self, requests: Sequence[GenerationRequest]) -> None:
        """Prefill `requests` and add them to the batch (each gets its first token at once)."""
        rows = []
        for request in requests:
            try:
                rows.append(_Row(request, self.decoder.device))
            except Exception as exc:  # noqa: BLE001 - the request's own fault: it alone fails
                request.fail(exc)
        if rows:
            self._join(rows)

    def _join(self, rows: list[_Row]) -> None:
        """Prefill rows together; should that fail, one by one, so that only the culprit fails."""
        try:
            logits = self.state.join([row.request.prompt_ids for row in rows])
        except Exception as exc:  # noqa: BLE001 - e.g. a token id outside the embedding
            if not self.rows:  # the failed join may have left a half-built state: start afresh
                self.state = self.decoder.new_state()
            if len(rows) > 1:
                for row in rows:
                    self._join([row])
                return
            rows[0].request.fail(exc)
            return
        self.rows.extend(rows)
        self._advance(rows, logits)

    def step(self) -> None:
        """One forward pass for every row; cancelled rows leave first."""
        for row in self.rows:
            if row.request.cancelled.is_set():
                row.finish()
        self._drop_finished()
        if not self.rows:
            return
        tokens = torch.tensor([row.next_token for row in self.rows], device=self.decoder.device)
        try:
            logits = self.state.step(tokens)
        except Exception as exc:  # noqa: BLE001 - the step's rows fail; the engine keeps serving
            self.fail_all(exc)
            return
        self._advance(self.rows, logits)

    def _advance(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Sample and emit each row's next token, then shrink the state; a fault fails the whole batch."""
        try:
            self._emit(rows, logits)
            self._drop_finished()
        except Exception as exc:  # noqa: BLE001 - state surgery failed: no row can be trusted
            self.fail_all(exc)

    def fail_all(self, exc: BaseException) -> None:
        for row in self.rows:
            row.request.error = row.request.error or exc
            row.finish()
        self.rows = []
        self.state = self.decoder.new_state()

    def _emit(self, rows: list[_Row], logits: torch.Tensor) -> None:
        vocab = self.decoder.vocab_size
        if vocab is not None and logits.shape[-1] > vocab:
            logits = logits[:, :vocab]  # padded embedding rows are not tokens
        for row, row_logits in zip(rows, logits, strict=True):
            req = row.request
            if req.cancelled.is_set():
                row.finish()
                continue
            try:
                token = sample_next(row_logits, req.temperature, req.top_p, row.generator)
            except Exception as exc:  # noqa: BLE001 - e.g. NaN logits: this request fails, not the batch
                req.error = req.error or exc
                row.finish()
                continue
            row.next_token = token
            row.produced += 1
            if token in req.stop_token_ids:
                row.finish()
                continue
            req.tokens.put(token)
            if row.produced >= req.max_new_tokens:
                row.finish()

    def _drop_finished(self) -> None:
        live = [i for i, row in enumerate(self.rows) if not row.done]
        if len(live) < len(self.rows):
            self.state.keep(live)
            self.rows = [self.rows[i] for i in live]


class BatchDecoder:
    """The model and what decoding needs to know about it; makes `DecodingBatch`es.

    Another backend (biomamba.models.gguf: llama.cpp) subclasses it and supplies its own `new_state()` (a
    `models.decode_state.DecodeState`: join / step / keep / can_join) and `max_rows`."""

    max_rows: int | None = None  # most requests one batch can hold (None: the engine's max_batch_size)

    def __init__(self, model: torch.nn.Module, vocab_size: int | None = None) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.vocab_size = vocab_size  # logits beyond the tokenizer's vocabulary (padding) are never sampled

    def new_state(self) -> Any:
        """A fresh decoding state over the model (the KV cache or Mamba2's recurrent state)."""
        return decode_state(self.model)

    def start(self) -> DecodingBatch:
        """An empty batch to add requests to."""
        return DecodingBatch(self)

    @torch.inference_mode()
    def run(self, requests: Sequence[GenerationRequest]) -> None:
        """Decode these requests to completion (or cancellation), streaming tokens to their queues."""
        batch = self.start()
        try:
            batch.add(requests)
            while batch:
                batch.step()
        except BaseException as exc:  # e.g. KeyboardInterrupt: nobody may be left waiting
            batch.fail_all(exc)
            raise
