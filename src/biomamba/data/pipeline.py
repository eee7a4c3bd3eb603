"""`build_corpus`: sources -> clean -> decontaminate -> tokenize (parallel, per file) -> dedup -> mix -> shards.

Three phases, designed so that the expensive part scales out and every step can be resumed:

1. PARTS (biomamba.data.parts; parallel, one unit per input file): read, normalise, filter, drop benchmark
   overlaps, tokenize, and compute each document's exact-dup hash, MinHash signature and held-out hash into
   a "part" under `CORPUS/.work/parts/<unit>/`, `done.json` last; parts are reused when their input and
   settings are unchanged, and can be built on other machines (`only_part=(i, n)`, docs/data.md).
2. GLOBAL (biomamba.data.merge; metadata only): apply MEDLINE `DeleteCitation`s and supersede older versions
   of a PMID, exact + near deduplication across all files and domains (on disk, hash-partitioned buckets
   resolved in the worker pool or by `dedup_part=(i, n)` runs on other machines: biomamba.data.dedup), then
   the token-ratio mixture plan.
3. SHARDS (parallel, `shard_jobs.py`): copy the chosen documents' tokens into `train/` (shuffled mixture) and
   `heldout/<domain>/` shards. A shard whose marker matches its plan is not rewritten. The manifest
   (biomamba.data.manifest) is written last, atomically: a directory without `manifest.json` is unfinished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.data.clean import filter_reason, normalize_text
from biomamba.data.config import DataConfig
from biomamba.data.decontam import NO_BENCHMARKS_WARNING, NgramIndex, check_benchmark_paths
from biomamba.data.dedup_buckets import spawned_pool
from biomamba.data.manifest import (
    DECONTAM_IDS_NAME,
    build_manifest,
    stop_when_a_domain_is_empty,
    up_to_date,
    write_decontam_ids,
)
from biomamba.data.merge import Catalog, deduplicate_catalog, load_catalog, run_dedup_part
from biomamba.data.mixture import heldout_hash, plan_mixture
from biomamba.data.parts import (
    Build,
    PartContext,
    init_worker,
    plan_units,
    run_parts,
    select_units,
)
from biomamba.data.readers import FileReport, read_verified_file
from biomamba.data.shard_jobs import plan_shard_jobs, remove_stale_shards, run_shard_jobs
from biomamba.data.shards import MANIFEST_NAME, ShardRecord, token_dtype
from biomamba.data.tokenize import TokenizerSpec, tokenizer_spec
from biomamba.errors import DataError
from biomamba.utils.atomic import write_json

log = logging.getLogger(__name__)


def build_corpus(
    config: DataConfig,
    tokenizer: Any,
    output_dir: str | Path,
    *,
    only_part: tuple[int, int] | None = None,
    dedup_part: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Build (or resume) a corpus directory; return its manifest (also written to `output_dir/manifest.json`).

    `tokenizer`: a tokenizer directory / hub name, a transformers fast tokenizer or a `tokenizers.Tokenizer`.
    `only_part=(i, n)`: build only the parts of every n-th input file starting at i (0-based) and stop; used to
    spread phase 1 over machines (docs/data.md). Returns a summary of those parts instead of a manifest.
    `dedup_part=(i, n)`: once every part is built, resolve dedup bucket part i of n into its findings file
    and stop (the merge reads the findings of all n parts); returns a summary of what it found.
    """
    say = progress or (lambda message: log.info(message))
    warn = progress or (lambda message: log.warning(message))
    if config.decontam.enabled:  # before any work: a missing benchmark must not cost a phase-1 run first
        check_benchmark_paths(config.decontam)
        if not config.decontam.benchmarks:
            warn(f"WARNING: {NO_BENCHMARKS_WARNING}")
    spec = tokenizer_spec(tokenizer)
    units = plan_units(config)
    if not units:
        raise DataError("data.sources: no input files")
    build = Build(config, spec, units, _settings_hash(config, spec), Path(output_dir))
    if dedup_part is not None:
        return run_dedup_part(build, dedup_part, say)
    fingerprint = build.fingerprint(
        config.model_dump(include={"ratios", "total_tokens", "shard_tokens", "seed"})
    )
    existing = up_to_date(build.output, fingerprint)
    if existing is not None and only_part is None:
        say(f"{build.output}: corpus is up to date (same inputs, settings and tokenizer): nothing to do")
        return existing
    (build.output / MANIFEST_NAME).unlink(missing_ok=True)
    index = (
        NgramIndex.build(config.decontam) if config.decontam.enabled else NgramIndex(config.decontam.ngram)
    )
    context = PartContext(str(build.work_dir), spec, config.model_dump_json(), index, build.settings_hash)
    selected_units = units if only_part is None else select_units(units, only_part)
    started = time.perf_counter()
    # one pool for both parallel phases (spawning costs an import of the stack each)
    with spawned_pool(config.workers, init_worker, (context,)) as pool:
        parts = run_parts(selected_units, context, pool, say)
        phase1 = time.perf_counter() - started
        if only_part is not None:
            return {"only_part": list(only_part), "parts": parts, "seconds": round(phase1, 3)}
        manifest = _finish(build, parts, index, say, pool)
    manifest["build"] = {"fingerprint": fingerprint, "seconds_parts": round(phase1, 3),
                         "seconds_total": round(time.perf_counter() - started, 3), "workers": config.workers}  # fmt: skip
    write_json(build.output / MANIFEST_NAME, manifest)
    if not config.keep_work:
        shutil.rmtree(build.work_dir, ignore_errors=True)
    say(manifest["mixture"]["summary"])
    return manifest


