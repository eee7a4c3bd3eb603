"""Phase 3 of the corpus build: copy the chosen documents' tokens from the parts into `train/` and
`heldout/<domain>/` shards, in parallel and resumably (a shard whose marker matches its plan is not rewritten).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.data.dedup_buckets import run_tasks
from biomamba.data.parts import read_json
from biomamba.data.shards import ShardWriter, map_shard
from biomamba.utils.atomic import write_json

MAX_OPEN_PARTS = 256
DOCS_PER_WRITE = 4096  # documents gathered before one write to the shard


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
        tokens, starts = map_shard(Path(work_dir) / "parts" / unit_name / "tokens.bin", dtype)
        _PART_CACHE[key] = (tokens, np.append(starts, tokens.size))
    return _PART_CACHE[key]


def _document_tokens(work_dir: str, unit_name: str, doc: int, limit: int, dtype: np.dtype) -> np.ndarray:
    """One document's tokens from its part, at most `limit` of them: a document cut to its domain's quota
    still ends with EOS."""
    tokens, bounds = _part_tokens(work_dir, unit_name, dtype)
    piece = tokens[bounds[doc] : bounds[doc + 1]]
    return np.append(piece[: limit - 1], piece[-1]) if limit < piece.size else piece


def _write_shard_job(args: tuple[ShardJob, str, str, list[str], str]) -> dict:
    job, output_dir, work_dir, unit_names, dtype_name = args
    dtype = np.dtype(dtype_name)
    relative = f"{job.split_dir}/{job.name}.bin"
    marker = Path(work_dir) / "shards" / job.split_dir / f"{job.name}.json"
    done = read_json(marker) or {}
    if done.get("plan_hash") == job.plan_hash and (Path(output_dir) / relative).is_file():
        return {**done["record"], "reused": True}
    documents = list(zip(job.units.tolist(), job.docs.tolist(), job.limits.tolist(), strict=True))
    with ShardWriter(output_dir, relative, dtype) as writer:
        for begin in range(0, len(documents), DOCS_PER_WRITE):
            pieces = [_document_tokens(work_dir, unit_names[unit], doc, limit, dtype)
                      for unit, doc, limit in documents[begin : begin + DOCS_PER_WRITE]]  # fmt: skip
            writer.add(np.concatenate(pieces), np.asarray([piece.size for piece in pieces]))
        record = writer.close()
    write_json(marker, {"plan_hash": job.plan_hash, "record": record.to_json()})
    return {**record.to_json(), "reused": False}


def plan_shard_jobs(split_dir: str, units: np.ndarray, docs: np.ndarray, lengths: np.ndarray, shard_tokens: int,
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


def run_shard_jobs(jobs: list[ShardJob], output: Path, work_dir: Path, unit_names: list[str], dtype: np.dtype,
                    pool: Any) -> list[dict]:  # fmt: skip
    args = [(job, str(output), str(work_dir), unit_names, dtype.str) for job in jobs]
    records = run_tasks(_write_shard_job, args, pool if len(jobs) > 1 else None)
    _PART_CACHE.clear()
    return records


def remove_stale_shards(output: Path, splits: dict[str, dict]) -> None:
    """Shards left by an earlier, larger build would otherwise sit next to the new ones, unlisted; so would
    the temporary `.shard-*.tmp` files of a build that was killed while writing (every writer is done here)."""
    listed = {shard["path"] for split in splits.values() for shard in split["shards"]}
    for folder in (output / "train", output / "heldout"):
        if not folder.is_dir():
            continue
        for leftover in folder.rglob(".shard-*.tmp"):
            leftover.unlink(missing_ok=True)
        for path in folder.rglob("shard-*.bin"):
            relative = path.relative_to(output).as_posix()
            if relative not in listed:
                path.unlink(missing_ok=True)
                path.with_suffix(".idx").unlink(missing_ok=True)
