"""Shipped QA recipes run end to end on tiny models: BioMedLM consumer-health QA (free-text answers scored by
ROUGE), BioMamba's PubMedQA + BioASQ yes/no mixture (both sources feed the training set), and the BioMedLM
PubMedQA sequence classifier. Each recipe is loaded from recipes/, only its data paths, base model and sizes
are overridden, so what runs is the shipped configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from biomamba.config import load_recipe_dict
from biomamba.finetune.run import finetune

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

CONSUMER_QA = [
    ("What are the symptoms of shingles?", "A painful rash with blisters on one side of the body."),
    ("How is high blood pressure treated?", "With less salt, exercise and blood pressure medicines."),
    ("What causes iron deficiency anemia?", "Blood loss or too little iron in the diet."),
    ("Can the flu be prevented?", "Yes, a yearly flu vaccine lowers the risk of the flu."),
    ("What is asthma?", "A long-term disease of the airways that makes breathing hard."),
    ("How do I lower my cholesterol?", "Eat less saturated fat, exercise and take statins if prescribed."),
]

# a passage longer than the tiny GPT-2's 256 positions: prompts are cut from the left to fit
PASSAGE = " ".join(f"Patients asked about health topic number {i} at the clinic." for i in range(60))


def shrink(recipe: dict[str, Any], base: Path, *, max_length: int, **train: Any) -> dict[str, Any]:
    """The shipped recipe on a tiny base: small rows and a few CPU steps, everything else as shipped."""
    recipe["finetune"]["base_model"] = str(base)
    recipe["finetune"]["max_length"] = max_length
    recipe["train"].update(
        {
            "micro_batch_size": 4,
            "global_batch_size": 4,
            "activation_checkpointing": False,
            "progress": False,
            "save_every": None,
            **train,
        }
    )
    return recipe


def write_consumer_qa(path: Path, pairs: list[tuple[str, str]], *, bad: bool = False) -> Path:
    lines = [
        json.dumps({"id": f"cq{i}", "question": q, "answer": a, "passage": PASSAGE if i % 2 else ""})
        for i, (q, a) in enumerate(pairs)
    ]
    if bad:
        lines.append(json.dumps({"id": "no-answer", "question": "What is gout?", "answer": ""}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_consumer_qa_recipe_free_text_rouge_end_to_end(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe_dict(RECIPES / "finetune-biomedlm-consumer-qa.yaml")
    train = write_consumer_qa(tmp_path / "train.jsonl", CONSUMER_QA * 2, bad=True)
    dev = write_consumer_qa(tmp_path / "dev.jsonl", CONSUMER_QA[:2])
    test = write_consumer_qa(tmp_path / "test.jsonl", CONSUMER_QA[:3])
    for key, path in (("train_data", train), ("validation_data", dev), ("eval_data", test)):
        recipe["finetune"][key][0].update({"path": str(path), "context_field": "passage"})
    # the tiny GPT-2 has 256 positions; max_length 256 with a 24-token answer budget must stay within them
    recipe["finetune"]["evaluation"].update({"max_new_tokens": 24, "on_train": 2})
    recipe = shrink(recipe, tiny_gpt2_dir, max_length=256, lr=5e-3, max_steps=2, eval_every=1)
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)

    assert results["task"] == "sft-qa" and results["family"] == "gpt2"
    assert results["data"]["train"] == 12 and results["data"]["train_sources"] == {"qa-jsonl": 12}
    assert results["data"]["bad_records"]["by_reason"] == {"missing answer (field 'answer')": 1}
    for when in ("before", "after"):
        for split, n in (("test", 3), ("train_seen", 2)):
            report = results[when][split]
            assert report["n"] == n and "accuracy" not in report
            for name in ("rouge1", "rouge2", "rougeL"):
                low, high = report[f"{name}_ci"]
                assert 0.0 <= low <= report[name] <= high <= 1.0
            assert report["samples"][0]["reference"] == CONSUMER_QA[0][1]
    assert results["train"]["steps"] == 2
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("val/loss" in m for m in metrics)  # early stopping on val/loss, as the recipe says
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["after"]["test"]["rougeL"] == results["after"]["test"]["rougeL"]
    assert (tmp_path / "run" / "final" / "config.json").is_file()


def test_free_text_answer_budget_must_fit_max_length(tmp_path: Path) -> None:
    from biomamba.errors import RecipeError
    from biomamba.finetune.run import load_configs

    data = write_consumer_qa(tmp_path / "qa.jsonl", CONSUMER_QA)
    recipe = {
        "finetune": {
            "task": "sft-qa",
            "base_model": "x",
            "train_data": [{"format": "qa-jsonl", "path": str(data)}],
            "max_length": 64,
            "evaluation": {"max_new_tokens": 64},
        }
    }
    with pytest.raises(RecipeError, match=r"max_new_tokens \(64\) must be below max_length \(64\)"):
        load_configs(recipe)


def write_bioasq(path: Path) -> Path:
    """A BioASQ Task B golden file: 6 yes/no questions (4 yes, 2 no) plus a factoid and a summary question."""
    questions = []
    for i, answer in enumerate(["yes", "no", "yes", "yes", "no", "yes"]):
        questions.append(
            {
                "id": f"bq{i}",
                "type": "yesno",
                "body": f"Is drug {i} associated with lower mortality in sepsis?",
                "exact_answer": answer,
                "ideal_answer": [f"The answer is {answer}."],
                "documents": [f"http://www.ncbi.nlm.nih.gov/pubmed/{1000 + i}"],
                "snippets": [
                    {"text": f"Drug {i} was studied in 200 patients with sepsis.", "document": "d"},
                    {"text": "Mortality was the primary outcome.", "document": "d"},
                ],
            }
        )
    questions.append({"id": "f1", "type": "factoid", "body": "Which gene?", "exact_answer": [["TP53"]]})
    questions.append({"id": "s1", "type": "summary", "body": "Describe sepsis.", "ideal_answer": ["..."]})
    path.write_text(json.dumps({"questions": questions}))
    return path


@pytest.mark.shared
def test_pubmedqa_bioasq_mixture_recipe_feeds_both_sources(
    shared_data: Path, tiny_mamba2_dir: Path, tmp_path: Path
) -> None:
    from biomamba.finetune.config import FinetuneConfig
    from biomamba.finetune.run import Task, prepare_data
    from biomamba.models import load_tokenizer

    recipe = load_recipe_dict(RECIPES / "finetune-biomamba-pubmedqa.yaml")
    pqal = shared_data / "pubmedqa" / "ori_pqal.json"
    sources = recipe["finetune"]["train_data"]
    assert [s["format"] for s in sources] == ["pubmedqa", "bioasq"]  # the shipped mixture
    sources[0].update({"path": str(pqal), "limit": 20})
    sources[1]["path"] = str(write_bioasq(tmp_path / "training_golden.json"))
    recipe["finetune"]["eval_data"][0].update({"path": str(pqal), "limit": 4})
    recipe["finetune"]["evaluation"] = {"on_train": 0}
    recipe = shrink(recipe, tiny_mamba2_dir, max_length=96, lr=1e-3, max_steps=2, eval_every=1)
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)

    data = results["data"]
    counts = data["train_sources"]
    assert set(counts) == {"pubmedqa", "bioasq"} and min(counts.values()) > 0, counts
    assert sum(counts.values()) == data["train"]
    # validation_fraction 0.1 holds out some of the 26 questions (20 PubMedQA + 6 BioASQ yes/no), not more
    assert data["train"] + data["validation"] == 26 and data["validation"] >= 1
    assert data["bad_records"]["skipped"] == 0  # the factoid and summary questions are not bad records
    assert results["after"]["test"]["n"] == 4 and results["train"]["steps"] == 2

    # the training batches really hold both sources' questions
    config = FinetuneConfig.model_validate(recipe["finetune"])
    prepared = prepare_data(config)
    tokenizer = load_tokenizer(str(tiny_mamba2_dir))
    rows = Task(config, tokenizer, "mamba2").batches(prepared.train, 4, 0, 0, 1).rows
    text = "".join(tokenizer.decode(doc.input_ids) for row in rows for doc in row)
    assert "associated with lower mortality in sepsis" in text  # BioASQ
    assert prepared.train[0].question in text  # PubMedQA


@pytest.mark.shared
def test_pubmedqa_seq_classifier_recipe_end_to_end(
    shared_data: Path, tiny_gpt2_dir: Path, tmp_path: Path
) -> None:
    from biomamba.finetune.heads import SequenceClassifier, load_classifier

    recipe = load_recipe_dict(RECIPES / "finetune-biomedlm-pubmedqa-seqcls.yaml")
    pqal = shared_data / "pubmedqa" / "ori_pqal.json"
    assert recipe["finetune"]["task"] == "seq-classifier"
    recipe["finetune"]["train_data"][0].update({"path": str(pqal), "limit": 24})
    recipe["finetune"]["eval_data"][0].update({"path": str(pqal), "limit": 6})
    recipe["finetune"]["evaluation"] = {"on_train": 4}
    recipe = shrink(recipe, tiny_gpt2_dir, max_length=64, lr=1e-3, max_steps=2, eval_every=1)
    results = finetune(recipe, output_dir=tmp_path / "run", log=lambda *_: None)

    assert results["data"]["train_sources"] == {"pubmedqa": results["data"]["train"]}
    for when in ("before", "after"):
        report = results[when]["test"]
        assert report["n"] == 6 and 0.0 <= report["accuracy"] <= 1.0 and len(report["predictions"]) == 6
    model = load_classifier(tmp_path / "run" / "final")
    assert isinstance(model, SequenceClassifier) and model.labels == ["yes", "no", "maybe"]
