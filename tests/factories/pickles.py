"""Hostile files for the loaders' refusal tests, as an attacker would write them."""

from __future__ import annotations

import os
from pathlib import Path


class HostilePayload:
    """Unpickling this runs a shell command that creates `marker` (a real pickle payload: `posix.system`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_in_optimizer_metadata(checkpoint: Path, marker: Path) -> None:
    """Rewrite a checkpoint's `optimizer/.metadata` as the real metadata plus a `HostilePayload` attribute,
    then recompute the checksums as an attacker would (checksums are no defence here; old code resumed it)."""
    import pickle

    from biomamba.train.integrity import write_checksums

    path = checkpoint / "optimizer" / ".metadata"
    metadata = pickle.loads(path.read_bytes())  # the test's own file, written by its run
    metadata.__dict__["note"] = HostilePayload(marker)
    path.write_bytes(pickle.dumps(metadata))
    write_checksums(checkpoint)
