"""Every format, written in its public layout, is detected, read with the right counts and gold answers,
prompted like its original-format twin, and refused with a message that says what the file is."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from tests.factories import benchmarks as fx
from tests.factories.scripts import lm_eval_task_module

from biomamba.benchmarks import FORMATS, detect_format, get_format, map_text, read_benchmark
from biomamba.benchmarks.registry import iter_raw
from biomamba.errors import DataError
from biomamba.eval.tasks import TaskFile, load_questions, parse_task_file

FACTORIES = sorted(fx.FACTORIES)


@pytest.mark.parametrize("name", FACTORIES)
def test_each_fixture_is_detected_and_loads_its_task(name, tmp_path):
    case = fx.FACTORIES[name](tmp_path)
    if case.path.is_file():
        assert detect_format(case.path).name == case.format
    questions = load_questions(TaskFile(case.task, case.path))
    assert [q.gold for q in questions] == case.golds
    assert questions.format == case.format and all(q.where.startswith(str(tmp_path)) for q in questions)


def test_every_registered_format_has_a_fixture(tmp_path):
    covered = {fx.FACTORIES[n](tmp_path / n).format for n in FACTORIES if (tmp_path / n).mkdir() is None}
    assert covered == set(FORMATS)


def test_a_named_format_wins_and_is_checked_against_the_task(tmp_path):
    case = fx.medmcqa_hf_jsonl(tmp_path)
    assert [q.gold for q in load_questions(parse_task_file(f"medmcqa:medmcqa-hf={case.path}"))] == [0, 3]
    with pytest.raises(DataError, match="field 'cop' must be 1..4"):  # read as the release: cop 0 is out
        load_questions(parse_task_file(f"medmcqa:medmcqa={case.path}"))
    with pytest.raises(DataError, match="task medmcqa reads formats medmcqa, medmcqa-hf, not icl-mc"):
        parse_task_file(f"medmcqa:icl-mc={case.path}")


@pytest.mark.parametrize(("icl", "original"), sorted(fx.ICL_TWINS.items()))
def test_llm_foundry_icl_files_get_lm_eval_prompts(icl, original, tmp_path):
    """An llm-foundry ICL file is prompted exactly like the original-format file of the same questions."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    ours, theirs = fx.FACTORIES[icl](tmp_path / "a"), fx.FACTORIES[original](tmp_path / "b")
    assert ours.task == theirs.task
    mine = load_questions(TaskFile(ours.task, ours.path))
    reference = load_questions(TaskFile(theirs.task, theirs.path))
    assert [q.requests() for q in mine] == [q.requests() for q in reference]
    assert [q.gold for q in mine] == [q.gold for q in reference]


def test_pubmedqa_contexts_as_lm_eval_and_bigbio_join_them(tmp_path):
    """lm-eval's pubmedqa joins CONTEXTS with newlines (source schema); bigbio's bigbio_qa schema already
    joined them with spaces, and that string is read as the file holds it. Training contexts agree."""
    from biomamba.finetune.records import load_pubmedqa

    layouts = {n: fx.FACTORIES[n](tmp_path / n) for n in ("pubmedqa", "pubmedqa_bigbio", "pubmedqa_bigbio_qa")
               if (tmp_path / n).mkdir() is None}  # fmt: skip
    stems = {n: [q.stem for q in load_questions(TaskFile("pubmedqa", c.path))] for n, c in layouts.items()}
    newline = [
        f"Abstract: {chr(10).join(r['CONTEXTS'])}\nQuestion: {r['QUESTION']}" for r in fx.PUBMEDQA.values()
    ]
    spaced = [f"Abstract: {' '.join(r['CONTEXTS'])}\nQuestion: {r['QUESTION']}" for r in fx.PUBMEDQA.values()]
    assert stems == {"pubmedqa": newline, "pubmedqa_bigbio": newline, "pubmedqa_bigbio_qa": spaced}
    contexts = {n: [e.context for e in load_pubmedqa(c.path)] for n, c in layouts.items()}
    assert contexts["pubmedqa"] == contexts["pubmedqa_bigbio"] == contexts["pubmedqa_bigbio_qa"]


