"""Atomic writes: ordinary permissions whatever tempfile does, and leftovers of killed writers removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biomamba.utils.atomic import atomic_dir, atomic_path, write_json, write_text

SRC = str(Path(__file__).resolve().parents[2] / "src")

# A writer that builds `target` with atomic_dir, says when it is inside, then waits to be killed.
WRITER = """
import sys, time
from pathlib import Path
from biomamba.utils.atomic import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "weights.bin").write_bytes(b"x" * 4096)
    Path(sys.argv[2]).write_text(str(tmp))
    time.sleep(60)
"""


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_permissions_of_ordinary_files(
    tmp_path: Path, umask, mask, file_mode, dir_mode
) -> None:
    umask(mask)
    write_json(tmp_path / "results.json", {"a": 1})
    with atomic_path(tmp_path / "model.gguf") as tmp:  # a writer that opens the file by name
        tmp.write_bytes(b"GGUF")
    with open(tmp_path / "plain.txt", "w") as handle:  # what an ordinary write gives: the reference
        handle.write("x")
    with atomic_dir(tmp_path / "release") as tmp:
        (tmp / "model.safetensors").write_bytes(b"w")
    assert _mode(tmp_path / "results.json") == _mode(tmp_path / "plain.txt") == file_mode
    assert _mode(tmp_path / "model.gguf") == file_mode
    assert _mode(tmp_path / "release") == dir_mode
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["model.gguf", "plain.txt", "release", "results.json"]  # nothing but the outputs


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = tmp_path / "notes.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


def _start_writer(tmp_path: Path, target: Path) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": SRC}
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(ready)], env=env)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None and time.monotonic() < deadline, "writer did not start"
        time.sleep(0.05)
    return child, Path(ready.read_text())


def test_a_killed_writers_temporary_directory_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "release"
    killed, leftover = _start_writer(tmp_path, target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert leftover.is_dir() and (leftover / "weights.bin").is_file()  # what kill -9 leaves behind
    live, in_progress = _start_writer(tmp_path, target)  # the next write of the same output...
    try:
        assert not leftover.exists()  # ...removed it
        with atomic_dir(target) as tmp:
            (tmp / "weights.bin").write_bytes(b"y")
        assert in_progress.is_dir() and (in_progress / "weights.bin").is_file()  # a live writer is left alone
    finally:
        live.kill()
        live.wait()
    assert (target / "weights.bin").read_bytes() == b"y"


def test_temporaries_from_before_owner_files_go_only_once_old(tmp_path: Path) -> None:
    target = tmp_path / "release"
    old, recent = tmp_path / ".release.abc123.tmp", tmp_path / ".release.def456.tmp"
    for leftover in (old, recent):
        leftover.mkdir()
        (leftover / "model.safetensors").write_bytes(b"z")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    assert not old.exists() and recent.is_dir()
