"""The speed benchmark's tiny run, so benchmarks/eval_speed.py cannot silently rot."""

from __future__ import annotations

from tests.factories.scripts import ROOT, benchmark_script


def test_eval_speed_tiny_run(tmp_path):
    module = benchmark_script("eval_speed")
    fixture = ROOT / "tests" / "eval" / "fixtures" / "pubmedqa_ori_pqal.json"
    mmlu = tmp_path / "mmlu_dev"
    mmlu.mkdir()
    (mmlu / "anatomy_dev.csv").write_text(
        (ROOT / "tests" / "eval" / "fixtures" / "anatomy_test.csv").read_text()
    )
    result = module.run(fixture, 4, "tiny", [2], 300, ["gpt2"], mmlu, repeats=1)
    tasks = {row["task"] for row in result["rows"]}
    assert tasks == {"pubmedqa", "mmlu_anatomy", "medqa_4options", "medmcqa", "arc_easy"}
    assert all(row["max_ll_gap"] < 1e-3 and row["speedup"] > 0 for row in result["rows"])
    assert "| gpt2 | arc_easy |" in module.markdown(result, "test")
