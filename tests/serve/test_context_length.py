"""Prompt + max_tokens beyond the model's context (GPT-2's n_positions): a 400 / one-line error, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomamba.cli.main import build_app
from biomamba.errors import BiomambaError
from biomamba.serve.config import ServeConfig
from biomamba.serve.server import ContextLengthError, context_limit

from .helpers import serving, tiny_model

PROMPT = "the patient was given aspirin for chest pain"
CONFIG = ServeConfig(port=0, max_new_tokens=300, max_prompt_tokens=1000, batch_wait_ms=10)


@pytest.fixture
def gpt2_server(tokenizer):
    with serving(tiny_model("gpt2"), tokenizer, CONFIG, model_name="tiny") as running:  # n_positions=256
        yield running


def test_context_limit_of_each_family() -> None:
    assert context_limit(tiny_model("gpt2")) == 256
    assert context_limit(tiny_model("llama")) == 256
    assert context_limit(tiny_model("mamba2")) is None  # recurrent: no positional limit


def test_prompt_plus_max_tokens_over_the_context_is_a_400(gpt2_server, tokenizer) -> None:
    _, client = gpt2_server
    n_prompt = len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    greedy = {"prompt": PROMPT, "temperature": 0}
    r = client.post("/v1/completions", json={**greedy, "max_tokens": 257 - n_prompt})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["type"] == "invalid_request_error"
    assert "256" in error["message"] and error["param"] == "max_tokens"
    long_text = "aspirin " * 60  # over the context, under the server's cap of 1000 prompt tokens
    assert 256 < len(tokenizer(long_text, add_special_tokens=False)["input_ids"]) < 1000
    long_prompt = {"messages": [{"role": "user", "content": long_text}], "max_tokens": 1}
    chat = client.post("/v1/chat/completions", json=long_prompt)
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages"
    assert "maximum context length is 256" in chat.json()["error"]["message"]
    fits = client.post("/v1/completions", json={**greedy, "max_tokens": 256 - n_prompt})
    assert fits.status_code == 200, fits.text  # exactly at the limit is served
    assert fits.json()["usage"]["total_tokens"] <= 256


def test_mamba2_has_no_context_limit(tokenizer) -> None:
    with serving(tiny_model("mamba2"), tokenizer, CONFIG, timeout=5) as (_, c):
        prompt = "aspirin " * 50
        assert 256 < len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + 20 < 1000
        r = c.post("/v1/completions", json={"prompt": prompt, "max_tokens": 20, "temperature": 0})
        assert r.status_code == 200, r.text


def test_generate_beyond_the_context_is_a_one_line_error(tmp_path: Path, tokenizer) -> None:
    from biomamba.models import save_model

    model_dir = save_model(tiny_model("gpt2"), tmp_path / "gpt2", tokenizer)
    result = CliRunner().invoke(build_app(), ["generate", str(model_dir), PROMPT, "-n", "300"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ContextLengthError) and isinstance(result.exception, BiomambaError)
    message = str(result.exception)
    assert "\n" not in message and "maximum context length is 256 tokens" in message
    ok = CliRunner().invoke(
        build_app(), ["generate", str(model_dir), PROMPT, "-n", "3"], catch_exceptions=False
    )
    assert ok.exit_code == 0


def test_missing_max_tokens_is_clamped_to_the_remaining_context(tokenizer) -> None:
    """The server default (300) exceeds what a 256-position GPT-2 has left: serve what fits, do not refuse."""
    cfg = ServeConfig(port=0, max_new_tokens=300, default_max_tokens=300, max_prompt_tokens=1000)
    with serving(tiny_model("gpt2"), tokenizer, cfg, timeout=120) as (_, client):
        n_prompt = len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
        r = client.post("/v1/completions", json={"prompt": PROMPT, "temperature": 0})
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        assert usage["prompt_tokens"] == n_prompt and usage["total_tokens"] <= 256
        if r.json()["choices"][0]["finish_reason"] == "length":
            assert usage["total_tokens"] == 256
        asked = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 300})
        assert asked.status_code == 400  # an explicit max_tokens is still checked, not silently cut
