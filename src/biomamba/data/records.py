"""One identity per PubMed / PMC record across every source of a corpus, newest version wins.

The same citation reaches a corpus several ways: a MEDLINE baseline file and a later update file, a PubTator
file (BC5CDR, PubTator Central) and the MEDLINE XML of the same PMID, or two PMC bundles holding one article.
Every such record is keyed by its namespace and id (`pmid:123`, `pmc:PMC456`), whatever its source type or
domain, and only one version stays in the corpus:

- the NEWER version wins: a record with a later revision date (MEDLINE `DateRevised`) replaces an older one;
  a record without a date (PubTator, JATS) loses to one with a date, since it cannot show it is newer;
- between equally dated (or undated) versions, the one later in the build order wins (domains, sources and
  sorted files in recipe order: MEDLINE update files sort after the baseline, as NLM numbers them);
- a MEDLINE `DeleteCitation` removes the PMID's record seen so far, from whichever source it came; a record
  of that PMID read after the deletion starts over.

The decision is vectorised (one sort of the records and deletions by key then time), and hash-partitioned by
key on disk, so 36M PMIDs cost neither a Python dict of 36M strings nor arrays of every record at once: memory
is one part's records plus one partition's (`apply_record_identity`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biomamba.data.dedup_buckets import Buckets, read_bucket, scratch_folder, write_buckets

# The namespace of a source type's ids is its reader's `identity` (biomamba.data.readers); types without one
# (C4 urls, wiki titles) have no shared identity.
_PMC_BASE = 1 << 40  # numeric PMC ids live above every PMID (PMIDs are below 10^9)
_HASHED = 1 << 62  # other ids (DOIs, file names): a 61-bit hash, above both


IDENTITY_NAME = "identity.npz"  # per part: int64 keys and revision dates of its records, deleted PMIDs' keys


@dataclass(frozen=True)
class RecordEvents:
    """One part's records in catalog order: where they start, their keys, revision dates and deletions."""

    offset: int
    keys: np.ndarray  # int64 `record_key` per record
    revised: np.ndarray  # int64 YYYYMMDD per record, 0 when unknown
    deleted: np.ndarray  # int64 `record_key("pmid", ...)` per DeleteCitation PMID


def save_identity(path: Path, namespace: str, ids: list[str], revised: list[int], deleted: list[str]) -> None:
    """Write a part's identity arrays (the merge reads these instead of every id string)."""
    np.savez(path, keys=record_keys(namespace, ids), revised=np.asarray(revised, dtype=np.int64).reshape(-1),
             deleted=record_keys("pmid", deleted))  # fmt: skip


def load_identity(path: Path, offset: int) -> RecordEvents:
    with np.load(path) as data:
        return RecordEvents(offset, data["keys"], data["revised"], data["deleted"])


def record_key(namespace: str, doc_id: str) -> int:
    """One int64 per (namespace, id): the PMID itself, PMC ids above 2^40, anything else hashed above 2^62."""
    digits = doc_id[3:] if namespace == "pmc" and doc_id[:3].upper() == "PMC" else doc_id
    if digits.isdigit() and int(digits) < _PMC_BASE:
        return int(digits) + (_PMC_BASE if namespace == "pmc" else 0)
    digest = hashlib.blake2b(f"{namespace}:{doc_id}".encode(), digest_size=8).digest()
    return _HASHED | (int.from_bytes(digest, "little") >> 3)


def record_keys(namespace: str, ids: list[str]) -> np.ndarray:
    """`record_key` of many ids; PMIDs (all digits) are parsed by numpy in one call, not one by one."""
    if not ids:
        return np.zeros(0, np.int64)
    if namespace == "pmid":
        with contextlib.suppress(ValueError):  # an id that is not a number: one by one below
            keys = np.asarray(ids, dtype=np.str_).astype(np.int64)
            if keys.min() >= 0 and keys.max() < _PMC_BASE:
                return keys
    return np.fromiter((record_key(namespace, i) for i in ids), np.int64, len(ids))


EVENT_RECORD = np.dtype([("key", "<i8"), ("time", "<i8"), ("version", "<i4")])  # 20 bytes, no padding
EVENTS_PER_PARTITION = 2_000_000  # what one partition's decision sorts in memory (~100 bytes per event)


