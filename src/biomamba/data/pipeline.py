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
3. SHARDS (parallel): copy the chosen documents' tokens into `train/` (shuffled mixture) and
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
from biomamba.data.dedup import deduplicate, minhash_signatures, text_hash
from biomamba.data.dedup_buckets import SignatureFile, write_signature_file
from biomamba.data.mixture import heldout_hash, plan_mixture
from biomamba.data.shards import FORMAT_VERSION, MANIFEST_NAME, ShardRecord, ShardWriter, token_dtype
from biomamba.data.sources import FileReport, read_source_file, resolve_paths
from biomamba.data.tokenize import TokenizerSpec, tokenizer_spec
from biomamba.errors import DataError
from biomamba.utils.atomic import write_json

log = logging.getLogger(__name__)

WORK_DIR = ".work"
PART_VERSION = 2
MAX_MANIFEST_WARNINGS = 200
MAX_FLAGGED_IDS = 1000
MAX_OPEN_PARTS = 256


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
            builder.add(doc.id, doc.text)
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


class _PartBuilder:
    """Accumulates one unit's documents in batches: filter, decontaminate, tokenize, hash, write."""

    def __init__(self, part_dir: Path, unit: Unit, config: DataConfig, context: PartContext) -> None:
        self.part_dir, self.unit, self.config = part_dir, unit, config
        self.tokenizer = _WORKER["tokenizer"]
        self.index: NgramIndex = _WORKER["index"]
        self.eos = context.tokenizer.eos_token_id
        self.writer = ShardWriter(part_dir, "tokens.bin", token_dtype(context.tokenizer.vocab_size))
        self.batch: list[tuple[str, str]] = []
        self.ids: list[str] = []
        self.lengths: list[np.ndarray] = []
        self.hashes: list[int] = []
        self.heldout: list[bool] = []
        self.signatures: list[np.ndarray] = []
        self.filtered: Counter = Counter()
        self.contaminated: Counter = Counter()
        self.flagged: list[str] = []

    def add(self, doc_id: str, text: str) -> None:
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
                if self.config.decontam.action == "drop":
                    return
                self.flagged.append(doc_id)
        self.batch.append((doc_id, text))
        if len(self.batch) >= self.config.batch_documents:
            self._flush()

    def _flush(self) -> None:
        if not self.batch:
            return
        ids, texts = zip(*self.batch, strict=True)
        self.batch = []
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        arrays = [np.append(np.asarray(e.ids, dtype=np.int64), self.eos) for e in encodings]
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        self.writer.add(np.concatenate(arrays), lengths)
        self.lengths.append(lengths)
        self.ids.extend(ids)
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
            "signatures": np.concatenate(self.signatures)
            if self.signatures
            else np.zeros((0, num_perm), np.uint32),
        }
        np.savez(self.part_dir / "meta.npz", **meta)
        write_json(self.part_dir / "ids.json", {"ids": self.ids, "deleted": report.deleted_ids})
        return {
            "unit": self.unit.name,
            "domain": self.unit.domain,
            "path": self.unit.path,
            "read": report.to_json(),
            "filtered": dict(sorted(self.filtered.items())),
            "contaminated": dict(sorted(self.contaminated.items())),
            "flagged_ids": self.flagged[:MAX_FLAGGED_IDS],
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
    return f"part {summary['unit']}: {summary['documents']} docs, {summary['tokens']} tokens ({state})"


# ---------------------------------------------------------------------------------------------------------
# Phase 2: global decisions


@dataclass
class _Catalog:
    """All parts' per-document metadata, concatenated in canonical order."""

    unit_of_doc: np.ndarray
    local_index: np.ndarray
    domain_of_doc: list[str]
    lengths: np.ndarray
    hashes: np.ndarray
    heldout: np.ndarray
    signatures: np.ndarray | None
    alive: np.ndarray
    deleted: int
    superseded: int


def _load_catalog(units: list[Unit], work_dir: Path, near: bool) -> _Catalog:
    unit_ids, local, domains, lengths, hashes, heldout, sigs = [], [], [], [], [], [], []
    pubmed_events: list[tuple[int, list[str], list[str]]] = []
    offset = 0
    for number, unit in enumerate(units):
        part = work_dir / "parts" / unit.name
        with np.load(part / "meta.npz") as meta:
            count = meta["lengths"].size
            lengths.append(meta["lengths"])
            hashes.append(meta["hashes"])
            heldout.append(meta["heldout"])
            if near:
                sigs.append(meta["signatures"])
        unit_ids.append(np.full(count, number, dtype=np.int32))
        local.append(np.arange(count, dtype=np.int64))
        domains.extend([unit.domain] * count)
        if unit.source.type == "pubmed_xml":
            ids = json.loads((part / "ids.json").read_text(encoding="utf-8"))
            pubmed_events.append((offset, ids["ids"], ids["deleted"]))
        offset += count
    alive = np.ones(offset, dtype=bool)
    deleted, superseded = _apply_medline_updates(pubmed_events, alive)
    return _Catalog(
        np.concatenate(unit_ids) if unit_ids else np.zeros(0, np.int32),
        np.concatenate(local) if local else np.zeros(0, np.int64),
        domains,
        np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
        np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
        np.concatenate(heldout) if heldout else np.zeros(0, bool),
        np.concatenate(sigs) if near and sigs else None,
        alive,
        deleted,
        superseded,
    )


def _apply_medline_updates(
    events: list[tuple[int, list[str], list[str]]], alive: np.ndarray
) -> tuple[int, int]:
    """MEDLINE semantics over files in order: a later record of a PMID replaces the earlier one, and a
    DeleteCitation removes the PMID's records seen so far (in earlier files or earlier in the same file)."""
    latest: dict[str, int] = {}
    deleted = superseded = 0
    for offset, ids, deletions in events:
        for position, pmid in enumerate(ids):
            previous = latest.get(pmid)
            if previous is not None and alive[previous]:
                alive[previous] = False
                superseded += 1
            latest[pmid] = offset + position
        for pmid in deletions:
            previous = latest.pop(pmid, None)
            if previous is not None and alive[previous]:
                alive[previous] = False
                deleted += 1
    return deleted, superseded


# ---------------------------------------------------------------------------------------------------------
# Phase 3: shards


@dataclass(frozen=True)
class ShardJob:
    split_dir: str
    name: str
    units: np.ndarray  # part number per document
    docs: np.ndarray  # local document index per document
    limits: np.ndarray  # tokens to copy per document (less than its length for a cut document)
    plan_hash: str


_PART_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _part_tokens(work_dir: str, unit_name: str, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    key = f"{work_dir}/{unit_name}"
    if key not in _PART_CACHE:
        if len(_PART_CACHE) >= MAX_OPEN_PARTS:  # each memmap holds a file descriptor
            _PART_CACHE.clear()
        path = Path(work_dir) / "parts" / unit_name / "tokens.bin"
        tokens = np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)
        starts = np.fromfile(path.with_suffix(".idx"), dtype="<i8")
        _PART_CACHE[key] = (tokens, np.append(starts, tokens.size))
    return _PART_CACHE[key]


def _write_shard_job(args: tuple[ShardJob, str, str, list[str], str]) -> dict:
    job, output_dir, work_dir, unit_names, dtype_name = args
    dtype = np.dtype(dtype_name)
    relative = f"{job.split_dir}/{job.name}.bin"
    marker = Path(work_dir) / "shards" / job.split_dir / f"{job.name}.json"
    if marker.is_file() and (Path(output_dir) / relative).is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done.get("plan_hash") == job.plan_hash:
            return {**done["record"], "reused": True}
    with ShardWriter(output_dir, relative, dtype) as writer:
        pending: list[np.ndarray] = []
        pending_lengths: list[int] = []
        for unit_number, doc, limit in zip(
            job.units.tolist(), job.docs.tolist(), job.limits.tolist(), strict=True
        ):
            tokens, bounds = _part_tokens(work_dir, unit_names[unit_number], dtype)
            piece = tokens[bounds[doc] : bounds[doc + 1]]
            if limit < piece.size:  # a document cut to its domain's quota still ends with EOS
                piece = np.append(piece[: limit - 1], piece[-1])
            pending.append(piece)
            pending_lengths.append(piece.size)
            if len(pending) >= 4096:
                writer.add(np.concatenate(pending), np.asarray(pending_lengths))
                pending, pending_lengths = [], []
        if pending:
            writer.add(np.concatenate(pending), np.asarray(pending_lengths))
        record = writer.close()
    write_json(marker, {"plan_hash": job.plan_hash, "record": record.to_json()})
    return {**record.to_json(), "reused": False}


def _shard_jobs(split_dir: str, units: np.ndarray, docs: np.ndarray, lengths: np.ndarray, shard_tokens: int,
                salt: str) -> list[ShardJob]:  # fmt: skip
    """Cut an ordered document list into shards of about `shard_tokens` tokens (documents are never split)."""
    jobs = []
    if units.size == 0:
        return jobs
    cumulative = np.cumsum(lengths)
    boundaries = [0]
    target = shard_tokens
    while True:
        cut = int(np.searchsorted(cumulative, target, side="left")) + 1
        if cut >= units.size:
            break
        boundaries.append(cut)
        target = int(cumulative[cut - 1]) + shard_tokens
    boundaries.append(units.size)
    for number, (begin, end) in enumerate(zip(boundaries[:-1], boundaries[1:], strict=True)):
        u, d, n = units[begin:end], docs[begin:end], lengths[begin:end].astype(np.int64)
        digest = hashlib.sha256(salt.encode() + u.tobytes() + d.astype(np.int64).tobytes() + n.tobytes())
        jobs.append(ShardJob(split_dir, f"shard-{number:05d}", u, d, n, digest.hexdigest()))
    return jobs


# ---------------------------------------------------------------------------------------------------------
# Public API


def build_corpus(
    config: DataConfig,
    tokenizer: Any,
    output_dir: str | Path,
    *,
    only_part: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Build (or resume) a corpus directory; return its manifest (also written to `output_dir/manifest.json`).

    `tokenizer`: a tokenizer directory / hub name, a transformers fast tokenizer or a `tokenizers.Tokenizer`.
    `only_part=(i, n)`: build only the parts of every n-th input file starting at i (0-based) and stop; used to
    spread phase 1 over machines (docs/data.md). Returns a summary of those parts instead of a manifest.
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
    index, count = only_part
    if count < 1 or not 0 <= index < count:
        raise DataError(f"--part {index}/{count}: expected 0 <= i < n")
    return units[index::count]


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
    catalog = _load_catalog(units, work_dir, near=False)  # signatures stay on disk: _signature_file
    domains = list(config.sources)
    signatures = _signature_file(units, work_dir, catalog.hashes.size, config) if config.dedup.near else None
    dedup = deduplicate(catalog.hashes, signatures, catalog.domain_of_doc, exact=config.dedup.exact,
                        near=config.dedup.near, threshold=config.dedup.threshold, alive=catalog.alive,
                        work_dir=work_dir / "dedup", pool=pool, workers=config.workers)  # fmt: skip
    if signatures is not None:
        signatures.path.unlink()
    keep = dedup.keep
    domain_array = np.asarray(catalog.domain_of_doc, dtype=object)
    train_mask = keep & ~catalog.heldout
    candidates = {d: np.flatnonzero(train_mask & (domain_array == d)) for d in domains}
    plan = plan_mixture({d: catalog.lengths[c] for d, c in candidates.items()}, config.ratios,
                        config.total_tokens, config.seed)  # fmt: skip
    empty = [np.zeros(0, np.int64)]
    chosen = np.concatenate([candidates[d][p.selected] for d, p in plan.domains.items()] or empty)
    limits = np.concatenate([p.limits for p in plan.domains.values()] or empty)
    shuffle = np.random.default_rng([config.seed, 1_000_003]).permutation(chosen.size)
    chosen, limits = chosen[shuffle], limits[shuffle]
    dtype = token_dtype(spec.vocab_size)
    salt = _settings_hash(config, spec)
    jobs = _shard_jobs("train", catalog.unit_of_doc[chosen], catalog.local_index[chosen], limits,
                       config.shard_tokens, salt)  # fmt: skip
    for domain in domains:
        held = np.flatnonzero(keep & catalog.heldout & (domain_array == domain))
        jobs += _shard_jobs(f"heldout/{domain}", catalog.unit_of_doc[held], catalog.local_index[held],
                            catalog.lengths[held], config.shard_tokens, salt)  # fmt: skip
    records = _run_shard_jobs(jobs, output, work_dir, [u.name for u in units], dtype, pool)
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
    _remove_stale_shards(output, splits)
    say(f"wrote {len(records)} shards ({sum(not r['reused'] for r in records)} new)")
    return _manifest(config, spec, units, parts, index, catalog, dedup, plan, splits, keep, domain_array)


def _signature_file(units: list[Unit], work_dir: Path, documents: int, config: DataConfig) -> SignatureFile:
    """Every part's MinHash signatures, in canonical order, streamed into one on-disk file (one part in RAM)."""

    def chunks() -> Iterator[np.ndarray]:
        for unit in units:
            with np.load(work_dir / "parts" / unit.name / "meta.npz") as meta:
                yield meta["signatures"]

    return write_signature_file(work_dir / "signatures.npy", chunks(), documents, config.dedup.num_perm)


def _run_shard_jobs(jobs: list[ShardJob], output: Path, work_dir: Path, unit_names: list[str], dtype: np.dtype,
                    pool: Any) -> list[dict]:  # fmt: skip
    args = [(job, str(output), str(work_dir), unit_names, dtype.str) for job in jobs]
    if pool is None or len(jobs) <= 1:
        records = [_write_shard_job(a) for a in args]
    else:
        records = pool.map(_write_shard_job, args, chunksize=1)
    _PART_CACHE.clear()
    return records


def _remove_stale_shards(output: Path, splits: dict[str, dict]) -> None:
    """Shards left by an earlier, larger build would otherwise sit next to the new ones, unlisted."""
    listed = {shard["path"] for split in splits.values() for shard in split["shards"]}
    for folder in (output / "train", output / "heldout"):
        if not folder.is_dir():
            continue
        for path in folder.rglob("shard-*.bin"):
            relative = path.relative_to(output).as_posix()
            if relative not in listed:
                path.unlink(missing_ok=True)
                path.with_suffix(".idx").unlink(missing_ok=True)


def _manifest(config: DataConfig, spec: TokenizerSpec, units: list[Unit], parts: list[dict], index: NgramIndex,
              catalog: _Catalog, dedup: Any, plan: Any, splits: dict, keep: np.ndarray,
              domain_array: np.ndarray) -> dict:  # fmt: skip
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
        "mixture": plan.report(),
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
        for doc in read_source_file(unit.path, unit.source, FileReport(unit.path)):
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
