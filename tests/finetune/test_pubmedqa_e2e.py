"""Done-when: a tiny model fine-tunes on PubMedQA PQA-L (minus the official test split) and is evaluated on the
test split, end to end on CPU, and learns: accuracy on the training questions it saw beats always answering
their majority class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.factories.models import gpt2_for, save_dir
from tests.factories.recipes import finetune_recipe

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def pubmedqa_model(tmp_path_factory: pytest.TempPathFactory, make_tokenizer) -> Path:
    folder = SHARED / "pubmedqa"
    if not folder.is_dir():
        pytest.skip("../shared/data is not present")
    data = json.loads((folder / "ori_pqal.json").read_text())
    texts = [r["QUESTION"] + " " + " ".join(r["CONTEXTS"]) for r in list(data.values())[:300]]
    tokenizer = make_tokenizer(texts + ["Context: Question: Answer: yes no maybe"], vocab_size=1000)
    model = gpt2_for(tokenizer, hidden=64, heads=4)
    return save_dir(tmp_path_factory.mktemp("pqa") / "base", model, tokenizer)


@pytest.mark.slow
@pytest.mark.shared
def test_pubmedqa_sft_end_to_end_learns(shared_data: Path, pubmedqa_model: Path, tmp_path: Path) -> None:
    from biomamba.finetune.run import finetune

    pqal = shared_data / "pubmedqa" / "ori_pqal.json"
    train = {"lr": 3e-3, "micro_batch_size": 16, "global_batch_size": 16, "max_steps": 90}
    sections = finetune_recipe(
        pubmedqa_model,
        "sft-qa",
        [{"format": "pubmedqa", "path": str(pqal), "split": "train", "limit": 48}],
        train={**train, "schedule": "constant", "log_every": 30, "save_every": 45, "keep_last": 1},
        eval_data=[{"format": "pubmedqa", "path": str(pqal), "split": "test", "limit": 100}],
        max_length=64,
        evaluation={"on_train": 48, "batch_size": 50},
    )
    recipe = {"name": "pubmedqa-tiny", "seed": 0, **sections}
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)
    seen_after = results["after"]["train_seen"]
    assert seen_after["n"] == 48
    assert seen_after["accuracy"] > seen_after["majority_baseline"] + 0.1, seen_after
    assert results["before"]["train_seen"]["majority_baseline"] == seen_after["majority_baseline"]
    test_after = results["after"]["test"]
    assert test_after["n"] == 100 and 0.0 <= test_after["accuracy"] <= 1.0
    low, high = test_after["accuracy_ci"]
    assert low <= test_after["accuracy"] <= high
    assert results["data"] == {
        "train": 48,
        "train_sources": {"pubmedqa": 48},
        "validation": 0,
        "test": 100,
        "bad_records": {"skipped": 0, "by_reason": {}, "first": []},
        "unusable": {},
    }
    run = tmp_path / "run"
    assert (
        json.loads((run / "results.json").read_text())["after"]["train_seen"]["accuracy"]
        == seen_after["accuracy"]
    )
    assert (run / "final" / "config.json").is_file() and (run / "checkpoints" / "step-00000090").is_dir()
    assert len((run / "metrics.jsonl").read_text().splitlines()) >= 3
