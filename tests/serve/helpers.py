"""Helpers of the serve tests: their tiny models (built in-process; nothing is downloaded) and raw HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from tests.factories import models


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