def test_bioasq_in_the_bigbio_qa_schema_is_refused_not_read_as_pubmedqa(tmp_path):
    """bigbio's bioasq_task_b bigbio_qa rows (one per snippet) have PubMedQA bigbio_qa's columns."""
    question = fx.bioasq_question("55031181e9bde69634000014")
    question["snippets"].append({**question["snippets"][0], "text": "A second snippet."})
    rows = [{"id": f"{question['id']}_{i}", "document_id": s["document"], "question_id": question["id"],
             "question": question["body"], "type": question["type"], "choices": [], "context": s["text"],
             "answer": [question["exact_answer"]]} for i, s in enumerate(question["snippets"])]  # fmt: skip
    path = fx.jsonl(tmp_path / "bioasq_blurb_bigbio_qa.jsonl", rows)
    with pytest.raises(
        DataError, match=r"bioasq_blurb_bigbio_qa\.jsonl: is BioASQ in bigbio's bigbio_qa schema"
    ):
        load_questions(TaskFile("pubmedqa", path))


def test_copa_prompt_is_lm_eval_superglue(tmp_path):
    utils = lm_eval_task_module("super_glue/copa/utils.py")
    q = load_questions(TaskFile("copa", fx.copa(tmp_path).path))[0]
    assert q.context == utils.doc_to_text(fx.COPA) and q.choices == utils.doc_to_choice(fx.COPA)


