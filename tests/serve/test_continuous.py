"""Continuous batching: requests join a running batch between decode steps (exactly as if decoded alone),
and abandoned requests (client hung up, streaming or not) leave the batch at once."""

from __future__ import annotations

import time

import httpx
import pytest

from biomamba.models.decoding import _DONE, BatchDecoder, GenerationRequest
from biomamba.serve.config import ServeConfig
from biomamba.serve.engine import BatchingEngine
from biomamba.serve.server import RunningServer

from .helpers import raw_post, solo, tiny_model, wait_for

LONG = [5, 17, 42, 9, 100]
WIDE = list(range(10, 40))  # wider than the running batch's cache when it joins
NARROW = [7, 8]


@pytest.mark.parametrize("family", ["llama", "gpt2", "mistral", "mamba2"])
def test_requests_join_a_running_batch_and_decode_as_alone(family: str) -> None:
    decoder = BatchDecoder(tiny_model(family), vocab_size=300)
    n_long = 100  # far more steps than the joiners need, so "still running" holds on a busy machine
    want_long = solo(decoder, LONG, n_long)
    want_wide, want_narrow = solo(decoder, WIDE, 3), solo(decoder, NARROW, 3)
    with BatchingEngine(decoder, max_batch_size=4, batch_wait_s=0) as engine:
        long = GenerationRequest(list(LONG), n_long)
        assert engine.submit(long)
        got_long = [long.tokens.get(timeout=60) for _ in range(5)]  # the long one is decoding
        wide, narrow = GenerationRequest(list(WIDE), 3), GenerationRequest(list(NARROW), 3)
        assert engine.submit(wide) and engine.submit(narrow)
        assert list(wide.stream(timeout=60)) == want_wide
        assert list(narrow.stream(timeout=60)) == want_narrow
        # the short ones are done while the long one still runs: they did not wait for its end
        assert _DONE not in list(long.tokens.queue)
        got_long += list(long.stream(timeout=60))
        assert got_long == want_long
        assert engine.batch_sizes == [1, 2]


def test_a_full_sliding_window_cache_takes_joiners_only_once_empty() -> None:
    """Mistral's sliding-window layers drop positions once the window (16 here) fills; padding can then
    no longer be added, so a request arriving later waits for the batch to empty, and still decodes right."""
    decoder = BatchDecoder(tiny_model("mistral", window=16), vocab_size=300)
    want_long, want_wide = solo(decoder, LONG, 30), solo(decoder, WIDE, 3)
    with BatchingEngine(decoder, max_batch_size=4, batch_wait_s=0) as engine:
        long, wide = GenerationRequest(list(LONG), 30), GenerationRequest(list(WIDE), 3)
        assert engine.submit(long)
        got = [long.tokens.get(timeout=60) for _ in range(15)]  # 5 + 15 positions: past the window
        assert engine.submit(wide)
        assert list(wide.stream(timeout=60)) == want_wide
        assert got + list(long.stream(timeout=60)) == want_long
        assert engine.batch_sizes == [1, 1]


def test_run_to_completion_remains_selectable_for_the_baseline() -> None:
    decoder = BatchDecoder(tiny_model("mamba2"), vocab_size=300)
    with BatchingEngine(decoder, max_batch_size=4, batch_wait_s=0, continuous=False) as engine:
        long, short = GenerationRequest(list(LONG), 30), GenerationRequest(list(NARROW), 2)
        assert engine.submit(long)
        long.tokens.get(timeout=60)
        assert engine.submit(short)
        assert len(list(short.stream(timeout=60))) == 2
        assert _DONE in list(long.tokens.queue)  # the short one waited for the long one's end


@pytest.fixture
def llama_server(tokenizer):
    # greedy from "the patient", this tiny Llama runs 1000 tokens without EOS (slow: ~30 ms a step)
    cfg = ServeConfig(port=0, max_new_tokens=1000, batch_wait_ms=0)
    with RunningServer(tiny_model("llama", positions=2048), tokenizer, cfg) as running:
        yield running


def _running(url: str) -> int:
    return httpx.get(f"{url}/health", timeout=10).json()["running"]


@pytest.mark.parametrize("stream", [False, True])
def test_abandoned_requests_stop_decoding(llama_server, stream: bool) -> None:
    url = llama_server.url
    body = {"prompt": "the patient", "max_tokens": 1000, "temperature": 0, "stream": stream}
    sock = raw_post(url, body)
    try:
        assert wait_for(lambda: _running(url) == 1, 30)
        if stream:
            assert b"data: " in sock.recv(4096)  # tokens are flowing
        time.sleep(0.3)
        assert _running(url) == 1  # still generating: 1000 tokens take far longer
    finally:
        sock.close()
    assert wait_for(lambda: _running(url) == 0, 5), "the abandoned request kept decoding"
    r = httpx.post(f"{url}/v1/completions", json={"prompt": "the patient", "max_tokens": 2}, timeout=30)
    assert r.status_code == 200
