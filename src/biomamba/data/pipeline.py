"""`build_corpus`: sources -> clean -> decontaminate -> tokenize (parallel, per file) -> dedup -> mix -> shards.

Three phases, designed so that the expensive part scales out and every step can be resumed:

1. PARTS (parallel, one unit per input file): read, normalise, filter, drop benchmark overlaps, tokenize, and
   compute each document's exact-dup hash, MinHash signature and held-out hash. Each unit writes a "part" under
   `CORPUS/.work/parts/<unit>/` (a shard-format token file plus metadata), `done.json` last. A re-run skips every
   unit whose `done.json` matches the input file (path, size, mtime) and settings, so an interrupted build
   resumes where it stopped, and parts built on other machines (`only_part=(i, n)`) can be copied in and merged
   (docs/data.md).
2. GLOBAL (metadata only): apply MEDLINE `DeleteCitation`s and supersede older versions of a PMID, exact +
   near deduplication across all files and domains (on disk, hash-partitioned buckets resolved in the worker
   pool: biomamba.data.dedup), then the token-ratio mixture plan.
3. SHARDS (parallel, `shard_jobs.py`): copy the chosen documents' tokens into `train/` (shuffled mixture) and
   `heldout/<domain>/` shards. A shard whose marker matches its plan is not rewritten. The manifest is written
   last, atomically: a corpus directory without `manifest.json` is an unfinished build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.data.clean import filter_reason, normalize_text
from biomamba.data.config import DataConfig, SourceConfig
from biomamba.data.decontam import NO_BENCHMARKS_WARNING, NgramIndex, check_benchmark_paths
from biomamba.data.dedup import (
    CodedDomains,
    DedupFindings,
    decide,
    find_duplicates,
    minhash_signatures,
    text_hash,
)
from biomamba.data.dedup_buckets import SignatureFile
from biomamba.data.mixture import heldout_hash, plan_mixture
from biomamba.data.records import (
    IDENTITY_NAME,
    IDENTITY_NAMESPACE,
    apply_record_identity,
    load_identity,
    save_identity,
)
from biomamba.data.shard_jobs import plan_shard_jobs, remove_stale_shards, run_shard_jobs
from biomamba.data.shards import FORMAT_VERSION, MANIFEST_NAME, ShardRecord, ShardWriter, token_dtype
from biomamba.data.shortfall import FAILED_MANIFEST_NAME, explain_empty_domains
from biomamba.data.sources import (
    FileReport,
    damaged_line,
    read_source_file,
    read_verified_file,
    resolve_paths,
)
from biomamba.data.tokenize import TokenizerSpec, tokenizer_spec
from biomamba.errors import DataError
from biomamba.utils.atomic import atomic_write, write_json

log = logging.getLogger(__name__)

WORK_DIR = ".work"
PART_VERSION = 4  # 4: signatures in their own signatures.npy (read in place by the dedup)
MAX_MANIFEST_WARNINGS = 200
MAX_FLAGGED_IDS = 1000
DECONTAM_IDS_NAME = "decontamination-ids.jsonl"
SIGNATURES_NAME = "signatures.npy"  # per part: [documents, num_perm] uint32 MinHash signatures
FINDINGS_DIR = "dedup-parts"  # findings-IIII-of-NNNN.npz: what resolving bucket part i of n found


@dataclass(frozen=True)
class Unit:
    """One input file (or hub dataset) of one source of one domain: the unit of parallel work."""

    name: str
    domain: str
    source_index: int
    path: str
    source: SourceConfig


def plan_units(config: DataConfig) -> list[Unit]:
    """All work units in the canonical order (domain, source, sorted file): dedup keeps the first occurrence."""
    units = []
    for domain, sources in config.sources.items():
        for s_index, source in enumerate(sources):
            for f_index, path in enumerate(resolve_paths(source, domain)):
                units.append(Unit(f"{domain}-{s_index:02d}-{f_index:05d}", domain, s_index, path, source))
    return units


# ---------------------------------------------------------------------------------------------------------
# Phase 1: parts


@dataclass(frozen=True)
class PartContext:
    """Settings shipped to each worker (picklable; the tokenizer travels as its JSON)."""

    work_dir: str
    tokenizer: TokenizerSpec
    config_json: str
    ngram: int
    ngram_arrays: dict[str, np.ndarray]
    settings_hash: str


_WORKER: dict[str, Any] = {}


def _init_worker(context: PartContext, in_pool: bool = True) -> None:
    if in_pool:  # one Rust thread per worker process; in-process (workers=1) the tokenizer may use all cores
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER["context"] = context
    _WORKER["tokenizer"] = context.tokenizer.build()
    _WORKER["config"] = DataConfig.model_validate_json(context.config_json)
    _WORKER["index"] = NgramIndex.from_arrays(context.ngram, context.ngram_arrays)


def _input_identity(unit: Unit) -> dict[str, int | None]:
    """Size and modification time (ns) of a unit's input file; None for a hub dataset or a folder.

    A file edited in place to the same size still gets a new mtime, so its part is rebuilt. Copies that keep
    mtimes (`rsync -a`, `cp -p`) keep their parts valid on another machine (docs/data.md).
    """
    path = Path(unit.path)
    if not path.is_file():
        return {"size": None, "mtime_ns": None}
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _unit_fingerprint(unit: Unit, settings_hash: str, identity: dict[str, int | None] | None = None) -> str:
    """Input identity (path, size, mtime_ns) plus the settings that shape a part's content."""
    identity = identity if identity is not None else _input_identity(unit)
    payload = json.dumps([PART_VERSION, unit.name, unit.path, identity["size"], identity["mtime_ns"],
                          settings_hash, unit.source.model_dump()])  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()


