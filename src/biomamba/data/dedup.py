"""Exact and near (MinHash LSH) deduplication.

Signatures are computed in the workers, next to tokenisation (`text_hash`, `minhash_signatures`), and the
global decision is taken once over all of them (`deduplicate`), so deduplication spans files, domains and
machines: the first occurrence in a deterministic order (domain, file, position) is kept. Near duplicates use
MinHash LSH over word shingles with datasketch's bands (`lsh_bands`); an LSH candidate is only counted as a
duplicate when the signatures' estimated Jaccard similarity reaches the threshold (LSH alone has false
positives), and only against an earlier document that was kept, as datasketch's sequential insert/query loop
decides. The work is hash-partitioned into bucket files on disk and resolved bucket by bucket, in parallel
(biomamba.data.dedup_buckets), so memory does not grow with the corpus: docs/data.md "Deduplication at scale".
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.data import dedup_buckets as buckets
from biomamba.data.clean import words_for_matching
from biomamba.data.dedup_buckets import SignatureFile, write_signature_file
from biomamba.utils.atomic import atomic_write

MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"  # datasketch >= 2: 32-bit hash values, stored as uint32


def text_hash(text: str) -> int:
    """64-bit hash of the case- and whitespace-normalised text: equal hashes are exact duplicates."""
    canonical = " ".join(text.lower().split()).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "little")


def _shingles(text: str, size: int) -> list[bytes]:
    words = words_for_matching(text)
    if len(words) <= size:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[i : i + size]).encode("utf-8") for i in range(len(words) - size + 1)]


def minhash_signatures(texts: Sequence[str], num_perm: int, shingle_words: int) -> np.ndarray:
    """MinHash signatures (uint32, [len(texts), num_perm]) with one shared permutation set (fast bulk path)."""
    from datasketch import MinHash

    if not texts:
        return np.zeros((0, num_perm), dtype=np.uint32)
    hashes = MinHash.bulk(
        [_shingles(t, shingle_words) for t in texts],
        num_perm=num_perm,
        seed=MINHASH_SEED,
        scheme=MINHASH_SCHEME,
    )
    return np.stack([h.hashvalues for h in hashes]).astype(np.uint32)


class CodedDomains(Sequence[str]):
    """The domain of each document as one byte, not a Python string reference (8 bytes, 288 MB at 36M).

    Reads like the list of names it replaces (`len`, `[i]`), and `== name` gives the bool mask a numpy
    array of names would (what per-domain counts and masks need)."""

    def __init__(self, codes: np.ndarray, names: Sequence[str]) -> None:
        self.codes, self.names = np.asarray(codes, dtype=np.uint8), tuple(names)

    @classmethod
    def of(cls, domains: Sequence[str]) -> CodedDomains:
        """`domains` coded (names in order of first appearance), so a plain list of names counts alike."""
        if isinstance(domains, CodedDomains):
            return domains
        code = {name: number for number, name in enumerate(dict.fromkeys(domains))}
        return cls(np.fromiter(map(code.__getitem__, domains), np.uint8, len(domains)), list(code))

    def __len__(self) -> int:
        return self.codes.size

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return self.names[self.codes[index]]

    def __eq__(self, name: object) -> np.ndarray:  # type: ignore[override]
        return self.codes == self.names.index(name) if name in self.names else np.zeros(self.codes.size, bool)

    __hash__ = None  # type: ignore[assignment]

    def counts(self, docs: np.ndarray) -> dict[str, int]:
        """How many of the given documents each domain has."""
        found = np.bincount(self.codes[docs], minlength=len(self.names))
        return {name: int(found[i]) for i, name in enumerate(self.names)}


@dataclass
class DedupResult:
    """Which documents to keep, and why the others went."""

    keep: np.ndarray  # bool per document
    exact_duplicates: int = 0
    near_duplicates: int = 0
    by_domain: dict[str, dict[str, int]] = field(default_factory=dict)


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band): datasketch's own choice for this threshold, so candidates match MinHashLSH's."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


@dataclass(frozen=True)
class DedupFindings:
    """What resolving (some of) the buckets found; the findings of all parts together decide (`decide`)."""

    exact: np.ndarray  # int64 documents whose text hash an earlier candidate has
    copies: np.ndarray  # int64 documents whose whole signature an earlier candidate has
    pairs: np.ndarray  # uint32 [m, 2] verified near pairs (earlier, later) among the other documents

    def save(self, path: Path, fingerprint: str) -> None:
        """One `.npz`, written atomically: a findings file is either complete or absent."""
        with atomic_write(path) as handle:
            np.savez(handle, exact=self.exact, copies=self.copies, pairs=self.pairs,
                     fingerprint=np.asarray(fingerprint))  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> tuple[DedupFindings, str]:
        with np.load(path) as data:
            return cls(data["exact"], data["copies"], data["pairs"]), str(data["fingerprint"])

    @classmethod
    def union(cls, parts: Sequence[DedupFindings]) -> DedupFindings:
        """The findings of disjoint bucket sets together (a pair found in several parts counted once)."""
        empty = DedupFindings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2), np.uint32))
        parts = list(parts) or [empty]
        return cls(np.unique(np.concatenate([p.exact for p in parts])).astype(np.int64),
                   np.unique(np.concatenate([p.copies for p in parts])).astype(np.int64),
                   buckets.unique_pairs([p.pairs for p in parts]))  # fmt: skip


def find_duplicates(
    hashes: np.ndarray,
    signatures: np.ndarray | SignatureFile | None,
    *,
    exact: bool,
    near: bool,
    threshold: float,
    alive: np.ndarray | None = None,
    part: tuple[int, int] = (0, 1),
    work_dir: str | Path | None = None,
    pool: Any = None,
    workers: int = 1,
    records_per_bucket: int = buckets.RECORDS_PER_BUCKET,
    docs_per_task: int = buckets.DOCS_PER_TASK,
) -> DedupFindings:
    """Resolve the buckets that `part=(i, n)` owns (all of them for (0, 1)): exact and near candidates.

    Exact and near duplicates are resolved independently, over every `alive` document (a document that
    is an exact copy has its earlier twin's signature, so it is a near copy as well and changes no other
    decision), so the n parts need no step between them: docs/data.md "Deduplication at scale".
    `signatures`: `[documents, num_perm]` uint32, in memory or (at scale) a `SignatureFile` on disk.
    `work_dir`: scratch folder for the bucket files (emptied first, removed after; a temporary folder if None).
    `pool` (anything with `imap`, e.g. the build's worker pool) or `workers` > 1 (a pool of its own) resolve
    buckets in parallel; the findings do not depend on workers or tasks.
    """
    count = len(hashes)
    if count > buckets.MAX_DOCUMENTS:
        raise ValueError(f"{count} documents: deduplication indexes at most {buckets.MAX_DOCUMENTS}")
    candidates = np.ones(count, dtype=bool) if alive is None else np.asarray(alive, dtype=bool)
    found = DedupFindings.union([])
    sizes = {"records_per_bucket": records_per_bucket, "docs_per_task": docs_per_task, "part": part}
    with (
        buckets.scratch_folder(work_dir, "biomamba-dedup-") as folder,
        _runner(pool, workers) as (runner, parallel),
    ):
        exact_docs, copies, pairs = found.exact, found.copies, found.pairs
        if exact and count:
            exact_docs = _exact_duplicates(hashes, candidates, folder, runner, parallel, **sizes)
        if near and signatures is not None and count and candidates.any():
            source = signatures if isinstance(signatures, SignatureFile) else _to_file(signatures, folder)
            copies, pairs = _near_candidates(source, candidates, threshold, folder, runner, parallel, **sizes)
    return DedupFindings(exact_docs, copies, pairs)


def decide(findings: DedupFindings, domains: Sequence[str], alive: np.ndarray | None = None) -> DedupResult:
    """Keep the first occurrence of each exact and near duplicate group (in document order), as the
    sequential datasketch loop does: near duplicates only of an earlier document that was kept."""
    coded = CodedDomains.of(domains)
    count = len(coded)
    keep = np.ones(count, dtype=bool) if alive is None else np.asarray(alive, dtype=bool).copy()
    keep[findings.exact] = False
    near = buckets.greedy_duplicates(findings.pairs, count, findings.copies) & keep
    near_docs = np.flatnonzero(near)
    keep[near_docs] = False
    exact_counts, near_counts = coded.counts(findings.exact), coded.counts(near_docs)
    by_domain = {d: {"exact": exact_counts[d], "near": near_counts[d]} for d in coded.names}
    return DedupResult(keep, int(findings.exact.size), int(near_docs.size), by_domain)


def deduplicate(
    hashes: np.ndarray,
    signatures: np.ndarray | SignatureFile | None,
    domains: Sequence[str],
    *,
    alive: np.ndarray | None = None,
    **options: Any,
) -> DedupResult:
    """`find_duplicates` over every bucket in this process, then `decide` (options: find_duplicates')."""
    return decide(find_duplicates(hashes, signatures, alive=alive, **options), domains, alive)


def _exact_duplicates(hashes: np.ndarray, candidates: np.ndarray, folder: Path, runner: Any, parallel: int, *,
                      records_per_bucket: int, docs_per_task: int, part: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """Indices of candidates whose text hash an earlier candidate has: partition by hash, sort each bucket."""
    ranges = buckets.task_ranges(candidates.size, docs_per_task, parallel)
    plan = buckets.Buckets.for_records(int(candidates.sum()), records_per_bucket, *part)
    partitions = (buckets.ExactPartition(str(folder), task, start, np.asarray(hashes[start:stop], np.uint64),
                                         candidates[start:stop], plan)
                  for task, (start, stop) in enumerate(ranges))  # fmt: skip
    buckets.run_tasks(buckets.partition_exact, partitions, runner)
    found = buckets.run_tasks(
        buckets.resolve_exact, ((str(folder), len(ranges), b) for b in range(plan.owned)), runner
    )
    return np.sort(np.concatenate(found)).astype(np.int64)


def _near_candidates(signatures: SignatureFile, candidates: np.ndarray, threshold: float, folder: Path,
                     runner: Any, parallel: int, *, records_per_bucket: int, docs_per_task: int,
                     part: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(copies, verified pairs) of the owned buckets: band keys -> buckets -> sorted groups -> checks."""
    bands, rows = lsh_bands(threshold, signatures.shape[1])
    ranges = buckets.task_ranges(candidates.size, docs_per_task, parallel)
    plan = buckets.Buckets.for_records(int(candidates.sum()) * bands, records_per_bucket, *part)
    partitions = (buckets.NearPartition(str(folder), task, start, stop, signatures, candidates[start:stop],
                                        bands, rows, plan)
                  for task, (start, stop) in enumerate(ranges))  # fmt: skip
    buckets.run_tasks(buckets.partition_near, partitions, runner)
    resolve = (buckets.NearResolve(str(folder), len(ranges), b, signatures, bands, rows, threshold)
               for b in range(plan.owned))  # fmt: skip
    found = buckets.run_tasks(buckets.resolve_near, resolve, runner)
    copies = np.unique(np.concatenate([c for c, _ in found] or [np.zeros(0, np.uint32)])).astype(np.int64)
    return copies, buckets.unique_pairs([p for _, p in found])


def _to_file(signatures: np.ndarray, folder: Path) -> SignatureFile:
    rows = np.asarray(signatures)
    step = buckets.CHUNK_DOCS
    chunks = (rows[i : i + step] for i in range(0, rows.shape[0], step))
    return write_signature_file(folder / "signatures.npy", chunks, rows.shape[0], rows.shape[1])


@contextlib.contextmanager
def _runner(pool: Any, workers: int) -> Iterator[tuple[Any, int]]:
    """(pool or None, parallelism): the caller's pool, a spawned one of our own, or this process."""
    with contextlib.nullcontext(pool) if pool is not None else buckets.spawned_pool(workers) as runner:
        yield runner, max(workers, 1)
