"""The reading benchmark's smoke run, so benchmarks/benchmark_formats.py cannot silently rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_formats_smoke_run(shared_data, capsys):
    spec = importlib.util.spec_from_file_location(
        "benchmark_formats", ROOT / "benchmarks" / "benchmark_formats.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (row,) = module.main(["--src", str(ROOT / "src"), "--repeat", "1"])
    assert row["questions"] == 1000 + 500 and row["seconds"] > 0
    assert "| speed vs first |" in capsys.readouterr().out
