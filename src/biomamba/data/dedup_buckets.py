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

import contextlib
import math
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EXACT_RECORD = np.dtype([("hash", "<u8"), ("doc", "<u4")])  # 12 bytes a record, no padding
NEAR_RECORD = np.dtype([("key", "<u8"), ("doc", "<u4"), ("digest", "<u8")])  # digest: of the whole signature
RECORDS_PER_BUCKET = 4_000_000  # ~48 MB a bucket file: what one resolve task sorts in memory
DOCS_PER_TASK = 2_000_000  # documents per partition task
CHUNK_DOCS = 1 << 17  # documents read at once inside a task (128 perms: 64 MB of signatures)
PAIRS_PER_BATCH = 1 << 18  # candidate pairs verified at once
MAX_DOCUMENTS = 2**32 - 1  # document indices are stored as uint32
MIN_BUCKETS_PER_PART = 16  # so that every worker of a small build still gets buckets to resolve
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class SignatureFile:
    """`[documents, num_perm]` uint32 signatures stored as one or several `.npy` files (one per build part, in
    document order), read by row ranges and row gathers as if they were one array.

    Rows are read into small buffers instead of mapping the files: pages of a memory map count in the
    process's resident memory once touched, so mapping 8 GB of signatures and reading them all would show
    8 GB of RSS. Several files, not one concatenated copy: the parts' own files are read where they lie, so
    resolve tasks on several machines need no shared 18 GB copy. `np.load(path, mmap_mode="r")` opens each
    file as an ordinary memory-mapped array.
    """

    def __init__(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> None:
        many = not isinstance(paths, (str, os.PathLike))
        self.paths = [Path(p) for p in paths] if many else [Path(paths)]  # type: ignore[union-attr]
        if not self.paths:
            raise ValueError("SignatureFile: no files")
        counts, widths, self.offsets = [], set(), []
        for path in self.paths:
            rows, width, offset = _npy_header(path)
            counts.append(rows)
            widths.add(width)
            self.offsets.append(offset)
        if len(widths) != 1:
            raise ValueError(f"{self.paths[0].parent}: signature files of different widths {sorted(widths)}")
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # first row of each file
        self.shape: tuple[int, int] = (int(self.starts[-1]), widths.pop())

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * 4

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as an in-memory array."""
        pieces = []
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for number in range(max(first, 0), len(self.paths)):
            begin, end = max(start, self.starts[number]), min(stop, self.starts[number + 1])
            if begin >= stop:
                break
            if end > begin:
                offset = self.offsets[number] + int(begin - self.starts[number]) * self.row_bytes
                count = int(end - begin) * self.shape[1]
                pieces.append(np.fromfile(self.paths[number], dtype="<u4", count=count, offset=offset))
        data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces or [np.zeros(0, "<u4")])
        return data.reshape(stop - start, self.shape[1])

    def gather(self, docs: np.ndarray) -> np.ndarray:
        """Rows of the given (sorted, unique) documents, one positioned read each."""
        size = self.row_bytes
        docs = np.asarray(docs, dtype=np.int64)
        files = np.searchsorted(self.starts, docs, side="right") - 1
        chunks = []
        for number in np.unique(files).tolist():
            mine = docs[files == number] - self.starts[number]
            with open(self.paths[number], "rb", buffering=0) as handle:
                fd, offset = handle.fileno(), self.offsets[number]
                chunks.append(b"".join(os.pread(fd, size, offset + int(d) * size) for d in mine.tolist()))
        return np.frombuffer(b"".join(chunks), dtype="<u4").reshape(len(docs), self.shape[1])


def _npy_header(path: Path) -> tuple[int, int, int]:
    """(rows, columns, data offset) of a 2-d C-order uint32 `.npy` file."""
    with open(path, "rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(handle)
        offset = handle.tell()
    if len(shape) != 2 or fortran or dtype != np.dtype("<u4"):
        raise ValueError(f"{path}: expected a 2-d C-order uint32 array, got {dtype} {shape}")
    return int(shape[0]), int(shape[1]), offset


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
# Tasks, buckets and which part of the buckets a process resolves


@contextlib.contextmanager
def spawned_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()
) -> Iterator[Any]:
    """A pool of `workers` spawned processes (forking a process that runs Rust or BLAS threads is unsafe),
    or None for one worker: the work then runs in this process (`run_tasks`)."""
    if workers <= 1:
        yield None
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer, initargs) as pool:
        yield pool


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


@dataclass(frozen=True)
class Buckets:
    """`count` buckets of a key space (bucket = key % count), of which this process owns every `parts`-th one
    starting at `part` (bucket b belongs to part b % parts): each part resolves its own buckets only.

    `count` depends only on the number of records and `parts`, never on workers, so that processes on
    different machines (with different --workers) agree on which part owns which key."""

    count: int
    part: int = 0
    parts: int = 1

    @classmethod
    def for_records(cls, records: int, per_bucket: int, part: int = 0, parts: int = 1,
                    min_buckets: int = MIN_BUCKETS_PER_PART) -> Buckets:  # fmt: skip
        return cls(max(parts * min_buckets, math.ceil(records / max(per_bucket, 1)), 1), part, parts)

    @property
    def owned(self) -> int:
        """How many buckets this part owns (local numbers 0..owned-1)."""
        return len(range(self.part, self.count, self.parts))

    def local(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of the keys this part owns, their local bucket numbers)."""
        bucket = keys % np.uint64(self.count)
        if self.parts == 1:
            return np.ones(keys.size, dtype=bool), bucket
        mine = bucket % np.uint64(self.parts) == self.part
        return mine, bucket[mine] // np.uint64(self.parts)


def write_buckets(folder: Path, prefix: str, records: np.ndarray, keys: np.ndarray, plan: Buckets) -> None:
    """Append the owned records to their bucket files (`prefix-BBBB.bin`), in order within each bucket."""
    mine, buckets = plan.local(keys)
    records = records if plan.parts == 1 else records[mine]
    buckets = buckets.astype(np.uint16 if plan.owned <= 2**16 else np.uint32)  # a radix sort, small keys
    order = np.argsort(buckets, kind="stable")
    records, buckets = records[order], buckets[order]
    edges = np.searchsorted(buckets, np.arange(plan.owned + 1, dtype=buckets.dtype))
    for bucket in range(plan.owned):
        begin, end = edges[bucket], edges[bucket + 1]
        if end > begin:
            with open(folder / f"{prefix}-{bucket:04d}.bin", "ab") as handle:
                handle.write(records[begin:end].tobytes())


@contextlib.contextmanager
def scratch_folder(work_dir: str | os.PathLike[str] | None, prefix: str) -> Iterator[Path]:
    """An empty folder for bucket files, removed afterwards (also when the step fails or is interrupted);
    a temporary folder when `work_dir` is None. A folder left by a killed run is emptied first."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as folder:
            yield Path(folder)
        return
    folder = Path(work_dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_bucket(folder: Path, kind: str, tasks: int, bucket: int, dtype: np.dtype) -> np.ndarray:
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
    buckets: Buckets


def partition_exact(task: ExactPartition) -> int:
    """Write the range's owned `(hash, doc)` records to their bucket files; returns how many it read."""
    docs = np.flatnonzero(task.candidates)
    records = np.empty(docs.size, dtype=EXACT_RECORD)
    records["hash"] = task.hashes[docs]
    records["doc"] = docs + task.start
    write_buckets(Path(task.folder), f"exact-{task.task:04d}", records, records["hash"], task.buckets)
    return int(docs.size)


def resolve_exact(args: tuple[str, int, int]) -> np.ndarray:
    """Documents of one bucket whose hash an earlier document already has (sorted uint32 indices)."""
    folder, tasks, bucket = args
    records = read_bucket(Path(folder), "exact", tasks, bucket, EXACT_RECORD)
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
    signatures: SignatureFile
    candidates: np.ndarray  # bool per document of the range
    bands: int
    rows_per_band: int
    buckets: Buckets


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


def signature_digests(signatures: np.ndarray, keys: np.ndarray, banded: int) -> np.ndarray:
    """A uint64 digest of each whole signature (equal signatures, equal digests), from its band keys and the
    values no band covers: the band keys are computed anyway, so this costs one pass over a few columns."""
    tail = signatures[:, banded:]
    rest = band_keys(tail, 1, tail.shape[1])[:, 0] if tail.shape[1] else np.zeros(len(keys), np.uint64)
    mixed = keys * _multipliers(4095, keys.shape[1])  # a band number no real band has: its own constants
    return _mix64(mixed.sum(axis=1, dtype=np.uint64) + rest)


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
    """Write the owned `(band key, doc)` records of every candidate in the range; returns how many bands."""
    written = 0
    for begin in range(task.start, task.stop, CHUNK_DOCS):
        end = min(begin + CHUNK_DOCS, task.stop)
        local = np.flatnonzero(task.candidates[begin - task.start : end - task.start])
        if local.size == 0:
            continue
        rows = task.signatures.rows(begin, end)[local]
        keys = band_keys(rows, task.bands, task.rows_per_band)
        records = np.empty(keys.size, dtype=NEAR_RECORD)
        records["key"] = keys.ravel()
        records["doc"] = np.repeat(local + begin, task.bands)
        records["digest"] = np.repeat(
            signature_digests(rows, keys, task.bands * task.rows_per_band), task.bands
        )
        write_buckets(Path(task.folder), f"near-{task.task:04d}", records, records["key"], task.buckets)
        written += records.size
    return written


@dataclass(frozen=True)
class NearResolve:
    folder: str
    tasks: int
    bucket: int
    signatures: SignatureFile
    bands: int
    rows_per_band: int
    threshold: float


def resolve_near(task: NearResolve) -> tuple[np.ndarray, np.ndarray]:
    """One bucket's (copies, pairs): documents whose whole signature equals an earlier candidate's, and the
    verified duplicate pairs `[m, 2]` (earlier, later) among the other documents sharing a band key.

    Copies are settled without pairs (`greedy_duplicates`' `copies`): a document copied 10,000 times costs
    a sort of its group and one check per copy, not the 5e7 checks of all its pairs."""
    records = read_bucket(Path(task.folder), "near", task.tasks, task.bucket, NEAR_RECORD)
    records = records[np.argsort(records["key"])]
    keys = records["key"]
    records = records[_later_duplicates(keys[::-1])[::-1] | _later_duplicates(keys)]  # groups of 2 or more
    records = records[np.lexsort((records["doc"], records["digest"], records["key"]))]
    keys, docs, digests = records["key"], records["doc"], records["digest"]
    once = ~(_later_duplicates(keys) & _later_duplicates(docs))  # one document twice under a key: a collision
    keys, docs, digests = keys[once], docs[once], digests[once]
    copies = _signature_copies(keys, docs, digests, task.signatures)
    if copies.size:
        rest = ~np.isin(docs, copies)
        keys, docs = keys[rest], docs[rest]
    starts = np.flatnonzero(~_later_duplicates(keys))
    sizes = np.diff(np.append(starts, keys.size))
    found = [np.zeros((0, 2), dtype=np.uint32)]
    for first, second in _group_pairs(starts[sizes > 1], sizes[sizes > 1]):
        one, other = docs[first], docs[second]
        pairs = np.stack([np.minimum(one, other), np.maximum(one, other)], axis=1)
        found.append(_verified(pairs, task.signatures, task.bands, task.rows_per_band, task.threshold))
    return copies, unique_pairs(found)


def _signature_copies(
    keys: np.ndarray, docs: np.ndarray, digests: np.ndarray, signatures: SignatureFile
) -> np.ndarray:
    """Sorted documents whose whole signature equals that of an earlier document of one of their groups
    (records sorted by key, digest, document).

    Such a copy is a duplicate whatever else is decided (its earlier twin is either kept, or dropped for a
    kept partner that the copy shares, having the same signature), and it never drops anything itself, so
    it needs no pairs. Candidates share a group and the digest of the whole signature (computed while
    partitioning, so finding them reads no signature); only they are then checked value by value."""
    same = _later_duplicates(keys) & _later_duplicates(digests)
    if not same.any():
        return np.zeros(0, np.uint32)
    head = np.maximum.accumulate(np.where(same, 0, np.arange(keys.size)))  # first of each (key, digest)
    candidates = np.unique(np.stack([docs[head[same]], docs[same]], axis=1), axis=0)
    equal = _verified(candidates, signatures, 1, signatures.shape[1], 1.0)
    return np.unique(equal[:, 1]).astype(np.uint32)


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
        yield from _large_group_pairs(start, size)  # distinct near copies: see docs/data.md


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


def greedy_duplicates(pairs: np.ndarray, documents: int, copies: np.ndarray | None = None) -> np.ndarray:
    """Bool mask of documents similar to an earlier KEPT document, from (earlier, later) duplicate pairs and
    `copies` (documents known to be duplicates already: `_signature_copies`).

    The sequential rule, decided without a loop over documents: a document with no earlier partner is kept;
    one with a kept earlier partner is a duplicate; one whose earlier partners are all duplicates is kept.
    Each pass settles at least the lowest undecided document, and in practice all but chains' tails.
    """
    unknown, kept, dropped = 0, 1, 2
    earlier, later = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    state = np.full(documents, kept, dtype=np.int8)
    state[later] = unknown
    if copies is not None:
        state[np.asarray(copies, dtype=np.int64)] = dropped
    live = state[later] == unknown
    earlier, later = earlier[live], later[live]
    pending = np.unique(later)
    while pending.size:
        state[later[state[earlier] == kept]] = dropped
        live = (state[earlier] == unknown) & (state[later] == unknown)
        earlier, later = earlier[live], later[live]
        waiting = np.unique(later)
        undecided = pending[state[pending] == unknown]
        state[np.setdiff1d(undecided, waiting, assume_unique=True)] = kept
        pending = waiting
    return state == dropped
