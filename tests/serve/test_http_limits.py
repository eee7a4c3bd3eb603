"""HTTP-level limits, probed with raw sockets on 127.0.0.1: stalled connections, bad Content-Length,
hostile JSON (deep nesting, lone surrogates), methods, and what http.server itself refuses."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from biomamba.serve.config import ServeConfig
from biomamba.serve.server import RunningServer

from .helpers import tiny_model


@pytest.fixture(scope="module")
def running(tokenizer):
    cfg = ServeConfig(port=0, max_new_tokens=8, socket_timeout_s=0.5, batch_wait_ms=0)
    with RunningServer(tiny_model("mamba2"), tokenizer, cfg, model_name="tiny") as s:
        yield s


POST = b"POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\n"  # headers follow


def _exchange(running: RunningServer, request: bytes) -> bytes:
    """Send `request` on a fresh connection; everything the server sends until it closes (socket.timeout if
    it never does)."""
    with socket.create_connection(running.server.server_address[:2], timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_stalled_connection_is_closed(running) -> None:
    started = time.monotonic()
    assert _exchange(running, b"") == b""  # sends nothing at all
    partial = _exchange(running, POST + b'Content-Length: 50\r\n\r\n{"pro')  # 50 bytes promised, 5 come
    status, body = _status_and_json(partial)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("value", ["-1", "+5", "1_0", " ", "5, 6", "99999999999999999999"])
def test_invalid_content_length_is_a_400(running, value: str) -> None:
    request = POST + f"Content-Length: {value}\r\n\r\n".encode() + b'{"prompt": "hi"}'
    status, body = _status_and_json(_exchange(running, request))  # answered and closed, not at hang-up
    assert status == 400 and "Content-Length" in body["error"]["message"]


def test_conflicting_content_lengths_are_a_400(running) -> None:
    raw = _exchange(running, POST + b'Content-Length: 16\r\nContent-Length: 3\r\n\r\n{"prompt": "hi"}')
    status, _ = _status_and_json(raw)
    assert status == 400


def test_a_get_with_a_body_keeps_the_connection_in_sync(running) -> None:
    raw = _exchange(
        running,
        b"GET /health HTTP/1.1\r\nContent-Length: 19\r\n\r\nGET /x HTTP/1.1\r\n\r\n"
        b"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200") == 2 and b"404" not in raw  # the body was not taken for a request


def test_chunked_body_is_a_411_and_the_connection_closes(running) -> None:
    raw = _exchange(running, POST + b'Transfer-Encoding: chunked\r\n\r\n10\r\n{"prompt": "hi"}\r\n0\r\n\r\n')
    status, body = _status_and_json(raw)  # one answer, then closed
    assert status == 411 and body["error"]["code"] == "length_required"


def test_listen_backlog_is_configurable_and_large_by_default(tokenizer) -> None:
    assert ServeConfig().listen_backlog >= 128  # http.server's default is 5
    cfg = ServeConfig(port=0, listen_backlog=300)
    with RunningServer(tiny_model("mamba2"), tokenizer, cfg) as s:
        assert s.server.request_queue_size == 300


def test_deeply_nested_json_is_a_400(running) -> None:
    with httpx.Client(base_url=running.url, timeout=30) as client:
        for depth in (100_000, 40):
            body = '{"prompt": "hi", "x": ' + "[" * depth + "]" * depth + "}"
            r = client.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (depth, r.text)
            assert r.json()["error"]["code"] == "invalid_json" and "deeper" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", '{"prompt": "aspirin \\ud800 dose"}', "prompt"),
        (
            "/v1/chat/completions",
            '{"messages": [{"role": "user", "content": "\\udfff"}]}',
            "messages.0.content",
        ),
    ],
)
def test_lone_surrogate_is_a_400(running, path: str, body: str, param: str) -> None:
    r = httpx.post(running.url + path, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and "surrogate" in r.json()["error"]["message"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_json_405_or_404(running, method: str) -> None:
    r = httpx.request(method, f"{running.url}/v1/completions", json={"prompt": "hi"}, timeout=30)
    assert r.status_code == 405 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "method_not_allowed"
    missing = httpx.request(method, f"{running.url}/nowhere", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_http_server_refusals_are_json(running) -> None:
    status, body = _status_and_json(_exchange(running, b"BREW /v1/completions HTTP/1.1\r\n\r\n"))
    assert status == 405 and body["error"]["message"]
    status, body = _status_and_json(
        _exchange(running, b"GET /health HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n")
    )
    assert status == 431 and body["error"]["type"] == "invalid_request_error"
    # no HTTP version: an HTTP/0.9 answer is a bare body, JSON too
    assert json.loads(_exchange(running, b"garbage\r\n\r\n"))["error"]["code"] == "bad_request"
