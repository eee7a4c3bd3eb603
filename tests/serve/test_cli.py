"""`biomamba generate` (argument and stdin) and `biomamba serve` as a real process on 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from biomamba.cli.main import build_app
from biomamba.models import load_model, save_model

from .helpers import tiny_model


@pytest.fixture
def model_dir(tmp_path: Path, tokenizer) -> Path:
    return save_model(tiny_model("mamba2"), tmp_path / "model", tokenizer)


def test_generate_from_argument_and_stdin(model_dir: Path, tokenizer) -> None:
    from biomamba.models.decoding import BatchDecoder
    from biomamba.serve.engine import generate_text

    runner = CliRunner()
    app = build_app()
    by_arg = runner.invoke(
        app, ["generate", str(model_dir), "the patient", "-n", "6"], catch_exceptions=False
    )
    by_stdin = runner.invoke(app, ["generate", str(model_dir), "-n", "6"], input="the patient")
    assert by_arg.exit_code == 0 and by_stdin.exit_code == 0
    expected = "".join(
        generate_text(
            BatchDecoder(load_model(model_dir), len(tokenizer)), tokenizer, "the patient", max_new_tokens=6
        )
    )
    assert by_arg.output == by_stdin.output == expected + "\n"
    empty = runner.invoke(app, ["generate", str(model_dir)], input="   ")
    assert "empty prompt" in str(empty.exception)


@pytest.mark.slow  # a fresh Python process imports torch and transformers (~10 s on a busy CPU)
def test_serve_process_answers_and_stops(model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "biomamba", "serve", str(model_dir), "--port", "0", "--max-new-tokens", "8"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        lines = []
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            match = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line)
            url = match.group(1) if match else None
        assert url, "".join(lines)
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "the patient", "max_tokens": 4}, timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 4
        too_many = httpx.post(f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 9}, timeout=30)
        assert too_many.status_code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=30)
