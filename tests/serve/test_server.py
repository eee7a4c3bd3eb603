"""The OpenAI-compatible server, exercised with a real HTTP client (httpx) on 127.0.0.1 only."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from biomamba.models.decoding import BatchDecoder, GenerationRequest
from biomamba.serve.config import ServeConfig
from biomamba.serve.server import RunningServer

from .helpers import raw_post, serving, sse_events, tiny_model, wait_for

SECRET = "patient Jane Roe has metformin"
GREEDY = {"prompt": SECRET, "max_tokens": 8, "temperature": 0}


@pytest.fixture(params=["llama", "mamba2"])
def server(request, tokenizer):
    cfg = ServeConfig(
        port=0, max_new_tokens=16, max_prompt_tokens=40, max_request_bytes=2000, batch_wait_ms=50
    )
    with serving(tiny_model(request.param), tokenizer, cfg, timeout=30, model_name="tiny") as running:
        yield running


def _greedy(running: RunningServer, tokenizer, prompt: str, n: int) -> str:
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    req = GenerationRequest(ids, n, stop_token_ids=frozenset({tokenizer.eos_token_id}))
    BatchDecoder(running.engine.decoder.model, vocab_size=len(tokenizer)).run([req])
    return tokenizer.decode(list(req.stream(timeout=5)), skip_special_tokens=True)


def test_binds_localhost_by_default() -> None:
    assert ServeConfig().host == "127.0.0.1"


def test_completion_matches_greedy_decoding(server, tokenizer) -> None:
    running, client = server
    r = client.post("/v1/completions", json=GREEDY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == "tiny"
    assert body["choices"][0]["text"] == _greedy(running, tokenizer, SECRET, 8)
    assert body["choices"][0]["finish_reason"] in ("length", "stop")
    n_prompt = len(tokenizer(SECRET, add_special_tokens=False)["input_ids"])
    assert body["usage"]["prompt_tokens"] == n_prompt
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny"


def test_streaming_completion_and_chat(server) -> None:
    _, client = server
    plain = client.post("/v1/completions", json=GREEDY).json()
    with client.stream("POST", "/v1/completions", json={**GREEDY, "stream": True}) as r:
        assert r.headers["content-type"] == "text/event-stream"
        chunks = sse_events(r)
    assert "".join(c["choices"][0]["text"] for c in chunks) == plain["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]

    chat = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "temperature": 0}
    whole = client.post("/v1/chat/completions", json=chat).json()
    assert whole["object"] == "chat.completion"
    assert whole["choices"][0]["message"]["role"] == "assistant"
    with client.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as r:
        chunks = sse_events(r)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"{not json"}, 400, "invalid_json"),
        ({"json": {"max_tokens": 3}}, 400, "invalid_value"),
        ({"json": {"prompt": "hi", "max_tokens": 17}}, 400, "max_tokens_exceeded"),
        ({"json": {"prompt": "aspirin " * 60}}, 400, "context_length_exceeded"),
        ({"json": {"prompt": "x" * 3000}}, 413, "request_too_large"),
        ({"json": {"prompt": "hi", "n": 2}}, 400, "invalid_value"),
        ({"json": {"prompt": "hi", "temperature": -1}}, 400, "invalid_value"),
        ({"content": b"prompt=hi", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
    ],
)
def test_bad_requests_get_clear_json_errors(server, kwargs, status, code) -> None:
    _, client = server
    r = client.post("/v1/completions", **kwargs)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    assert client.get("/health").json()["status"] == "ok"  # the server is still fine


def test_unknown_paths_and_methods(server) -> None:
    _, client = server
    assert client.get("/v2/nothing").status_code == 404
    assert client.get("/v1/completions").json()["error"]["code"] == "method_not_allowed"


def test_concurrent_requests_are_batched_and_correct(server, tokenizer) -> None:
    running, client = server
    prompts = [f"the patient {w}" for w in ("was", "metformin", "aspirin", "glucose", "trials", "cell")]

    def ask(prompt: str) -> str:
        r = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 6, "temperature": 0})
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]

    with ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(ask, prompts))
    assert answers == [_greedy(running, tokenizer, p, 6) for p in prompts]
    assert max(running.engine.batch_sizes) > 1


def test_request_text_is_not_logged_unless_asked(tokenizer, caplog) -> None:
    model = tiny_model("gpt2")
    for log_requests in (False, True):
        caplog.clear()
        cfg = ServeConfig(port=0, log_requests=log_requests, max_new_tokens=4)
        with (
            caplog.at_level(logging.INFO, logger="biomamba.serve"),
            RunningServer(model, tokenizer, cfg) as s,
        ):
            r = httpx.post(f"{s.url}/v1/completions", json={"prompt": SECRET, "max_tokens": 2}, timeout=30)
            assert r.status_code == 200
        assert ("Jane Roe" in caplog.text) is log_requests
        assert "/v1/completions 200" in caplog.text


def test_full_queue_is_refused_with_429(tokenizer) -> None:
    # one request decodes (a long one: this tiny Llama runs 1000 tokens without EOS), one waits in the
    # queue (max_queue=1): the next is refused at once; hanging up on the long one lets the waiting one in
    cfg = ServeConfig(port=0, max_queue=1, max_batch_size=1, batch_wait_ms=0, max_new_tokens=1000)
    with RunningServer(tiny_model("llama", positions=2048), tokenizer, cfg) as s:
        health = lambda: httpx.get(f"{s.url}/health", timeout=10).json()  # noqa: E731
        completions, short = f"{s.url}/v1/completions", {"prompt": "hi", "max_tokens": 2}
        long = raw_post(s.url, {"prompt": "the patient", "max_tokens": 1000, "temperature": 0})
        try:
            assert wait_for(lambda: health()["running"] == 1, 30)
            with ThreadPoolExecutor(1) as pool:
                queued = pool.submit(httpx.post, completions, json=short, timeout=60)
                assert wait_for(lambda: health()["waiting"] == 1, 30)
                refused = httpx.post(completions, json=short, timeout=10)
                assert refused.status_code == 429
                assert refused.json()["error"]["code"] == "server_busy"
                long.close()
                assert queued.result().status_code == 200
        finally:
            long.close()
