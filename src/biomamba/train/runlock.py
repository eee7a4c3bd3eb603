"""One trainer per run directory: an exclusive `fcntl` lock on `RUN/.lock`, held for the whole run.

Why: two `biomamba train` processes on one run directory (a job resubmitted while the old one still runs,
two shells) would interleave checkpoints, prune each other's and cut `metrics.jsonl` under each other.
The kernel drops the lock when the holder exits however it dies (kill -9 included), so a stale `.lock` file
never blocks a later run; the file only says who holds it (pid and host) for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from biomamba.errors import BiomambaError

LOCK_FILE = ".lock"


class RunDirectoryBusy(BiomambaError):
    """Another trainer holds the run directory's lock."""


class RunLock:
    """Exclusive, non-blocking lock of a run directory (take it on rank 0 only: one run, one holder)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise RunDirectoryBusy naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown pid"
            handle.close()
            raise RunDirectoryBusy(
                f"{self.path.parent}: another trainer is writing this run directory ({holder}); wait for it "
                "to finish or stop it, or choose another --output-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
