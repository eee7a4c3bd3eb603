"""The data benchmark at a tiny size: both sides run and produce the same number of tokens from the same input."""

from __future__ import annotations

from tests.factories.scripts import benchmark_script


def test_tiny_benchmark_sides_agree(shared_data, tmp_path, tiny_tokenizer):
    bench = benchmark_script("data_pipeline")
    files, xml_bytes = bench.make_input(
        tmp_path, 0.5, 2, sample=shared_data / "pubmed/medline16n0902_sample.xml.gz"
    )
    assert len(files) == 2 and xml_bytes > 0
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ours = bench.run_biomamba([str(f) for f in files], str(tiny_tokenizer), str(tmp_path / "a"), 1)
    base = bench.run_datasets([str(f) for f in files], str(tiny_tokenizer), str(tmp_path / "b"), 1)
    assert ours["documents"] == base["documents"] == 526 * 2  # two renumbered copies, none collapsed
    assert ours["tokens"] == base["tokens"] > 0


def test_inputs_benchmark_runs_and_both_identity_sides_agree():
    module = benchmark_script("data_inputs")
    rows = module.identity_rows([20_000])  # asserts that both sides take the same decisions
    assert len(rows) == 4 and "`apply_record_identity`" in rows[-1]
