"""`file_sha256` is the plain sha256 of a file's bytes, whatever its size (checked against hashlib's one-shot)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from biomamba.utils.digest import file_sha256


def test_streamed_digest_matches_the_one_shot_sha256(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 9000)  # > 2 MiB: several read blocks
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
