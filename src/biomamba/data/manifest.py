"""The corpus manifest (docs/formats.md, docs/data.md "Manifest fields"): what was read, removed and written.

Written last and atomically by the build (a corpus directory without `manifest.json` is unfinished), or aside
as `manifest.failed.json` when a domain is left without training documents (`stop_when_a_domain_is_empty`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.data.decontam import NO_BENCHMARKS_WARNING, NgramIndex
from biomamba.data.dedup import DedupResult
from biomamba.data.merge import Catalog
from biomamba.data.parts import MAX_FLAGGED_IDS, Build, Unit, read_json
from biomamba.data.shards import FORMAT_VERSION, MANIFEST_NAME, token_dtype
from biomamba.data.shortfall import FAILED_MANIFEST_NAME, explain_empty_domains
from biomamba.errors import DataError
from biomamba.utils.atomic import atomic_write, write_json

MAX_MANIFEST_WARNINGS = 200
DECONTAM_IDS_NAME = "decontamination-ids.jsonl"


def up_to_date(output: Path, fingerprint: str) -> dict | None:
    """The manifest of a finished build of the same inputs and settings whose shards are all there, or None."""
    manifest = read_json(output / MANIFEST_NAME)
    if manifest is None or manifest.get("build", {}).get("fingerprint") != fingerprint:
        return None
    shards = (shard["path"] for split in manifest.get("splits", {}).values() for shard in split["shards"])
    return manifest if all((output / path).is_file() for path in shards) else None


def stop_when_a_domain_is_empty(build: Build, parts: list[dict], index: NgramIndex, catalog: Catalog,
                                dedup: DedupResult, candidates: dict[str, np.ndarray]) -> None:  # fmt: skip
    """A domain with a ratio but no training documents stops the build with one line saying which of its files
    gave nothing and why; the manifest of what was read is written aside (`manifest.failed.json`), since a
    `manifest.json` would mark the directory as a finished corpus."""
    failed = build.output / FAILED_MANIFEST_NAME
    empty = [d for d, r in build.config.ratios.items() if r > 0 and not catalog.lengths[candidates[d]].sum()]
    if not empty:
        failed.unlink(missing_ok=True)
        return
    message = explain_empty_domains(empty, build.units, parts, catalog, dedup, failed)
    write_json(failed, {"error": message, **build_manifest(build, parts, index, catalog, dedup, None, {})})
    raise DataError(message)


def write_decontam_ids(path: Path, units: list[Unit], parts: list[dict], action: str) -> None:
    """Every document that overlapped a benchmark (dropped or flagged), one JSON line each, in build order:
    the manifest keeps counts only, and a dropped document is otherwise untraceable."""
    with atomic_write(path, "w") as handle:
        for unit, part in zip(units, parts, strict=True):
            for doc_id, names in part["matched_ids"]:
                handle.write(json.dumps({"id": doc_id, "domain": unit.domain, "path": unit.path,
                                         "benchmarks": names, "action": action}) + "\n")  # fmt: skip


def build_manifest(build: Build, parts: list[dict], index: NgramIndex, catalog: Catalog, dedup: DedupResult,
                   plan: Any, splits: dict) -> dict:  # fmt: skip
    """The manifest of a build (`plan` None and `splits` empty for `manifest.failed.json`)."""
    config, spec, units, keep = build.config, build.spec, build.units, dedup.keep
    per_domain: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for unit, part in zip(units, parts, strict=True):
        stats = per_domain.setdefault(unit.domain, {"files": 0, "documents_read": 0, "skipped": Counter(),
                                                     "filtered": Counter(), "contaminated": Counter(),
                                                     "tokenized_documents": 0, "tokenized_tokens": 0})  # fmt: skip
        stats["files"] += 1
        stats["documents_read"] += part["read"]["documents"]
        stats["skipped"].update(part["read"]["skipped"])
        stats["filtered"].update(part["filtered"])
        stats["contaminated"].update(part["contaminated"])
        stats["tokenized_documents"] += part["documents"]
        stats["tokenized_tokens"] += part["tokens"]
        warnings.extend(part["read"]["warnings"])
    for domain, stats in per_domain.items():
        mask = catalog.domain_of_doc == domain
        stats["exact_duplicates"] = dedup.by_domain.get(domain, {}).get("exact", 0)
        stats["near_duplicates"] = dedup.by_domain.get(domain, {}).get("near", 0)
        stats["heldout_documents"] = int((keep & catalog.heldout & mask).sum())
        stats["train_documents_available"] = int((keep & ~catalog.heldout & mask).sum())
        for key in ("skipped", "filtered", "contaminated"):
            stats[key] = dict(sorted(stats[key].items()))
    unchecked = config.decontam.enabled and not config.decontam.benchmarks
    decontam = {
        **config.decontam.model_dump(include={"enabled", "ngram", "action"}),
        "benchmarks": {
            name: {**stats, "documents_matched": sum(p["contaminated"].get(name, 0) for p in parts)}
            for name, stats in index.stats.items()
        },
        "flagged_ids": [i for p in parts for i in p["flagged_ids"]][:MAX_FLAGGED_IDS],
        "documents_matched": sum(len(p["matched_ids"]) for p in parts),  # once however many benchmarks
        "ids_file": DECONTAM_IDS_NAME if config.decontam.enabled else None,
        "warning": NO_BENCHMARKS_WARNING if unchecked else None,
    }
    skipped_total = sum((Counter(stats["skipped"]) for stats in per_domain.values()), Counter())
    return {
        "format": FORMAT_VERSION,
        "dtype": token_dtype(spec.vocab_size).str,
        "vocab_size": spec.vocab_size,
        "eos_token_id": spec.eos_token_id,
        "tokenizer": {"path": spec.path, "sha256": spec.sha256},
        "splits": splits,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": json.loads(config.model_dump_json()),
        "sources": [
            {
                "unit": u.name,
                "domain": u.domain,
                "type": u.source.type,
                "path": u.path,
                "size": p["input"]["size"],
                "mtime_ns": p["input"]["mtime_ns"],
                **{k: p[k] for k in ("documents", "tokens", "read", "filtered", "contaminated")},
            }
            for u, p in zip(units, parts, strict=True)
        ],  # fmt: skip
        "domains": per_domain,
        "medline_updates": {"deleted": catalog.deleted, "superseded": catalog.superseded},
        "dedup": {
            **config.dedup.model_dump(include={"exact", "near", "threshold"}),
            "exact_duplicates": dedup.exact_duplicates,
            "near_duplicates": dedup.near_duplicates,
        },  # fmt: skip
        "decontamination": decontam,
        "mixture": plan.report() if plan is not None else None,
        "skipped": {
            "total": sum(skipped_total.values()),
            "by_reason": dict(sorted(skipped_total.items())),
            "warnings": warnings[:MAX_MANIFEST_WARNINGS],
            "warnings_truncated": max(0, len(warnings) - MAX_MANIFEST_WARNINGS),
        },  # fmt: skip
    }
