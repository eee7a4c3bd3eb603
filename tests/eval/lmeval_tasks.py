"""Write lm-evaluation-harness task folders for the fixtures: lm-eval's OWN task YAML (included from the
installed package, so its own prompt template is used), with the data read from a local JSON file in the
hub dataset's schema. Shared by the parity test and benchmarks/eval_speed.py."""

from __future__ import annotations

import json
from pathlib import Path

from biomamba.eval.tasks import Question

# our task -> (lm-eval YAML relative to lm_eval/tasks, lm-eval task name)
LMEVAL_YAML = {
    "pubmedqa": "pubmedqa/pubmedqa.yaml",
    "medqa_4options": "medqa/medqa.yaml",
    "medmcqa": "medmcqa/medmcqa.yaml",
    "mmlu_anatomy": "mmlu/default/mmlu_anatomy.yaml",
    "arc_easy": "arc/arc_easy.yaml",
}


def hub_record(task: str, raw: dict, q: Question) -> dict:
    """The hub-dataset form of one of our questions (what lm-eval's templates read)."""
    if task == "pubmedqa":
        return {"QUESTION": raw["QUESTION"], "CONTEXTS": raw["CONTEXTS"], "final_decision": q.choices[q.gold]}
    if task == "medqa_4options":
        return {"sent1": q.stem, **{f"ending{i}": o for i, o in enumerate(q.options)}, "label": q.gold}
    if task == "medmcqa":
        return {
            "question": q.stem,
            "opa": q.options[0],
            "opb": q.options[1],
            "opc": q.options[2],
            "opd": q.options[3],
            "cop": q.gold,
        }
    if task == "mmlu_anatomy":
        return {"question": q.stem, "choices": q.options, "answer": q.gold}
    if task == "arc_easy":
        return {
            "question": q.stem,
            "choices": {"text": q.options, "label": [str(i) for i in range(len(q.options))]},
            "answerKey": str(q.gold),
        }
    raise KeyError(task)


def write_lmeval_task(folder: Path, task: str, records: list[dict]) -> str:
    """Write data + YAML; return the lm-eval task name to run."""
    import lm_eval

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{task}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
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
