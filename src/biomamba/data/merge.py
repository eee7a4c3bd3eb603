"""Phase 2 of the corpus build: the global decisions over every part's metadata (no tokens are read).

`load_catalog` concatenates the parts' metadata in canonical order and applies record identity (MEDLINE
DeleteCitations, newest version of a PMID wins: biomamba.data.records). `deduplicate_catalog` takes the
findings of the dedup bucket parts (`--dedup-part i/n` runs, on other machines) when all are there, or
resolves every bucket itself, then decides (biomamba.data.dedup). The mixture and the shards follow in
biomamba.data.pipeline.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.data.dedup import CodedDomains, DedupFindings, DedupResult, decide, find_duplicates
from biomamba.data.dedup_buckets import SignatureFile
from biomamba.data.parts import SIGNATURES_NAME, Build, checked_part, part_done, unit_fingerprint
from biomamba.data.readers import get_reader
from biomamba.data.records import IDENTITY_NAME, apply_record_identity, load_identity
from biomamba.errors import DataError

FINDINGS_DIR = "dedup-parts"  # findings-IIII-of-NNNN.npz: what resolving bucket part i of n found


@dataclass
class Catalog:
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


def load_catalog(build: Build) -> Catalog:
    units, work_dir = build.units, build.work_dir
    names = list(dict.fromkeys(unit.domain for unit in units))
    unit_ids, local, domains, lengths, hashes, heldout = [], [], [], [], [], []
    identities: list[tuple[Path, int]] = []  # (identity file, first document) of every part that has one
    offset = 0
    for number, unit in enumerate(units):
        part = build.part_dir(unit)
        with np.load(part / "meta.npz") as meta:
            count = meta["lengths"].size
            lengths.append(meta["lengths"])
            hashes.append(meta["hashes"])
            heldout.append(meta["heldout"])
        unit_ids.append(np.full(count, number, dtype=np.int32))
        local.append(np.arange(count, dtype=np.int64))
        domains.append(np.full(count, names.index(unit.domain), dtype=np.uint8))
        namespace = get_reader(unit.source.type).identity
        if namespace is not None:
            identities.append((part / IDENTITY_NAME, offset))
        offset += count
    alive = np.ones(offset, dtype=bool)
    events = (load_identity(path, first) for path, first in identities)  # one part in memory at a time
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="identity-") as scratch:  # one per process
        deleted, superseded = apply_record_identity(events, alive, scratch)
    join = lambda arrays, dtype: np.concatenate(arrays) if arrays else np.zeros(0, dtype)  # noqa: E731
    return Catalog(join(unit_ids, np.int32), join(local, np.int64), CodedDomains(join(domains, np.uint8), names),
                   join(lengths, np.int64), join(hashes, np.uint64), join(heldout, bool), alive, deleted,
                   superseded)  # fmt: skip


def deduplicate_catalog(build: Build, catalog: Catalog, pool: Any, say: Callable[[str], None]) -> DedupResult:
    """Decide over the findings of every dedup part: those of `--dedup-part` runs when they are all there
    (one line naming the missing ones when some are not), else of every bucket resolved here, in `pool`."""
    fingerprint = build.fingerprint()  # every part's inputs and settings, not the mixture
    findings, parts_read = _collected_findings(build.work_dir, fingerprint)
    if findings is None:
        findings = _resolve(build, catalog, (0, 1), fingerprint, pool)
        say("dedup: buckets resolved in this process")
    else:
        say(f"dedup: the findings of {parts_read} dedup part(s) read from {build.work_dir / FINDINGS_DIR}")
    return decide(findings, catalog.domain_of_doc, catalog.alive)


def run_dedup_part(build: Build, part: tuple[int, int], say: Callable[[str], None]) -> dict:
    """Step 2 of a build spread over machines: resolve dedup bucket part i of n, write its findings, stop."""
    checked_part("--dedup-part", part)
    missing = [
        u
        for u in build.units
        if part_done(build.part_dir(u), unit_fingerprint(u, build.settings_hash)) is None
    ]
    if missing:  # a dedup part reads every part: name the first that is not built (and how many are not)
        raise DataError(f"{missing[0].path}: part {missing[0].name} not built ({len(missing)} of {len(build.units)} "
                        f"parts missing): run phase 1 (`--part i/n`) for every file before `--dedup-part`")  # fmt: skip
    started = time.perf_counter()
    fingerprint = build.fingerprint()
    path = _findings_path(build.work_dir, part)
    stored = _stored_findings(path, fingerprint)  # resubmitting a finished task is free
    found = stored or _resolve(build, load_catalog(build), part, fingerprint, None)
    summary = {"dedup_part": list(part), "path": str(path), "exact": int(found.exact.size),
               "copies": int(found.copies.size), "pairs": int(len(found.pairs)),
               "seconds": round(time.perf_counter() - started, 3), "reused": stored is not None}  # fmt: skip
    say(f"dedup part {part[0]}/{part[1]}: {summary['exact']} exact duplicates, {summary['copies']} signature "
        f"copies, {summary['pairs']} near pairs -> {path} ({'reused' if stored else 'new'})")  # fmt: skip
    return summary


def _findings_path(work_dir: Path, part: tuple[int, int]) -> Path:
    return work_dir / FINDINGS_DIR / f"findings-{part[0]:04d}-of-{part[1]:04d}.npz"


def _resolve(
    build: Build, catalog: Catalog, part: tuple[int, int], fingerprint: str, pool: Any
) -> DedupFindings:
    """Resolve the buckets of `part` (i, n) into its findings file (the callers have looked for an up-to-date
    one first). Signatures are the parts' own files, read in place (never copied into one)."""
    path = _findings_path(build.work_dir, part)
    dedup, scratch = build.config.dedup, build.work_dir / "dedup"
    signatures = (
        SignatureFile([build.part_dir(u) / SIGNATURES_NAME for u in build.units]) if dedup.near else None
    )
    try:
        found = find_duplicates(catalog.hashes, signatures, exact=dedup.exact, near=dedup.near,
                                threshold=dedup.threshold, alive=catalog.alive, part=part,
                                work_dir=scratch / path.stem, pool=pool, workers=build.config.workers)  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            scratch.rmdir()  # (kept while other parts still resolve in it)
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