def _part_done(part_dir: Path, fingerprint: str) -> dict | None:
    marker = part_dir / "done.json"
    if not marker.is_file():
        return None
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError):
        return None
    return done if done.get("fingerprint") == fingerprint else None


def build_part(unit: Unit) -> dict:
    """Phase 1 for one unit (runs in a worker). Returns the part's summary (also saved as done.json)."""
    context: PartContext = _WORKER["context"]
    config: DataConfig = _WORKER["config"]
    part_dir = Path(context.work_dir) / "parts" / unit.name
    identity = _input_identity(unit)
    fingerprint = _unit_fingerprint(unit, context.settings_hash, identity)
    done = _part_done(part_dir, fingerprint)
    if done is not None:
        done["resumed"] = True
        return done
    if part_dir.exists():
        shutil.rmtree(part_dir)
    part_dir.mkdir(parents=True)
    started = time.perf_counter()
    builder = _PartBuilder(part_dir, unit, config, context)
    report = FileReport(unit.path)
    try:
        for doc in read_source_file(unit.path, unit.source, report):
            builder.add(doc.id, doc.text, doc.revised)
        if report.damaged:
            builder = _drop_damaged(builder, report, config)
        summary = builder.finish(report)
    except BaseException:
        builder.abort()
        raise
    summary.update(
        fingerprint=fingerprint,
        input=identity,
        seconds=round(time.perf_counter() - started, 3),
        resumed=False,
    )
    write_json(part_dir / "done.json", summary)
    return summary


def _drop_damaged(builder: _PartBuilder, report: FileReport, config: DataConfig) -> _PartBuilder:
    """The part of a file that failed its gzip check was built aside: discard it whole, or stop the build.

    Its tokens only ever went to temporary files of the part folder (published by `done.json`, written
    after this check), so dropping it leaves an empty part that records the file, its records and the reason.
    """
    builder.abort()
    report.drop_damaged()
    if config.on_damaged == "fail":
        raise DataError(f"{damaged_line(report)} (data.on_damaged: fail)")
    return _PartBuilder(builder.part_dir, builder.unit, builder.config, _WORKER["context"])


