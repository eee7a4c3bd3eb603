"""The biomedical formats: MedQA, MedMCQA, MMLU, PubMedQA, BioASQ, in their releases and their hub exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from biomamba.benchmarks import io as bio
from biomamba.benchmarks.record import LETTERS, Record
from biomamba.benchmarks.spec import Format, choice_index, gold_index, hash_id, record_id, text_list
from biomamba.errors import DataError

YES_NO_MAYBE = ["yes", "no", "maybe"]
YES_NO = ["yes", "no"]


def _lettered(fmt: str, rid: str, where: str, stem: str, texts: list[str], gold: int, raw: Any,
              **fields: Any) -> Record:  # fmt: skip
    """A lettered exam's question: the options shown after A, B, C, ..."""
    return Record.choice(fmt, rid, where, stem, texts, gold, raw, list(LETTERS[: len(texts)]), **fields)


# ------------------------------------------------------------------------------------------------ MedQA


def parse_medqa(rec: Any, where: str, _key: str | None) -> Record:
    """`{"question", "options": {"A": ..}, "answer_idx": "C"}`; 4 or 5 options (the task checks which)."""
    stem = bio.field(rec, "question", str, where)
    options = bio.field(rec, "options", dict, where)
    letters = sorted(options)
    if letters != list(LETTERS[: len(letters)]) or len(letters) < 2:
        raise DataError(f"{where}: 'options' must have keys A, B, C, ... in order, got {letters}")
    gold = choice_index(bio.field(rec, "answer_idx", str, where).strip(), letters, where, "answer_idx")
    texts = [str(options[k]) for k in letters]
    return _lettered("medqa", record_id(rec, ("id",), hash_id(stem)), where, stem, texts, gold, rec)


def parse_medqa_hf(rec: Any, where: str, _key: str | None) -> Record:
    """GBaker/MedQA-USMLE-4-options-hf: `{"sent1", "ending0".., "label": 0-based}`."""
    stem = bio.field(rec, "sent1", str, where)
    keys = sorted((k for k in rec if re.fullmatch(r"ending\d", k)), key=lambda k: int(k[6:]))
    texts = [str(bio.field(rec, k, (str, int, float), where)) for k in keys]
    gold = gold_index(rec, "label", len(texts), where)
    return _lettered("medqa-hf", record_id(rec, ("id",), hash_id(stem)), where, stem, texts, gold, rec)


# ---------------------------------------------------------------------------------------------- MedMCQA

MEDMCQA_OPTIONS = ("opa", "opb", "opc", "opd")


def _medmcqa(rec: Any, where: str, first: int, fmt: str) -> Record:
    stem = bio.field(rec, "question", str, where)
    texts = [str(bio.field(rec, key, (str, int, float), where)) for key in MEDMCQA_OPTIONS]
    cop = bio.field(rec, "cop", int, where)
    if not first <= cop <= first + 3:
        base = "1-based, original MedMCQA" if first == 1 else "0-based, hub export"
        raise DataError(f"{where}: field 'cop' must be {first}..{first + 3} ({base}), got {cop}")
    rid = record_id(rec, ("id",), hash_id(stem))
    return _lettered(fmt, rid, where, stem, texts, cop - first, rec, extra_text=[str(rec.get("exp") or "")])


def parse_medmcqa(rec: Any, where: str, _key: str | None) -> Record:
    """MedMCQA release (`dev.json`, JSON lines): `cop` is 1-based (1 means option A)."""
    return _medmcqa(rec, where, 1, "medmcqa")


def parse_medmcqa_hf(rec: Any, where: str, _key: str | None) -> Record:
    """openlifescienceai/medmcqa export: same columns, `cop` 0-based."""
    return _medmcqa(rec, where, 0, "medmcqa-hf")


def _cops(records: list[Any]) -> set[Any]:
    return {r.get("cop") for r in records if isinstance(r, dict)}


def medmcqa_is_hub(records: list[Any], layout: str) -> bool:
    """The hub export is 0-based: parquet, or a `cop` of 0 and none of 4 (the release has 1..4)."""
    cops = _cops(records)
    return layout == "parquet" or (0 in cops and 4 not in cops)


# ------------------------------------------------------------------------------------------------- MMLU