def _event_records(event: RecordEvents) -> np.ndarray:
    """A part's records and deletions as `EVENT_RECORD`s. Time orders a part's records by catalog index
    (2i: even) and puts its deletions after them (an odd time, so a deletion is told by its time alone)."""
    count, gone = event.keys.size, event.deleted.size
    records = np.empty(count + gone, dtype=EVENT_RECORD)
    records["key"] = np.concatenate([event.keys, event.deleted])
    records["time"][:count] = 2 * np.arange(event.offset, event.offset + count, dtype=np.int64)
    records["time"][count:] = 2 * (event.offset + count) - 1
    records["version"][:count] = event.revised if event.revised.size else 0
    records["version"][count:] = 0
    return records


def apply_record_identity(
    events: Iterable[RecordEvents],
    alive: np.ndarray,
    work_dir: str | Path | None = None,
    per_partition: int = EVENTS_PER_PARTITION,
) -> tuple[int, int]:
    """Clear `alive` for every superseded or deleted record; return (deleted, superseded) counts.

    Memory stays flat however many records there are: the events (one part at a time from `events`) are
    hash-partitioned by key into files under `work_dir` (a temporary folder if None; removed after), and
    each partition, holding every event of its keys, is decided on its own (`_decide`). The number of
    partitions comes from `alive.size` (an event per document, plus the few deletions)."""
    partitions = Buckets.for_records(alive.size, per_partition, min_buckets=1)
    deleted = superseded = 0
    with scratch_folder(work_dir, "biomamba-identity-") as folder:
        for event in events:
            records = _event_records(event)
            write_buckets(folder, "events-0000", records, records["key"].view(np.uint64), partitions)
        for number in range(partitions.owned):
            dead, gone, replaced = _decide(read_bucket(folder, "events", 1, number, EVENT_RECORD))
            alive[dead] = False
            deleted, superseded = deleted + gone, superseded + replaced
    return deleted, superseded


def _decide(events: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(catalog indices to clear, deleted, superseded) for `EVENT_RECORD`s holding every event of their keys.

    Per key, deletions cut the time line into epochs. Every record of an epoch that a deletion closes is
    dead (the one that held the key then counts as deleted); of the last epoch, the newest (version, time)
    survives and the others count as superseded."""
    if events.size == 0:
        return np.zeros(0, np.int64), 0, 0
    order = np.lexsort((events["time"], events["key"]))
    keys, times, versions = events["key"][order], events["time"][order], events["version"][order]
    is_delete = (times & 1).astype(bool)
    indices = times // 2
    group_start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    group_of = np.repeat(np.arange(group_start.size), np.diff(np.r_[group_start, keys.size]))
    deletes_so_far = np.cumsum(is_delete)
    before_group = np.r_[0, deletes_so_far][group_start][group_of]
    epoch = deletes_so_far - is_delete - before_group  # deletions before this event, within its key
    last_epoch = (
        deletes_so_far[np.r_[group_start[1:] - 1, keys.size - 1]] - np.r_[0, deletes_so_far][group_start]
    )
    records = ~is_delete
    final = records & (epoch == last_epoch[group_of])
    dead = [indices[records & ~final]]
    # events are sorted by key then time, so an epoch's records directly precede the deletion closing it
    same_key_record_before = np.r_[False, (keys[1:] == keys[:-1]) & records[:-1]]
    deleted = int((is_delete & same_key_record_before).sum())
    epochs_with_records = int((records & ~same_key_record_before).sum())  # first record of each epoch
    # the newest of each key's final epoch survives: sort by (key, version, time), keep the last of each key
    f_keys, f_versions, f_times, f_indices = keys[final], versions[final], times[final], indices[final]
    newest = np.lexsort((f_times, f_versions, f_keys))
    f_keys, f_indices = f_keys[newest], f_indices[newest]
    is_last = np.r_[f_keys[1:] != f_keys[:-1], True] if f_keys.size else np.zeros(0, bool)
    dead.append(f_indices[~is_last])
    superseded = int(records.sum()) - epochs_with_records
    return np.concatenate(dead), deleted, superseded
