"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

A crash, SIGKILL or full disk can then never leave a half-written shard, checkpoint or results file in
place of a good one: readers see either the old complete file or the new complete file.

What is written gets the permissions an ordinary `open()` / `mkdir()` would give (0666 / 0777 less the
umask, or the mode of the file replaced), not the 0600 / 0700 of `tempfile`: a release directory must be
readable by the account that serves it. The writer of a temporary directory holds an flock on a sibling
`<tmp>.lock` file, so the next write of the same output can tell a killed writer's leftovers (removed: the
kernel drops the lock of a dead process) from a live one's (left alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; rename it over `path` only on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary sibling path, with the permissions an ordinary open() would give, for a writer that
    opens files by name (e.g. the `gguf` writer, llama.cpp's quantizer); it is fsynced and renamed over
    `path` only when the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            os.fchmod(fd, _file_mode(target))
        finally:
            os.close(fd)
        yield Path(tmp_name)
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


_rmtree = functools.partial(shutil.rmtree, ignore_errors=True)  # a half-removed leftover is removed next time
OWNER_SUFFIX = ".lock"
LEGACY_STALE_S = 3600.0  # temporary directories from before owner files: stale once untouched this long


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory under a temporary name; swap it into place only when the block succeeds.

    An existing directory at `path` is replaced only after the new one is complete, so a failure while
    writing a checkpoint directory leaves the previous one intact. Temporary directories that killed
    earlier writes of `path` left behind are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    owner = _owner_file(tmp).open("wb")  # locked while this writer lives (see _writer_alive)
    fcntl.flock(owner.fileno(), fcntl.LOCK_EX)
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            _rmtree(old)  # a swap killed midway left it: ignore_errors makes a missing one no error
            os.replace(target, old)
            os.replace(tmp, target)
            _rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        _rmtree(tmp)
        raise
    finally:
        _owner_file(tmp).unlink(missing_ok=True)  # still locked until closed: no cleaner takes it meanwhile
        owner.close()


def remove_stale_temporaries(target: Path) -> None:
    """Remove `.NAME.*.tmp` siblings of `target` whose writer is gone (its owner lock is free).

    A directory whose owner file is locked belongs to a live writer and is kept; one without an owner file
    (written before owner files existed) is removed once untouched for LEGACY_STALE_S. A `.NAME.old` left
    by a swap that was killed is removed when `target` itself exists and no writer is live.
    """
    live = False
    for candidate in target.parent.glob(f".{target.name}.*.tmp"):
        if not candidate.is_dir():
            continue
        if _writer_alive(candidate):
            live = True
            continue
        _rmtree(candidate)
        _owner_file(candidate).unlink(missing_ok=True)
    old = target.with_name(f".{target.name}.old")
    if not live and old.is_dir() and target.exists():
        _rmtree(old)


def _owner_file(directory: Path) -> Path:
    return directory.with_name(directory.name + OWNER_SUFFIX)


def _writer_alive(directory: Path) -> bool:
    try:
        handle = _owner_file(directory).open("rb")
    except FileNotFoundError:
        try:
            return time.time() - directory.stat().st_mtime < LEGACY_STALE_S
        except FileNotFoundError:
            return True  # renamed into place meanwhile: not ours to touch
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (changing it races other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(target: Path) -> int:
    """The mode `open(target, "w")` would leave: the replaced file's, else 0666 less the umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write `obj` as JSON atomically (sorted keys are not imposed: callers control order)."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
