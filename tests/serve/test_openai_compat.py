"""OpenAI API behaviours clients rely on: model names, stream_options.include_usage, strict field types,
logprobs, and chat templates that refuse a conversation."""

from __future__ import annotations

import pytest
from tests.factories.tokenizers import bpe_tokenizer

from biomamba.serve.config import ServeConfig

from .helpers import serving, sse_events, tiny_model

# verbatim from mistralai/Mistral-7B-Instruct-v0.1 tokenizer_config.json: refuses a system message
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def client(tokenizer):
    cfg = ServeConfig(port=0, max_new_tokens=8, batch_wait_ms=0)
    with serving(tiny_model("mamba2"), tokenizer, cfg, model_name="tiny") as (_, c):
        yield c


def test_unknown_model_is_a_404_model_not_found(client) -> None:
    r = client.post("/v1/completions", json={"model": "gpt-4o", "prompt": "hi", "max_tokens": 2})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found" and r.json()["error"]["param"] == "model"
    for body in ({"model": "tiny"}, {}):  # its own name, or none (local clients often omit it)
        ok = client.post("/v1/completions", json={**body, "prompt": "hi", "max_tokens": 2})
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("chat", [False, True])
def test_stream_options_include_usage(client, chat: bool) -> None:
    path = "/v1/chat/completions" if chat else "/v1/completions"
    base = {"messages": [{"role": "user", "content": "hi"}]} if chat else {"prompt": "the patient"}
    body = {**base, "max_tokens": 4, "temperature": 0, "stream": True}
    plain = client.post(path, json={**base, "max_tokens": 4, "temperature": 0}).json()
    with client.stream("POST", path, json={**body, "stream_options": {"include_usage": True}}) as r:
        chunks = sse_events(r)
    *content, last = chunks
    assert last["choices"] == [] and last["usage"] == plain["usage"]
    assert all(c["usage"] is None for c in content)
    with client.stream("POST", path, json=body) as r:
        assert all("usage" not in c for c in sse_events(r))  # not asked: not sent
    refused = client.post(path, json={**base, "stream_options": {"include_usage": True}})
    assert refused.status_code == 400 and "stream" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", "5"),
        ("max_tokens", True),
        ("max_tokens", 2.0),
        ("temperature", "0.5"),
        ("temperature", False),
        ("top_p", True),
        ("seed", "7"),
        ("seed", 1.5),
        ("n", True),
        ("stream", "true"),
        ("stream", 1),
    ],
)
def test_strings_and_booleans_are_not_coerced(client, field: str, value) -> None:
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2, field: value})
    assert r.status_code == 400, (field, value, r.text)
    assert r.json()["error"]["param"] == field and r.json()["error"]["code"] == "invalid_value"


def test_integers_are_accepted_where_floats_are_due(client) -> None:
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2, "temperature": 0, "top_p": 1})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/chat/completions", {"logprobs": True}),
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 2}),
        ("/v1/completions", {"logprobs": 1}),
    ],
)
def test_logprobs_are_refused_not_ignored(client, path: str, extra: dict) -> None:
    chat = path.endswith("chat/completions")
    base = {"messages": [{"role": "user", "content": "hi"}]} if chat else {"prompt": "hi"}
    r = client.post(path, json={**base, "max_tokens": 2, **extra})
    assert r.status_code == 400 and "logprobs are not supported" in r.json()["error"]["message"]
    off = {k: (False if isinstance(v, bool) else None) for k, v in extra.items()}
    assert client.post(path, json={**base, "max_tokens": 2, **off}).status_code == 200


def test_a_chat_template_that_refuses_is_a_400() -> None:
    tokenizer = bpe_tokenizer()
    tokenizer.chat_template = MISTRAL_TEMPLATE
    cfg = ServeConfig(port=0, max_new_tokens=4, batch_wait_ms=0)
    with serving(tiny_model("mamba2"), tokenizer, cfg) as (_, c):
        system = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        r = c.post("/v1/chat/completions", json={"messages": system, "max_tokens": 2})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == "messages" and "roles must alternate" in error["message"]
        user = c.post("/v1/chat/completions", json={"messages": system[1:], "max_tokens": 2})
        assert user.status_code == 200, user.text
