"""Hash-partitioned, on-disk deduplication: the merge's memory stays flat however many documents there are.

The shape of datatrove's MinHash stages (signatures -> buckets -> clusters -> filter):

1. PARTITION (one task per range of documents, in parallel): exact dedup writes `(text hash, doc)` records and
   near dedup writes one `(band key, doc)` record per LSH band, each to the bucket file chosen by the hash
   (`exact-TTTT-BBBB.bin`, `near-TTTT-BBBB.bin`). Signatures are read from an on-disk `.npy` file range by
   range (`SignatureFile`); the whole array is never in memory.
2. RESOLVE (one task per bucket, in parallel, independent): sort the bucket's records; equal hashes are exact
   duplicates (all but the lowest document index), equal band keys are LSH candidates, verified against the
   signatures (the band really is equal and the estimated Jaccard similarity reaches the threshold) into
   duplicate pairs `(earlier, later)`.
3. DECIDE (one process, memory per duplicate pair, not per document): `greedy_duplicates`.

Why not a plain union-find over the pairs: the sequential datasketch loop this replaces keeps a document unless
it is similar to an earlier document that was KEPT. With A~B and B~C but not A~C, it keeps A and C and drops B;
a union-find would put all three in one cluster and drop C as well. `greedy_duplicates` reproduces the
sequential rule exactly (one vectorised pass per link of the longest chain), so decisions do not depend on the
number of buckets, tasks or workers, and equal those of `datasketch.MinHashLSH` (tests/data/test_dedup_buckets.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EXACT_RECORD = np.dtype([("hash", "<u8"), ("doc", "<u4")])  # 12 bytes a record, no padding
NEAR_RECORD = np.dtype([("key", "<u8"), ("doc", "<u4")])
RECORDS_PER_BUCKET = 4_000_000  # ~48 MB a bucket file: what one resolve task sorts in memory
DOCS_PER_TASK = 2_000_000  # documents per partition task
CHUNK_DOCS = 1 << 17  # documents read at once inside a task (128 perms: 64 MB of signatures)
PAIRS_PER_BATCH = 1 << 18  # candidate pairs verified at once
MAX_DOCUMENTS = 2**32 - 1  # document indices are stored as uint32
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class SignatureFile:
    """A `[documents, num_perm]` uint32 `.npy` file, read by row ranges and row gathers.

    Rows are read into small buffers instead of mapping the file: pages of a memory map count in the process's
    resident memory once touched, so mapping an 8 GB file and reading it all would show 8 GB of RSS.
    `np.load(path, mmap_mode="r")` opens the same file as an ordinary memory-mapped array.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(handle)
            self.offset = handle.tell()
        if len(shape) != 2 or fortran or dtype != np.dtype("<u4"):
            raise ValueError(f"{self.path}: expected a 2-d C-order uint32 array, got {dtype} {shape}")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * 4

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as an in-memory array."""
        count = (stop - start) * self.shape[1]
        data = np.fromfile(self.path, dtype="<u4", count=count, offset=self.offset + start * self.row_bytes)
        return data.reshape(stop - start, self.shape[1])

    def gather(self, docs: np.ndarray) -> np.ndarray:
        """Rows of the given (sorted, unique) documents, one positioned read each."""
        size = self.row_bytes
        with open(self.path, "rb", buffering=0) as handle:
            fd = handle.fileno()
            data = b"".join(os.pread(fd, size, self.offset + int(d) * size) for d in docs.tolist())
        return np.frombuffer(data, dtype="<u4").reshape(len(docs), self.shape[1])


def write_signature_file(
    path: str | os.PathLike[str], chunks: Iterable[np.ndarray], documents: int, num_perm: int
) -> SignatureFile:
    """Stream `[n_i, num_perm]` chunks (in document order) into one `.npy` file without holding them together."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "wb") as handle:
        header = {"descr": "<u4", "fortran_order": False, "shape": (documents, num_perm)}
        np.lib.format.write_array_header_2_0(handle, header)
        for chunk in chunks:
            if chunk.shape[1:] != (num_perm,):
                raise ValueError(
                    f"{target}: signature chunk of shape {chunk.shape}, expected (n, {num_perm})"
                )
            handle.write(np.ascontiguousarray(chunk, dtype="<u4").tobytes())
            written += chunk.shape[0]
    if written != documents:
        raise ValueError(f"{target}: {written} signature rows written, {documents} documents expected")
    return SignatureFile(target)


