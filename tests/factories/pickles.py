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
