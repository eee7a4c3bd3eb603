"""`biomamba quantize` end to end: quantized model saved and reloaded, table measured with the eval stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomamba.cli.main import build_app

from .helpers import save_tiny, write_corpus, write_medqa


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_quantize_command_writes_model_and_table(method: str, tmp_path: Path, tokenizer) -> None:
    model_dir = save_tiny(tmp_path / "model", "llama", 0, tokenizer)
    corpus = write_corpus(tmp_path / "corpus", tokenizer)
    task = write_medqa(tmp_path / "medqa.jsonl")
    out = tmp_path / "q"
    args = [
        "quantize",
        str(model_dir),
        "--method",
        method,
        "--group-size",
        "16",
        "--output",
        str(out),
        "--eval-corpus",
        str(corpus),
        "--eval-task",
        f"medqa_4options={task}",
    ]
    result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "quantization_report.json").read_text())
    base, quant = report["variants"]
    assert base["name"] == "unquantized" and quant["name"].startswith(method)
    assert quant["file_bytes"] < base["file_bytes"] and quant["memory_bytes"] < base["memory_bytes"]
    assert set(quant["perplexity"]) == {"pubmed"} and set(quant["accuracy"]) == {"medqa_4options"}
    # a perturbed model: the perplexity moves, but stays close for weight-only quantization
    rel = abs(quant["perplexity"]["pubmed"] / base["perplexity"]["pubmed"] - 1)
    assert 0 < rel < (0.01 if method == "int8" else 0.1)
    assert "ppl pubmed (Δ)" in result.output and "acc medqa_4options (Δ)" in result.output


def test_bad_group_size_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["quantize", str(tmp_path), "--group-size", "24"])
    assert "quantize.group_size: group_size must be a power of two" in str(result.exception)
