"""Task readers: original formats, lm-eval's templates, language tags, and errors that name file:line."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from tests.eval.conftest import FIXTURES, write_jsonl
from tests.factories import benchmarks as fx
from tests.factories.scripts import invoke_cli, lm_eval_task_module

from biomamba.errors import DataError
from biomamba.eval.tasks import (
    TASKS,
    TaskFile,
    detect_language,
    label_balance,
    load_questions,
    parse_task_file,
)


def test_every_issue_task_is_registered():
    expected = set(
        "pubmedqa pubmedqa_test medqa_4options medqa_5options medmcqa bioasq_yesno mmlu_anatomy "
        "mmlu_clinical_knowledge mmlu_college_biology mmlu_college_medicine mmlu_medical_genetics "
        "mmlu_professional_medicine arc_easy arc_challenge hellaswag piqa winogrande openbookqa boolq lambada "
        "truthfulqa_mc1 truthfulqa_mc2".split()
    )
    assert expected <= set(TASKS)


def test_fixtures_load_with_their_gold_answers():
    medqa = load_questions(TaskFile("medqa_4options", FIXTURES / "medqa_4options.jsonl"))
    assert [q.gold for q in medqa] == [0, 1, 2, 3]
    assert medqa[0].context.endswith("D. Zinc\nAnswer:")
    five = load_questions(TaskFile("medqa_5options", FIXTURES / "medqa_5options.jsonl"))
    assert five[0].choices == list("ABCDE")
    medmcqa = load_questions(TaskFile("medmcqa", FIXTURES / "medmcqa_dev.json"))
    assert [q.gold for q in medmcqa] == [1, 0, 3]  # cop is 1-based in the original files
    mmlu = load_questions(TaskFile("mmlu_anatomy", FIXTURES / "anatomy_test.csv"))
    assert [q.gold for q in mmlu] == [3, 0, 2]
    arc = load_questions(TaskFile("arc_easy", FIXTURES / "arc_easy.jsonl"))
    assert [q.gold for q in arc] == [1, 0, 0] and arc[0].context == f"Question: {arc[0].stem}\nAnswer:"


def test_pubmedqa_test_split_uses_ground_truth_and_checks_agreement(tmp_path):
    questions = load_questions(TaskFile("pubmedqa_test", FIXTURES / "pubmedqa_ori_pqal.json"))
    assert [q.qid for q in questions] == ["1001", "1003", "1004"]
    assert label_balance(questions) == {"yes": 2, "maybe": 1}
    data = json.loads((FIXTURES / "pubmedqa_ori_pqal.json").read_text())
    data["1003"]["final_decision"] = "no"
    (tmp_path / "ori_pqal.json").write_text(json.dumps(data, indent=1))
    (tmp_path / "test_ground_truth.json").write_text((FIXTURES / "test_ground_truth.json").read_text())
    with pytest.raises(DataError, match=r"ori_pqal.json:\d+: final_decision 'no' disagrees"):
        load_questions(TaskFile("pubmedqa_test", tmp_path))


def test_malformed_records_name_file_and_line(tmp_path):
    bad_json = tmp_path / "medqa.jsonl"
    good = json.loads((FIXTURES / "medqa_4options.jsonl").read_text().splitlines()[0])
    bad_json.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n{not json\n")
    with pytest.raises(DataError, match=r"medqa.jsonl:3: invalid JSON"):
        load_questions(TaskFile("medqa_4options", bad_json))
    missing = write_jsonl(tmp_path / "m2.jsonl", [good, {k: v for k, v in good.items() if k != "answer_idx"}])
    with pytest.raises(DataError, match=r"m2.jsonl:2: missing field 'answer_idx'"):
        load_questions(TaskFile("medqa_4options", missing))
    with pytest.raises(DataError, match=r"medqa_5options.jsonl:1: 'options' must have keys"):
        load_questions(TaskFile("medqa_4options", FIXTURES / "medqa_5options.jsonl"))
    rows = tmp_path / "anatomy_test.csv"
    with rows.open("w", newline="") as handle:
        csv.writer(handle).writerows([["q", "a", "b", "c", "d", "A"], ["q", "a", "b", "c", "B"]])
    with pytest.raises(DataError, match=r"anatomy_test.csv:2: expected 6 columns"):
        load_questions(TaskFile("mmlu_anatomy", rows))
    cop = write_jsonl(
        tmp_path / "dev.json", [{"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}]
    )
    with pytest.raises(DataError, match=r"dev.json:1: field 'cop' must be 1..4"):
        load_questions(TaskFile("medmcqa", cop, format="medmcqa"))  # named: 0 is out of range
    data = json.loads((FIXTURES / "pubmedqa_ori_pqal.json").read_text())
    del data["1002"]["QUESTION"]
    pq = tmp_path / "pq.json"
    pq.write_text(json.dumps(data, indent=1))
    line = next(i for i, text in enumerate(pq.read_text().splitlines(), 1) if '"1002"' in text)
    with pytest.raises(DataError, match=rf"pq.json:{line}: missing field 'QUESTION'"):
        load_questions(TaskFile("pubmedqa", pq))


def test_general_tasks_use_lm_eval_templates(tmp_path):
    hs = fx.HELLASWAG  # its endings carry WikiHow's "[title]" marker
    q = load_questions(TaskFile("hellaswag", fx.hellaswag(tmp_path).path))[0]
    utils = lm_eval_task_module("hellaswag/utils.py")
    ctx = hs["ctx_a"] + " " + hs["ctx_b"].capitalize()
    assert q.context == utils.preprocess(hs["activity_label"] + ": " + ctx)
    assert q.choices == [utils.preprocess(e) for e in hs["endings"]] and q.gold == 1

    wg = fx.WINOGRANDE
    q = load_questions(TaskFile("winogrande", fx.winogrande(tmp_path).path))[0]
    pre = lm_eval_task_module("winogrande/preprocess_winogrande.py")
    assert q.context == pre.doc_to_choice(wg) and q.continuation == pre.doc_to_target(wg) and q.gold == 0
    assert q.requests() == [(c, " " + pre.doc_to_target(wg)) for c in pre.doc_to_choice(wg)]

    q = load_questions(TaskFile("piqa", fx.piqa(tmp_path / "piqa").path))[0]  # valid.jsonl + valid-labels.lst
    assert q.context == f"Question: {fx.PIQA[0]['goal']}\nAnswer:" and q.gold == 0

    bq = load_questions(TaskFile("boolq", fx.boolq(tmp_path / "boolq").path))[0]  # the answer: true
    assert bq.context == f"{fx.BOOLQ['passage']}\nQuestion: {fx.BOOLQ['question']}?\nAnswer:"
    assert bq.choices[bq.gold] == "yes"

    lb = load_questions(TaskFile("lambada", fx.lambada(tmp_path).path))[0]
    context, _, last_word = fx.LAMBADA.rpartition(" ")
    assert lb.requests() == [(context, " " + last_word)]

    q = load_questions(TaskFile("openbookqa", fx.arc(tmp_path / "openbookqa").path))[0]  # OpenBookQA is ARC's
    stem, _, gold = fx.ARC[0]
    assert q.context == stem and q.gold == gold


def test_truthfulqa_both_layouts_and_bioasq(tmp_path):
    mc2_targets = fx.TRUTHFULQA["mc2_targets"]
    for case in (fx.truthfulqa(tmp_path), fx.truthfulqa_hf(tmp_path)):  # mc_task.json and the hub's layout
        mc2 = load_questions(TaskFile("truthfulqa_mc2", case.path))[0]
        assert mc2.choices == list(mc2_targets) and mc2.labels == list(mc2_targets.values()) == [1, 1, 0]
        assert mc2.context.endswith(f"\n\nQ: {fx.TRUTHFULQA['question']}\nA:")
    questions = [
        fx.bioasq_question("b1"),
        fx.bioasq_question("b2", "factoid"),
        fx.bioasq_question("b3", answer="maybe"),
    ]
    bioasq = fx.bioasq_golden(tmp_path / "golden.json", questions)
    with pytest.raises(DataError, match=r"golden.json:\d+: yes/no question needs exact_answer"):
        load_questions(TaskFile("bioasq_yesno", bioasq))


def test_language_tags():
    assert parse_task_file("medqa_4options@fr=x.jsonl").key == "medqa_4options@fr"
    assert parse_task_file("medqa_4options=data/test.de.jsonl").language == "de"
    assert detect_language(Path("test.jsonl")) == "en"
    with pytest.raises(DataError, match="unknown task 'medqa'"):
        parse_task_file("medqa=x.jsonl")


def test_shared_pubmedqa_official_test_split(shared_data):
    """The official 500-question split loads and the printed label balance matches the file."""
    truth = json.loads((shared_data / "pubmedqa" / "test_ground_truth.json").read_text())
    expected = Counter(truth.values())
    result = invoke_cli(["eval", "inspect", f"pubmedqa_test={shared_data / 'pubmedqa'}"])
    assert result.exit_code == 0, result.output
    assert "500 questions" in result.output
    assert "labels: " + ", ".join(f"{k} {v}" for k, v in expected.most_common()) in result.output
    pqal = load_questions(TaskFile("pubmedqa", shared_data / "pubmedqa" / "ori_pqal.json"))
    assert len(pqal) == 1000 and label_balance(pqal) == {"yes": 552, "no": 338, "maybe": 110}


def test_bioasq_yesno_from_task_b_golden_json(caplog):
    """Yes/no questions with their snippets as context; the other types are counted and reported."""
    path = FIXTURES / "bioasq_taskb_golden.json"
    with caplog.at_level("WARNING", logger="biomamba.eval.tasks"):
        questions = load_questions(TaskFile("bioasq_yesno", path))
    assert [q.qid for q in questions] == ["55031181e9bde69634000014", "5503121ae9bde69634000016"]
    first, second = questions
    assert first.context == (
        "Context: Papilin is an extracellular matrix glycoprotein that is secreted. "
        "Secreted papilin is found in basement membranes.\n"
        "Question: Is the protein Papilin secreted?\nAnswer:"
    )
    assert first.choices == ["yes", "no"] and first.gold == 0
    assert second.gold == 1 and second.context.startswith(
        "Context: Type 1 diabetes is treated with insulin.\n"
    )
    assert first.where == f"{path}:10"  # the line of the record's "id"
    assert questions.skipped == {"factoid": 1, "list": 1, "summary": 1}
    assert "3 questions that are not yes/no (factoid 1, list 1, summary 1)" in caplog.text
    # limit keeps the count; inspect prints it
    assert load_questions(TaskFile("bioasq_yesno", path), limit=1).skipped == questions.skipped
    result = invoke_cli(["eval", "inspect", f"bioasq_yesno={path}"])
    assert result.exit_code == 0, result.output
    assert "2 questions" in result.output and "labels: no 1, yes 1" in result.output
    assert "skipped: 3 questions that are not yes/no (factoid 1, list 1, summary 1)" in result.output
