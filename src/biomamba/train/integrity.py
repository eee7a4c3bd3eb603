"""Checkpoint integrity: a sha256 of every file, recorded when a checkpoint is written, checked on resume.

Why: a checkpoint truncated by a full disk on another machine, damaged in a copy, or with one flipped bit
would otherwise be resumed silently (a flipped bit in a weight or an Adam moment loads fine) or fail deep
inside safetensors / torch with a traceback. `checksums.json` lists each file's size and sha256; resuming
verifies them first, so a damaged checkpoint is named, set aside, and the previous intact one used.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from biomamba.errors import CheckpointError
from biomamba.utils.atomic import write_json
from biomamba.utils.digest import file_sha256

CHECKSUM_FILE = "checksums.json"
CHECKSUM_FORMAT = "biomamba-checksums/1"


class CorruptCheckpoint(CheckpointError):
    """A checkpoint's files do not match the checksums recorded when it was written."""


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE)


def _sha256_all(paths: list[Path]) -> list[str]:
    """Hash files in parallel threads: hashlib releases the GIL, and big checkpoints have many files."""
    workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(file_sha256, paths))


def write_checksums(directory: Path) -> None:
    """Record size and sha256 of every file under `directory` (call once all processes have written)."""
    paths = _files(directory)
    files = {
        p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": digest}
        for p, digest in zip(paths, _sha256_all(paths), strict=True)
    }
    write_json(directory / CHECKSUM_FILE, {"format": CHECKSUM_FORMAT, "algorithm": "sha256", "files": files})


def _recorded(directory: Path) -> dict[str, Any] | None:
    path = directory / CHECKSUM_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpoint(f"{path}: unreadable checksums ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != CHECKSUM_FORMAT:
        raise CorruptCheckpoint(f"{path}: not a {CHECKSUM_FORMAT} file")
    files = record.get("files")
    if not isinstance(files, dict):
        raise CorruptCheckpoint(f"{path}: no 'files' table")
    return files


def verify_checksums(directory: Path) -> bool:
    """True when every recorded file matches; False when none were recorded (an older checkpoint).

    Raises CorruptCheckpoint naming the first file that is missing, has another size (truncated) or
    another sha256 (bit rot, a partial copy).
    """
    files = _recorded(directory)
    if files is None:
        return False
    paths = []
    for name, expected in files.items():
        path = directory / name
        if ".." in Path(name).parts or not path.is_file():
            raise CorruptCheckpoint(f"{path}: missing (listed in {CHECKSUM_FILE})")
        size = path.stat().st_size
        if size != expected.get("size"):
            raise CorruptCheckpoint(
                f"{path}: truncated or extended ({size} bytes, {expected.get('size')} recorded)"
            )
        paths.append(path)
    for path, digest in zip(paths, _sha256_all(paths), strict=True):
        if digest != files[path.relative_to(directory).as_posix()].get("sha256"):
            raise CorruptCheckpoint(f"{path}: sha256 mismatch (the file changed after it was written)")
    return True


def _check(directory: Path) -> str | None:
    """None when `directory` verifies (or predates checksums), else why it does not."""
    try:
        verify_checksums(directory)
    except CorruptCheckpoint as exc:
        return str(exc)
    except OSError as exc:
        return f"{directory}: unreadable ({exc.strerror or exc})"
    return None


def _quarantine(directory: Path) -> Path:
    """Move a corrupt checkpoint out of the way (kept for inspection, never resumed or pruned)."""
    target = directory.with_name(f"corrupt-{directory.name}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = directory.with_name(f"corrupt-{directory.name}-{suffix}")
    directory.rename(target)
    return target


def newest_intact(checkpoints: list[Path], log: Any) -> Path:
    """The newest checkpoint that verifies; corrupt newer ones are reported and set aside.

    When none verifies nothing is moved (a later `--resume` must not silently start from scratch) and a
    CorruptCheckpoint names every one with its problem.
    """
    problems: list[tuple[Path, str]] = []
    for candidate in reversed(checkpoints):
        problem = _check(candidate)
        if problem is None:
            for bad, why in problems:
                moved = _quarantine(bad)
                log(f"warning: {why}; checkpoint set aside as {moved.name}, resuming from {candidate.name}")
            return candidate
        problems.append((candidate, problem))
    listed = "; ".join(why for _, why in problems)
    raise CorruptCheckpoint(f"no intact checkpoint to resume from: {listed}")
