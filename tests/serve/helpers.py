"""Helpers of the serve tests: their tiny models (built in-process; nothing is downloaded), reference
decodes, a server with its client, server-sent events and raw HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import httpx
from tests.factories import models

from biomamba.models.decoding import BatchDecoder, GenerationRequest
from biomamba.serve.server import RunningServer


def tiny_model(family: str, vocab: int = 300, positions: int = 256, window: int = 128):
    """An eval-mode model of `family`, 16 wide (mistral's KV cache has sliding-window layers)."""
    if family == "mamba2":
        return models.mamba2(vocab, preset="tiny").eval()
    extra = {"sliding_window": window} if family == "mistral" else {}
    return models.tiny_model(family, vocab, hidden=16, positions=positions, **extra).eval()


def raw_post(url: str, body: dict) -> socket.socket:
    """POST a completion on a raw socket left open, so a test can hang up on the server mid-request."""
    host, port = url.removeprefix("http://").split(":")
    raw = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    )
    sock.sendall(head.encode() + raw)
    return sock


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll `condition` until true (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def decode(decoder: BatchDecoder, prompts: Sequence[Sequence[int]], n: int = 6, **request) -> list[list[int]]:
    """The `n` tokens of each prompt, all decoded in one `decoder.run` (one batch; alone for one prompt)."""
    requests = [GenerationRequest(list(p), n, **request) for p in prompts]
    decoder.run(requests)
    return [list(r.stream(timeout=60)) for r in requests]


def solo(decoder: BatchDecoder, prompt: Sequence[int], n: int) -> list[int]:
    """`prompt` decoded alone: what a request must get however the engine batched it."""
    return decode(decoder, [prompt], n)[0]


@contextmanager
def serving(
    model, tokenizer, config, timeout: float = 60, **kw
) -> Iterator[tuple[RunningServer, httpx.Client]]:
    """A server on a background thread and an httpx client on it, both closed on exit."""
    with (
        RunningServer(model, tokenizer, config, **kw) as running,
        httpx.Client(base_url=running.url, timeout=timeout) as client,
    ):
        yield running, client


def sse_events(response: httpx.Response) -> list[dict]:
    """The JSON payloads of a server-sent-event stream, which must end with `data: [DONE]`."""
    events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]