class _PartBuilder:
    """Accumulates one unit's documents in batches: filter, decontaminate, tokenize, hash, write."""

    def __init__(self, part_dir: Path, unit: Unit, config: DataConfig, context: PartContext) -> None:
        self.part_dir, self.unit, self.config = part_dir, unit, config
        self.tokenizer = _WORKER["tokenizer"]
        self.index: NgramIndex = _WORKER["index"]
        self.eos = context.tokenizer.eos_token_id
        self.writer = ShardWriter(part_dir, "tokens.bin", token_dtype(context.tokenizer.vocab_size))
        self.batch: list[tuple[str, str, int]] = []
        self.ids: list[str] = []
        self.revised: list[int] = []
        self.lengths: list[np.ndarray] = []
        self.hashes: list[int] = []
        self.heldout: list[bool] = []
        self.signatures: list[np.ndarray] = []
        self.filtered: Counter = Counter()
        self.contaminated: Counter = Counter()
        self.flagged: list[str] = []
        self.matched: list[list] = []  # [id, [benchmark names]] of every document overlapping a benchmark

    def add(self, doc_id: str, text: str, revised: int = 0) -> None:
        clean = self.config.clean
        if clean.normalize:
            text = normalize_text(text)
        reason = filter_reason(text, clean)
        if reason is not None:
            self.filtered[reason] += 1
            return
        if self.config.decontam.enabled:
            hits = self.index.matches(text)
            if hits:
                for name in hits:
                    self.contaminated[name] += 1
                self.matched.append([doc_id, sorted(hits)])
                if self.config.decontam.action == "drop":
                    return
                self.flagged.append(doc_id)
        self.batch.append((doc_id, text, revised))
        if len(self.batch) >= self.config.batch_documents:
            self._flush()

    def _flush(self) -> None:
        if not self.batch:
            return
        ids, texts, revised = zip(*self.batch, strict=True)
        self.batch = []
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        arrays = [np.append(np.asarray(e.ids, dtype=np.int64), self.eos) for e in encodings]
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        self.writer.add(np.concatenate(arrays), lengths)
        self.lengths.append(lengths)
        self.ids.extend(ids)
        self.revised.extend(revised)
        self.hashes.extend(text_hash(t) for t in texts)
        fraction = self.config.heldout_fraction
        self.heldout.extend(heldout_hash(self.unit.domain, i) < fraction for i in ids)
        dedup = self.config.dedup
        if dedup.near:
            self.signatures.append(minhash_signatures(texts, dedup.num_perm, dedup.shingle_words))

    def finish(self, report: FileReport) -> dict:
        self._flush()
        record = self.writer.close()
        num_perm = self.config.dedup.num_perm if self.config.dedup.near else 0
        meta = {
            "lengths": np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64),
            "hashes": np.asarray(self.hashes, dtype=np.uint64),
            "heldout": np.asarray(self.heldout, dtype=bool),
        }
        np.savez(self.part_dir / "meta.npz", **meta)
        if num_perm:
            signatures = np.concatenate(self.signatures) if self.signatures else np.zeros((0, num_perm))
            np.save(self.part_dir / SIGNATURES_NAME, signatures.astype("<u4"))
        write_json(self.part_dir / "ids.json", {"ids": self.ids, "deleted": report.deleted_ids})
        namespace = IDENTITY_NAMESPACE.get(self.unit.source.type)
        if namespace is not None:  # int64 keys: the merge never loads every PMID as a Python string
            save_identity(
                self.part_dir / IDENTITY_NAME, namespace, self.ids, self.revised, report.deleted_ids
            )
        return {
            "unit": self.unit.name,
            "domain": self.unit.domain,
            "path": self.unit.path,
            "read": report.to_json(),
            "filtered": dict(sorted(self.filtered.items())),
            "contaminated": dict(sorted(self.contaminated.items())),
            "flagged_ids": self.flagged[:MAX_FLAGGED_IDS],
            "matched_ids": self.matched,
            "documents": record.documents,
            "tokens": record.tokens,
        }

    def abort(self) -> None:
        self.writer.abort()


