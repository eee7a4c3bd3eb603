"""Why a domain has no training documents left: one line naming each source that gave nothing, and why.

A build stops when a domain with a ratio > 0 has nothing to train on. Every document of that domain went
somewhere on the way (skipped while reading, filtered, decontaminated, superseded by a newer version of its
PMID, removed as a duplicate, held out), and the user must learn where without opening `.work/parts/*/done.json`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from biomamba.data.dedup import DedupResult
from biomamba.data.merge import Catalog
from biomamba.data.parts import Unit

FAILED_MANIFEST_NAME = "manifest.failed.json"
TOP_REASONS = 3


def _file_reason(part: dict) -> str:
    """What one input of the domain gave: its documents, or the main reasons it gave none."""
    name = Path(part["path"]).name
    if part["documents"]:
        return f"{name}: {part['documents']} documents"
    reasons: Counter = Counter(part["read"]["skipped"])
    reasons.update({f"filtered ({k})": v for k, v in part["filtered"].items()})
    reasons.update({f"overlaps benchmark {k}": v for k, v in part["contaminated"].items()})
    if not reasons:
        return f"{name}: no records"
    listed = ", ".join(f"{reason} x{count}" for reason, count in reasons.most_common(TOP_REASONS))
    return f"{name}: 0 documents ({listed})"


def _later_removals(domain: str, catalog: Catalog, dedup: DedupResult) -> str:
    """What happened after reading to the documents the domain's files did give."""
    mask = catalog.domain_of_doc == domain
    superseded = int((mask & ~catalog.alive).sum())
    counts = {
        "superseded or deleted (newer version of the same PMID/PMC id elsewhere)": superseded,
        "exact duplicates": dedup.by_domain.get(domain, {}).get("exact", 0),
        "near duplicates": dedup.by_domain.get(domain, {}).get("near", 0),
        "held out": int((mask & dedup.keep & catalog.heldout).sum()),
    }
    removed = ", ".join(f"{count} {what}" for what, count in counts.items() if count)
    return f"then removed: {removed}" if removed else ""


def explain_empty_domains(empty: list[str], units: list[Unit], parts: list[dict], catalog: Catalog,
                          dedup: DedupResult, failed_manifest: Path) -> str:  # fmt: skip
    """One line: for each empty domain, each input file's yield (or its reasons) and the later removals."""
    pieces = []
    for domain in empty:
        files = [_file_reason(p) for u, p in zip(units, parts, strict=True) if u.domain == domain]
        later = _later_removals(domain, catalog, dedup)
        pieces.append(f"{domain}: " + "; ".join(files + ([later] if later else [])))
    return (f"no training documents left in domain(s) {', '.join(empty)} (ratio > 0): " + " | ".join(pieces)
            + f" (what was read: {failed_manifest})")  # fmt: skip
