"""The demo end to end at a few steps: same code paths as `make demo`, smaller numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from biomamba.demo.config import DemoConfig
from biomamba.demo.run import PASSIVE_WAIT, _torch_threads, run_demo
from biomamba.errors import RecipeError

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
FAST = {
    "demo.base.max_steps": 6,
    "demo.continued.max_steps": 6,
    "demo.eval_seq_len": 64,
    "train.seq_len": 64,
    "train.micro_batch_size": 4,
    "train.global_batch_size": 4,
    "train.eval_every": 3,
    "train.eval_tokens": 1024,
    "train.log_every": 3,
    "train.progress": False,
}


def test_demo_writes_results_report_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSIVE_WAIT[0], raising=False)
    lines: list[str] = []
    results = run_demo(RECIPE, output_dir=tmp_path / "demo", overrides=FAST, say=lines.append)

    saved = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert saved["perplexity"] == results["perplexity"]
    assert set(saved["perplexity"]) == {"pubmed", "c4", "wikipedia"}
    pubmed = saved["perplexity"]["pubmed"]
    assert pubmed["after"] < pubmed["before"]  # 80% PubMed after 25%
    assert saved["runs"]["base"]["steps"] == 6 and saved["runs"]["continued"]["steps"] == 6
    assert saved["demo"]["base"]["max_steps"] == 6 and saved["demo"]["seed"] == 1234  # the settings it used
    # a step count given alone keeps the phase's default learning rate (the recipe leaves both to DemoConfig)
    assert saved["demo"]["base"]["lr"] == DemoConfig().base.lr
    # two threads by default, but one while OpenMP's threads spin (torch loaded without the passive policy)
    assert saved["demo"]["threads"] == 2 and saved["torch_threads"] == 1
    assert [line.split(":")[0] for line in saved["summary"]] == ["Trained", "Improved", "Cost"]
    assert set(saved["stage_seconds"]) == {
        "corpus and tokenizer", "corpus build", "base pretraining", "continued pretraining", "evaluation", "report"
    }  # fmt: skip
    assert lines[-2].startswith("stage timings: corpus and tokenizer ")
    mix = saved["mixture"]
    assert mix, "the corpus manifest's mixture summary is carried into the results"
    for task in ("pubmedqa", "medqa_4options"):
        row = saved["multiple_choice"][task]
        assert 0.0 <= row["after"]["acc"] <= 1.0 and 0.0 < row["majority_baseline"] <= 1.0
        assert row["paired"]["n"] == row["n"] and set(row["degenerate"]) == {"before", "after"}

    report = (tmp_path / "demo" / "report.md").read_text()
    assert "SYNTHETIC DEMO DATA" in report and report.splitlines()[2].startswith("- Trained: ")
    assert "| pubmed |" in report and "| c4 |" in report and "| wikipedia |" in report
    assert (tmp_path / "demo" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [line for line in lines if line.startswith("[")][-1] == "[5/5] report"


def test_demo_recipe_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"demo\.yaml: demo\.base_ratios: .*sum to 1 \(got 0\.7\)"):
        run_demo(RECIPE, output_dir=tmp_path, overrides={"demo.base_ratios": {"c4": 0.5, "wikipedia": 0.2}})
    with pytest.raises(RecipeError, match=r"demo\.mc_tasks: the demo has questions for .*'hellaswag'"):
        run_demo(RECIPE, output_dir=tmp_path, overrides={"demo.mc_tasks": ["hellaswag"]})
    with pytest.raises(RecipeError, match=r"demo\.yaml: demo\.continued\.lr: .*greater than 0"):
        run_demo(RECIPE, output_dir=tmp_path, overrides={"demo.continued.lr": 0})
    with pytest.raises(
        RecipeError, match=r"demo\.yaml: train\.micro_batch_size: .*greater than or equal to 1"
    ):
        run_demo(RECIPE, output_dir=tmp_path, overrides={"train.micro_batch_size": 0})
    assert not any(tmp_path.iterdir()), "a bad recipe stops the demo before it writes anything"


def test_demo_threads_follow_openmps_wait_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv(*PASSIVE_WAIT)
    with _torch_threads(2) as threads:
        assert threads == torch.get_num_threads() == 2
    monkeypatch.setenv(PASSIVE_WAIT[0], "ACTIVE")
    with _torch_threads(2) as threads:
        assert threads == torch.get_num_threads() == 1  # spinning threads: one, whatever was asked
    assert torch.get_num_threads() == before  # the caller's setting comes back


def test_demo_command_sets_the_passive_policy_before_torch_loads(tmp_path: Path) -> None:
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads: `biomamba demo` must set it before any import."""
    script = (
        "import os, sys\n"
        "os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "import biomamba.demo.run as demo\n"
        "demo.run_demo = lambda *a, **k: print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n"
        "from biomamba.cli.main import run\n"
        f"run(['demo', '-o', {str(tmp_path)!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["PASSIVE", "False"], done.stdout + done.stderr