def _run_parts(
    units: list[Unit], context: PartContext, pool: Any, progress: Callable[[str], None]
) -> list[dict]:
    """Build every unit's part, in the worker pool when there is one (spawned processes: safe with Rust threads)."""
    results: dict[str, dict] = {}
    if pool is None or len(units) <= 1:
        _init_worker(context, in_pool=False)
        for unit in units:
            results[unit.name] = build_part(unit)
            progress(_part_line(results[unit.name]))
    else:
        for summary in pool.imap_unordered(build_part, units):
            results[summary["unit"]] = summary
            progress(_part_line(summary))
    return [results[u.name] for u in units]


def _part_line(summary: dict) -> str:
    state = "reused" if summary.get("resumed") else f"{summary.get('seconds', 0):.1f}s"
    line = f"part {summary['unit']}: {summary['documents']} docs, {summary['tokens']} tokens ({state})"
    damaged = summary["read"].get("damaged")
    if damaged:  # the manifest keeps it too (sources[i].read.damaged); the user must see it now
        line += f"\nWARNING: {summary['read']['warnings'][0]}"
    return line


# ---------------------------------------------------------------------------------------------------------
# Phase 2: global decisions


@dataclass
class _Catalog:
    """All parts' per-document metadata, concatenated in canonical order (about 30 bytes a document)."""

    unit_of_doc: np.ndarray
    local_index: np.ndarray
    domain_of_doc: CodedDomains
    lengths: np.ndarray
    hashes: np.ndarray
    heldout: np.ndarray
    alive: np.ndarray
    deleted: int
    superseded: int


def _load_catalog(units: list[Unit], work_dir: Path) -> _Catalog:
    names = list(dict.fromkeys(unit.domain for unit in units))
    unit_ids, local, domains, lengths, hashes, heldout = [], [], [], [], [], []
    identities: list[tuple[Path, int]] = []  # (identity file, first document) of every part that has one
    offset = 0
    for number, unit in enumerate(units):
        part = work_dir / "parts" / unit.name
        with np.load(part / "meta.npz") as meta:
            count = meta["lengths"].size
            lengths.append(meta["lengths"])
            hashes.append(meta["hashes"])
            heldout.append(meta["heldout"])
        unit_ids.append(np.full(count, number, dtype=np.int32))
        local.append(np.arange(count, dtype=np.int64))
        domains.append(np.full(count, names.index(unit.domain), dtype=np.uint8))
        namespace = IDENTITY_NAMESPACE.get(unit.source.type)
        if namespace is not None:
            identities.append((part / IDENTITY_NAME, offset))
        offset += count
    alive = np.ones(offset, dtype=bool)
    events = (load_identity(path, first) for path, first in identities)  # one part in memory at a time
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="identity-") as scratch:  # one per process
        deleted, superseded = apply_record_identity(events, alive, scratch)
    join = lambda arrays, dtype: np.concatenate(arrays) if arrays else np.zeros(0, dtype)  # noqa: E731
    return _Catalog(join(unit_ids, np.int32), join(local, np.int64), CodedDomains(join(domains, np.uint8), names),
                    join(lengths, np.int64), join(hashes, np.uint64), join(heldout, bool), alive, deleted,
                    superseded)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Public API


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
    output = Path(output_dir)
    spec = tokenizer_spec(tokenizer)
    units = plan_units(config)
    if not units:
        raise DataError("data.sources: no input files")
    settings_hash = _settings_hash(config, spec)
    fingerprint = _build_fingerprint(units, settings_hash, config)
    existing = _up_to_date(output, fingerprint)
    if dedup_part is not None:
        return _run_dedup_part(config, units, output / WORK_DIR, settings_hash, dedup_part, say)
    if existing is not None and only_part is None:
        say(f"{output}: corpus is up to date (same inputs, settings and tokenizer): nothing to do")
        return existing
    (output / MANIFEST_NAME).unlink(missing_ok=True)
    work_dir = output / WORK_DIR
    index = (
        NgramIndex.build(config.decontam) if config.decontam.enabled else NgramIndex(config.decontam.ngram)
    )
    context = PartContext(
        str(work_dir), spec, config.model_dump_json(), index.n, index.to_arrays(), settings_hash
    )
    selected_units = units if only_part is None else _select_units(units, only_part)
    started = time.perf_counter()
    with _worker_pool(config.workers, context) as pool:
        parts = _run_parts(selected_units, context, pool, say)
        phase1 = time.perf_counter() - started
        if only_part is not None:
            return {"only_part": list(only_part), "parts": parts, "seconds": round(phase1, 3)}
        manifest = _finish(config, spec, units, parts, index, output, work_dir, say, pool)
    manifest["build"] = {"fingerprint": fingerprint, "seconds_parts": round(phase1, 3),
                         "seconds_total": round(time.perf_counter() - started, 3), "workers": config.workers}  # fmt: skip
    write_json(output / MANIFEST_NAME, manifest)
    if not config.keep_work:
        shutil.rmtree(work_dir, ignore_errors=True)
    say(manifest["mixture"]["summary"])
    return manifest


