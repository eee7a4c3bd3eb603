"""The serve benchmarks run (tiny mode), so the scripts cannot rot."""

from __future__ import annotations

import sys

from tests.factories.scripts import BENCHMARKS, benchmark_script


def _load(name: str):  # noqa: ANN202
    sys.path.insert(0, str(BENCHMARKS))  # the serve scripts import each other
    return benchmark_script(name)


def test_serve_throughput_tiny(capsys) -> None:
    rows = _load("serve_throughput").main(["--tiny", "--families", "mamba2"])
    assert rows[0]["same_text"] is True and rows[0]["tokens"] > 0
    assert sum(rows[0]["batches"]) == 3
    assert "| mamba2 | 3 |" in capsys.readouterr().out


def test_serve_latency_tiny(capsys) -> None:
    rows = _load("serve_latency").main(["--tiny", "--families", "mamba2"])
    assert [r["mode"] for r in rows] == ["run-to-completion", "continuous"]
    assert all(r["same_text"] is True and r["shorts"] == 3 for r in rows)
    assert rows[0]["p50_ratio"] == 1.0  # the baseline is measured in the same run
    assert "| mamba2 | continuous |" in capsys.readouterr().out


def test_percentile_is_nearest_rank() -> None:
    percentile = _load("serve_latency").percentile
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5.0], 99) == 5.0
