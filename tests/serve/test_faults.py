"""Issue 12 item 2: no request can disable the server; a dead engine is reported, never waited on."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from biomamba.cli.main import run as cli_run
from biomamba.models.decoding import BatchDecoder, DecodingBatch, GenerationRequest
from biomamba.serve.config import ServeConfig
from biomamba.serve.engine import BatchingEngine

from .helpers import serving, solo, tiny_model

PROMPT = [5, 17, 42, 9, 100]


def _config(**kw) -> ServeConfig:
    # a short request_timeout_s: on a dead engine the old server answered 504 only after it
    return ServeConfig(port=0, max_new_tokens=16, batch_wait_ms=5, request_timeout_s=20, **kw)


@pytest.mark.parametrize("seed", [2**64, 2**70, -(2**63) - 1])
def test_out_of_range_seed_is_a_400_and_the_server_keeps_serving(tokenizer, seed: int) -> None:
    with serving(tiny_model("llama"), tokenizer, _config()) as (s, client):
        bad = client.post("/v1/completions", json={"prompt": "the patient", "max_tokens": 3, "seed": seed})
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"]["param"] == "seed"
        for edge in (2**64 - 1, -(2**63)):  # the extremes torch accepts are served
            body = {"prompt": "the patient", "max_tokens": 3, "seed": edge, "temperature": 1.0}
            ok = client.post("/v1/completions", json=body)
            assert ok.status_code == 200, ok.text
        assert client.get("/health").status_code == 200


def test_engine_survives_requests_that_raise(tokenizer) -> None:
    """Bypassing the HTTP validation: a seed torch refuses and a token outside the embedding each fail
    their own request only; a request decoding meanwhile completes unchanged, later ones are served."""
    decoder = BatchDecoder(tiny_model("llama"), vocab_size=300)
    want = solo(decoder, PROMPT, 12)
    with BatchingEngine(decoder, max_batch_size=4, batch_wait_s=0) as engine:
        running = GenerationRequest(list(PROMPT), 12)
        assert engine.submit(running)
        first = running.tokens.get(timeout=30)  # decoding has started
        bad_seed = GenerationRequest([7, 8], 3, temperature=1.0, seed=2**70)
        bad_token = GenerationRequest([999_999], 3)
        assert engine.submit(bad_seed) and engine.submit(bad_token)
        with pytest.raises(ValueError, match="seed"):
            list(bad_seed.stream(timeout=30))
        with pytest.raises(IndexError):
            list(bad_token.stream(timeout=30))
        assert [first, *running.stream(timeout=30)] == want
        after = GenerationRequest(list(PROMPT), 12)
        assert engine.submit(after)
        assert list(after.stream(timeout=30)) == want
        assert engine.alive


def test_a_failing_prompt_fails_alone_in_its_admission_group() -> None:
    """Requests admitted together are prefilled together; one bad prompt must not fail its companions."""
    decoder = BatchDecoder(tiny_model("gpt2"), vocab_size=300)
    want = solo(decoder, PROMPT, 6)
    good, bad = GenerationRequest(list(PROMPT), 6), GenerationRequest([3, 999_999], 6)
    batch = decoder.start()
    batch.add([bad, good])
    while batch:
        batch.step()
    with pytest.raises(IndexError):
        list(bad.stream(timeout=30))
    assert list(good.stream(timeout=30)) == want


def test_health_reports_a_stopped_engine_and_requests_fail_at_once(tokenizer) -> None:
    with serving(tiny_model("llama"), tokenizer, _config()) as (s, client):
        assert client.get("/health").json()["status"] == "ok"
        s.engine.close()
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        r = client.post("/v1/completions", json={"prompt": "the patient", "max_tokens": 3}, timeout=5)
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_unavailable"


class _Fatal(BaseException):
    """Stands for what no handler may swallow (an interpreter-level fault inside the engine thread)."""


def test_health_reports_a_dead_engine(tokenizer, monkeypatch) -> None:
    """Should the engine thread die anyway, /health says so (503) and nobody waits for a timeout."""
    with serving(tiny_model("llama"), tokenizer, _config()) as (s, client):

        def fatal_step(self: DecodingBatch) -> None:
            if self.rows:
                raise _Fatal("engine thread killed")

        monkeypatch.setattr(DecodingBatch, "step", fatal_step)
        r = client.post("/v1/completions", json={"prompt": "the patient", "max_tokens": 3}, timeout=10)
        assert r.status_code == 503 and "died" in r.json()["error"]["message"]
        health = client.get("/health")
        assert health.status_code == 503 and "_Fatal" in health.json()["reason"]
        again = client.post("/v1/completions", json={"prompt": "the patient", "max_tokens": 3}, timeout=5)
        assert again.status_code == 503


def test_generate_refuses_an_out_of_range_seed_in_one_line(tmp_path: Path, tokenizer, capsys) -> None:
    from biomamba.models import save_model

    model_dir = save_model(tiny_model("mamba2"), tmp_path / "model", tokenizer)
    outcome: dict[str, object] = {}

    def invoke() -> None:  # on a thread: the old code hung here forever
        try:
            cli_run(["generate", str(model_dir), "the patient", "-n", "3", "--seed", str(2**70)])
        except SystemExit as exc:
            outcome["code"] = exc.code

    worker = threading.Thread(target=invoke, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "biomamba generate hung"
    err = capsys.readouterr().err.strip()
    assert outcome["code"] == 2
    assert err.startswith("error: --seed") and "2**64-1" in err and "\n" not in err