@contextlib.contextmanager
def _worker_pool(workers: int, context: PartContext) -> Iterator[Any]:
    """One pool of spawned workers for both parallel phases (spawning costs an import of the stack each)."""
    if workers <= 1:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(context,)) as pool:
        yield pool


def _select_units(units: list[Unit], only_part: tuple[int, int]) -> list[Unit]:
    index, count = _checked_part("--part", only_part)
    return units[index::count]


def _checked_part(flag: str, part: tuple[int, int]) -> tuple[int, int]:
    index, count = part
    if count < 1 or not 0 <= index < count:
        raise DataError(f"{flag} {index}/{count}: expected 0 <= i < n")
    return index, count


def _run_dedup_part(config: DataConfig, units: list[Unit], work_dir: Path, settings_hash: str,
                    part: tuple[int, int], say: Callable[[str], None]) -> dict:  # fmt: skip
    """Step 2 of a build spread over machines: resolve dedup bucket part i of n, write its findings, stop."""
    _checked_part("--dedup-part", part)
    _check_parts_built(units, work_dir, settings_hash)
    started = time.perf_counter()
    fingerprint = _dedup_fingerprint(units, settings_hash)
    found = _stored_findings(_findings_path(work_dir, part), fingerprint)
    reused = found is not None
    if found is None:
        catalog = _load_catalog(units, work_dir)
        found = _resolve_dedup_part(config, units, work_dir, catalog, part, fingerprint, None)
    summary = {"dedup_part": list(part), "path": str(_findings_path(work_dir, part)),
               "exact": int(found.exact.size), "copies": int(found.copies.size), "pairs": int(len(found.pairs)),
               "seconds": round(time.perf_counter() - started, 3), "reused": reused}  # fmt: skip
    say(f"dedup part {part[0]}/{part[1]}: {summary['exact']} exact duplicates, {summary['copies']} signature "
        f"copies, {summary['pairs']} near pairs -> {summary['path']} ({'reused' if reused else 'new'})")  # fmt: skip
    return summary


def _settings_hash(config: DataConfig, spec: TokenizerSpec) -> str:
    """What changes a part's content: cleaning, dedup signatures, decontam, split fraction, tokenizer."""
    relevant = config.model_dump(include={"clean", "dedup", "decontam", "heldout_fraction"})
    for benchmark in relevant["decontam"]["benchmarks"]:
        path = Path(benchmark["path"])
        benchmark["size"] = path.stat().st_size if path.is_file() else sum(
            p.stat().st_size for p in path.glob("*") if p.is_file()) if path.is_dir() else -1  # fmt: skip
    payload = json.dumps(relevant, sort_keys=True, default=str) + spec.sha256
    return hashlib.sha256(payload.encode()).hexdigest()