# ---------------------------------------------------------------------------------------------------------
# Tasks and the pool that runs them


def run_tasks(function: Callable[[Any], Any], tasks: Iterable[Any], pool: Any) -> list[Any]:
    """Results in task order; in `pool` (anything with `imap`) when given, else in this process."""
    if pool is None:
        return [function(task) for task in tasks]
    return list(pool.imap(function, tasks))


def task_ranges(documents: int, per_task: int = DOCS_PER_TASK, at_least: int = 1) -> list[tuple[int, int]]:
    """Contiguous document ranges, one per partition task (at least `at_least`, to feed every worker)."""
    count = max(at_least, math.ceil(documents / max(per_task, 1)), 1)
    bounds = np.linspace(0, documents, count + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def bucket_count(records: int, per_bucket: int, at_least: int = 1) -> int:
    return max(at_least, math.ceil(records / max(per_bucket, 1)), 1)


def _write_buckets(folder: Path, prefix: str, records: np.ndarray, buckets: np.ndarray, count: int) -> None:
    """Append records to their bucket files (`prefix-BBBB.bin`), keeping their order within each bucket."""
    order = np.argsort(buckets.astype(np.uint16 if count <= 2**16 else np.uint32), kind="stable")  # radix
    records, buckets = records[order], buckets[order]
    edges = np.searchsorted(buckets, np.arange(count + 1))
    for bucket in range(count):
        begin, end = edges[bucket], edges[bucket + 1]
        if end > begin:
            with open(folder / f"{prefix}-{bucket:04d}.bin", "ab") as handle:
                handle.write(records[begin:end].tobytes())


def _read_bucket(folder: Path, kind: str, tasks: int, bucket: int, dtype: np.dtype) -> np.ndarray:
    """One bucket's records from every partition task, in task (so document) order."""
    parts = []
    for task in range(tasks):
        path = folder / f"{kind}-{task:04d}-{bucket:04d}.bin"
        if path.is_file():
            parts.append(np.fromfile(path, dtype=dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _later_duplicates(sorted_keys: np.ndarray) -> np.ndarray:
    """True where a sorted key equals the one before it: every member of a group but the first."""
    repeat = np.zeros(sorted_keys.size, dtype=bool)
    repeat[1:] = sorted_keys[1:] == sorted_keys[:-1]
    return repeat


# ---------------------------------------------------------------------------------------------------------
# Exact duplicates


@dataclass(frozen=True)
class ExactPartition:
    folder: str
    task: int
    start: int
    hashes: np.ndarray  # text hash per document of the range
    candidates: np.ndarray  # bool per document of the range
    buckets: int


def partition_exact(task: ExactPartition) -> int:
    """Write the range's `(hash, doc)` records to their bucket files; returns how many."""
    docs = np.flatnonzero(task.candidates)
    records = np.empty(docs.size, dtype=EXACT_RECORD)
    records["hash"] = task.hashes[docs]
    records["doc"] = docs + task.start
    _write_buckets(
        Path(task.folder), f"exact-{task.task:04d}", records, records["hash"] % task.buckets, task.buckets
    )
    return int(docs.size)


def resolve_exact(args: tuple[str, int, int]) -> np.ndarray:
    """Documents of one bucket whose hash an earlier document already has (sorted uint32 indices)."""
    folder, tasks, bucket = args
    records = _read_bucket(Path(folder), "exact", tasks, bucket, EXACT_RECORD)
    order = np.argsort(records["hash"])
    hashes, docs = records["hash"][order], records["doc"][order]
    starts = ~_later_duplicates(hashes)
    if not docs.size:
        return docs
    lowest = np.minimum.reduceat(docs, np.flatnonzero(starts))  # the kept copy of each hash
    return np.sort(docs[docs != lowest[np.cumsum(starts) - 1]])


# ---------------------------------------------------------------------------------------------------------
# Near duplicates


@dataclass(frozen=True)
class NearPartition:
    folder: str
    task: int
    start: int
    stop: int
    signatures: str  # path of the SignatureFile
    candidates: np.ndarray  # bool per document of the range
    bands: int
    rows_per_band: int
    buckets: int


def band_keys(signatures: np.ndarray, bands: int, rows_per_band: int) -> np.ndarray:
    """`[n, bands]` uint64 keys: equal keys <=> equal band values (up to 64-bit collisions, which resolving
    rules out by comparing the band itself). Each value is multiplied by its own odd 64-bit constant (band
    and row mixed in, so bands never share a key), summed, then mixed: one row-major pass per band."""
    keys = np.empty((signatures.shape[0], bands), dtype=np.uint64)
    for band in range(bands):
        start = band * rows_per_band
        block = signatures[:, start : start + rows_per_band].astype(np.uint64)
        block *= _multipliers(band, rows_per_band)
        keys[:, band] = _mix64(block.sum(axis=1, dtype=np.uint64))
    return keys


def _multipliers(band: int, rows_per_band: int) -> np.ndarray:
    seeds = np.arange(rows_per_band, dtype=np.uint64) + np.uint64(band * 1024 + 1)
    return _mix64(seeds * _GOLDEN) | np.uint64(1)


def _mix64(value: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the key, so `key % buckets` is uniform."""
    value = value ^ (value >> np.uint64(30))
    value *= np.uint64(0xBF58476D1CE4E5B9)
    value ^= value >> np.uint64(27)
    value *= np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


def partition_near(task: NearPartition) -> int:
    """Write one `(band key, doc)` record per band of every candidate in the range; returns how many."""
    signatures = SignatureFile(task.signatures)
    written = 0
    for begin in range(task.start, task.stop, CHUNK_DOCS):
        end = min(begin + CHUNK_DOCS, task.stop)
        local = np.flatnonzero(task.candidates[begin - task.start : end - task.start])
        if local.size == 0:
            continue
        keys = band_keys(signatures.rows(begin, end)[local], task.bands, task.rows_per_band)
        records = np.empty(keys.size, dtype=NEAR_RECORD)
        records["key"] = keys.ravel()
        records["doc"] = np.repeat(local + begin, task.bands)
        _write_buckets(
            Path(task.folder), f"near-{task.task:04d}", records, records["key"] % task.buckets, task.buckets
        )
        written += records.size
    return written


def resolve_near(args: tuple[str, int, int, str, int, int, float]) -> np.ndarray:
    """Verified duplicate pairs `[m, 2]` (earlier, later) among the documents sharing a band key in one bucket."""
    folder, tasks, bucket, signature_path, bands, rows_per_band, threshold = args
    records = _read_bucket(Path(folder), "near", tasks, bucket, NEAR_RECORD)
    order = np.argsort(records["key"])  # order within a group does not matter: pairs are (min, max)
    keys, docs = records["key"][order], records["doc"][order]
    starts = np.flatnonzero(~_later_duplicates(keys))
    sizes = np.diff(np.append(starts, keys.size))
    signatures = SignatureFile(signature_path)
    found = [np.zeros((0, 2), dtype=np.uint32)]
    for first, second in _group_pairs(starts[sizes > 1], sizes[sizes > 1]):
        one, other = docs[first], docs[second]
        pairs = np.stack([np.minimum(one, other), np.maximum(one, other)], axis=1)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        found.append(_verified(pairs, signatures, bands, rows_per_band, threshold))
    return unique_pairs(found)


def unique_pairs(batches: list[np.ndarray]) -> np.ndarray:
    """The distinct (earlier, later) pairs of several batches, sorted (a pair found in several bands once)."""
    pairs = np.concatenate(batches).astype(np.uint64) if batches else np.zeros((0, 2), np.uint64)
    packed = np.unique((pairs[:, 0] << np.uint64(32)) | pairs[:, 1])
    return np.stack([packed >> np.uint64(32), packed & np.uint64(0xFFFFFFFF)], axis=1).astype(np.uint32)


def _group_pairs(starts: np.ndarray, sizes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every (earlier, later) position pair within each group, in batches of about PAIRS_PER_BATCH."""
    for size in np.unique(sizes[sizes <= 64]).tolist():
        first, second = np.triu_indices(size, 1)
        group_starts = starts[sizes == size]
        per_batch = max(1, PAIRS_PER_BATCH // first.size)
        for begin in range(0, group_starts.size, per_batch):
            chunk = group_starts[begin : begin + per_batch, None]
            yield (chunk + first).ravel(), (chunk + second).ravel()
    for start, size in zip(starts[sizes > 64].tolist(), sizes[sizes > 64].tolist(), strict=True):
        yield from _large_group_pairs(start, size)  # quadratic: see docs/data.md "Deduplication at scale"


def _large_group_pairs(start: int, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A large group's pairs a block of rows at a time (never its whole triangle in memory)."""
    rows_per_batch = max(1, PAIRS_PER_BATCH // size)
    for row in range(0, size - 1, rows_per_batch):
        rows = np.arange(row, min(row + rows_per_batch, size - 1))
        counts = size - 1 - rows
        first = np.repeat(rows, counts)
        offsets = np.arange(first.size) - np.repeat(np.cumsum(counts) - counts, counts)
        yield start + first, start + first + 1 + offsets


def _verified(pairs: np.ndarray, signatures: SignatureFile, bands: int, rows_per_band: int,
              threshold: float) -> np.ndarray:  # fmt: skip
    """Pairs that share a whole band and whose estimated Jaccard similarity reaches the threshold."""
    if pairs.size == 0:
        return pairs.astype(np.uint32)
    docs, positions = np.unique(pairs, return_inverse=True)
    rows = signatures.gather(docs)
    positions = positions.reshape(pairs.shape)
    equal = rows[positions[:, 0]] == rows[positions[:, 1]]
    similar = np.count_nonzero(equal, axis=1) / rows.shape[1] >= threshold
    banded = equal[:, : bands * rows_per_band].reshape(-1, bands, rows_per_band).all(axis=2).any(axis=1)
    return pairs[similar & banded].astype(np.uint32)


def greedy_duplicates(pairs: np.ndarray, documents: int) -> np.ndarray:
    """Bool mask of documents similar to an earlier KEPT document, from (earlier, later) duplicate pairs.

    The sequential rule, decided without a loop over documents: a document with no earlier partner is kept;
    one with a kept earlier partner is a duplicate; one whose earlier partners are all duplicates is kept.
    Each pass settles at least the lowest undecided document, and in practice all but chains' tails.
    """
    unknown, kept, dropped = 0, 1, 2
    earlier, later = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    state = np.full(documents, kept, dtype=np.int8)
    pending = np.unique(later)
    state[pending] = unknown
    while pending.size:
        state[later[state[earlier] == kept]] = dropped
        live = (state[earlier] == unknown) & (state[later] == unknown)
        earlier, later = earlier[live], later[live]
        waiting = np.unique(later)
        undecided = pending[state[pending] == unknown]
        state[np.setdiff1d(undecided, waiting, assume_unique=True)] = kept
        pending = waiting
    return state == dropped
