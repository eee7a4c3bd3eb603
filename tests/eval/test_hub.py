"""Hub task files (`hub:DATASET:CONFIG:SPLIT`) are converted to the original formats and cached."""

from __future__ import annotations

import pytest
from tests.factories import benchmarks as fx

from biomamba.errors import DataError
from biomamba.eval.tasks import load_questions, parse_task_file

PQA = fx.PUBMEDQA["21645374"]  # qiaojin/PubMedQA's first row
PQA_STEM = "Abstract: " + "\n".join(PQA["CONTEXTS"]) + "\nQuestion: " + PQA["QUESTION"]
# each hub split is the factory's export of it (the hub's own columns, as `datasets` writes them)
HUB = {
    ("openlifescienceai/medmcqa", None, "validation"): fx.medmcqa_hf,
    ("cais/mmlu", "anatomy", "test"): fx.mmlu_hf,
    ("allenai/ai2_arc", "ARC-Easy", "test"): fx.arc_hf,
    ("qiaojin/PubMedQA", "pqa_labeled", "train"): fx.pubmedqa_qiaojin,
    ("GBaker/MedQA-USMLE-4-options-hf", None, "test"): fx.medqa_hf,
}


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    exports = tmp_path / "exports"
    exports.mkdir()
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if (path, name, split) not in HUB:
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        return pq.read_table(HUB[(path, name, split)](exports).path).to_pylist()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setenv("BIOMAMBA_CACHE", str(tmp_path / "cache"))
    return calls


@pytest.mark.parametrize(
    ("spec", "gold", "stem"),
    [
        ("medmcqa=hub:openlifescienceai/medmcqa::validation", 0, fx.MEDMCQA[0]["question"]),
        ("mmlu_anatomy=hub:cais/mmlu:anatomy", 2, fx.MMLU[0][0]),
        ("arc_easy=hub:allenai/ai2_arc:ARC-Easy:test", 1, fx.ARC[0][0]),
        ("pubmedqa=hub:qiaojin/PubMedQA:pqa_labeled:train", 0, PQA_STEM),
        ("medqa_4options=hub:GBaker/MedQA-USMLE-4-options-hf", 0, fx.MEDQA[0]["question"]),
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