def _build_fingerprint(units: list[Unit], settings_hash: str, config: DataConfig) -> str:
    mixing = config.model_dump(include={"ratios", "total_tokens", "shard_tokens", "seed"})
    payload = json.dumps(
        [settings_hash, mixing, [_unit_fingerprint(u, settings_hash) for u in units]], sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _up_to_date(output: Path, fingerprint: str) -> dict | None:
    path = output / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError):
        return None
    if manifest.get("build", {}).get("fingerprint") != fingerprint:
        return None
    for split in manifest.get("splits", {}).values():
        for shard in split["shards"]:
            if not (output / shard["path"]).is_file():
                return None
    return manifest


def _finish(config: DataConfig, spec: TokenizerSpec, units: list[Unit], parts: list[dict], index: NgramIndex,
            output: Path, work_dir: Path, say: Callable[[str], None], pool: Any) -> dict:  # fmt: skip
    catalog = _load_catalog(units, work_dir)
    domains = list(config.sources)
    fingerprint = _dedup_fingerprint(units, _settings_hash(config, spec))
    findings, parts_read = _collected_findings(work_dir, fingerprint)
    if findings is None:  # no --dedup-part run: resolve every bucket here, in the worker pool
        findings = _resolve_dedup_part(config, units, work_dir, catalog, (0, 1), fingerprint, pool)
        say("dedup: buckets resolved in this process")
    else:
        say(f"dedup: the findings of {parts_read} dedup part(s) read from {work_dir / FINDINGS_DIR}")
    dedup = decide(findings, catalog.domain_of_doc, catalog.alive)
    keep = dedup.keep
    domain_array = catalog.domain_of_doc
    train_mask = keep & ~catalog.heldout
    candidates = {d: np.flatnonzero(train_mask & (domain_array == d)) for d in domains}
    _stop_when_a_domain_is_empty(config, spec, units, parts, index, output, catalog, dedup, candidates,
                                 domain_array)  # fmt: skip
    plan = plan_mixture({d: catalog.lengths[c] for d, c in candidates.items()}, config.ratios,
                        config.total_tokens, config.seed)  # fmt: skip
    empty = [np.zeros(0, np.int64)]
    chosen = np.concatenate([candidates[d][p.selected] for d, p in plan.domains.items()] or empty)
    limits = np.concatenate([p.limits for p in plan.domains.values()] or empty)
    shuffle = np.random.default_rng([config.seed, 1_000_003]).permutation(chosen.size)
    chosen, limits = chosen[shuffle], limits[shuffle]
    dtype = token_dtype(spec.vocab_size)
    salt = _settings_hash(config, spec)
    jobs = plan_shard_jobs("train", catalog.unit_of_doc[chosen], catalog.local_index[chosen], limits,
                       config.shard_tokens, salt)  # fmt: skip
    for domain in domains:
        held = np.flatnonzero(keep & catalog.heldout & (domain_array == domain))
        jobs += plan_shard_jobs(f"heldout/{domain}", catalog.unit_of_doc[held], catalog.local_index[held],
                            catalog.lengths[held], config.shard_tokens, salt)  # fmt: skip
    records = run_shard_jobs(jobs, output, work_dir, [u.name for u in units], dtype, pool)
    splits: dict[str, dict] = {}
    for job, record in zip(jobs, records, strict=True):
        split = splits.setdefault(job.split_dir, {"shards": [], "tokens": 0, "documents": 0})
        split["shards"].append({k: record[k] for k in ("path", "tokens", "documents", "sha256")})
        split["tokens"] += record["tokens"]
        split["documents"] += record["documents"]
    splits.setdefault("train", {"shards": [], "tokens": 0, "documents": 0})
    if config.heldout_fraction > 0:  # consumers can rely on heldout/<domain> existing (possibly empty)
        for domain in domains:
            splits.setdefault(f"heldout/{domain}", {"shards": [], "tokens": 0, "documents": 0})
    remove_stale_shards(output, splits)
    if config.decontam.enabled:
        _write_decontam_ids(output / DECONTAM_IDS_NAME, units, parts, config.decontam.action)
    say(f"wrote {len(records)} shards ({sum(not r['reused'] for r in records)} new)")
    return _manifest(config, spec, units, parts, index, catalog, dedup, plan, splits, keep, domain_array)


