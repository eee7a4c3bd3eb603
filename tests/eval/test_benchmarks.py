"""The speed benchmark's tiny run, so benchmarks/eval_speed.py cannot silently rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_eval_speed_tiny_run():
    spec = importlib.util.spec_from_file_location("eval_speed", ROOT / "benchmarks" / "eval_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fixture = ROOT / "tests" / "eval" / "fixtures" / "pubmedqa_ori_pqal.json"
    result = module.run(fixture, 4, "tiny", 4, 300, ["mamba2"])
    harnesses = {row["harness"] for row in result["rows"]}
    assert {"biomamba (prefix sharing)", "lm-eval HF bs1", "biomamba evaluate()"} <= harnesses
    assert all(row["max_ll_gap"] is None or row["max_ll_gap"] < 1e-3 for row in result["rows"])
    assert "| mamba2 | model calls | biomamba (prefix sharing) |" in module.markdown(result, "test")