def parse_mmlu(row: Any, where: str, _key: str | None) -> Record:
    """Headerless CSV `question,A,B,C,D,answer_letter` (files `<subject>_<split>.csv`)."""
    if len(row) != 6:
        raise DataError(f"{where}: expected 6 columns (question,A,B,C,D,answer), got {len(row)}")
    stem, *texts, answer = row
    gold = choice_index(answer.strip(), list("ABCD"), where, "answer")
    return _lettered("mmlu", hash_id(stem), where, stem.strip(), texts, gold, row)


def parse_mmlu_hf(rec: Any, where: str, _key: str | None) -> Record:
    """cais/mmlu export: `{"question", "subject", "choices": [4], "answer": 0-based}`."""
    stem = bio.field(rec, "question", str, where)
    texts = text_list(rec, "choices", where)
    gold = gold_index(rec, "answer", len(texts), where)
    subject = str(rec.get("subject") or "")
    return _lettered("mmlu-hf", hash_id(stem), where, stem.strip(), texts, gold, rec, subtype=subject)


# --------------------------------------------------------------------------------------------- PubMedQA


def _pubmedqa(fmt: str, rid: str, where: str, question: str, contexts: list[str], decision: Any, rec: Any,
              long_answer: Any = "") -> Record:  # fmt: skip
    """A PubMedQA question: the abstract's sections as the passage, the long answer (when a string) as extra
    text a model could have memorised."""
    if decision not in (None, "") and decision not in YES_NO_MAYBE:
        raise DataError(f"{where}: field 'final_decision' is {decision!r}, expected one of {YES_NO_MAYBE}")
    gold = YES_NO_MAYBE.index(decision) if decision in YES_NO_MAYBE else None
    extra = [long_answer] if isinstance(long_answer, str) and long_answer else []
    return Record.choice(fmt, rid, where, question, list(YES_NO_MAYBE), gold, rec,
                         passage="\n".join(contexts), passages=list(contexts), extra_text=extra)  # fmt: skip


def parse_pubmedqa(rec: Any, where: str, key: str | None) -> Record:
    """PQA-L `ori_pqal.json` / `test_set.json`: one JSON object PMID -> {QUESTION, CONTEXTS, final_decision}."""
    question = bio.field(rec, "QUESTION", str, where)
    contexts = text_list(rec, "CONTEXTS", where)
    decision, long_answer = rec.get("final_decision"), rec.get("LONG_ANSWER")
    return _pubmedqa("pubmedqa", str(key), where, question, contexts, decision, rec, long_answer)


def parse_pubmedqa_bigbio(rec: Any, where: str, _key: str | None) -> Record:
    """bigbio/pubmed_qa source schema: the PQA-L fields as columns (the PMID is not a column)."""
    question = bio.field(rec, "QUESTION", str, where)
    contexts = text_list(rec, "CONTEXTS", where)
    rid = record_id(rec, ("PUBMED_ID", "pubid", "id"), hash_id(question))
    decision, long_answer = rec.get("final_decision"), rec.get("LONG_ANSWER")
    return _pubmedqa("pubmedqa-bigbio", rid, where, question, contexts, decision, rec, long_answer)


def parse_pubmedqa_bigbio_qa(rec: Any, where: str, _key: str | None) -> Record:
    """bigbio/pubmed_qa `bigbio_qa` schema: `{"id", "question", "context", "answer": [label]}`.

    bigbio builds `context` as `" ".join(CONTEXTS)`, so the abstract's sections are one string here: it is
    kept as the file holds it (the prompt reads "Abstract: <sections joined by spaces>"). lm-eval's
    pubmedqa task reads the source schema and joins the sections with newlines; the `pubmedqa` and
    `pubmedqa-bigbio` readers, which have the sections, do exactly that.
    """
    question = bio.field(rec, "question", str, where)
    context = bio.field(rec, "context", str, where)
    answers = bio.field(rec, "answer", list, where)
    decision = answers[0] if answers else None
    rid = record_id(rec, ("document_id", "id"), hash_id(question))
    return _pubmedqa("pubmedqa-bigbio-qa", rid, where, question, [context], decision, rec)


def parse_pubmedqa_qiaojin(rec: Any, where: str, _key: str | None) -> Record:
    """qiaojin/PubMedQA: `{"pubid", "question", "context": {"contexts": [..]}, "long_answer", "final_decision"}`."""
    question = bio.field(rec, "question", str, where)
    contexts = text_list(bio.field(rec, "context", dict, where), "contexts", where)
    rid = record_id(rec, ("pubid",), hash_id(question))
    decision, long_answer = rec.get("final_decision"), rec.get("long_answer")
    return _pubmedqa("pubmedqa-qiaojin", rid, where, question, contexts, decision, rec, long_answer)


