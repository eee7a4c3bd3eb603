"""The reading benchmark's smoke run, so benchmarks/benchmark_formats.py cannot silently rot."""

from __future__ import annotations

from tests.factories.scripts import ROOT, benchmark_script


def test_benchmark_formats_smoke_run(shared_data, capsys):
    module = benchmark_script("benchmark_formats")
    (row,) = module.main(["--src", str(ROOT / "src"), "--repeat", "1"])
    assert row["questions"] == 1000 + 500 and row["seconds"] > 0
    assert "| speed vs first |" in capsys.readouterr().out
