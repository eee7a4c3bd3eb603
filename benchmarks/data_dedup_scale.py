"""Benchmark: the corpus merge's deduplication at PubMed scale, wall time and peak RSS per corpus size.

Input (synthetic, written once per size, not timed): MinHash signatures (`[N, 128]` uint32, an on-disk `.npy`)
and exact-dup text hashes for N documents, with duplicate clusters so that the decision has work to do:
2% are exact copies of a random earlier document (same hash and signature), 8% near copies of one (its
signature with each value replaced with probability 2..40/128, so some fall below the 0.8 threshold and are only
LSH candidates; copies of copies make chains and clusters). Three domains, coded.

- biomamba: `deduplicate` (hash-partitioned bucket files, buckets resolved by `--workers` processes).
- baseline: the in-memory approach it replaces (`baseline_deduplicate`: one `np.unique` over all hashes, one
  `datasketch.MinHashLSH` filled in a Python loop, every signature in one array in RAM), at the sizes it can do.

Each measurement runs in a fresh subprocess; peak RSS is `ru_maxrss` of that process (and, separately, of its
largest worker); CPU seconds are user + system of the process and its workers (robust on a shared CPU). Both sides' decisions are compared at every size where both run (the script fails otherwise).

`--identity`: the merge's other per-document step, MEDLINE record identity (`apply_record_identity`), on
identity.npz files of 30,000 records each (a MEDLINE file's size), shaped like PubMed: 80% baseline files of
unique PMIDs, then update files in which 10% of the records revise an earlier PMID and 1% are deletions (the
stream of benchmarks/data_inputs.py, as arrays). biomamba: events hash-partitioned on disk; baseline: the same
decision over every event at once (one partition: how it ran before). Decisions compared at every size.

    .venv/bin/python benchmarks/data_dedup_scale.py --sizes 250000 1000000 4000000 16000000 --baseline-max 1000000
    .venv/bin/python benchmarks/data_dedup_scale.py --identity --sizes 250000 1000000 4000000 16000000 --baseline-max 16000000
    .venv/bin/python benchmarks/data_dedup_scale.py --sizes 20000 --no-write     # smoke run (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "data_dedup_scale.md"
NUM_PERM = 128
THRESHOLD = 0.8
DOMAINS = ("pubmed", "c4", "wikipedia")
CHUNK = 1 << 17


def make_input(folder: Path, documents: int, seed: int = 0) -> None:
    """Write signatures.npy, hashes.npy and domains.npy for `documents` synthetic documents."""
    from biomamba.data.dedup_buckets import SignatureFile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "signatures.npy"
    hashes = np.empty(documents, dtype=np.uint64)
    with open(path, "wb") as handle:
        header = {"descr": "<u4", "fortran_order": False, "shape": (documents, NUM_PERM)}
        np.lib.format.write_array_header_2_0(handle, header)
        for start in range(0, documents, CHUNK):
            stop = min(start + CHUNK, documents)
            rows = rng.integers(0, 2**32, size=(stop - start, NUM_PERM), dtype=np.uint32)
            hashes[start:stop] = rng.integers(0, 2**63, size=stop - start, dtype=np.uint64)
            if start:  # copies of documents of earlier chunks (already on disk): 2% exact, 8% near
                _add_copies(rng, rows, hashes, start, SignatureFile(path))
            handle.write(rows.tobytes())
            handle.flush()
    np.save(folder / "hashes.npy", hashes)
    np.save(folder / "domains.npy", rng.integers(0, len(DOMAINS), size=documents, dtype=np.uint8))


def _add_copies(rng: np.random.Generator, rows: np.ndarray, hashes: np.ndarray, start: int, done) -> None:
    kind = rng.random(rows.shape[0])
    copies = np.flatnonzero(kind < 0.10)
    sources = rng.integers(0, start, size=copies.size)
    unique, inverse = np.unique(sources, return_inverse=True)
    rows[copies] = done.gather(unique)[inverse]
    exact = kind[copies] < 0.02
    hashes[start + copies[exact]] = hashes[sources[exact]]
    near = copies[~exact]
    chance = rng.integers(2, 41, size=near.size)[:, None] / NUM_PERM
    replace = rng.random((near.size, NUM_PERM)) < chance
    fresh = rng.integers(0, 2**32, size=replace.shape, dtype=np.uint32)
    rows[near] = np.where(replace, fresh, rows[near])


def baseline_deduplicate(hashes: np.ndarray, signatures: np.ndarray, threshold: float) -> np.ndarray:
    """The in-memory merge this project used before bucket files (the reference for decisions): keep mask."""
    from datasketch import LeanMinHash, MinHashLSH

    from biomamba.data.dedup import MINHASH_SCHEME, MINHASH_SEED

    keep = np.ones(hashes.size, dtype=bool)
    _, first = np.unique(hashes, return_index=True)
    keep[:] = False
    keep[first] = True
    lsh = MinHashLSH(threshold=threshold, num_perm=signatures.shape[1])
    for index in np.flatnonzero(keep):
        signature = signatures[index]
        minhash = LeanMinHash(seed=MINHASH_SEED, hashvalues=signature, scheme=MINHASH_SCHEME)
        if any(float(np.mean(signatures[m] == signature)) >= threshold for m in lsh.query(minhash)):
            keep[index] = False
            continue
        lsh.insert(int(index), minhash, check_duplication=False)
    return keep


PER_FILE = 30_000  # about a MEDLINE file's citations


def make_identity_input(folder: Path, records: int, seed: int = 0) -> None:
    """identity-NNNNN.npz files (what phase 1 writes per part) for a PubMed-like stream of `records`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    baseline, offset, next_pmid, number = int(records * 0.8), 0, 1, 0
    while offset < records:
        count = min(PER_FILE, (baseline if offset < baseline else records) - offset)
        revised = (
            rng.integers(1, next_pmid, size=count // 10) if offset >= baseline else np.zeros(0, np.int64)
        )
        keys = np.concatenate([revised, np.arange(next_pmid, next_pmid + count - revised.size)]).astype(
            np.int64
        )
        gone = rng.integers(1, next_pmid, size=count // 100 if offset >= baseline else 0).astype(np.int64)
        version = 20250101 if offset >= baseline else 20240101
        np.savez(folder / f"identity-{number:05d}.npz", keys=keys, revised=np.full(count, version, np.int64),
                 deleted=gone)  # fmt: skip
        offset, next_pmid, number = offset + count, next_pmid + count - revised.size, number + 1


def run_identity(side: str, folder: Path) -> dict:
    """One identity measurement (in its own process): what `_load_catalog` does with the parts' files."""
    from biomamba.data.records import apply_record_identity, load_identity

    started = time.perf_counter()
    paths = sorted(folder.glob("identity-*.npz"))
    sizes = [np.load(p)["keys"].size for p in paths]  # the catalog knows these from meta.npz
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    alive = np.ones(int(offsets[-1]), dtype=bool)
    events = (load_identity(p, int(o)) for p, o in zip(paths, offsets, strict=False))
    per_partition = 10**15 if side == "baseline" else None
    options = {} if per_partition is None else {"per_partition": per_partition}
    deleted, superseded = apply_record_identity(events, alive, folder / "work", **options)
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    np.save(folder / f"alive-{side}.npy", alive)
    return {"side": side, "documents": int(alive.size), "seconds": round(seconds, 2),
            "cpu_seconds": round(own.ru_utime + own.ru_stime, 2), "peak_rss_mib": round(own.ru_maxrss / 1024, 1),
            "worker_peak_rss_mib": 0, "kept": int(alive.sum()), "deleted": deleted, "superseded": superseded}  # fmt: skip


def run_one(side: str, folder: Path, workers: int) -> dict:
    """One measurement (in its own process): seconds, peak RSS, and a digest of the decisions."""
    from biomamba.data.dedup import CodedDomains, deduplicate
    from biomamba.data.dedup_buckets import SignatureFile

    started = time.perf_counter()
    hashes = np.load(folder / "hashes.npy")
    if side == "baseline":
        keep = baseline_deduplicate(hashes, np.load(folder / "signatures.npy"), THRESHOLD)
    else:
        domains = CodedDomains(np.load(folder / "domains.npy"), DOMAINS)  # what the build's catalog holds
        result = deduplicate(hashes, SignatureFile(folder / "signatures.npy"), domains, exact=True, near=True,
                             threshold=THRESHOLD, work_dir=folder / "work", workers=workers)  # fmt: skip
        keep = result.keep
    seconds = time.perf_counter() - started
    own, workers_usage = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    self_kib, child_kib = own.ru_maxrss, workers_usage.ru_maxrss
    cpu = own.ru_utime + own.ru_stime + workers_usage.ru_utime + workers_usage.ru_stime
    np.save(folder / f"keep-{side}.npy", keep)
    return {"side": side, "documents": int(hashes.size), "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2), "parent_cpu_seconds": round(own.ru_utime + own.ru_stime, 2),
            "peak_rss_mib": round(self_kib / 1024, 1), "worker_peak_rss_mib": round(child_kib / 1024, 1),
            "kept": int(keep.sum())}  # fmt: skip


def _subprocess(side: str, folder: Path, workers: int, identity: bool = False) -> dict:
    command = [
        sys.executable,
        __file__,
        "--run-one",
        side,
        "--folder",
        str(folder),
        "--workers",
        str(workers),
    ]
    command += ["--identity"] if identity else []
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(
    sizes: list[int], baseline_max: int, workers: int, scratch: Path, identity: bool = False
) -> list[dict]:
    rows = []
    for size in sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"dedup-{size}-", dir=scratch))
        try:
            (make_identity_input if identity else make_input)(folder, size)
            ours = _subprocess("biomamba", folder, workers, identity)
            print(json.dumps(ours), flush=True)
            rows.append(ours)
            if size <= baseline_max:
                base = _subprocess("baseline", folder, workers, identity)
                print(json.dumps(base), flush=True)
                mask = "alive" if identity else "keep"
                same = np.array_equal(
                    np.load(folder / f"{mask}-biomamba.npy"), np.load(folder / f"{mask}-baseline.npy")
                ) and (
                    not identity
                    or (ours["deleted"], ours["superseded"]) == (base["deleted"], base["superseded"])
                )
                if not same:
                    raise SystemExit(f"{size} documents: decisions differ from the baseline")
                rows.append({**base, "same_decisions": True})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def markdown(rows: list[dict], workers: int) -> str:
    from biomamba.utils.markdown import markdown_table

    lines = [f"`{' '.join(sys.argv)}`  ({platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})", ""]  # fmt: skip
    head = ["documents", "side", "seconds", "x per 4x", "CPU s", "x per 4x", "peak RSS (MiB)", "x per 4x"]
    head += ["largest worker (MiB)", "kept"]
    previous: dict[str, dict] = {}
    cells = []
    for row in rows:
        before = previous.get(row["side"])
        growth_t = f"{row['seconds'] / before['seconds']:.2f}" if before else "-"
        growth_c = f"{row['cpu_seconds'] / before['cpu_seconds']:.2f}" if before else "-"
        growth_m = f"{row['peak_rss_mib'] / before['peak_rss_mib']:.2f}" if before else "-"
        cells.append([f"{row['documents']:,}", f"{row['side']} (workers {workers})", f"{row['seconds']:.1f}", growth_t,
                      f"{row['cpu_seconds']:.1f}", growth_c, f"{row['peak_rss_mib']:,.0f}", growth_m,
                      f"{row['worker_peak_rss_mib']:,.0f}", f"{row['kept']:,}"])  # fmt: skip
        previous[row["side"]] = row
    return "\n".join(lines + markdown_table(head, cells, align="rlrrrrrrrr")) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000, 4_000_000, 16_000_000])
    parser.add_argument("--baseline-max", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--run-one", choices=["biomamba", "baseline"])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--identity", action="store_true", help="measure record identity instead of dedup")
    args = parser.parse_args()
    if args.run_one:
        one = (
            run_identity(args.run_one, args.folder)
            if args.identity
            else run_one(args.run_one, args.folder, args.workers)
        )
        print(json.dumps(one))
        return
    rows = measure(args.sizes, args.baseline_max, args.workers, args.scratch, args.identity)
    table = markdown(rows, 1 if args.identity else args.workers)
    print(table)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
