"""The compress benchmark runs (tiny mode), so the script cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "compress_quantize.py"


def test_compress_quantize_tiny(capsys) -> None:
    spec = importlib.util.spec_from_file_location("compress_quantize", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--tiny", "--families", "mamba2"])
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"fp32", "bf16", "int8", "int4"}
    assert rows["int8"]["backend"] == "torchao" and rows["int4"]["backend"] == "biomamba"
    assert rows["int4"]["memory_x"] < rows["int8"]["memory_x"] < 1  # tiny: the fp32 embedding dominates
    assert "| mamba2 | int4 |" in capsys.readouterr().out
