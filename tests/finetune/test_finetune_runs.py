"""finetune() paths beyond the done-when tests: the MC classifier with LoRA on Mamba2 (best checkpoint,
adapter + merged outputs), early stopping that really stops, unmerged LoRA outputs, exact resume through the
trainer, bad-record policies, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.factories.benchmarks import pubmedqa_records
from tests.factories.corpora import logged_losses, read_jsonl
from tests.factories.recipes import finetune_recipe, sft_recipe, write_medqa

from biomamba.errors import DataError
from biomamba.finetune.run import finetune


def mc_recipe(model_dir: Path, tmp_path: Path, **train: object) -> dict:
    def medqa(name: str, n: int, seed: int) -> list[dict]:
        return [{"format": "medqa", "path": str(write_medqa(tmp_path / name, n, seed))}]

    loop = {
        "lr": 1e-2,
        "micro_batch_size": 8,
        "global_batch_size": 8,
        "max_steps": 10,
        "schedule": "constant",
    }
    stopping = {"metric": "val/accuracy", "mode": "max", "patience": 10}
    sections = finetune_recipe(
        model_dir,
        "mc-classifier",
        medqa("train.jsonl", 24, 0),
        train={**loop, "eval_every": 5, "keep_best": True, "early_stopping": stopping, **train},
        validation_data=medqa("dev.jsonl", 8, 1),
        eval_data=medqa("test.jsonl", 8, 2),
        max_length=32,
        method="lora",
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
        evaluation={"on_train": 0},
    )
    return {"name": "mc", "seed": 0, **sections}


def test_mc_classifier_lora_mamba2_best_checkpoint_and_outputs(tiny_mamba2_dir: Path, tmp_path: Path) -> None:
    from biomamba.finetune.heads import ChoiceClassifier, load_classifier
    from biomamba.finetune.run import Task
    from biomamba.models import load_tokenizer

    results = finetune(mc_recipe(tiny_mamba2_dir, tmp_path), output_dir=tmp_path / "run", log=lambda *_: None)
    run = tmp_path / "run"
    assert results["family"] == "mamba2" and results["method"] == "lora"
    after = results["after"]["test"]
    assert after["accuracy"] > results["before"]["test"]["accuracy"] and after["accuracy"] >= 0.75, results
    best = Path(results["train"]["best_checkpoint"])
    assert best == run / "checkpoints" / "best"
    assert (best / "model" / "adapter_model.safetensors").is_file() and (
        best / "model" / "classifier.json"
    ).is_file()
    assert (run / "adapter" / "adapter_config.json").is_file()
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if "val/accuracy" in r]
    assert len(evals) == 2 and all("val/loss" in e for e in evals)
    final = load_classifier(run / "final")  # a plain model (adapter merged) + the head
    assert isinstance(final, ChoiceClassifier)
    assert not any("lora_" in name for name, _ in final.named_parameters())
    from biomamba.finetune.config import FinetuneConfig

    config = FinetuneConfig.model_validate(mc_recipe(tiny_mamba2_dir, tmp_path)["finetune"])
    config_task = Task(config, load_tokenizer(run / "final"), "mamba2")
    from biomamba.finetune.datasets import load_qa_source
    from biomamba.finetune.records import BadRecords

    test = load_qa_source(config.eval_data[0], BadRecords())
    assert config_task.evaluate(final, test)["accuracy"] == after["accuracy"]


def test_early_stopping_stops_before_max_steps_and_keeps_the_best(
    tiny_gpt2_dir: Path, tmp_path: Path
) -> None:
    """min_delta 1.0: no accuracy can beat the first evaluation by more than 1, so evaluations 2 and 3 do not
    improve, patience 2 stops the run at step 6 of 40, and the weights kept are those of step 2."""
    from safetensors.torch import load_file

    from biomamba.finetune.heads import HEAD_FILE

    recipe = mc_recipe(
        tiny_gpt2_dir,
        tmp_path,
        max_steps=40,
        eval_every=2,
        early_stopping={"metric": "val/accuracy", "mode": "max", "patience": 2, "min_delta": 1.0},
    )
    recipe["finetune"]["evaluation"]["before"] = False
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)
    run = tmp_path / "run"
    assert results["train"]["stopped"] == "early_stopping"
    assert results["train"]["steps"] == 6 < results["train"]["max_steps"] == 40
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if "val/accuracy" in r]
    assert [e["step"] for e in evals] == [2, 4, 6]
    best = Path(results["train"]["best_checkpoint"])
    assert best == run / "checkpoints" / "best"
    assert json.loads((best / "trainer_state.json").read_text())["step"] == 2
    last = Path(results["train"]["last_checkpoint"])
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 6
    for name in ("adapter_model.safetensors", HEAD_FILE):  # what was written is step 2's, not step 6's
        kept, best_w, last_w = (
            load_file(d / name) for d in (run / "adapter", best / "model", last / "model")
        )
        assert kept.keys() == best_w.keys()
        assert all(torch.equal(kept[k], best_w[k]) for k in kept)
        assert any(not torch.equal(kept[k], last_w[k]) for k in kept)


def test_sft_lora_resume_is_exact(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    data = write_medqa(tmp_path / "q.jsonl", 24, 3)

    def recipe(steps: int) -> dict:
        train = {
            "lr": 1e-2,
            "global_batch_size": 8,
            "max_steps": steps,
            "schedule": "constant",
            "save_every": 3,
        }
        return {"name": "sft", "seed": 0, **sft_recipe(tiny_gpt2_dir, data, method="lora", train=train)}

    finetune(recipe(6), output_dir=tmp_path / "straight", log=lambda *_: None)
    finetune(recipe(3), output_dir=tmp_path / "split", log=lambda *_: None)
    finetune(recipe(6), output_dir=tmp_path / "split", resume=True, log=lambda *_: None)

    assert len(logged_losses(tmp_path / "straight")) == 6
    assert logged_losses(tmp_path / "split") == logged_losses(tmp_path / "straight")


def test_bad_records_error_or_skip_through_finetune(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    data = write_medqa(tmp_path / "q.jsonl", 16, 4, bad=True)
    recipe = sft_recipe(tiny_gpt2_dir, data)
    with pytest.raises(
        DataError, match=r"q\.jsonl:17: field 'answer_idx' is 'E', expected one of \['A', 'B'\]"
    ):
        finetune(recipe, output_dir=tmp_path / "a", log=lambda *_: None)
    recipe["finetune"]["on_bad_record"] = "skip"
    results = finetune(recipe, output_dir=tmp_path / "b", log=lambda *_: None)
    assert results["data"]["train"] == 16
    assert results["data"]["bad_records"]["skipped"] == 2
    assert results["data"]["bad_records"]["by_reason"] == {
        "field 'answer_idx' is 'E', expected one of ['A', 'B']": 1,
        "missing question": 1,
    }


def test_cli_runs_a_recipe_and_reports_errors_in_one_line(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    import yaml

    from biomamba.cli.main import run

    data = write_medqa(tmp_path / "q.jsonl", 8, 5)
    recipe = tmp_path / "r.yaml"
    sections = sft_recipe(tiny_gpt2_dir, data, evaluation={"before": False, "on_train": 4})
    del sections["train"]["max_steps"]  # from the command line
    recipe.write_text(yaml.safe_dump({"name": "cli", **sections}))
    with pytest.raises(SystemExit) as exit_info:
        run(
            [
                "finetune",
                str(recipe),
                "--output-dir",
                str(tmp_path / "out"),
                "--max-steps",
                "2",
                "--set",
                "finetune.lora.r=2",
            ]
        )
    assert exit_info.value.code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["train"]["steps"] == 2 and results["after"]["train_seen"]["n"] == 4
    with pytest.raises(SystemExit) as exit_info:
        run(["finetune", str(recipe), "--set", "finetune.method=half"])
    assert exit_info.value.code == 2


def test_seq_classifier_on_pubmedqa_format(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    from biomamba.finetune.heads import SequenceClassifier, load_classifier

    answers = ["yes", "no", "maybe", "yes", "no", "yes", "yes", "no"]
    pqal = pubmedqa_records(answers, first_pmid=1000)
    (tmp_path / "ori_pqal.json").write_text(json.dumps(pqal))
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"1006": "yes", "1007": "no"}))
    recipe = finetune_recipe(
        tiny_gpt2_dir,
        "seq-classifier",
        [{"format": "pubmedqa", "path": str(tmp_path / "ori_pqal.json"), "split": "train"}],
        train={"micro_batch_size": 2, "global_batch_size": 2, "max_steps": 2},
        max_length=48,
        eval_data=[{"format": "pubmedqa", "path": str(tmp_path / "ori_pqal.json"), "split": "test"}],
    )
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)
    assert results["data"]["train"] == 6 and results["after"]["test"]["n"] == 2
    assert results["after"]["train_seen"]["majority_baseline"] == 0.5
    model = load_classifier(tmp_path / "run" / "final")
    assert type(model) is SequenceClassifier and model.labels == ["yes", "no", "maybe"]


@pytest.mark.parametrize("clinical_task", ["discharge-summary", "note-completion"])
def test_mimic_note_tasks_through_finetune(tiny_gpt2_dir: Path, tmp_path: Path, clinical_task: str) -> None:
    from test_clinical import MIMIC_NOTE, mimic_row, write_mimic

    rows = [mimic_row(s, 1, MIMIC_NOTE.format(n=s)) for s in range(1, 41)] + [mimic_row(99, 1, "  ")]
    path = str(write_mimic(tmp_path / "discharge.csv.gz", rows))
    recipe = finetune_recipe(
        tiny_gpt2_dir,
        "clinical-generation",
        [{"format": "mimic-iv-note", "path": path, "split": "train"}],
        train={"micro_batch_size": 2, "global_batch_size": 2, "max_steps": 1},
        clinical_task=clinical_task,
        eval_data=[{"format": "mimic-iv-note", "path": path, "split": "test", "limit": 2}],
        max_length=128,
        on_bad_record="skip",
        evaluation={"max_new_tokens": 4, "max_prompt_tokens": 64, "before": False},
    )
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)
    data = results["data"]
    assert data["bad_records"]["by_reason"] == {"empty note": 2}  # the empty note, seen by both sources
    assert 20 < data["train"] < 40 and data["test"] == 2
    assert results["after"]["test"]["n"] == 2 and "rougeL" in results["after"]["test"]


def test_lora_without_merge_points_results_at_the_adapter(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    data = write_medqa(tmp_path / "q.jsonl", 8, 6)
    recipe = sft_recipe(tiny_gpt2_dir, data, method="lora", lora={"r": 2, "merge": False})
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)
    run = tmp_path / "run"
    assert not (run / "final").exists()
    assert results["final_model"] == str(run / "adapter") and results["adapter"] == str(run / "adapter")
    assert (Path(results["final_model"]) / "adapter_config.json").is_file()
    assert json.loads((run / "results.json").read_text())["final_model"] == str(run / "adapter")