def test_messages_say_what_the_file_is_and_what_the_task_expected(tmp_path):
    pqa = fx.pubmedqa(tmp_path).path
    with pytest.raises(
        DataError, match=r"ori_pqal.json: is PubMedQA JSON document .*task 'medqa_4options' reads"
    ):
        load_questions(TaskFile("medqa_4options", pqa))
    medqa = fx.medqa(tmp_path).path
    with pytest.raises(
        DataError, match=r"test.jsonl: is MedQA \(USMLE\) JSON lines .*task 'pubmedqa' reads PubMedQA"
    ):
        load_questions(TaskFile("pubmedqa", medqa))
    with pytest.raises(
        DataError, match=r"test.jsonl: is JSON lines; format pubmedqa .* is one JSON document"
    ):
        load_questions(TaskFile("pubmedqa", medqa, format="pubmedqa"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: is a folder without benchmark files") as err:
        load_questions(TaskFile("arc_easy", empty))
    assert "not found" not in str(err.value)
    with pytest.raises(DataError, match=r"nothing.jsonl: task file for 'arc_easy' not found"):
        load_questions(TaskFile("arc_easy", tmp_path / "nothing.jsonl"))
    with pytest.raises(DataError, match=r"is a PubMedQA ground-truth file"):
        read_benchmark(fx.pubmedqa_test_folder(tmp_path).path / "test_ground_truth.json")


def test_mmlu_subject_is_checked(tmp_path):
    path = fx.mmlu(tmp_path).path
    other = path.with_name("clinical_knowledge_test.csv")
    shutil.copy(path, other)
    with pytest.raises(
        DataError, match=r"is the MMLU clinical_knowledge file .*task mmlu_anatomy reads anatomy"
    ):
        load_questions(TaskFile("mmlu_anatomy", other))
    # a folder of subjects: only the task's subject is read
    both = load_questions(TaskFile("mmlu_anatomy", tmp_path))
    assert [f.path.name for f in both.files] == ["anatomy_test.csv"] and len(both) == 2
    hub = fx.mmlu_hf(tmp_path).path
    with pytest.raises(
        DataError, match=r"an MMLU anatomy question; task mmlu_college_biology reads college_biology"
    ):
        load_questions(TaskFile("mmlu_college_biology", hub))


def test_bioasq_folder_and_glob_read_every_golden_file_once(tmp_path, caplog):
    folder = tmp_path / "golden"
    folder.mkdir()
    fx.bioasq_golden(folder / "7B1_golden.json", [fx.bioasq_question("q1"), fx.bioasq_question("q2", "list")])
    fx.bioasq_golden(
        folder / "8B1_golden.json", [fx.bioasq_question("q1"), fx.bioasq_question("q3", answer="no")]
    )
    with caplog.at_level(logging.WARNING, logger="biomamba.eval.tasks"):
        questions = load_questions(parse_task_file(f"bioasq_yesno={folder}"))
    assert [q.qid for q in questions] == ["q1", "q3"] and [q.gold for q in questions] == [0, 1]
    assert [(f.path.name, f.records, f.duplicates) for f in questions.files] == [
        ("7B1_golden.json", 2, 0),
        ("8B1_golden.json", 2, 1),
    ]
    assert questions.skipped == {"list": 1}
    assert set(questions.file_sha256) == {str(folder / "7B1_golden.json"), str(folder / "8B1_golden.json")}
    assert "7B1_golden.json 2, 8B1_golden.json 2 (1 duplicates left out)" in caplog.text
    globbed = load_questions(parse_task_file(f"bioasq_yesno={folder}/8B*_golden.json"))
    assert [q.qid for q in globbed] == ["q1", "q3"] and isinstance(globbed.file_sha256, str)


def test_hellaswag_decontamination_indexes_the_context_evaluation_scores(tmp_path):
    from biomamba.data.config import DecontamConfig
    from biomamba.data.decontam import NgramIndex

    path = fx.hellaswag(tmp_path).path
    question = load_questions(TaskFile("hellaswag", path))[0]
    index = NgramIndex.build(DecontamConfig(ngram=8, benchmarks=[{"name": "hs", "format": "hellaswag",
                                                                     "path": str(path)}]))  # fmt: skip
    assert question.context.startswith("Roof shingle removal: ")
    assert index.matches(f"Forum post. {question.context} {question.choices[1]}") == ["hs"]
    # the activity label is indexed with the context
    assert index.matches("Roof shingle removal: A man is sitting on a roof.") == ["hs"]


def test_translation_rewrites_only_free_text(tmp_path):
    case = fx.arc(tmp_path)
    fmt = get_format("arc")
    raw = next(iter_raw(case.path, fmt))[1]
    upper = map_text(fmt, raw, str.upper)
    assert upper["question"]["stem"] == raw["question"]["stem"].upper()
    assert [c["label"] for c in upper["question"]["choices"]] == ["A", "B", "C"] and upper["answerKey"] == "B"
    assert raw["question"]["stem"] != upper["question"]["stem"]  # the original is untouched
    bioasq = fx.bioasq(tmp_path).path
    fmt = get_format("bioasq")
    question = map_text(fmt, next(iter_raw(bioasq, fmt))[1], str.upper)
    assert question["snippets"][0]["text"].isupper() and question["exact_answer"] == "yes"
    assert question["ideal_answer"][0].isupper() and question["id"] == "q1"


def test_finetune_reads_hub_exports_through_the_same_reader(tmp_path):
    from biomamba.finetune.records import load_medmcqa, load_pubmedqa

    examples = load_medmcqa(fx.medmcqa_hf(tmp_path).path)
    assert [(e.label, e.answer) for e in examples] == [(0, "Ethosuximide"), (3, "2nd and 3rd arches")]
    pqa = load_pubmedqa(fx.pubmedqa_qiaojin(tmp_path).path)
    assert [e.answer for e in pqa] == ["yes", "no", "maybe"] and pqa[0].id == "21645374"


def test_results_record_the_detected_format(tmp_path):
    case = fx.icl_arc(tmp_path)
    questions = load_questions(TaskFile("arc_easy", case.path))
    assert questions.format == "icl-mc" and len(questions.file_sha256) == 64
    assert json.loads(json.dumps(questions.file_sha256))


def test_docs_list_every_format_with_its_sample():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "eval.md").read_text(encoding="utf-8")
    for fmt in FORMATS.values():
        assert f"- `{fmt.name}`: {fmt.title}" in text and fmt.sample in text, fmt.name


def test_a_folder_keeps_to_the_task_files_language(tmp_path):
    case = fx.medqa(tmp_path)
    french = [{**r, "question": "FR " + r["question"]} for r in fx.MEDQA]
    fx.jsonl(tmp_path / "test.fr.jsonl", french)
    (tmp_path / "test.fr.jsonl.cache.jsonl").write_text('{"key": "k", "translation": "t"}\n')
    english = load_questions(TaskFile(case.task, tmp_path))
    assert [f.path.name for f in english.files] == ["test.jsonl"]
    translated = load_questions(TaskFile(case.task, tmp_path, "fr"))
    assert [f.path.name for f in translated.files] == ["test.fr.jsonl"]
    assert translated[0].stem.startswith("FR ")
