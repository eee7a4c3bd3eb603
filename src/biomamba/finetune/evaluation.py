"""Evaluation of fine-tuned models: choice accuracy for QA, ROUGE for clinical generation, both with intervals.

QA after SFT is scored by the log-likelihood of each candidate answer ("yes"/"no"/"maybe" or the option
letters) after the SAME prompt the model was trained on, tokenised exactly as in training (prompt and answer
separately), through the evaluation stage's prefix-sharing scorer (the prompt runs once per question; Mamba2
continues from its recurrent state). Accuracy gets the evaluation stage's percentile-bootstrap interval.

Clinical generation is greedy decoding with a token budget (`biomamba.models.generate`) scored with
ROUGE-1/2/L F1 (Google's rouge-score, Porter stemming), each averaged over notes with a bootstrap interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from biomamba.finetune.collate import answer_reserve, encode, truncate_prompt
from biomamba.finetune.heads import SequenceClassifier, collate_questions
from biomamba.finetune.templates import PromptCompletion

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _interval(values: Sequence[float], seed: int = 0) -> list[float]:
    from biomamba.eval.metrics import bootstrap_interval

    return list(bootstrap_interval(values, seed=seed))


def majority_baseline(labels: Sequence[int]) -> float:
    """Accuracy of always answering the most frequent label of `labels` (the bar SFT must clear)."""
    if not labels:
        return float("nan")
    return Counter(labels).most_common(1)[0][1] / len(labels)


def choice_logliks(
    model: Any, tokenizer: Any, pairs: Sequence[PromptCompletion], *, max_length: int, batch_size: int = 16
) -> list[list[float]]:
    """Log-likelihood of every choice of every pair, prompts shared across a question's choices."""
    from biomamba.eval.backends import make_backend, padding_id
    from biomamba.eval.scoring import RequestEncoder, score_groups

    encoder = RequestEncoder(tokenizer, max_length)
    bos = getattr(tokenizer, "bos_token_id", None)
    groups = []
    for pair in pairs:
        # the prompt is cut exactly as in training (same budget for every choice), so positions match
        context = truncate_prompt(
            encode(tokenizer, pair.prompt, special=True),
            max_length - answer_reserve(tokenizer, pair.choices),
            bos,
        )
        groups.append([encoder.tokens(context, encode(tokenizer, c, special=False)) for c in pair.choices])
    backend = make_backend(model, max_length=max_length, pad_id=padding_id(tokenizer))  # as `biomamba eval`
    with torch.no_grad():
        scores = score_groups(backend, groups, batch_size=batch_size)
    out, index = [], 0
    for pair in pairs:
        out.append([scores[index + k][0] for k in range(len(pair.choices))])
        index += len(pair.choices)
    return out


def accuracy_report(predictions: Sequence[int], labels: Sequence[int], seed: int = 0) -> dict[str, Any]:
    """Accuracy with its interval, the majority baseline, and the predictions (counted and in order)."""
    correct = [float(p == g) for p, g in zip(predictions, labels, strict=True)]
    return {
        "accuracy": float(np.mean(correct)) if correct else float("nan"),
        "accuracy_ci": _interval(correct, seed),
        "n": len(correct),
        "majority_baseline": majority_baseline(labels),
        "predicted": dict(Counter(int(p) for p in predictions)),
        "predictions": list(predictions),
    }


def evaluate_choices(
    model: Any, tokenizer: Any, pairs: Sequence[PromptCompletion], *, max_length: int, batch_size: int = 16
) -> dict[str, Any]:
    """Accuracy of argmax-log-likelihood answers (with interval, majority baseline and predictions)."""
    logliks = choice_logliks(model, tokenizer, pairs, max_length=max_length, batch_size=batch_size)
    predictions = [int(np.argmax(s)) for s in logliks]
    return accuracy_report(predictions, [int(p.label) for p in pairs if p.label is not None])


def evaluate_classifier(
    model: SequenceClassifier,
    items: Sequence[Any],
    pad_id: int,
    *,
    multiple_choice: bool,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Accuracy of a classifier head over encoded questions."""
    device = next(model.parameters()).device
    predictions: list[int] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = collate_questions(
                items[start : start + batch_size], pad_id, multiple_choice=multiple_choice
            )
            logits = model(batch["input_ids"].to(device), batch["last_index"].to(device))
            predictions.extend(int(i) for i in logits.argmax(-1).tolist())
    model.train(was_training)
    return accuracy_report(predictions, [item.label for item in items])


def rouge(predictions: Sequence[str], references: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """ROUGE-1/2/L F1 (stemmed), mean over examples with 95% bootstrap intervals."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    per: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)
        for name in ROUGE_TYPES:
            per[name].append(scores[name].fmeasure)
    report: dict[str, Any] = {"n": len(predictions)}
    for name in ROUGE_TYPES:
        report[name] = float(np.mean(per[name])) if per[name] else float("nan")
        report[f"{name}_ci"] = _interval(per[name], seed)
    return report


def generate_greedy(
    model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int, max_prompt_tokens: int
) -> list[str]:
    """Greedy continuations; prompts longer than `max_prompt_tokens` keep their END (the cue to write)."""
    from biomamba.models import generate

    ids = [encode(tokenizer, p, special=True)[-max_prompt_tokens:] for p in prompts]
    was_training = getattr(model, "training", False)
    model.eval()
    with torch.no_grad():
        outputs = generate(model, tokenizer, ids, max_new_tokens=max_new_tokens, greedy=True)
    model.train(was_training)
    return [o.text.strip() for o in outputs]


def evaluate_generation(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[PromptCompletion],
    *,
    max_new_tokens: int,
    max_prompt_tokens: int,
) -> dict[str, Any]:
    """Greedy generation then ROUGE against each pair's completion (the reference)."""
    outputs = generate_greedy(
        model,
        tokenizer,
        [p.prompt for p in pairs],
        max_new_tokens=max_new_tokens,
        max_prompt_tokens=max_prompt_tokens,
    )
    report = rouge(outputs, [p.completion.strip() for p in pairs])
    report["samples"] = [
        {"prediction": o, "reference": p.completion.strip()[:2000]}
        for o, p in zip(outputs, pairs, strict=True)
    ][:5]
    return report
