"""Benchmark: the costs of handling real inputs that go wrong (issue 13, part 2).

1. Record identity across sources (`biomamba.data.records.apply_record_identity`) vs the sequential rule
   with a dict of every PMID string (how MEDLINE replacement was applied before, to pubmed_xml only), on a
   synthetic PubMed-like stream: baseline files of unique PMIDs, then update files in which 10% of the
   records revise an earlier PMID and 1% are deletions. Same decisions on both sides (asserted); wall time
   and Python-level peak memory of the decision (tracemalloc, which numpy reports to) per side, and the
   memory of the input each side must hold: the id strings of every part (ids.json, before) vs the int64
   keys and dates of identity.npz (now, written by the part's worker in phase 1).
2. Verified reading for tools (`read_verified_file`: one extra decompression pass that checks the gzip CRC
   before any document is handed out) vs `read_source_file`, on the real C4 sample. The corpus build does
   not pay this: it builds a file's part aside and checks at the end of the same pass.

    .venv/bin/python benchmarks/data_inputs.py --records 500000 2000000
    .venv/bin/python benchmarks/data_inputs.py --records 20000 --repeat 1     # smoke size
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from biomamba.data.config import SourceConfig
from biomamba.data.readers import FileReport, read_source_file, read_verified_file
from biomamba.data.records import RecordEvents, apply_record_identity, record_keys

ROOT = Path(__file__).resolve().parents[1]
C4_SAMPLE = ROOT.parent / "shared" / "data" / "general" / "c4" / "olmo_c4-sample.00000-of-00001.json.gz"
PER_FILE = 30_000  # about a MEDLINE file's citations


Raw = tuple[int, str, list[str], list[int], list[str]]  # offset, namespace, ids, revised, deleted PMIDs


def synthetic_stream(records: int, seed: int = 0) -> list[Raw]:
    """Baseline files (unique PMIDs), then update files revising 10% earlier PMIDs and deleting 1%."""
    rng = np.random.default_rng(seed)
    baseline = int(records * 0.8)
    events, offset, next_pmid = [], 0, 1
    while offset < baseline:
        count = min(PER_FILE, baseline - offset)
        ids = [str(p) for p in range(next_pmid, next_pmid + count)]
        events.append((offset, "pmid", ids, [20240101] * count, []))
        offset, next_pmid = offset + count, next_pmid + count
    while offset < records:
        count = min(PER_FILE, records - offset)
        revised = rng.integers(1, next_pmid, size=count // 10)
        new = np.arange(next_pmid, next_pmid + count - revised.size)
        ids = [str(p) for p in np.concatenate([revised, new])]
        gone = [str(p) for p in rng.integers(1, next_pmid, size=count // 100)]
        events.append((offset, "pmid", ids, [20250101] * count, gone))
        offset, next_pmid = offset + count, next_pmid + new.size
    return events


def sequential_identity(events: list[Raw], alive: np.ndarray) -> tuple[int, int]:
    """Baseline: the same rule applied record by record with a dict keyed by the id string (the id strings
    come from each part's ids.json, as `_load_catalog` read them before)."""
    holder: dict[str, tuple[int, int]] = {}
    deleted = superseded = 0
    for offset, namespace, ids, revised, gone in events:
        for position, (doc_id, version) in enumerate(zip(ids, revised, strict=True)):
            key, index = f"{namespace}:{doc_id}", offset + position
            previous = holder.get(key)
            if previous is None:
                holder[key] = (index, version)
                continue
            superseded += 1
            if version >= previous[1]:
                alive[previous[0]], holder[key] = False, (index, version)
            else:
                alive[index] = False
        for pmid in gone:
            previous = holder.pop(f"pmid:{pmid}", None)
            if previous is not None:
                alive[previous[0]] = False
                deleted += 1
    return deleted, superseded


def as_arrays(events: list[Raw]) -> list[RecordEvents]:
    """What the merge loads per part now: int64 keys and dates (identity.npz), no id strings."""
    return [RecordEvents(offset, record_keys(ns, ids), np.asarray(revised, np.int64), record_keys("pmid", gone))
            for offset, ns, ids, revised, gone in events]  # fmt: skip


def _measure(function, events: list, size: int) -> tuple[float, float, np.ndarray, tuple]:
    """Wall seconds of one untraced run, then the peak of a second run under tracemalloc (which slows it)."""
    alive = np.ones(size, bool)
    started = time.perf_counter()
    counts = function(events, alive)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    function(events, np.ones(size, bool))
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, alive, counts


def identity_rows(sizes: list[int]) -> list[str]:
    rows = ["| records | side | seconds | ratio | peak MiB | ratio | input held MiB | ratio |",
            "|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size in sizes:
        events = synthetic_stream(size)
        arrays = as_arrays(events)
        held_base = sum(sys.getsizeof(e[2]) + sum(map(sys.getsizeof, e[2])) for e in events) / 2**20
        held_ours = sum(e.keys.nbytes + e.revised.nbytes + e.deleted.nbytes for e in arrays) / 2**20
        base = _measure(sequential_identity, events, size)
        ours = _measure(apply_record_identity, arrays, size)
        assert base[3] == ours[3] and (base[2] == ours[2]).all(), "the two sides disagree"
        rows.append(f"| {size:,} | dict of id strings (baseline) | {base[0]:.2f} | 1.00x | {base[1]:,.0f} | 1.00x "
                    f"| {held_base:,.0f} | 1.00x |")  # fmt: skip
        rows.append(f"| {size:,} | `apply_record_identity` | {ours[0]:.2f} | {ours[0] / base[0]:.2f}x | "
                    f"{ours[1]:,.0f} | {ours[1] / base[1]:.2f}x | {held_ours:,.0f} | {held_ours / held_base:.2f}x |")  # fmt: skip
    return rows


def verified_read_rows(repeat: int) -> list[str]:
    if not C4_SAMPLE.is_file():
        return ["(C4 sample not present: skipped)"]
    source = SourceConfig(type="jsonl", path=str(C4_SAMPLE))
    timings = {}
    for name, reader in (
        ("read_source_file (baseline)", read_source_file),
        ("read_verified_file", read_verified_file),
    ):
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            count = sum(1 for _ in reader(str(C4_SAMPLE), source, FileReport(str(C4_SAMPLE))))
            best = min(best, time.perf_counter() - started)
        timings[name] = (best, count)
    base = timings["read_source_file (baseline)"][0]
    rows = ["| reader | documents | seconds (best) | ratio |", "|---|---:|---:|---:|"]
    rows += [
        f"| {name} | {count:,} | {seconds:.3f} | {seconds / base:.2f}x |"
        for name, (seconds, count) in timings.items()
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, nargs="+", default=[500_000, 2_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, python {platform.python_version()}")
    print("\n".join(identity_rows(args.records)))
    print()
    print("\n".join(verified_read_rows(args.repeat)))


if __name__ == "__main__":
    main()
