"""Done-when: the MTSamples discharge-summary task runs end to end (patient-level split, Mamba2 SFT with
packing, greedy generation) and reports ROUGE before and after fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.factories.models import mamba2_for, save_dir
from tests.factories.recipes import finetune_recipe


@pytest.fixture(scope="module")
def clinical_model(tmp_path_factory: pytest.TempPathFactory, make_tokenizer) -> Path:
    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("../shared/data is not present")
    from biomamba.finetune.clinical import load_mtsamples

    notes = load_mtsamples(shared / "clinical/mtsamples/mtsamples.rda")
    tokenizer = make_tokenizer([n.text for n in notes], vocab_size=1200)
    return save_dir(tmp_path_factory.mktemp("clinical") / "base", mamba2_for(tokenizer), tokenizer)


@pytest.mark.slow
@pytest.mark.shared
def test_mtsamples_discharge_summary_rouge_before_and_after(
    shared_data: Path, clinical_model: Path, tmp_path: Path
) -> None:
    from biomamba.finetune.run import finetune

    rda = str(shared_data / "clinical/mtsamples/mtsamples.rda")
    train = {"lr": 5e-3, "micro_batch_size": 8, "global_batch_size": 8, "max_steps": 40}
    sections = finetune_recipe(
        clinical_model,
        "clinical-generation",
        [{"format": "mtsamples", "path": rda, "split": "train"}],
        train={**train, "schedule": "constant", "log_every": 20},
        clinical_task="discharge-summary",
        eval_data=[{"format": "mtsamples", "path": rda, "split": "test", "limit": 6}],
        max_length=192,
        evaluation={"max_new_tokens": 32, "max_prompt_tokens": 128},
    )
    recipe = {"name": "mtsamples-tiny", "seed": 0, **sections}
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)
    before, after = results["before"]["test"], results["after"]["test"]
    assert before["n"] == after["n"] == 6
    for name in ("rouge1", "rouge2", "rougeL"):
        low, high = after[f"{name}_ci"]
        assert low <= after[name] <= high
    assert after["rouge1"] > before["rouge1"] + 0.05, (before["rouge1"], after["rouge1"])
    assert results["family"] == "mamba2"
    # patient-level split: no MTSamples note is both a training and a test example
    assert results["data"]["train"] > 50 and results["data"]["unusable"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["after"]["test"]["samples"][0]["prediction"] == after["samples"][0]["prediction"]


@pytest.mark.shared
def test_aci_bench_notes_clinical_generation_end_to_end(
    shared_data: Path, tiny_gpt2_dir: Path, tmp_path: Path
) -> None:
    """ACI-Bench's own train/valid files: admission-side sections -> assessment and plan, ROUGE before/after."""
    from biomamba.finetune.run import finetune

    folder = shared_data / "clinical/aci-bench"
    train = {"lr": 5e-3, "micro_batch_size": 4, "global_batch_size": 4, "max_steps": 2}
    sections = finetune_recipe(
        tiny_gpt2_dir,
        "clinical-generation",
        [{"format": "aci-bench", "path": str(folder / "train.csv")}],
        train={**train, "schedule": "constant"},
        clinical_task="discharge-summary",
        eval_data=[{"format": "aci-bench", "path": str(folder / "valid.csv"), "limit": 2}],
        max_length=128,
        evaluation={"max_new_tokens": 16, "max_prompt_tokens": 96},
    )
    recipe = {"name": "aci-bench-tiny", "seed": 0, **sections}
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)
    assert results["data"]["train"] == 67 and results["data"]["train_sources"] == {"aci-bench": 67}
    assert results["data"]["test"] == 2 and results["data"]["unusable"] == {}
    assert results["train"]["steps"] == 2 and results["family"] == "gpt2"
    for when in ("before", "after"):
        report = results[when]["test"]
        assert report["n"] == 2
        for name in ("rouge1", "rouge2", "rougeL"):
            low, high = report[f"{name}_ci"]
            assert 0.0 <= low <= report[name] <= high <= 1.0
        assert "ASSESSMENT" in report["samples"][0]["reference"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["after"]["test"]["rouge1"] == results["after"]["test"]["rouge1"]
