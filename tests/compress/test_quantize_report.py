"""`biomamba quantize` end to end: quantized model saved and reloaded, table measured with the eval stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.factories import models
from typer.testing import CliRunner

from biomamba.cli.main import build_app
from biomamba.compress.report import process_peak_memory

from .helpers import write_corpus, write_medqa


def _mamba2_dir(path: Path, tokenizer, d_model: int, n_layer: int) -> Path:
    shape = dict(d_model=d_model, n_layer=n_layer, d_state=16, headdim=16, chunk_size=16)
    return models.save_dir(path, models.mamba2(len(tokenizer), **shape), tokenizer)


def test_quantize_command_writes_models_and_one_table(tmp_path: Path, tokenizer) -> None:
    """`--method int8 --method int4`: one reference, one row per method, each model saved and reloaded."""
    model_dir = _mamba2_dir(tmp_path / "model", tokenizer, 32, 2)
    corpus = write_corpus(tmp_path / "corpus", tokenizer)
    task = write_medqa(tmp_path / "medqa.jsonl")
    out = tmp_path / "q"
    args = ["quantize", str(model_dir), "--method", "int8", "--method", "int4", "--group-size", "16"]
    args += ["--backend", "biomamba", "--output", str(out), "--eval-corpus", str(corpus)]
    args += ["--eval-task", f"medqa_4options={task}", "--set", "quantize.bench_new_tokens=4"]
    result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "quantization_report.json").read_text())
    base, int8, int4 = report["variants"]
    assert base["name"] == "unquantized" and int8["name"] == "int8 (g16)" and int4["name"] == "int4 (g16)"
    assert (out / "int8" / "quantization.json").is_file() and (out / "int4" / "quantization.json").is_file()
    for quant in (int8, int4):
        assert quant["file_bytes"] < base["file_bytes"] and quant["weight_bytes"] < base["weight_bytes"]
        assert set(quant["perplexity"]) == {"pubmed"} and set(quant["accuracy"]) == {"medqa_4options"}
    for row in (base, int8, int4):  # measured in a child process, which holds more than the weights
        assert row["peak_memory"] == "process"
        assert row["peak_memory_bytes"] > row["process_baseline_bytes"] > row["weight_bytes"]
    # a perturbed model: the perplexity moves, but stays close for weight-only quantization
    for quant, bound in ((int8, 0.01), (int4, 0.1)):
        rel = abs(quant["perplexity"]["pubmed"] / base["perplexity"]["pubmed"] - 1)
        assert 0 < rel < bound
    header = result.output.splitlines()[0]
    for column in ("file MiB", "weight bytes MiB", "peak memory (process) MiB (Δ)", "tokens/s"):
        assert column in header
    assert "ppl pubmed (Δ)" in header and "acc medqa_4options (Δ)" in header
    assert "| int8 (g16) |" in result.output and "| int4 (g16) |" in result.output


def test_process_peak_runs_the_child(tmp_path: Path, tokenizer) -> None:
    """The peak is the child's own: loading a model with ~25 MiB more weights raises it by about that."""
    small = _mamba2_dir(tmp_path / "small", tokenizer, 16, 1)
    big = _mamba2_dir(tmp_path / "big", tokenizer, 512, 4)
    extra = sum(p.stat().st_size for p in big.glob("*.safetensors"))
    peaks = {d: process_peak_memory(d, [1, 2, 3], 2, vocab_size=len(tokenizer)) for d in (small, big)}
    for peak in peaks.values():
        assert peak["peak_bytes"] > peak["baseline_bytes"] > 0 and peak["new_tokens"] == 2
    assert extra > 20 * 2**20
    assert peaks[big]["peak_bytes"] - peaks[small]["peak_bytes"] > 0.5 * extra


def test_process_peak_child_error_is_one_line(tmp_path: Path) -> None:
    from biomamba.errors import BiomambaError

    with pytest.raises(BiomambaError, match="peak-memory child for .* failed"):
        process_peak_memory(tmp_path, [1], 1)


def test_bad_group_size_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["quantize", str(tmp_path), "--group-size", "24"])
    assert "quantize.group_size: group_size must be a power of two" in str(result.exception)
