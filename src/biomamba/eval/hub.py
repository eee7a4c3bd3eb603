"""Task files from the Hugging Face hub (when online): `--task-file arc_easy=hub:allenai/ai2_arc:ARC-Easy:test`.

The hub copies of these benchmarks use other layouts than the original releases. Each split is downloaded
once with `datasets`, converted back to the ORIGINAL format of the task (so exactly the same reader,
checks and prompts apply as for local files), and kept under `$BIOMAMBA_CACHE/eval/hub/`
(default `~/.cache/biomamba`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from biomamba.errors import DataError
from biomamba.utils.atomic import write_text

PREFIX = "hub:"
LETTERS = "ABCDEFGHIJ"


def is_hub(path: str | Path) -> bool:
    return str(path).startswith(PREFIX)


def parse_hub(spec: str) -> tuple[str, str | None, str]:
    """`hub:PATH[:CONFIG[:SPLIT]]` -> (dataset path, config or None, split; default "test")."""
    parts = spec[len(PREFIX) :].split(":")
    if not parts[0] or len(parts) > 3:
        raise DataError(
            f"{spec}: expected hub:DATASET[:CONFIG[:SPLIT]], e.g. hub:allenai/ai2_arc:ARC-Easy:test"
        )
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "test"
    return parts[0], config, split


def cache_dir() -> Path:
    return Path(os.environ.get("BIOMAMBA_CACHE", Path.home() / ".cache" / "biomamba")) / "eval" / "hub"


def _pubmedqa(records: list[dict[str, Any]]) -> str:
    out = {}
    for i, rec in enumerate(records):
        if "QUESTION" in rec:  # bigbio source schema: already the original fields
            out[str(rec.get("PUBMED_ID", i))] = rec
        else:  # qiaojin/PubMedQA
            out[str(rec.get("pubid", i))] = {
                "QUESTION": rec["question"],
                "CONTEXTS": rec["context"]["contexts"],
                "final_decision": rec["final_decision"],
                "LONG_ANSWER": rec.get("long_answer", ""),
            }
    return json.dumps(out, ensure_ascii=False, indent=1)


def _medqa(rec: dict[str, Any]) -> dict[str, Any]:
    if "sent1" in rec:  # GBaker/MedQA-USMLE-4-options-hf
        endings = [rec[k] for k in sorted(k for k in rec if re.fullmatch(r"ending\d", k))]
        options = {LETTERS[i]: e for i, e in enumerate(endings)}
        return {"question": rec["sent1"], "options": options, "answer_idx": LETTERS[int(rec["label"])]}
    if isinstance(rec.get("options"), list):  # [{"key": "A", "value": ...}]
        return {**rec, "options": {o["key"]: o["value"] for o in rec["options"]}}
    return rec


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def convert(file_format: str, records: list[dict[str, Any]]) -> tuple[str, str]:
    """(text in the task's original format, file suffix) for hub records."""
    if file_format == "pubmedqa":
        return _pubmedqa(records), ".json"
    if file_format == "medqa":
        return _jsonl([_medqa(r) for r in records]), ".jsonl"
    if file_format == "medmcqa":  # the hub's cop is 0-based, the original release's 1-based
        return _jsonl([{**r, "cop": int(r["cop"]) + 1} for r in records]), ".jsonl"
    if file_format == "mmlu":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for r in records:
            writer.writerow([r["question"], *r["choices"], LETTERS[int(r["answer"])]])
        return buffer.getvalue(), ".csv"
    if file_format == "bioasq":
        raise DataError("BioASQ is not distributed on the hub: download the Task B golden files (bioasq.org)")
    return _jsonl(records), ".jsonl"  # the readers accept these tasks' hub layouts as they are


def materialize(task: str, file_format: str, spec: str) -> Path:
    """Local original-format copy of a hub split (downloaded once, then read from the cache)."""
    path, config, split = parse_hub(spec)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{task}__{path}__{config or 'default'}__{split}")
    for suffix in (".json", ".jsonl", ".csv"):
        if (cache_dir() / (name + suffix)).is_file():
            return cache_dir() / (name + suffix)
    import datasets

    try:
        dataset = datasets.load_dataset(path, config, split=split)
    except Exception as exc:  # offline, unknown name, missing split: one line for the user
        raise DataError(f"{spec}: cannot load from the hub ({str(exc).splitlines()[0]})") from None
    text, suffix = convert(file_format, [dict(r) for r in dataset])
    target = cache_dir() / (name + suffix)
    write_text(target, text)
    return target
