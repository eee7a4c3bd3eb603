"""The compress benchmark runs (tiny mode), so the script cannot rot."""

from __future__ import annotations

from tests.factories.scripts import benchmark_script


def test_compress_quantize_tiny(capsys) -> None:
    module = benchmark_script("compress_quantize")
    result = module.main(["--tiny", "--families", "mamba2", "--no-process-peak"])
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"fp32", "bf16", "int8", "int4"}
    assert rows["int8"]["backend"] == "torchao" and rows["int4"]["backend"] == "biomamba"
    assert rows["int4"]["weight_x"] < rows["int8"]["weight_x"] < 1  # tiny: the fp32 embedding dominates
    assert all(r["peak_memory_bytes"] is None for r in rows.values())  # (the child's test is elsewhere)
    out = capsys.readouterr().out
    assert "| mamba2 | int4 |" in out and "| weight bytes MiB |" in out and "peak memory MiB" in out
