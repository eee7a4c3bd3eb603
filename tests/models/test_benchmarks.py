"""The GPU benchmarks run at a tiny size on CPU (so their code paths are exercised without a GPU)."""

from __future__ import annotations

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_train_step_benchmark_tiny_cpu(tmp_path, capsys):
    main = runpy.run_path(str(BENCH / "models_train_step.py"))["main"]
    rows = main(
        [
            "--tiny",
            "--device",
            "cpu",
            "--impl",
            "biomamba",
            "transformers",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert [r["impl"] for r in rows] == ["biomamba", "transformers"]
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert abs(rows[0]["loss"] - rows[1]["loss"]) < 1e-4  # same weights, same batch, same loss
    assert "| biomamba |" in capsys.readouterr().out and (tmp_path / "r.json").is_file()


def test_generate_benchmark_tiny_cpu():
    main = runpy.run_path(str(BENCH / "models_generate.py"))["main"]
    rows = main(["--tiny", "--device", "cpu", "--batch", "1", "2", "--new-tokens", "6"])
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(r["same_tokens_fraction"] == 1.0 for r in rows)
