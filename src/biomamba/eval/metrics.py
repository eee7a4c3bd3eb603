"""How sure is a number: bootstrap intervals, calibration (ECE), and paired model comparisons.

Benchmarks in this field are small (PubMedQA test: 500 questions; MMLU medical genetics: 100), so a
2-point difference is often noise. Every accuracy gets a 95% percentile-bootstrap interval over
questions; two models evaluated on the same questions get a PAIRED bootstrap of their difference (the
question-level correlation makes it far tighter than comparing two separate intervals).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REGRESSION_THRESHOLD = 0.03  # a general benchmark losing more than 3 points is flagged as forgetting


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-question scores."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def paired_bootstrap(
    before: Sequence[float],
    after: Sequence[float],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Difference `after - before` of mean scores on the same questions, with its paired interval.

    `p_not_better` is the share of resamples where `after` does not beat `before` (a one-sided bootstrap
    p-value for "after is better").
    """
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must align: {a.shape} vs {b.shape}")
    if a.size == 0:
        return {"diff": float("nan"), "low": float("nan"), "high": float("nan"), "p_not_better": float("nan")}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    diffs = b[idx].mean(axis=1) - a[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return {
        "diff": float(b.mean() - a.mean()),
        "low": float(np.quantile(diffs, alpha)),
        "high": float(np.quantile(diffs, 1.0 - alpha)),
        "p_not_better": float((diffs <= 0).mean()),
    }


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[float], bins: int = 10
) -> float:
    """ECE with equal-width confidence bins: sum over bins of |accuracy - mean confidence| x bin share.

    `confidences` are the probabilities the model gave its predicted choice (choice probabilities
    renormalised over the options), `correct` 1/0 per question.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(hit[mask].mean() - conf[mask].mean())
    return float(ece)


def choice_probabilities(logliks: Sequence[float]) -> np.ndarray:
    """Softmax of the choices' log-likelihoods: the model's probability for each option."""
    x = np.asarray(logliks, dtype=np.float64)
    x = np.exp(x - x.max())
    return x / x.sum()