def _stop_when_a_domain_is_empty(config: DataConfig, spec: TokenizerSpec, units: list[Unit], parts: list[dict],
                                 index: NgramIndex, output: Path, catalog: _Catalog, dedup: Any, candidates: dict[str, np.ndarray],
                                 domain_array: CodedDomains) -> None:  # fmt: skip
    """A domain with a ratio but no training documents stops the build with one line saying which of its files
    gave nothing and why; the manifest of what was read is written aside (`manifest.failed.json`), since a
    `manifest.json` would mark the directory as a finished corpus."""
    empty = [d for d, r in config.ratios.items() if r > 0 and not catalog.lengths[candidates[d]].sum()]
    if not empty:
        (output / FAILED_MANIFEST_NAME).unlink(missing_ok=True)
        return
    failed = output / FAILED_MANIFEST_NAME
    message = explain_empty_domains(empty, [u.domain for u in units], parts, domain_array, catalog.alive,
                                    dedup.keep, catalog.heldout, dedup.by_domain, failed)  # fmt: skip
    manifest = _manifest(
        config, spec, units, parts, index, catalog, dedup, None, {}, dedup.keep, domain_array
    )
    write_json(failed, {"error": message, **manifest})
    raise DataError(message)


def _signatures(units: list[Unit], work_dir: Path) -> SignatureFile:
    """Every part's MinHash signatures in canonical order, read in place (never copied into one file)."""
    return SignatureFile([work_dir / "parts" / unit.name / SIGNATURES_NAME for unit in units])


def _dedup_fingerprint(units: list[Unit], settings_hash: str) -> str:
    """What the dedup findings depend on: every part (input identity and settings), not the mixture."""
    payload = json.dumps([settings_hash, [_unit_fingerprint(u, settings_hash) for u in units]])
    return hashlib.sha256(payload.encode()).hexdigest()


def _findings_path(work_dir: Path, part: tuple[int, int]) -> Path:
    return work_dir / FINDINGS_DIR / f"findings-{part[0]:04d}-of-{part[1]:04d}.npz"


def _resolve_dedup_part(config: DataConfig, units: list[Unit], work_dir: Path, catalog: _Catalog,
                        part: tuple[int, int], fingerprint: str, pool: Any) -> DedupFindings:  # fmt: skip
    """Resolve the buckets of `part` (i, n) into its findings file; an up-to-date file is reused as is."""
    path = _findings_path(work_dir, part)
    stored = _stored_findings(path, fingerprint)
    if stored is not None:
        return stored
    dedup = config.dedup
    try:
        found = find_duplicates(catalog.hashes, _signatures(units, work_dir) if dedup.near else None,
                                exact=dedup.exact, near=dedup.near, threshold=dedup.threshold,
                                alive=catalog.alive, part=part, work_dir=work_dir / "dedup" / path.stem,
                                pool=pool, workers=config.workers)  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            (work_dir / "dedup").rmdir()  # (kept while other parts still resolve in it)
    found.save(path, fingerprint)
    return found


def _stored_findings(path: Path, fingerprint: str) -> DedupFindings | None:
    """A findings file of this build's inputs and settings (None if absent or from another build)."""
    if not path.is_file():
        return None
    found, stored = DedupFindings.load(path)
    return found if stored == fingerprint else None


def _collected_findings(work_dir: Path, fingerprint: str) -> tuple[DedupFindings | None, int]:
    """The union of the findings of parts 0..n-1 when `--dedup-part` runs wrote them all (for this build's
    inputs and settings) and n; (None, 0) when there are none; one line naming what is missing when some are."""
    found: dict[int, dict[int, Path]] = {}
    for path in sorted((work_dir / FINDINGS_DIR).glob("findings-*-of-*.npz")):
        index, count = (int(x) for x in path.stem.removeprefix("findings-").split("-of-"))
        with np.load(path) as data:
            if str(data["fingerprint"]) == fingerprint:
                found.setdefault(count, {})[index] = path
    if not found:
        return None, 0
    complete = [count for count, paths in found.items() if len(paths) == count]
    if not complete:
        count, paths = max(found.items(), key=lambda item: len(item[1]) / item[0])
        missing = ", ".join(f"{i}/{count}" for i in range(count) if i not in paths)
        raise DataError(f"{work_dir / FINDINGS_DIR}: dedup part(s) {missing} missing ({len(paths)} of {count} "
                        f"found): run `biomamba data build --dedup-part I/{count}` for each, then merge")  # fmt: skip
    paths = found[min(complete)]
    return DedupFindings.union([DedupFindings.load(paths[i])[0] for i in range(len(paths))]), len(paths)