def is_bioasq_bigbio_qa(records: list[Any]) -> bool:
    """bigbio's BioASQ `bigbio_qa` export has PubMedQA's bigbio_qa columns but one row per SNIPPET, its id
    `<question_id>_<n>` (bigbio/hub bioasq_task_b.py); PubMedQA's rows are whole questions (id = PMID)."""
    rows = [r for r in records if isinstance(r, dict)]
    return bool(rows) and all(str(r.get("id", "")).startswith(f"{r.get('question_id')}_") for r in rows)


def pubmedqa_ground_truth(path: Path) -> tuple[dict[str, str], Path, str]:
    """The official test split: `test_ground_truth.json` (PMID -> yes/no/maybe) in `path` or beside it."""
    folder = path if path.is_dir() else path.parent
    truth_path = folder / "test_ground_truth.json"
    truth, text = bio.load_json(truth_path)
    if not isinstance(truth, dict):
        raise DataError(f"{truth_path}: expected a JSON object PMID -> yes/no/maybe")
    for pmid, label in truth.items():
        if not isinstance(label, str):
            where = f"{truth_path}:{bio.line_of(text, chr(34) + str(pmid) + chr(34))}"
            raise DataError(f"{where}: label must be a string, got {type(label).__name__}")
    return {str(k): v for k, v in truth.items()}, truth_path, text


def pubmedqa_contexts_file(path: Path) -> Path:
    """The file holding the test contexts: `path` itself, else test_set.json or ori_pqal.json beside it."""
    if path.is_file():
        return path
    names = ("test_set.json", "ori_pqal.json")
    return next((path / n for n in names if (path / n).is_file()), path / names[0])


# ----------------------------------------------------------------------------------------------- BioASQ


def parse_bioasq(rec: Any, where: str, _key: str | None) -> Record:
    """One question of a Task B golden file; only yes/no questions have a gold option."""
    rid = record_id(rec, ("id",), where)
    kind = bio.field(rec, "type", str, where)
    body = bio.field(rec, "body", str, where)
    snippets = bio.field(rec, "snippets", list, where) if kind == "yesno" else (rec.get("snippets") or [])
    texts = [str(bio.field(s, "text", str, where)) for s in snippets]
    ideal = rec.get("ideal_answer") or []
    record = Record(id=rid, where=where, format="bioasq", kind="open", question=body, passage=" ".join(texts),
                    passages=texts, subtype=kind, raw=rec,
                    extra_text=[ideal] if isinstance(ideal, str) else [str(t) for t in ideal])  # fmt: skip
    if kind == "yesno":
        answer = rec.get("exact_answer")
        answer = answer[0] if isinstance(answer, list) and answer else answer
        if not isinstance(answer, str) or answer.strip().lower() not in YES_NO:
            raise DataError(f"{where}: yes/no question needs exact_answer 'yes' or 'no', got {answer!r}")
        record.kind, record.options, record.option_labels = "choice", list(YES_NO), list(YES_NO)
        record.gold = YES_NO.index(answer.strip().lower())
    return record


