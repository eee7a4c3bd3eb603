"""The serve throughput benchmark runs (tiny mode), so the script cannot rot."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_throughput.py"


def test_serve_throughput_tiny(capsys) -> None:
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("serve_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--tiny", "--families", "mamba2"])
    assert rows[0]["same_text"] is True and rows[0]["tokens"] > 0
    assert sum(rows[0]["batches"]) == 3
    assert "| mamba2 | 3 |" in capsys.readouterr().out
