"""Write lm-evaluation-harness task folders for the fixtures: lm-eval's OWN task YAML (included from the
installed package, so its own prompt template, doc_to_text/doc_to_choice and preprocessing are used), with
the data taken straight from the RAW fixture file (plain json/csv here, never biomamba's parser) and put in
the hub dataset's schema that YAML reads. A parsing bug in biomamba therefore shows as a parity failure.
Shared by the parity test, the lm-eval adapter test and benchmarks/eval_speed.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.factories.corpora import write_jsonl

# our task -> (lm-eval YAML relative to lm_eval/tasks)
LMEVAL_YAML = {
    "pubmedqa": "pubmedqa/pubmedqa.yaml",
    "medqa_4options": "medqa/medqa.yaml",
    "medmcqa": "medmcqa/medmcqa.yaml",
    "mmlu_anatomy": "mmlu/default/mmlu_anatomy.yaml",
    "arc_easy": "arc/arc_easy.yaml",
}


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _medqa(rec: dict) -> dict:
    """GBaker/MedQA-USMLE-4-options-hf, what lm-eval's medqa.yaml reads: sent1, ending0..3, label."""
    letters = sorted(rec["options"])
    return {
        "sent1": rec["question"],
        **{f"ending{i}": rec["options"][k] for i, k in enumerate(letters)},
        "label": letters.index(rec["answer_idx"]),
    }


def _medmcqa(rec: dict) -> dict:
    """openlifescienceai/medmcqa: the release's columns with `cop` 0-based (the release is 1-based)."""
    return {**rec, "cop": rec["cop"] - 1}


def _arc(rec: dict) -> dict:
    """allenai/ai2_arc: question text, choices {text, label}, answerKey."""
    choices = rec["question"]["choices"]
    return {
        "id": rec["id"],
        "question": rec["question"]["stem"],
        "choices": {"text": [c["text"] for c in choices], "label": [c["label"] for c in choices]},
        "answerKey": rec["answerKey"],
    }


def lmeval_records(task: str, path: Path) -> list[dict]:
    """The raw fixture `path` of `task` as the hub rows lm-eval's YAML expects, in file order."""
    if task == "pubmedqa":  # bigbio/pubmed_qa source schema: the PQA-L record itself, one row per PMID
        return list(json.loads(path.read_text(encoding="utf-8")).values())
    if task == "mmlu_anatomy":  # cais/mmlu: question, choices, answer (0-based)
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        return [{"question": r[0], "choices": r[1:5], "answer": "ABCD".index(r[5])} for r in rows]
    convert = {"medqa_4options": _medqa, "medmcqa": _medmcqa, "arc_easy": _arc}[task]
    return [convert(rec) for rec in _json_lines(path)]


def write_lmeval_task(folder: Path, task: str, records: list[dict]) -> str:
    """Write data + YAML; return the lm-eval task name to run."""
    import lm_eval

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{task}.jsonl"
    write_jsonl(data, records)
    base = Path(lm_eval.__file__).parent / "tasks" / LMEVAL_YAML[task]
    name = f"bmparity_{task}"
    yaml = (
        f"include: {base}\n"
        f"task: {name}\n"
        "dataset_path: json\n"
        "dataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "training_split: null\nvalidation_split: null\ntest_split: test\nfewshot_split: null\n"
        "num_fewshot: 0\n"
    )
    (folder / f"{name}.yaml").write_text(yaml, encoding="utf-8")
    return name
