"""Token-ratio mixing and the held-out split.

Ratios are targets over TOKENS. For each domain the available training tokens are known exactly (documents are
tokenized before mixing), so the plan can hit the targets to within one document: a domain needing more tokens
than it has is repeated (whole passes, then a partial pass), one needing fewer is subsampled. The partial pass
walks a seeded permutation and takes whole documents while they fit in the quota; the next one is then CUT to
the remaining tokens (it still ends with EOS), so every domain gets its quota to the token whatever its document
lengths (a 10k-token Wikipedia article would otherwise move a small corpus's ratio by whole percentage points).
At most one document per domain is cut. The plan reports targets, achieved ratios and repeat counts.

The held-out split depends only on a stable hash of (domain, document id): adding files never moves a document
from train to held-out or back, and the split is the same on every machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from biomamba.errors import DataError

RATIO_TOLERANCE_PP = 1.0
MIN_CUT_TOKENS = 2  # a cut document keeps at least one token plus its EOS


def heldout_hash(domain: str, doc_id: str) -> float:
    """Uniform value in [0, 1) from (domain, id): a document is held out when it is below the fraction."""
    digest = hashlib.blake2b(f"{domain}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


@dataclass
class DomainPlan:
    """Which documents of one domain go into the mixture, with repeats."""

    domain: str
    target_ratio: float
    available_tokens: int
    available_documents: int
    quota_tokens: float
    selected: np.ndarray  # indices into the domain's candidate list, repeats included
    limits: np.ndarray  # tokens to take from each selected document (its length, or less for the cut one)
    selected_tokens: int
    full_passes: int

    @property
    def repeat_factor(self) -> float:
        return self.selected_tokens / self.available_tokens if self.available_tokens else 0.0


@dataclass
class MixturePlan:
    domains: dict[str, DomainPlan] = field(default_factory=dict)
    total_tokens: int = 0

    def report(self) -> dict[str, object]:
        """Targets vs achieved ratios (percentage points), repeats, and whether the tolerance is met."""
        total = max(self.total_tokens, 1)
        rows = {}
        worst = 0.0
        for name, plan in self.domains.items():
            achieved = plan.selected_tokens / total
            error_pp = (achieved - plan.target_ratio) * 100
            worst = max(worst, abs(error_pp))
            rows[name] = {
                "target": plan.target_ratio,
                "achieved": round(achieved, 6),
                "error_pp": round(error_pp, 4),
                "tokens": plan.selected_tokens,
                "documents": int(plan.selected.size),
                "available_tokens": plan.available_tokens,
                "available_documents": plan.available_documents,
                "repeat_factor": round(plan.repeat_factor, 4),
                "full_passes": plan.full_passes,
                "repeated": plan.repeat_factor > 1.0,
            }
        within = worst <= RATIO_TOLERANCE_PP
        summary = (
            f"achieved token ratios are within {RATIO_TOLERANCE_PP:g} percentage point of the targets "
            f"(largest deviation {worst:.3f} pp)"
            if within
            else f"achieved token ratios deviate from the targets by up to {worst:.3f} pp "
            f"(more than {RATIO_TOLERANCE_PP:g} pp: documents are too long for this total; raise total_tokens)"
        )
        return {"total_tokens": self.total_tokens, "domains": rows, "max_error_pp": round(worst, 4),
                "within_tolerance": within, "tolerance_pp": RATIO_TOLERANCE_PP, "summary": summary}  # fmt: skip


def plan_mixture(
    lengths: dict[str, np.ndarray], ratios: dict[str, float], total_tokens: int | None, seed: int
) -> MixturePlan:
    """Choose documents (by index into each domain's `lengths`) to hit the token ratios.

    Without `total_tokens` the total is the largest that needs no repetition: the scarcest domain (relative to
    its ratio) is used whole, and the others are subsampled.
    """
    active = {d: r for d, r in ratios.items() if r > 0}
    available = {d: int(lengths[d].sum()) if d in lengths else 0 for d in active}
    empty = [d for d in active if available[d] == 0]
    if empty:
        raise DataError(
            f"no training documents left in domain(s) {', '.join(empty)} (ratio > 0): see the counts"
        )
    total = (
        total_tokens if total_tokens is not None else int(min(available[d] / r for d, r in active.items()))
    )
    plan = MixturePlan()
    for offset, (domain, ratio) in enumerate(sorted(active.items())):
        rng = np.random.default_rng([seed, offset])
        plan.domains[domain] = _plan_domain(domain, lengths[domain], ratio, ratio * total, rng)
    plan.total_tokens = sum(p.selected_tokens for p in plan.domains.values())
    return plan


def _plan_domain(
    domain: str, lengths: np.ndarray, ratio: float, quota: float, rng: np.random.Generator
) -> DomainPlan:
    available = int(lengths.sum())
    passes = int(quota // available)
    remainder = quota - passes * available
    order = rng.permutation(lengths.size)
    cumulative = np.cumsum(lengths[order])
    # Take a document while the running total minus half its length stays within the remainder, i.e. while
    # taking it brings the domain closer to (or exactly onto) its quota.
    # The condition is monotone along the permutation, so the chosen documents are a prefix of it.
    whole = int(np.count_nonzero(cumulative <= remainder))
    partial = order[:whole]
    limits = lengths[partial]
    gap = int(round(remainder)) - int(limits.sum())
    if gap >= MIN_CUT_TOKENS and whole < order.size:
        partial = np.append(partial, order[whole])
        limits = np.append(limits, gap)
    selected = np.concatenate([np.tile(np.arange(lengths.size), passes), partial]).astype(np.int64)
    all_limits = np.concatenate([np.tile(lengths, passes), limits]).astype(np.int64)
    tokens = int(all_limits.sum())
    return DomainPlan(
        domain, ratio, available, int(lengths.size), quota, selected, all_limits, tokens, passes
    )
