"""CPU deployment advice: the quantize benchmark says which kernel ran and why it is slower; `biomamba
quantize` on CPU points to the GGUF path (llama.cpp)."""

from __future__ import annotations

from pathlib import Path

from tests.factories import models
from tests.factories.scripts import benchmark_script
from typer.testing import CliRunner

from biomamba.cli.main import build_app


def test_kernel_notes_explain_each_cpu_kernel_that_ran() -> None:
    bench = benchmark_script("compress_quantize")
    rows = [{"backend": "-"}, {"backend": "torchao"}, {"backend": "biomamba"}]
    notes = bench.kernel_notes(rows, "cpu")
    assert "kernel `torchao` on CPU: " in notes and "kernel `biomamba` on CPU: " in notes
    assert "every matmul" in notes and "every call" in notes  # why: dequantized on the fly
    assert "--format gguf --quant q4_k_m" in notes
    assert bench.kernel_notes([{"backend": "-"}], "cpu") == ""  # nothing quantized, nothing to explain
    assert "gguf" not in bench.kernel_notes(rows, "cuda")


def test_quantize_on_cpu_recommends_gguf(tmp_path: Path, tokenizer) -> None:
    model = models.mamba2(len(tokenizer), n_layer=1, d_state=16, headdim=16, chunk_size=16)
    model_dir = models.save_dir(tmp_path / "m", model, tokenizer)
    args = ["quantize", str(model_dir), "--method", "int8", "--group-size", "16", "-o", str(tmp_path / "q")]
    result = CliRunner().invoke(build_app(), [*args, "--set", "quantize.bench_new_tokens=2"])
    assert result.exit_code == 0, result.output
    assert f"biomamba export {model_dir} -o OUT --format gguf --quant q8_0" in result.output
