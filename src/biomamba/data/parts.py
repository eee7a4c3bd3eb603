"""Phase 1 of the corpus build: one part per input file, in parallel, each resumable on its own.

A unit (one input file of one source of one domain) is read, normalised, filtered, checked against the
benchmarks and tokenized in a worker; its part under `CORPUS/.work/parts/<unit>/` holds the tokens (shard
format), per-document metadata (`meta.npz`: lengths, exact-dup hashes, held-out flags), MinHash signatures
(`signatures.npy`), record identity (`identity.npz`, PubMed/PMC sources) and the ids, then `done.json` last.
A re-run skips every unit whose `done.json` matches its input (path, size, mtime) and settings, so an
interrupted build resumes where it stopped and parts built on other machines can be copied in (docs/data.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.data.clean import filter_reason, normalize_text
from biomamba.data.config import DataConfig, SourceConfig
from biomamba.data.decontam import NgramIndex
from biomamba.data.dedup import minhash_signatures, text_hash
from biomamba.data.mixture import heldout_hash
from biomamba.data.readers import FileReport, damaged_line, get_reader, read_source_file, resolve_paths
from biomamba.data.records import IDENTITY_NAME, save_identity
from biomamba.data.shards import ShardWriter, token_dtype
from biomamba.data.tokenize import TokenizerSpec
from biomamba.errors import DataError
from biomamba.utils.atomic import write_json

WORK_DIR = ".work"
PART_VERSION = 4  # 4: signatures in their own signatures.npy (read in place by the dedup)
MAX_FLAGGED_IDS = 1000
SIGNATURES_NAME = "signatures.npy"  # per part: [documents, num_perm] uint32 MinHash signatures


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


@dataclass(frozen=True)
class Build:
    """What every step of one build reads: its settings, tokenizer, units (in canonical order) and folders."""

    config: DataConfig
    spec: TokenizerSpec
    units: list[Unit]
    settings_hash: str
    output: Path

    @property
    def work_dir(self) -> Path:
        return self.output / WORK_DIR

    def part_dir(self, unit: Unit) -> Path:
        return self.work_dir / "parts" / unit.name

    def fingerprint(self, *settings: Any) -> str:
        """What a step's output depends on: every part (input identity and settings), plus `settings`."""
        units = [unit_fingerprint(u, self.settings_hash) for u in self.units]
        return hashlib.sha256(
            json.dumps([self.settings_hash, *settings, units], sort_keys=True).encode()
        ).hexdigest()


@dataclass(frozen=True)
class PartContext:
    """Settings shipped to each worker (picklable; the tokenizer travels as its JSON)."""

    work_dir: str
    tokenizer: TokenizerSpec
    config_json: str
    index: NgramIndex  # the benchmarks' n-gram hashes
    settings_hash: str


_WORKER: dict[str, Any] = {}


def init_worker(context: PartContext, in_pool: bool = True) -> None:
    if in_pool:  # one Rust thread per worker process; in-process (workers=1) the tokenizer may use all cores
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER["context"] = context
    _WORKER["tokenizer"] = context.tokenizer.build()
    _WORKER["config"] = DataConfig.model_validate_json(context.config_json)


def input_identity(unit: Unit) -> dict[str, int | None]:
    """Size and modification time (ns) of a unit's input file; None for a hub dataset or a folder.

    A file edited in place to the same size still gets a new mtime, so its part is rebuilt. Copies that keep
    mtimes (`rsync -a`, `cp -p`) keep their parts valid on another machine (docs/data.md).
    """
    path = Path(unit.path)
    if not path.is_file():
        return {"size": None, "mtime_ns": None}
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def unit_fingerprint(unit: Unit, settings_hash: str, identity: dict[str, int | None] | None = None) -> str:
    """Input identity (path, size, mtime_ns) plus the settings that shape a part's content."""
    identity = identity if identity is not None else input_identity(unit)
    payload = json.dumps([PART_VERSION, unit.name, unit.path, identity["size"], identity["mtime_ns"],
                          settings_hash, unit.source.model_dump()])  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()


def part_done(part_dir: Path, fingerprint: str) -> dict | None:
    done = read_json(part_dir / "done.json")
    return done if done is not None and done.get("fingerprint") == fingerprint else None


def read_json(path: Path) -> dict | None:
    """A marker or manifest written by an earlier run; None if absent or unreadable (then it is redone)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None


def build_part(unit: Unit) -> dict:
    """Phase 1 for one unit (runs in a worker). Returns the part's summary (also saved as done.json)."""
    context: PartContext = _WORKER["context"]
    config: DataConfig = _WORKER["config"]
    part_dir = Path(context.work_dir) / "parts" / unit.name
    identity = input_identity(unit)
    fingerprint = unit_fingerprint(unit, context.settings_hash, identity)
    done = part_done(part_dir, fingerprint)
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
    summary.update(fingerprint=fingerprint, input=identity, seconds=round(time.perf_counter() - started, 3),
                   resumed=False)  # fmt: skip
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
        self.index = context.index
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
        if self.config.decontam.enabled and (hits := self.index.matches(text)):
            self.contaminated.update(hits)  # once per benchmark the document overlaps
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
        self.heldout.extend(heldout_hash(self.unit.domain, i) < self.config.heldout_fraction for i in ids)
        dedup = self.config.dedup
        if dedup.near:
            self.signatures.append(minhash_signatures(texts, dedup.num_perm, dedup.shingle_words))

    def finish(self, report: FileReport) -> dict:
        self._flush()
        record = self.writer.close()
        num_perm = self.config.dedup.num_perm if self.config.dedup.near else 0
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        np.savez(self.part_dir / "meta.npz", lengths=lengths, hashes=np.asarray(self.hashes, dtype=np.uint64),
                 heldout=np.asarray(self.heldout, dtype=bool))  # fmt: skip
        if num_perm:
            signatures = np.concatenate(self.signatures) if self.signatures else np.zeros((0, num_perm))
            np.save(self.part_dir / SIGNATURES_NAME, signatures.astype("<u4"))
        write_json(self.part_dir / "ids.json", {"ids": self.ids, "deleted": report.deleted_ids})
        namespace = get_reader(self.unit.source.type).identity
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


def run_parts(
    units: list[Unit], context: PartContext, pool: Any, progress: Callable[[str], None]
) -> list[dict]:
    """Build every unit's part, in the worker pool when there is one (spawned processes: safe with Rust threads)."""
    if pool is None or len(units) <= 1:
        init_worker(context, in_pool=False)
        summaries = map(build_part, units)  # lazily: each part's line is printed as it is built
    else:
        summaries = pool.imap_unordered(build_part, units)
    results: dict[str, dict] = {}
    for summary in summaries:
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


def select_units(units: list[Unit], only_part: tuple[int, int]) -> list[Unit]:
    index, count = checked_part("--part", only_part)
    return units[index::count]


def checked_part(flag: str, part: tuple[int, int]) -> tuple[int, int]:
    index, count = part
    if count < 1 or not 0 <= index < count:
        raise DataError(f"{flag} {index}/{count}: expected 0 <= i < n")
    return index, count
