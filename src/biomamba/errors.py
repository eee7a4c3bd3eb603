"""Errors that the CLI turns into one clear line and exit status 2 (no traceback).

Anything a user can cause with a bad file, key or flag is raised as a `BiomambaError` subclass whose
message names the file, record or key; genuine bugs stay ordinary exceptions so they keep their traceback.
"""

from __future__ import annotations


class BiomambaError(Exception):
    """A user-facing error: its message alone must tell the user what to fix."""


class RecipeError(BiomambaError):
    """A recipe file (or flag override) is invalid: names the file and the dotted key."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source = source
        self.key = key
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")


class DataError(BiomambaError):
    """Input data is missing or malformed: names the file and, where known, the record or line."""


class CheckpointError(BiomambaError):
    """A checkpoint cannot be read or does not match the model (missing/unexpected keys, shapes)."""


def refused_pickle(path: object, exc: BaseException) -> CheckpointError | None:
    """One line for a file that `torch.load(weights_only=True)` refused; None for any other error.

    Why: torch's own message spans several lines and suggests retrying with `weights_only=False`, which
    would run whatever the file contains. biomamba never gives that advice: a refused file is hostile or
    foreign, and the way forward is a safetensors copy made where the file is trusted.
    """
    import pickle
    import re

    if not isinstance(exc, pickle.UnpicklingError) or "weights_only" not in str(exc):
        return None
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    what = f"references {found.group(1)}, which" if found else "holds Python objects that"
    return CheckpointError(
        f"{path}: refused to load: the pickle {what} plain weights never contain (a crafted or foreign "
        "file; nothing was executed); convert it to safetensors where the file is trusted"
    )
