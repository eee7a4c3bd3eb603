"""`--limit N`: a seeded sample stratified by gold label, never the first N records in file order.

Benchmark files are often sorted (PubMedQA's official ground truth lists every "yes" first), so the first
N questions of a smoke run can all carry one label and its accuracy says nothing. Each label keeps its
share of the file (largest-remainder rounding, so the counts add up to exactly N), the questions of a label
are drawn with `random.Random(seed)`, and the sample keeps the file's order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

STRATEGY = "stratified by label"


def stratum_sizes(counts: dict[str, int], n: int) -> dict[str, int]:
    """How many of each label a sample of `n` takes: proportional, largest remainders rounded up."""
    total = sum(counts.values())
    exact = {label: n * count / total for label, count in counts.items()}
    sizes = {label: int(share) for label, share in exact.items()}
    by_remainder = sorted(counts, key=lambda label: (-(exact[label] - sizes[label]), label))
    for label in by_remainder[: n - sum(sizes.values())]:
        sizes[label] += 1
    return sizes


def stratified_sample(
    items: Sequence[T], n: int, label: Callable[[T], str], seed: int = 0
) -> tuple[list[T], dict[str, Any]]:
    """(sample in file order, what was done) — the record is written to the results as `limit`."""
    if n <= 0:
        raise ValueError(f"--limit must be a positive number of questions, got {n}")
    by_label: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_label.setdefault(label(item), []).append(index)
    info: dict[str, Any] = {"n": min(n, len(items)), "of": len(items), "seed": seed, "strategy": STRATEGY}
    if n >= len(items):
        return list(items), info
    rng = random.Random(seed)
    sizes = stratum_sizes({k: len(v) for k, v in by_label.items()}, n)
    chosen = sorted(i for key, indices in sorted(by_label.items()) for i in rng.sample(indices, sizes[key]))
    return [items[i] for i in chosen], info
