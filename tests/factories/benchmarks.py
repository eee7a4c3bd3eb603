"""One set of fixture factories: every benchmark format written exactly in its public layout.

Each factory writes a small file (or folder) the way the benchmark's release, its hub export (`datasets`
`to_parquet` / `to_json`, the hub's column names) or llm-foundry's `scripts/eval/local_data` ship it, and
returns a `Case`: the path, the format name content detection must find, the task that reads it and the
records and gold answers a correct reader gets. The content is written here by hand (plain json / csv /
pyarrow), never by biomamba's own writers, so a reader is tested against the outside.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.factories.corpora import write_jsonl as jsonl


@dataclass(frozen=True)
class Case:
    path: Path
    format: str
    task: str
    golds: list[int]  # gold index per record, in file order


def parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# ------------------------------------------------------------------------------------------- biomedical

MEDQA = [
    {"question": "A 34-year-old woman has fatigue and pale skin. Which deficiency is most likely?",
     "answer": "Iron", "options": {"A": "Iron", "B": "Vitamin D", "C": "Vitamin K", "D": "Zinc"},
     "meta_info": "step1", "answer_idx": "A"},
    {"question": "Which vitamin deficiency causes scurvy?", "answer": "Vitamin C",
     "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin K", "D": "Iron"}, "meta_info": "step1",
     "answer_idx": "B"},
]  # fmt: skip


def medqa(tmp: Path) -> Case:
    return Case(jsonl(tmp / "test.jsonl", MEDQA), "medqa", "medqa_4options", [0, 1])


def medqa_5(tmp: Path) -> Case:
    rows = [{**r, "options": {**r["options"], "E": "Copper"}} for r in MEDQA]
    return Case(jsonl(tmp / "test5.jsonl", rows), "medqa", "medqa_5options", [0, 1])


def medqa_hf(tmp: Path) -> Case:
    rows = [{"id": f"test-{i:05d}", "sent1": r["question"], "sent2": "", "ending0": r["options"]["A"],
             "ending1": r["options"]["B"], "ending2": r["options"]["C"], "ending3": r["options"]["D"],
             "label": "ABCD".index(r["answer_idx"])} for i, r in enumerate(MEDQA)]  # fmt: skip
    return Case(parquet(tmp / "test-00000-of-00001.parquet", rows), "medqa-hf", "medqa_4options", [0, 1])


def medqa_file(path: Path, questions: list[tuple[str, list[str], str]]) -> Path:
    """A MedQA (4 options) file of (question, options, answer letter) triples."""
    rows = []
    for question, options, answer in questions:
        opts = dict(zip("ABCD", options, strict=True))
        rows.append({"question": question, "options": opts, "answer_idx": answer, "answer": opts[answer]})
    return jsonl(path, rows)


MEDMCQA = [
    {"question": "Drug of choice for absence seizures is", "exp": "Ethosuximide is first line.", "cop": 1,
     "opa": "Ethosuximide", "opb": "Phenytoin", "opc": "Carbamazepine", "opd": "Valproate",
     "subject_name": "Pharmacology", "topic_name": "Epilepsy", "id": "m1", "choice_type": "single"},
    {"question": "Hyoid bone develops from", "exp": None, "cop": 4, "opa": "1st arch", "opb": "2nd arch only",
     "opc": "3rd arch only", "opd": "2nd and 3rd arches", "subject_name": "Anatomy", "topic_name": "Embryology",
     "id": "m2", "choice_type": "single"},
]  # fmt: skip


def medmcqa(tmp: Path) -> Case:
    return Case(jsonl(tmp / "dev.json", MEDMCQA), "medmcqa", "medmcqa", [0, 3])


def medmcqa_hf(tmp: Path) -> Case:
    rows = [{**r, "cop": r["cop"] - 1} for r in MEDMCQA]
    return Case(parquet(tmp / "validation-00000-of-00001.parquet", rows), "medmcqa-hf", "medmcqa", [0, 3])


def medmcqa_hf_jsonl(tmp: Path) -> Case:
    rows = [{**r, "cop": r["cop"] - 1} for r in MEDMCQA]
    return Case(jsonl(tmp / "medmcqa_validation.jsonl", rows), "medmcqa-hf", "medmcqa", [0, 3])


MMLU = [
    ["The hyoid bone develops from which pharyngeal arches?", "First", "First and second", "Second and third",
     "Third and fourth", "C"],
    ["Which nerve innervates the diaphragm?", "Phrenic", "Vagus", "Intercostal", "Accessory", "A"],
]  # fmt: skip


def mmlu(tmp: Path) -> Case:
    path = tmp / "anatomy_test.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(MMLU)
    return Case(path, "mmlu", "mmlu_anatomy", [2, 0])


def mmlu_hf(tmp: Path) -> Case:
    rows = [
        {"question": r[0], "subject": "anatomy", "choices": r[1:5], "answer": "ABCD".index(r[5])}
        for r in MMLU
    ]
    return Case(parquet(tmp / "test-00000-of-00001.parquet", rows), "mmlu-hf", "mmlu_anatomy", [2, 0])


PUBMEDQA = {
    "21645374": {"QUESTION": "Do mitochondria play a role in remodelling lace plant leaves?",
                 "CONTEXTS": ["Programmed cell death is a regulated process.", "The lace plant forms holes."],
                 "LABELS": ["BACKGROUND", "RESULTS"], "MESHES": ["Apoptosis"], "YEAR": "2011",
                 "reasoning_required_pred": "yes", "reasoning_free_pred": "yes", "final_decision": "yes",
                 "LONG_ANSWER": "Mitochondria play a role in lace plant leaf remodelling."},
    "16418930": {"QUESTION": "Is the landing position of the eye affected by word length?",
                 "CONTEXTS": ["Readers fixate words.", "Landing positions were measured."],
                 "LABELS": ["OBJECTIVE", "METHODS"], "MESHES": ["Reading"], "YEAR": "2006",
                 "reasoning_required_pred": "no", "reasoning_free_pred": "no", "final_decision": "no",
                 "LONG_ANSWER": "Landing positions do not depend on word length."},
    "9488747": {"QUESTION": "Does a rise in troponin predict death?",
                "CONTEXTS": ["Troponin was measured in 200 patients."], "LABELS": ["METHODS"],
                "MESHES": ["Troponin"], "YEAR": "1998", "reasoning_required_pred": "maybe",
                "reasoning_free_pred": "maybe", "final_decision": "maybe", "LONG_ANSWER": "Perhaps."},
}  # fmt: skip


def pubmedqa(tmp: Path) -> Case:
    path = tmp / "ori_pqal.json"
    path.write_text(json.dumps(PUBMEDQA, indent=4), encoding="utf-8")
    return Case(path, "pubmedqa", "pubmedqa", [0, 1, 2])


def pubmedqa_records(labels: list[str], first_pmid: int = 10001) -> dict[str, dict]:
    """One record per label, PMIDs counting up from `first_pmid`, with every field of the release."""
    return {str(pmid): {"QUESTION": f"Does treatment {pmid} improve outcome?", "CONTEXTS": [
                f"We studied {pmid % 97} patients.", "Outcomes were recorded."], "LABELS": ["METHODS", "RESULTS"],
                "MESHES": ["Humans"], "YEAR": "2010", "reasoning_required_pred": label, "reasoning_free_pred": label,
                "final_decision": label, "LONG_ANSWER": "See results."}
            for pmid, label in enumerate(labels, first_pmid)}  # fmt: skip


def pubmedqa_folder(folder: Path, records: dict[str, dict]) -> Path:
    """The official test layout: test_set.json (PMID -> record) and test_ground_truth.json (PMID -> label)."""
    folder.mkdir()
    (folder / "test_set.json").write_text(json.dumps(records, indent=4), encoding="utf-8")
    truth = {pmid: record["final_decision"] for pmid, record in records.items()}
    (folder / "test_ground_truth.json").write_text(json.dumps(truth))
    return folder


def pubmedqa_test_folder(tmp: Path) -> Case:
    folder = pubmedqa_folder(tmp / "pubmedqa", {k: PUBMEDQA[k] for k in ("16418930", "9488747")})
    return Case(folder, "pubmedqa", "pubmedqa_test", [1, 2])


def pubmedqa_bigbio(tmp: Path) -> Case:
    rows = list(PUBMEDQA.values())
    return Case(parquet(tmp / "train-00000-of-00001.parquet", rows), "pubmedqa-bigbio", "pubmedqa", [0, 1, 2])


def pubmedqa_bigbio_qa(tmp: Path) -> Case:
    rows = [{"id": k, "question_id": k, "document_id": k, "question": v["QUESTION"], "type": "yesno",
             "choices": ["yes", "no", "maybe"], "context": " ".join(v["CONTEXTS"]), "answer": [v["final_decision"]]}
            for k, v in PUBMEDQA.items()]  # fmt: skip
    return Case(jsonl(tmp / "pubmed_qa_bigbio_qa.jsonl", rows), "pubmedqa-bigbio-qa", "pubmedqa", [0, 1, 2])


def pubmedqa_qiaojin(tmp: Path) -> Case:
    rows = [{"pubid": int(k), "question": v["QUESTION"], "context": {"contexts": v["CONTEXTS"], "labels": v["LABELS"],
             "meshes": v["MESHES"]}, "long_answer": v["LONG_ANSWER"], "final_decision": v["final_decision"]}
            for k, v in PUBMEDQA.items()]  # fmt: skip
    return Case(parquet(tmp / "pqa_labeled.parquet", rows), "pubmedqa-qiaojin", "pubmedqa", [0, 1, 2])


def bioasq_question(qid: str, kind: str = "yesno", answer: str = "yes") -> dict:
    snippet = {
        "offsetInBeginSection": 0,
        "offsetInEndSection": 40,
        "text": f"Snippet about {qid}.",
        "beginSection": "abstract",
        "document": "http://www.ncbi.nlm.nih.gov/pubmed/1",
        "endSection": "abstract",
    }
    exact = answer if kind == "yesno" else [["x"]]
    return {"body": f"Is {qid} a gene?", "documents": ["http://www.ncbi.nlm.nih.gov/pubmed/1"],
            "ideal_answer": [f"{qid} is a gene."], "exact_answer": exact, "concepts": [], "type": kind,
            "id": qid, "snippets": [snippet]}  # fmt: skip


def bioasq_golden(path: Path, questions: list[dict]) -> Path:
    path.write_text(json.dumps({"questions": questions}, indent=2), encoding="utf-8")
    return path


def bioasq(tmp: Path) -> Case:
    questions = [bioasq_question("q1"), bioasq_question("q2", "factoid"), bioasq_question("q3", answer="no")]
    return Case(bioasq_golden(tmp / "7B1_golden.json", questions), "bioasq", "bioasq_yesno", [0, 1])


# ---------------------------------------------------------------------------------------------- general

ARC = [
    ("Which gas do plants absorb from the air for photosynthesis?", ["oxygen", "carbon dioxide", "nitrogen"], 1),
    ("What makes the sun appear to move across the sky?", ["the rotation of Earth", "the orbit of the Moon"], 0),
]  # fmt: skip


def arc(tmp: Path) -> Case:
    rows = [{"id": f"arc{i}", "question": {"stem": stem, "choices": [{"text": t, "label": "ABCD"[j]}
             for j, t in enumerate(texts)]}, "answerKey": "ABCD"[gold]} for i, (stem, texts, gold) in enumerate(ARC)]  # fmt: skip
    return Case(jsonl(tmp / "ARC-Easy-Test.jsonl", rows), "arc", "arc_easy", [1, 0])


def arc_hf(tmp: Path) -> Case:
    rows = [{"id": f"arc{i}", "question": stem, "choices": {"text": texts, "label": list("ABCD"[: len(texts)])},
             "answerKey": "ABCD"[gold]} for i, (stem, texts, gold) in enumerate(ARC)]  # fmt: skip
    return Case(parquet(tmp / "test-00000-of-00001.parquet", rows), "arc-hf", "arc_easy", [1, 0])


def openbookqa_hf(tmp: Path) -> Case:
    rows = [{"id": f"o{i}", "question_stem": stem, "choices": {"text": texts, "label": list("ABCD"[: len(texts)])},
             "answerKey": "ABCD"[gold]} for i, (stem, texts, gold) in enumerate(ARC)]  # fmt: skip
    return Case(jsonl(tmp / "openbookqa_test.jsonl", rows), "arc-hf", "openbookqa", [1, 0])


HELLASWAG = {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
             "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain",
             "endings": ["is using wrap [title] to wrap a pair of skis.", "starts pulling up roofing on a roof."],
             "source_id": "activitynet~v_-JhWjGDPHMY", "label": 1}  # fmt: skip


def hellaswag(tmp: Path) -> Case:
    return Case(jsonl(tmp / "hellaswag_val.jsonl", [HELLASWAG]), "hellaswag", "hellaswag", [1])


def hellaswag_hf(tmp: Path) -> Case:  # Rowan/hellaswag: same columns, label a string
    rows = [{**HELLASWAG, "label": "1"}]
    return Case(parquet(tmp / "validation.parquet", rows), "hellaswag", "hellaswag", [1])


PIQA = [{"goal": "How do I ready a guinea pig cage?", "sol1": "Use paper bedding.", "sol2": "Use jeans."},
        {"goal": "Make outdoor pillow.", "sol1": "Blow into tin can.", "sol2": "Blow into trash bag."}]  # fmt: skip


def piqa(tmp: Path) -> Case:
    path = jsonl(tmp / "valid.jsonl", PIQA)
    (tmp / "valid-labels.lst").write_text("0\n1\n")
    return Case(path, "piqa", "piqa", [0, 1])


def piqa_hf(tmp: Path) -> Case:
    rows = [{**r, "label": g} for r, g in zip(PIQA, (0, 1), strict=True)]
    return Case(parquet(tmp / "validation.parquet", rows), "piqa", "piqa", [0, 1])


WINOGRANDE = {"qID": "3QHITW7OYO7Q6B6ISU2UMJB84ZLAQE-2",
              "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
              "option1": "Sarah", "option2": "Maria", "answer": "1"}  # fmt: skip


def winogrande(tmp: Path) -> Case:
    return Case(jsonl(tmp / "dev.jsonl", [WINOGRANDE]), "winogrande", "winogrande", [0])


BOOLQ = {"question": "is house tax and property tax are same", "title": "Property tax",
         "answer": True, "passage": "Property tax or house tax is a local tax on buildings."}  # fmt: skip


def boolq(tmp: Path) -> Case:
    return Case(jsonl(tmp / "dev.jsonl", [BOOLQ]), "boolq", "boolq", [1])


def boolq_superglue(tmp: Path) -> Case:
    row = {"question": BOOLQ["question"], "passage": BOOLQ["passage"], "idx": 0, "label": 1}
    return Case(parquet(tmp / "val.parquet", [row]), "boolq", "boolq", [1])


COPA = {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
        "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 0}  # fmt: skip


def copa(tmp: Path) -> Case:
    return Case(jsonl(tmp / "val.jsonl", [COPA]), "copa", "copa", [1])


LAMBADA = "He handed her the small wooden box and she opened it slowly to find the old brass key"


def lambada(tmp: Path) -> Case:
    return Case(jsonl(tmp / "lambada_test.jsonl", [{"text": LAMBADA}]), "lambada", "lambada", [0])


TRUTHFULQA = {"question": "What happens if you eat watermelon seeds?",
              "mc1_targets": {"The seeds pass through you.": 1, "You grow watermelons.": 0},
              "mc2_targets": {"Nothing happens.": 1, "The seeds pass through you.": 1, "You die.": 0}}  # fmt: skip


def truthfulqa(tmp: Path) -> Case:
    path = tmp / "mc_task.json"
    path.write_text(json.dumps([TRUTHFULQA], indent=2))
    return Case(path, "truthfulqa", "truthfulqa_mc1", [0])


def truthfulqa_hf(tmp: Path) -> Case:
    row = {"question": TRUTHFULQA["question"],
           "mc1_targets": {"choices": list(TRUTHFULQA["mc1_targets"]), "labels": [1, 0]},
           "mc2_targets": {"choices": list(TRUTHFULQA["mc2_targets"]), "labels": [1, 1, 0]}}  # fmt: skip
    return Case(jsonl(tmp / "truthful_qa_mc.jsonl", [row]), "truthfulqa", "truthfulqa_mc2", [0])


# ---------------------------------------------------------------------------- llm-foundry ICL (local_data)


def icl_arc(tmp: Path) -> Case:
    rows = [{"choices": texts, "query": f"Question: {stem}\n", "gold": gold} for stem, texts, gold in ARC]
    return Case(jsonl(tmp / "arc_easy.jsonl", rows), "icl-mc", "arc_easy", [1, 0])


def icl_openbookqa(tmp: Path) -> Case:
    rows = [{"query": stem, "choices": texts, "gold": gold} for stem, texts, gold in ARC]
    return Case(jsonl(tmp / "openbook_qa.jsonl", rows), "icl-mc", "openbookqa", [1, 0])


def icl_piqa(tmp: Path) -> Case:
    rows = [{"choices": [r["sol1"], r["sol2"]], "gold": g, "query": f"Question: {r['goal']}\n"}
            for r, g in zip(PIQA, (0, 1), strict=True)]  # fmt: skip
    return Case(jsonl(tmp / "piqa.jsonl", rows), "icl-mc", "piqa", [0, 1])


def icl_boolq(tmp: Path) -> Case:
    row = {"query": f"Passage: {BOOLQ['passage']}\nQuestion: {BOOLQ['question']}?", "choices": ["no", "yes"],
           "gold": 1}  # fmt: skip
    return Case(jsonl(tmp / "boolq.jsonl", [row]), "icl-mc", "boolq", [1])


def icl_copa(tmp: Path) -> Case:
    row = {"query": "The man turned on the faucet, therefore", "gold": 1,
           "choices": ["the toilet filled with water.", "water flowed from the spout."]}  # fmt: skip
    return Case(jsonl(tmp / "copa.jsonl", [row]), "icl-mc", "copa", [1])


def icl_hellaswag(tmp: Path) -> Case:
    row = {"query": "Roof shingle removal: A man is sitting on a roof. He",
           "choices": ["is using wrap. to wrap a pair of skis.", "starts pulling up roofing on a roof."], "gold": 1}  # fmt: skip
    return Case(jsonl(tmp / "hellaswag.jsonl", [row]), "icl-mc", "hellaswag", [1])


def icl_winogrande(tmp: Path) -> Case:
    row = {"context_options": ["Sarah was a much better surgeon than Maria so Sarah",
                               "Sarah was a much better surgeon than Maria so Maria"],
           "continuation": "always got the harder cases.", "gold": 0}  # fmt: skip
    return Case(jsonl(tmp / "winogrande.jsonl", [row]), "icl-schema", "winogrande", [0])


def icl_lambada(tmp: Path) -> Case:
    context, _, word = LAMBADA.rpartition(" ")
    row = {"context": context, "continuation": f" {word}"}
    return Case(jsonl(tmp / "lambada_openai.jsonl", [row]), "icl-lm", "lambada", [0])


FACTORIES: dict[str, Callable[[Path], Case]] = {
    f.__name__: f
    for f in (medqa, medqa_5, medqa_hf, medmcqa, medmcqa_hf, medmcqa_hf_jsonl, mmlu, mmlu_hf, pubmedqa,
              pubmedqa_test_folder, pubmedqa_bigbio, pubmedqa_bigbio_qa, pubmedqa_qiaojin, bioasq, arc, arc_hf,
              openbookqa_hf, hellaswag, hellaswag_hf, piqa, piqa_hf, winogrande, boolq, boolq_superglue, copa,
              lambada, truthfulqa, truthfulqa_hf, icl_arc, icl_openbookqa, icl_piqa, icl_boolq, icl_copa,
              icl_hellaswag, icl_winogrande, icl_lambada)
}  # fmt: skip
# an ICL file and the original-format file holding the same questions (their prompts must be identical)
ICL_TWINS = {"icl_arc": "arc", "icl_hellaswag": "hellaswag", "icl_openbookqa": "openbookqa_hf", "icl_piqa": "piqa", "icl_boolq": "boolq",
             "icl_copa": "copa", "icl_winogrande": "winogrande", "icl_lambada": "lambada"}  # fmt: skip
