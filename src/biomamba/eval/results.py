"""Results JSON (`biomamba-results/1`): one file per evaluation run, read by `biomamba report`.

Kept self-describing so a number can be traced back: the model, the protocol and its settings, the task
file and its sha256, a hash of every prompt, and every per-question prediction (which is what paired
comparisons between two runs need).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.benchmarks.io import load_json
from biomamba.errors import DataError
from biomamba.eval.metrics import REGRESSION_THRESHOLD, paired_bootstrap
from biomamba.utils.atomic import write_json

FORMAT = "biomamba-results/1"


def write_results(path: str | Path, results: dict[str, Any]) -> Path:
    """Write a results dict atomically (a crash never leaves a half-written file)."""
    target = Path(path)
    write_json(target, results)
    return target


def read_results(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: results file not found")
    data, _ = load_json(file)  # a DataError naming file:line for bad JSON or bytes that are not UTF-8
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{file}: not a biomamba results file (expected format {FORMAT!r})")
    data.setdefault("tasks", {})
    data["_path"] = str(file)
    return data


def question_scores(task: dict[str, Any], metric: str = "correct") -> dict[str, float]:
    """Per-question score averaged over seeds (the unit that paired bootstraps resample)."""
    scores: dict[str, list[float]] = defaultdict(list)
    for pred in task.get("predictions", []):
        if metric in pred:
            scores[str(pred["id"])].append(float(pred[metric]))
    return {qid: float(np.mean(v)) for qid, v in scores.items()}


def compare_results(
    before: dict[str, Any], after: dict[str, Any], *, resamples: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per-task accuracy difference (after - before) with a paired bootstrap interval on shared questions.

    `regression` is set on GENERAL tasks (the forgetting check) that lost more than 3 points.
    """
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(before["tasks"]) & set(after["tasks"])):
        a_task, b_task = before["tasks"][key], after["tasks"][key]
        a, b = question_scores(a_task), question_scores(b_task)
        shared = sorted(set(a) & set(b))
        if not shared:
            continue
        stats = paired_bootstrap(
            [a[q] for q in shared], [b[q] for q in shared], resamples=resamples, seed=seed
        )
        domain = b_task.get("domain", a_task.get("domain", ""))
        out[key] = {
            "domain": domain,
            "n": len(shared),
            "before": float(np.mean([a[q] for q in shared])),
            "after": float(np.mean([b[q] for q in shared])),
            **stats,
            "regression": bool(domain == "general" and stats["diff"] < -REGRESSION_THRESHOLD),
        }
    return out


def model_label(results: dict[str, Any]) -> str:
    model = results.get("model", {})
    return str(model.get("label") or model.get("name") or results.get("_path", "model"))
