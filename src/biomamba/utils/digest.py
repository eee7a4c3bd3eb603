"""The one checksum of a file's bytes that every stage records: benchmark files in results, tokenizer.json in a
corpus manifest, every checkpoint file in checksums.json."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes, streamed (`hashlib.file_digest` releases the GIL, so checkpoint
    files hash in parallel threads, and a big file is never read into memory at once)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