def _settings_hash(config: DataConfig, spec: TokenizerSpec) -> str:
    """What changes a part's content: cleaning, dedup signatures, decontam, split fraction, tokenizer."""
    relevant = config.model_dump(include={"clean", "dedup", "decontam", "heldout_fraction"})
    for benchmark in relevant["decontam"]["benchmarks"]:
        path = Path(benchmark["path"])
        benchmark["size"] = path.stat().st_size if path.is_file() else sum(
            p.stat().st_size for p in path.glob("*") if p.is_file()) if path.is_dir() else -1  # fmt: skip
    payload = json.dumps(relevant, sort_keys=True, default=str) + spec.sha256
    return hashlib.sha256(payload.encode()).hexdigest()


def _finish(
    build: Build, parts: list[dict], index: NgramIndex, say: Callable[[str], None], pool: Any
) -> dict:
    """Phases 2 and 3 over every part: identity, dedup, the mixture plan, the shards; returns the manifest."""
    config = build.config
    catalog = load_catalog(build)
    dedup = deduplicate_catalog(build, catalog, pool, say)
    train_mask = dedup.keep & ~catalog.heldout
    candidates = {d: np.flatnonzero(train_mask & (catalog.domain_of_doc == d)) for d in config.sources}
    stop_when_a_domain_is_empty(build, parts, index, catalog, dedup, candidates)
    plan = plan_mixture({d: catalog.lengths[c] for d, c in candidates.items()}, config.ratios,
                        config.total_tokens, config.seed)  # fmt: skip
    splits = _write_shards(build, catalog, dedup.keep, candidates, plan, pool, say)
    if config.decontam.enabled:
        write_decontam_ids(build.output / DECONTAM_IDS_NAME, build.units, parts, config.decontam.action)
    return build_manifest(build, parts, index, catalog, dedup, plan, splits)


def _write_shards(build: Build, catalog: Catalog, keep: np.ndarray, candidates: dict[str, np.ndarray],
                  plan: Any, pool: Any, say: Callable[[str], None]) -> dict[str, dict]:  # fmt: skip
    """Phase 3: the shuffled mixture into `train/`, held-out documents into `heldout/<domain>/`; the splits."""
    config, empty = build.config, [np.zeros(0, np.int64)]
    chosen = np.concatenate([candidates[d][p.selected] for d, p in plan.domains.items()] or empty)
    limits = np.concatenate([p.limits for p in plan.domains.values()] or empty)
    shuffle = np.random.default_rng([config.seed, 1_000_003]).permutation(chosen.size)
    chosen, limits = chosen[shuffle], limits[shuffle]
    jobs = plan_shard_jobs("train", catalog.unit_of_doc[chosen], catalog.local_index[chosen], limits,
                           config.shard_tokens, build.settings_hash)  # fmt: skip
    for domain in config.sources:
        held = np.flatnonzero(keep & catalog.heldout & (catalog.domain_of_doc == domain))
        jobs += plan_shard_jobs(f"heldout/{domain}", catalog.unit_of_doc[held], catalog.local_index[held],
                                catalog.lengths[held], config.shard_tokens, build.settings_hash)  # fmt: skip
    records = run_shard_jobs(jobs, build.output, build.work_dir, [u.name for u in build.units],
                             token_dtype(build.spec.vocab_size), pool)  # fmt: skip
    # every split listed, possibly empty: consumers can rely on heldout/<domain> existing (when held out)
    names = ["train", *(f"heldout/{d}" for d in config.sources if config.heldout_fraction > 0)]
    splits: dict[str, dict] = {name: {"shards": [], "tokens": 0, "documents": 0} for name in names}
    for job, record in zip(jobs, records, strict=True):
        split = splits[job.split_dir]
        split["shards"].append({k: record[k] for k in ("path", "tokens", "documents", "sha256")})
        split["tokens"] += record["tokens"]
        split["documents"] += record["documents"]
    remove_stale_shards(build.output, splits)
    say(f"wrote {len(records)} shards ({sum(not r['reused'] for r in records)} new)")
    return splits


def iter_documents(config: DataConfig, split: str = "train", domains: Iterable[str] | None = None,
                   limit: int | None = None) -> Iterable[tuple[str, str]]:  # fmt: skip
    """(domain, normalised text) of the recipe's documents in one split ('train' or 'heldout'), no tokenizer.

    Used to train a tokenizer on the training side only and to measure fertility on held-out text, with the
    same held-out assignment as the corpus build (so tokenizer training never sees held-out documents).
    """
    wanted = set(domains) if domains is not None else None
    count = 0
    for unit in plan_units(config):
        if wanted is not None and unit.domain not in wanted:
            continue
        for doc in read_verified_file(unit.path, unit.source, FileReport(unit.path)):
            is_heldout = heldout_hash(unit.domain, doc.id) < config.heldout_fraction
            if is_heldout != (split == "heldout"):
                continue
            text = normalize_text(doc.text) if config.clean.normalize else doc.text
            if filter_reason(text, config.clean) is not None:
                continue
            yield unit.domain, text
            count += 1
            if limit is not None and count >= limit:
                return


__all__ = ["ShardRecord", "build_corpus", "iter_documents", "plan_units"]
