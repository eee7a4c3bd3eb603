"""The serving engine: continuous batching on a worker thread over `biomamba.models.decoding` (one forward
pass per step for all rows, each request's tokens streamed to its own queue).

The server talks to an `Engine` (submit / alive / close); `BatchingEngine` is the one here, and another
backend (e.g. a llama.cpp model) can implement the same three members.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch

from biomamba.models.decoding import _DONE, BatchDecoder, DecodingBatch, GenerationRequest
from biomamba.models.generation import TextStream

__all__ = ["BatchingEngine", "Engine", "EngineStopped", "generate_text"]

log = logging.getLogger("biomamba.serve")


class EngineStopped(RuntimeError):
    """The engine is not running (shut down, or died): the request was not and will not be decoded."""


class Engine(Protocol):
    """What the server needs from an inference backend (this batching engine, or another one).

    `submit` queues a `GenerationRequest` whose tokens then arrive on its queue; False means full (429).
    `alive` is False once the backend stopped or died (the server answers 503 and /health says so).
    """

    def submit(self, request: GenerationRequest) -> bool: ...

    @property
    def alive(self) -> bool: ...

    def close(self, timeout: float = 10.0) -> None: ...


class BatchingEngine:
    """A worker thread that decodes waiting requests in one `DecodingBatch` (continuous batching).

    Between two decode steps, waiting requests join the running batch (up to `max_batch_size` rows) and
    finished or cancelled ones leave, so a short request never waits for a long one to end. When the batch
    is empty, the first request waits at most `batch_wait_s` for others. `continuous=False` runs each batch
    to its end before the next (the old behaviour, kept as the latency benchmark's baseline). Bounded:
    `max_queue` waiting requests, beyond which `submit` refuses. Any error of a request fails that request;
    should the thread itself ever die, `alive` turns False and every waiting request is failed.
    """

    def __init__(
        self,
        decoder: BatchDecoder,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
        max_queue: int = 64,
        continuous: bool = True,
    ) -> None:
        self.decoder = decoder
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.continuous = continuous
        self._queue: queue.Queue[GenerationRequest] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self.died: BaseException | None = None  # why the engine thread ended, if not by close()
        self.batch_sizes: list[int] = []  # requests admitted together, per admission (tests, metrics)
        self._batch = decoder.start()
        self._held: GenerationRequest | None = None  # the next request, waiting for the batch to empty
        self._thread = threading.Thread(target=self._loop, name="biomamba-engine", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    @property
    def running(self) -> int:
        """Requests decoding now (abandoned ones leave at the next step)."""
        return len(self._batch)

    @property
    def waiting(self) -> int:
        """Requests queued, not yet in the batch."""
        return self._queue.qsize() + (self._held is not None)

    def submit(self, request: GenerationRequest) -> bool:
        """Queue a request; False when the queue is full (the caller answers 429).

        Raises `EngineStopped` when the engine is not running, so nobody waits on a dead engine."""
        if not self.alive:
            raise EngineStopped(self._why_stopped())
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            return False
        if not self.alive:  # died between the check and the put: do not leave the request waiting
            self._fail_waiting(EngineStopped(self._why_stopped()))
        return True

    def _why_stopped(self) -> str:
        if self.died is not None:
            return f"the generation engine died ({type(self.died).__name__}: {self.died})"
        return "the generation engine is shut down"

    @torch.inference_mode()
    def _loop(self) -> None:
        batch = self._batch
        try:
            while not self._stop.is_set():
                try:
                    self._admit(batch)
                    batch.step()
                except Exception as exc:  # noqa: BLE001 - a bug in a request's path: fail it, keep serving
                    log.exception("generation failed; the engine goes on")
                    batch.fail_all(exc)
        except BaseException as exc:  # noqa: BLE001 - record it: /health and submit report a dead engine
            self.died = exc
            log.critical("generation engine died: %s: %s", type(exc).__name__, exc)
            batch.fail_all(EngineStopped(self._why_stopped()))
            self._fail_waiting(EngineStopped(self._why_stopped()))
            return
        batch.fail_all(EngineStopped("server shutting down"))

    def _admit(self, batch: DecodingBatch) -> None:
        """Move waiting requests into the batch: blocking briefly when it is empty, else only what waits.

        Arrival order is kept: a request that cannot join the running batch yet is held, and the ones
        behind it wait with it until the batch empties."""
        if batch and not self.continuous:
            return
        room = self.max_batch_size - len(batch)
        if room <= 0:
            return
        joining: list[GenerationRequest] = []
        if not batch:
            try:
                joining.append(self._take(timeout=0.05))
            except queue.Empty:
                return
            deadline = time.monotonic() + self.batch_wait_s
            while len(joining) < room and (remaining := deadline - time.monotonic()) > 0:
                try:
                    joining.append(self._take(timeout=remaining))
                except queue.Empty:
                    break
        while len(joining) < room:
            try:
                request = self._take()
            except queue.Empty:
                break
            if batch and not batch.can_join(request):
                self._held = request
                break
            joining.append(request)
        live = [r for r in joining if not r.cancelled.is_set()]
        for r in joining:
            if r.cancelled.is_set():
                r.tokens.put(_DONE)
        if live:
            self.batch_sizes.append(len(live))
            batch.add(live)

    def _take(self, timeout: float | None = None) -> GenerationRequest:
        """The oldest waiting request (a held one first); queue.Empty when none comes in `timeout`."""
        if self._held is not None:
            request, self._held = self._held, None
            return request
        return self._queue.get(timeout=timeout) if timeout is not None else self._queue.get_nowait()

    def _fail_waiting(self, exc: BaseException) -> None:
        if self._held is not None:
            self._held.fail(exc)
            self._held = None
        while True:
            try:
                self._queue.get_nowait().fail(exc)
            except queue.Empty:
                return

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests, end the running batch, and fail whatever still waits."""
        self._stop.set()
        self._thread.join(timeout)
        self._fail_waiting(EngineStopped("server shutting down"))

    def __enter__(self) -> BatchingEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        if tail := text.flush():
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