FORMATS = [
    Format("medqa", "MedQA (USMLE) JSON lines", "records", ("question", "options", "answer_idx"), parse_medqa,
           ("question", "options.*", "answer"),
           '{"question": "A 23-year-old ...?", "options": {"A": "..", "B": "..", "C": "..", "D": ".."}, '
           '"answer_idx": "C", "answer": "..", "meta_info": "step1"}'),  # fmt: skip
    Format("medqa-hf", "MedQA hub export (GBaker/MedQA-USMLE-4-options-hf)", "records",
           ("sent1", "ending0", "label"), parse_medqa_hf, ("sent1", "sent2", "ending0", "ending1", "ending2",
           "ending3", "ending4"), '{"id": "test-00000", "sent1": "A 23-year-old ...?", "ending0": "..", '
           '"ending1": "..", "ending2": "..", "ending3": "..", "label": 2}',
           source="hub: GBaker/MedQA-USMLE-4-options-hf"),  # fmt: skip
    Format("medmcqa-hf", "MedMCQA hub export (openlifescienceai/medmcqa, cop 0-based)", "records",
           ("question", "opa", "opb", "opc", "opd", "cop"), parse_medmcqa_hf,
           ("question", "opa", "opb", "opc", "opd", "exp"),
           '{"id": "..", "question": "..", "opa": "..", "opb": "..", "opc": "..", "opd": "..", "cop": 0, '
           '"choice_type": "single", "exp": "..", "subject_name": "Anatomy", "topic_name": ".."}',
           source="hub: openlifescienceai/medmcqa", refine=medmcqa_is_hub),  # fmt: skip
    Format("medmcqa", "MedMCQA dev.json JSON lines (cop 1-based)", "records",
           ("question", "opa", "opb", "opc", "opd", "cop"), parse_medmcqa,
           ("question", "opa", "opb", "opc", "opd", "exp"),
           '{"question": "..", "exp": "..", "cop": 3, "opa": "..", "opb": "..", "opc": "..", "opd": "..", '
           '"subject_name": "Anatomy", "topic_name": "..", "id": "..", "choice_type": "single"}'),  # fmt: skip
    Format("mmlu", "MMLU headerless CSV (question,A,B,C,D,answer)", "csv", (), parse_mmlu, (),
           '"Which bone ...?",Femur,Tibia,Hyoid,Ulna,C'),  # fmt: skip
    Format("mmlu-hf", "MMLU hub export (cais/mmlu)", "records", ("question", "choices", "answer"),
           parse_mmlu_hf, ("question", "choices[]"),
           '{"question": "..", "subject": "anatomy", "choices": ["..", "..", "..", ".."], "answer": 2}',
           source="hub: cais/mmlu"),  # fmt: skip
    Format("pubmedqa", "PubMedQA JSON document (PMID -> record)", "dict", ("QUESTION", "CONTEXTS"),
           parse_pubmedqa, ("QUESTION", "CONTEXTS[]", "LONG_ANSWER"),
           '{"21645374": {"QUESTION": "Do ...?", "CONTEXTS": [".."], "LABELS": [".."], "MESHES": [".."], '
           '"YEAR": "2011", "final_decision": "yes", "LONG_ANSWER": ".."}}'),  # fmt: skip
    Format("pubmedqa-bigbio", "PubMedQA hub export (bigbio/pubmed_qa, source schema)", "records",
           ("QUESTION", "CONTEXTS", "final_decision"), parse_pubmedqa_bigbio,
           ("QUESTION", "CONTEXTS[]", "LONG_ANSWER"),
           '{"QUESTION": "Do ...?", "CONTEXTS": [".."], "LABELS": [".."], "MESHES": [".."], "YEAR": "2011", '
           '"reasoning_required_pred": "yes", "reasoning_free_pred": "yes", "final_decision": "yes", '
           '"LONG_ANSWER": ".."}', source="hub: bigbio/pubmed_qa (pubmed_qa_labeled_fold0_source)"),  # fmt: skip
    Format("pubmedqa-bigbio-qa", "PubMedQA hub export (bigbio/pubmed_qa, bigbio_qa schema)", "records",
           ("question_id", "document_id", "question", "context", "answer"), parse_pubmedqa_bigbio_qa,
           ("question", "context"),
           '{"id": "21645374", "question_id": "21645374", "document_id": "21645374", "question": "Do ...?", '
           '"type": "yesno", "choices": ["yes", "no", "maybe"], "context": "..", "answer": ["yes"]}',
           source="hub: bigbio/pubmed_qa (pubmed_qa_labeled_fold0_bigbio_qa)"),  # fmt: skip
    Format("pubmedqa-qiaojin", "PubMedQA hub export (qiaojin/PubMedQA)", "records",
           ("pubid", "question", "context", "final_decision"), parse_pubmedqa_qiaojin,
           ("question", "context.contexts[]", "long_answer"),
           '{"pubid": 21645374, "question": "Do ...?", "context": {"contexts": [".."], "labels": [".."], '
           '"meshes": [".."]}, "long_answer": "..", "final_decision": "yes"}',
           source="hub: qiaojin/PubMedQA (pqa_labeled)"),  # fmt: skip
    Format("bioasq", "BioASQ Task B golden JSON", "document", ("questions",), parse_bioasq,
           ("body", "ideal_answer", "ideal_answer[]", "snippets[].text"),
           '{"questions": [{"id": "55031181e9bde69634000014", "type": "yesno", "body": "Is ...?", '
           '"exact_answer": "yes", "ideal_answer": [".."], "documents": [".."], "snippets": [{"text": ".."}]}]}'),
]  # fmt: skip
