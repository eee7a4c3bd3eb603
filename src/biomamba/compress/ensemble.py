"""Ensemble scoring of two (or more) models on multiple-choice tasks: the sum of per-choice probabilities.

BioMistral reports ensembles of its merged/quantized variants. Rather than run the models again, the
ensemble reads the evaluation stage's results files (`biomamba.eval.evaluate`, format biomamba-results/1):
each prediction there keeps the per-choice log-likelihoods (`logliks`, loglikelihood protocol) or letter
log-probabilities (`letter_logprobs`, letter protocol). Each model's scores become probabilities with the
eval stage's own `choice_probabilities` (a softmax over the choices), the probabilities are summed, and
the ensemble answers the choice with the largest sum. Tasks not scored by that argmax are refused with an
error naming them: LAMBADA (one choice) and TruthfulQA MC2 (probability mass on the true answers). Metrics
reuse the eval stage's bootstrap and ECE, so an ensemble row is comparable to every other row of the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.errors import BiomambaError

SCORE_KEYS = ("logliks", "letter_logprobs")


def ensemble_probabilities(
    scores: Sequence[Sequence[float]], weights: Sequence[float] | None = None
) -> np.ndarray:
    """Weighted sum of each model's per-choice probabilities (softmax of its per-choice log-scores)."""
    from biomamba.eval.metrics import choice_probabilities

    weights = list(weights) if weights is not None else [1.0] * len(scores)
    if len(weights) != len(scores):
        raise ValueError("one weight per model")
    lengths = {len(s) for s in scores}
    if len(lengths) != 1:
        raise ValueError(f"models scored different numbers of choices: {sorted(lengths)}")
    return sum(w * choice_probabilities(s) for w, s in zip(weights, scores, strict=True))


def _score_key(prediction: dict[str, Any], where: str) -> str:
    for key in SCORE_KEYS:
        if key in prediction:
            return key
    raise BiomambaError(
        f"{where}: predictions carry no per-choice scores ({' or '.join(SCORE_KEYS)}); "
        "ensembles need the loglikelihood or letter protocol"
    )


def ensemble_results(
    results: Sequence[dict[str, Any]],
    *,
    weights: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    resamples: int = 1000,
    ece_bins: int = 10,
) -> dict[str, Any]:
    """A results dict (biomamba-results/1) for the ensemble of the given models' results on shared tasks."""
    from biomamba.eval.metrics import bootstrap_interval, expected_calibration_error
    from biomamba.eval.results import question_scores

    if len(results) < 2:
        raise BiomambaError("an ensemble needs at least two results files")
    names = list(names or [r.get("model", {}).get("name", f"model{i}") for i, r in enumerate(results)])
    protocols = {(r["protocol"]["name"], r["protocol"].get("shots")) for r in results}
    if len(protocols) != 1:
        raise BiomambaError(
            f"results use different protocols/shots {sorted(protocols)}: ensemble like with like"
        )
    shared = [t for t in results[0]["tasks"] if all(t in r["tasks"] for r in results[1:])]
    if not shared:
        raise BiomambaError("the results files have no task in common")
    for task in shared:
        _check_ensemblable(task, results[0]["tasks"][task])
    weights = list(weights) if weights is not None else [1.0] * len(results)
    total = float(sum(weights))
    tasks: dict[str, Any] = {}
    for task in shared:
        per_model = [_by_question(r["tasks"][task], f"{names[i]}: {task}") for i, r in enumerate(results)]
        keys = list(per_model[0])
        for i, table in enumerate(per_model[1:], start=1):
            if set(table) != set(keys):
                raise BiomambaError(f"{task}: {names[0]} and {names[i]} scored different questions")
        predictions = []
        for key in keys:
            rows = [table[key] for table in per_model]
            golds = {row["gold"] for row in rows}
            if len(golds) != 1:
                raise BiomambaError(f"{task}: question {key[0]} has different gold answers across results")
            score_key = _score_key(rows[0], f"{names[0]}: {task}")
            try:
                probs = ensemble_probabilities([row[_score_key(row, task)] for row in rows], weights) / total
            except ValueError as exc:
                raise BiomambaError(f"{task}: question {key[0]}: {exc}") from None
            pred = int(np.argmax(probs))
            predictions.append(
                {
                    "id": key[0],
                    "seed": key[1],
                    "gold": rows[0]["gold"],
                    "pred": pred,
                    "probs": [round(float(p), 6) for p in probs],
                    "correct": float(pred == rows[0]["gold"]),
                    "confidence": float(probs[pred]),
                    "scores_from": score_key,
                }
            )
        scores = list(question_scores({"predictions": predictions}).values())  # seeds averaged per question
        first = results[0]["tasks"][task]
        tasks[task] = {
            **{
                k: first[k]
                for k in ("task", "language", "domain", "file", "file_sha256", "n", "label_balance")
                if k in first
            },
            "metrics": {
                "acc": float(np.mean(scores)),
                "acc_ci": list(bootstrap_interval(scores, resamples=resamples)),
                "ece": expected_calibration_error(
                    [p["confidence"] for p in predictions], [p["correct"] for p in predictions], ece_bins
                ),
                "member_acc": {
                    n: r["tasks"][task]["metrics"].get("acc") for n, r in zip(names, results, strict=True)
                },
            },
            "predictions": predictions,
        }
    return {
        "format": results[0].get("format", "biomamba-results/1"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "name": "ensemble(" + " + ".join(names) + ")",
            "family": "ensemble",
            "members": names,
            "weights": weights,
            "parameters": sum(int(r.get("model", {}).get("parameters", 0)) for r in results),
        },
        "protocol": {**results[0]["protocol"], "ensemble": "sum of per-choice probabilities"},
        "tasks": tasks,
    }


