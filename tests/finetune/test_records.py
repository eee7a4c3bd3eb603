from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.factories.corpora import write_jsonl as _jsonl

from biomamba.errors import DataError
from biomamba.finetune.records import (
    BadRecords,
    load_bioasq_yesno,
    load_medmcqa,
    load_medqa,
    load_pubmedqa,
    load_qa_jsonl,
    pubmedqa_test_ids,
)


def test_pubmedqa_train_split_excludes_official_test_ids(shared_data: Path) -> None:
    folder = shared_data / "pubmedqa"
    test_ids = pubmedqa_test_ids(folder / "test_ground_truth.json")
    train = load_pubmedqa(folder / "ori_pqal.json", split="train", test_ids=test_ids)
    test = load_pubmedqa(folder / "ori_pqal.json", split="test", test_ids=test_ids)
    assert len(test_ids) == 500 and len(train) == 500 and len(test) == 500
    assert not {e.id for e in train} & test_ids
    assert {e.id for e in test} == test_ids
    gold = json.loads((folder / "test_ground_truth.json").read_text())
    assert all(gold[e.id] == e.answer for e in test)
    first = train[0]
    assert first.options == ("yes", "no", "maybe") and first.options[first.label] == first.answer
    assert first.context and first.question.endswith("?")


def test_pubmedqa_split_needs_test_ids(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{}")
    with pytest.raises(DataError, match="needs the official test ids"):
        load_pubmedqa(path, split="train")


def test_bad_pubmedqa_records_error_or_skip_with_count(tmp_path: Path) -> None:
    path = tmp_path / "pqal.json"
    path.write_text(
        json.dumps(
            {
                "1": {"QUESTION": "Q1?", "CONTEXTS": ["c"], "final_decision": "yes"},
                "2": {"QUESTION": "", "CONTEXTS": ["c"], "final_decision": "no"},
                "3": {"QUESTION": "Q3?", "CONTEXTS": ["c"], "final_decision": "perhaps"},
                "4": {"QUESTION": "Q4?", "CONTEXTS": ["c"]},
            }
        )
    )
    with pytest.raises(DataError, match=r"pqal\.json:1: field 'final_decision' is 'perhaps'"):
        load_pubmedqa(path)
    bad = BadRecords("skip")
    examples = load_pubmedqa(path, bad=bad)
    assert [e.id for e in examples] == ["1"]
    assert bad.total == 3
    assert bad.counts == {
        "missing question": 1,
        "field 'final_decision' is 'perhaps', expected one of ['yes', 'no', 'maybe']": 1,
        "missing answer": 1,
    }


def test_bioasq_keeps_yesno_with_snippets(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    path.write_text(
        json.dumps(
            {
                "questions": [
                    {
                        "id": "a",
                        "type": "yesno",
                        "body": "Is X a gene?",
                        "exact_answer": "Yes",
                        "snippets": [{"text": "X is a gene."}, {"text": "It codes."}],
                    },
                    {"id": "b", "type": "factoid", "body": "Which?", "exact_answer": [["X"]]},
                    {"id": "c", "type": "yesno", "body": "Is Y?", "exact_answer": "no", "snippets": []},
                ]
            }
        )
    )
    examples = load_bioasq_yesno(path)
    assert [(e.id, e.answer, e.label) for e in examples] == [("a", "yes", 0), ("c", "no", 1)]
    assert examples[0].context == "X is a gene. It codes."


def test_medqa_letters_and_out_of_range_answer(tmp_path: Path) -> None:
    good = {
        "question": "Q?",
        "options": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"},
        "answer_idx": "C",
    }
    wrong = {"question": "Q2?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer_idx": "E"}
    path = _jsonl(tmp_path / "medqa.jsonl", [good, wrong])
    with pytest.raises(
        DataError, match=r"medqa\.jsonl:2: field 'answer_idx' is 'E', expected one of \['A', 'B', 'C', 'D'\]"
    ):
        load_medqa(path)
    bad = BadRecords("skip")
    (example,) = load_medqa(path, bad=bad)
    assert example.option_labels == ("A", "B", "C", "D", "E") and example.label == 2 and example.answer == "c"
    assert bad.total == 1


def test_medmcqa_cop_is_one_based(tmp_path: Path) -> None:
    row = {"question": "Q?", "opa": "w", "opb": "x", "opc": "y", "opd": "z", "cop": 1, "id": "m1"}
    bad_row = dict(row, cop=5, id="m2")
    path = _jsonl(tmp_path / "dev.json", [row, bad_row])
    bad = BadRecords("skip")
    (example,) = load_medmcqa(path, bad=bad)
    assert example.label == 0 and example.answer == "w"
    assert bad.samples == [f"{path}:2: field 'cop' must be 1..4 (1-based, original MedMCQA), got 5"]


def test_qa_jsonl_missing_answer_and_invalid_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "chq.jsonl", [{"q": "What is flu?", "a": "A virus."}, {"q": "Why?", "a": ""}])
    with pytest.raises(DataError, match=r"chq\.jsonl:2: missing answer \(field 'a'\)"):
        load_qa_jsonl(path, question_field="q", answer_field="a")
    (example,) = load_qa_jsonl(path, question_field="q", answer_field="a", bad=BadRecords("skip"))
    assert example.answer == "A virus." and not example.options
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"q": "x"}\n{not json\n')
    with pytest.raises(DataError, match=r"broken\.jsonl:2: invalid JSON"):
        load_qa_jsonl(broken, question_field="q", bad=BadRecords("skip"))


def test_bioasq_golden_folder_and_glob_train_like_eval_reads_them(tmp_path: Path) -> None:
    """finetune takes the folder/glob forms eval takes (one reader): yearly golden files, ids de-duplicated."""
    from tests.factories import benchmarks as fx

    from biomamba.finetune.config import DataSource
    from biomamba.finetune.datasets import load_qa_source

    folder = tmp_path / "golden"
    folder.mkdir()
    fx.bioasq_golden(folder / "7B1_golden.json", [fx.bioasq_question("q1"), fx.bioasq_question("q2", "list")])
    fx.bioasq_golden(
        folder / "8B1_golden.json", [fx.bioasq_question("q1"), fx.bioasq_question("q3", answer="no")]
    )
    for path in (folder, folder / "*_golden.json"):
        source = DataSource(format="bioasq", path=path)
        examples = load_qa_source(source, BadRecords())
        assert [(e.id, e.answer) for e in examples] == [("q1", "yes"), ("q3", "no")]
    with pytest.raises(ValueError, match="no file matches this pattern"):
        DataSource(format="bioasq", path=folder / "9B*_golden.json")
    with pytest.raises(ValueError, match="folder without benchmark files"):
        DataSource(format="bioasq", path=tmp_path)
    with pytest.raises(ValueError, match="file not found"):
        DataSource(format="qa-jsonl", path=folder)  # not a benchmark format: one file only
