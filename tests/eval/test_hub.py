"""Hub task files (`hub:DATASET:CONFIG:SPLIT`) are converted to the original formats and cached."""

from __future__ import annotations

import pytest

from biomamba.errors import DataError
from biomamba.eval.tasks import load_questions, parse_task_file

HUB = {
    ("openlifescienceai/medmcqa", None, "validation"): [
        {
            "question": "Drug of choice for anaphylaxis is",
            "opa": "Adrenaline",
            "opb": "Atropine",
            "opc": "Dopamine",
            "opd": "Digoxin",
            "cop": 0,
            "id": "x1",
        },
    ],
    ("cais/mmlu", "anatomy", "test"): [
        {
            "question": "How many chambers does the heart have?",
            "choices": ["Two", "Three", "Four", "Five"],
            "answer": 2,
        },
    ],
    ("allenai/ai2_arc", "ARC-Easy", "test"): [
        {
            "id": "a1",
            "question": "Water freezes at?",
            "choices": {"text": ["0 C", "50 C"], "label": ["A", "B"]},
            "answerKey": "A",
        },
    ],
    ("qiaojin/PubMedQA", "pqa_labeled", "train"): [
        {
            "pubid": 7,
            "question": "Does X help?",
            "context": {"contexts": ["We tried X."]},
            "final_decision": "maybe",
        },
    ],
    ("GBaker/MedQA-USMLE-4-options-hf", None, "test"): [
        {
            "sent1": "Which organ makes insulin?",
            "ending0": "Liver",
            "ending1": "Pancreas",
            "ending2": "Skin",
            "ending3": "Bone",
            "label": 1,
        },
    ],
}


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if (path, name, split) not in HUB:
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        return HUB[(path, name, split)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setenv("BIOMAMBA_CACHE", str(tmp_path))
    return calls


@pytest.mark.parametrize(
    ("spec", "gold", "stem"),
    [
        ("medmcqa=hub:openlifescienceai/medmcqa::validation", 0, "Drug of choice for anaphylaxis is"),
        ("mmlu_anatomy=hub:cais/mmlu:anatomy", 2, "How many chambers does the heart have?"),
        ("arc_easy=hub:allenai/ai2_arc:ARC-Easy:test", 0, "Water freezes at?"),
        (
            "pubmedqa=hub:qiaojin/PubMedQA:pqa_labeled:train",
            2,
            "Abstract: We tried X.\nQuestion: Does X help?",
        ),
        ("medqa_4options=hub:GBaker/MedQA-USMLE-4-options-hf", 1, "Which organ makes insulin?"),
    ],
)
def test_hub_splits_load_through_the_original_readers(spec, gold, stem, fake_hub):
    questions = load_questions(parse_task_file(spec))
    assert questions[0].gold == gold and questions[0].stem == stem
    load_questions(parse_task_file(spec))
    assert len(fake_hub) == 1  # the second read came from the cache


def test_hub_errors_are_one_line(fake_hub):
    with pytest.raises(DataError, match="cannot load from the hub"):
        load_questions(parse_task_file("arc_easy=hub:nobody/nothing"))
