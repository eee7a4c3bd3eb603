"""The throughput benchmark's tiny CPU mode runs end to end (its GPU mode is the same code at a larger size)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.factories.scripts import benchmark_script


def _load():
    return benchmark_script("train_throughput")


@pytest.mark.parametrize("model", ["gpt2-124m", "mamba2-130m"])
def test_tiny_cpu_benchmark_reports_all_three_measurements(tmp_path: Path, model: str) -> None:
    results = _load().main(
        ["--tiny", "--device", "cpu", "--model", model, "--json", str(tmp_path / "r.json")]
    )
    assert results["model"] == model.split("-")[0] + "-tiny"
    assert results["bare_tokens_per_s"] > 0 and results["biomamba_tokens_per_s"] > 0
    assert 0 < results["trainer_vs_bare"] < 10
    if model.startswith("gpt2"):
        assert results["transformers_tokens_per_s"] > 0 and results["biomamba_vs_transformers"] > 0
    else:
        assert "transformers_tokens_per_s" not in results
    assert (tmp_path / "r.json").is_file()


def test_tiny_checkpoint_integrity_benchmark_reports_both_ratios(tmp_path: Path) -> None:
    module = benchmark_script("checkpoint_integrity")
    results = module.main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "r.json")])
    assert results["save_s"] > 0 and results["load_s"] > 0 and results["checkpoint_mb"] > 0
    assert 0 < results["checksums_vs_save"] and 0 < results["verify_vs_load"]
    assert (tmp_path / "r.json").is_file()