# Tasks scored otherwise than by the argmax of per-choice scores: summing choice probabilities is wrong there.
NOT_ENSEMBLABLE = {
    "loglik": "it has one choice (the target), whose ensemble probability is always 1, and is scored by "
    "greedy match",
    "mc2": "it is scored by the probability mass on the true answers (not the argmax), and the results file "
    "does not record which answers are true",
}


def _check_ensemblable(key: str, entry: dict[str, Any]) -> None:
    """One-line error naming the task if it is not argmax multiple choice (LAMBADA, TruthfulQA MC2)."""
    from biomamba.eval.tasks import TASKS

    name = str(entry.get("task") or key.split("@")[0])
    spec = TASKS.get(name)
    why = NOT_ENSEMBLABLE.get(spec.metric) if spec is not None else None
    if why is None and any(
        len(p.get(k) or []) < 2 for p in entry.get("predictions") or [] for k in SCORE_KEYS if k in p
    ):
        why = "it has one choice, whose ensemble probability is always 1"
    if why is not None:
        raise BiomambaError(
            f"cannot ensemble task '{key}': {why}; ensembles score argmax multiple-choice tasks only "
            "(leave it out of the results files)"
        )


def _by_question(task: dict[str, Any], where: str) -> dict[tuple[str, Any], dict[str, Any]]:
    table = {(str(p["id"]), p.get("seed")): p for p in task.get("predictions") or []}
    if not table:
        raise BiomambaError(f"{where}: no predictions stored in the results file")
    return table


def ensemble_files(
    paths: Sequence[str | Path], output: str | Path, weights: Sequence[float] | None = None
) -> dict[str, Any]:
    """Read results files, ensemble them, write the ensemble's results file (atomically)."""
    from biomamba.eval.results import read_results, write_results

    results = [read_results(p) for p in paths]
    names = [
        Path(p).stem if r.get("model", {}).get("name") is None else r["model"]["name"]
        for p, r in zip(paths, results, strict=True)
    ]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    combined = ensemble_results(results, weights=weights, names=names)
    write_results(output, combined)
    return combined