def _check_parts_built(units: list[Unit], work_dir: Path, settings_hash: str) -> None:
    """A dedup part reads every part: one line naming the first that is not built (and how many are not)."""
    missing = [
        u
        for u in units
        if _part_done(work_dir / "parts" / u.name, _unit_fingerprint(u, settings_hash)) is None
    ]
    if missing:
        raise DataError(f"{missing[0].path}: part {missing[0].name} not built ({len(missing)} of {len(units)} "
                        f"parts missing): run phase 1 (`--part i/n`) for every file before `--dedup-part`")  # fmt: skip


def _write_decontam_ids(path: Path, units: list[Unit], parts: list[dict], action: str) -> None:
    """Every document that overlapped a benchmark (dropped or flagged), one JSON line each, in build order:
    the manifest keeps counts only, and a dropped document is otherwise untraceable."""
    with atomic_write(path, "w") as handle:
        for unit, part in zip(units, parts, strict=True):
            for doc_id, names in part["matched_ids"]:
                handle.write(json.dumps({"id": doc_id, "domain": unit.domain, "path": unit.path,
                                         "benchmarks": names, "action": action}) + "\n")  # fmt: skip


def _manifest(config: DataConfig, spec: TokenizerSpec, units: list[Unit], parts: list[dict], index: NgramIndex,
              catalog: _Catalog, dedup: Any, plan: Any, splits: dict, keep: np.ndarray,
              domain_array: CodedDomains) -> dict:  # fmt: skip
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
        mask = domain_array == domain
        stats["exact_duplicates"] = dedup.by_domain.get(domain, {}).get("exact", 0)
        stats["near_duplicates"] = dedup.by_domain.get(domain, {}).get("near", 0)
        stats["heldout_documents"] = int((keep & catalog.heldout & mask).sum())
        stats["train_documents_available"] = int((keep & ~catalog.heldout & mask).sum())
        for key in ("skipped", "filtered", "contaminated"):
            stats[key] = dict(sorted(stats[key].items()))
    unchecked = config.decontam.enabled and not config.decontam.benchmarks
    decontam = {
        "enabled": config.decontam.enabled,
        "ngram": config.decontam.ngram,
        "action": config.decontam.action,
        "benchmarks": {
            name: {**stats, "documents_matched": sum(p["contaminated"].get(name, 0) for p in parts)}
            for name, stats in index.stats.items()
        },
        "flagged_ids": [i for p in parts for i in p["flagged_ids"]][:MAX_FLAGGED_IDS],
        "documents_matched": sum(
            len(p["matched_ids"]) for p in parts
        ),  # unique: once however many benchmarks
        "ids_file": DECONTAM_IDS_NAME if config.decontam.enabled else None,
        "warning": NO_BENCHMARKS_WARNING if unchecked else None,
    }
    skipped_total = Counter()
    for stats in per_domain.values():
        skipped_total.update(stats["skipped"])
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
                **{k: p[k] for k in ("documents", "tokens")},
                "read": p["read"],
                "filtered": p["filtered"],
                "contaminated": p["contaminated"],
            }
            for u, p in zip(units, parts, strict=True)
        ],  # fmt: skip
        "domains": per_domain,
        "medline_updates": {"deleted": catalog.deleted, "superseded": catalog.superseded},
        "dedup": {
            "exact": config.dedup.exact,
            "near": config.dedup.near,
            "threshold": config.dedup.threshold,
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
