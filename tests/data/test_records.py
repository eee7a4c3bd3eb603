"""Record identity across sources: the vectorised decision equals the plain sequential MEDLINE semantics."""

from __future__ import annotations

import random

import numpy as np

from biomamba.data.records import RecordEvents, apply_record_identity, record_key, record_keys

Raw = tuple[int, str, list[str], list[int], list[str]]  # offset, namespace, ids, revised, deleted PMIDs


def _as_events(raw: list[Raw]) -> list[RecordEvents]:
    return [RecordEvents(offset, record_keys(ns, ids), np.asarray(revised, dtype=np.int64), record_keys("pmid", gone))
            for offset, ns, ids, revised, gone in raw]  # fmt: skip


def _sequential(events: list[Raw], size: int) -> tuple[np.ndarray, int, int]:
    """The rule read literally, one record at a time (a dict of the current holder of each key)."""
    alive = np.ones(size, bool)
    holder: dict[tuple[str, str], tuple[int, int]] = {}
    deleted = superseded = 0
    for offset, namespace, ids, revised, gone in events:
        for position, (doc_id, version) in enumerate(zip(ids, revised, strict=True)):
            key, index = (namespace, doc_id.removeprefix("PMC")), offset + position
            if key in holder:
                superseded += 1
                previous, previous_version = holder[key]
                if version >= previous_version:
                    alive[previous], holder[key] = False, (index, version)
                else:
                    alive[index] = False
            else:
                holder[key] = (index, version)
        for pmid in gone:
            if ("pmid", pmid) in holder:
                alive[holder.pop(("pmid", pmid))[0]] = False
                deleted += 1
    return alive, deleted, superseded


def test_vectorised_identity_matches_the_sequential_rule_on_random_updates():
    rng = random.Random(7)
    for trial in range(30):
        events, offset = [], 0
        for _ in range(rng.randint(1, 8)):
            namespace = rng.choice(["pmid", "pmid", "pmc"])
            count = rng.randint(0, 40)
            ids = [
                str(rng.randint(1, 25)) if namespace == "pmid" else f"PMC{rng.randint(1, 10)}"
                for _ in range(count)
            ]
            revised = [rng.choice([0, 20200101, 20210601, 20230301]) for _ in range(count)]
            deleted = [str(rng.randint(1, 25)) for _ in range(rng.randint(0, 4))]
            events.append((offset, namespace, ids, revised, deleted))
            offset += count
        expected, exp_deleted, exp_superseded = _sequential(events, offset)
        alive = np.ones(offset, bool)
        assert apply_record_identity(_as_events(events), alive) == (exp_deleted, exp_superseded), trial
        assert (alive == expected).all(), trial


def test_record_keys_separate_namespaces():
    assert record_key("pmid", "123") == 123
    assert record_key("pmc", "PMC123") != record_key("pmid", "123")
    assert record_key("pmc", "PMC123") == record_key("pmc", "123")
    assert record_key("pmc", "10.1000/xyz") != record_key("pmid", "10.1000/xyz")


def test_bulk_keys_equal_single_keys():
    ids = ["12", "007", "PMC5", "10.1/x", "99999999"]
    for namespace in ("pmid", "pmc"):
        assert record_keys(namespace, ids).tolist() == [record_key(namespace, i) for i in ids]
    assert record_keys("pmid", ["1", "2"]).tolist() == [1, 2]


def test_hash_partitioned_decision_equals_the_one_partition_decision(tmp_path):
    """Events spread over many on-disk partitions (every key's events in one of them) decide as one does."""
    rng = np.random.default_rng(3)
    events, offset = [], 0
    for _ in range(12):
        count = int(rng.integers(0, 300))
        keys = rng.integers(1, 400, size=count).astype(np.int64)
        revised = rng.choice([0, 20200101, 20230301], size=count).astype(np.int64)
        events.append(RecordEvents(offset, keys, revised, rng.integers(1, 400, size=5).astype(np.int64)))
        offset += count
    one, many = np.ones(offset, bool), np.ones(offset, bool)
    counts = apply_record_identity(events, one)
    partitioned = apply_record_identity(iter(events), many, work_dir=tmp_path / "identity", per_partition=97)
    assert partitioned == counts
    assert (one == many).all() and 0 < (~one).sum() < offset and counts[0] > 0 and counts[1] > 0
    assert not (tmp_path / "identity").exists()
