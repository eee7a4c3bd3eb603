"""The GPU benchmarks run at a tiny size on CPU (so their code paths are exercised without a GPU)."""

from __future__ import annotations

from tests.factories.scripts import benchmark_script


def test_train_step_benchmark_tiny_cpu(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    argv = ["--tiny", "--device", "cpu", "--impl", "biomamba", "transformers", "--json", out]
    rows = benchmark_script("models_train_step").main(argv)
    assert [r["impl"] for r in rows] == ["biomamba", "transformers"]
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert abs(rows[0]["loss"] - rows[1]["loss"]) < 1e-4  # same weights, same batch, same loss
    assert "| biomamba |" in capsys.readouterr().out and (tmp_path / "r.json").is_file()


def test_generate_benchmark_tiny_cpu():
    argv = ["--tiny", "--device", "cpu", "--batch", "1", "2", "--new-tokens", "6"]
    rows = benchmark_script("models_generate").main(argv)
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(r["same_tokens_fraction"] == 1.0 for r in rows)
