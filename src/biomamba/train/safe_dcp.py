"""Read torch.distributed.checkpoint (DCP) directories without unpickling anything but DCP's own metadata.

Why: DCP's `FileSystemReader.read_metadata` is a bare `pickle.load` of `.metadata`, and its default planner
reads every non-tensor value with `torch.load(weights_only=False)`. A checkpoint directory downloaded or
shared by someone else could therefore run arbitrary code on `--resume`. Here:

- `.metadata` goes through an unpickler that admits only the classes torch writes there (DCP's metadata
  dataclasses, `torch.Size`, dtypes, layouts, paths); anything else (`os.system`, `builtins.eval`, ...) is
  refused before it is called;
- every file the metadata points at must be a plain file name inside the checkpoint directory (no `..`, no
  absolute path) and no stream transform (compression plug-in) may be named;
- non-tensor values (optimizer hyperparameters) are read with `torch.load(weights_only=True)`, as tensors
  already are by DCP itself.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path, PurePath
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, set_element
from torch.distributed.checkpoint.metadata import Metadata

from biomamba.errors import CheckpointError

METADATA_FILE = ".metadata"

_DCP_METADATA_CLASSES = {
    "Metadata",
    "TensorStorageMetadata",
    "BytesStorageMetadata",
    "ChunkStorageMetadata",
    "MetadataIndex",
    "TensorProperties",
    "StorageMeta",
    "_MEM_FORMAT_ENCODING",
}
_ALLOWED_GLOBALS: dict[str, set[str]] = {
    "torch.distributed.checkpoint.metadata": _DCP_METADATA_CLASSES,
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch._utils": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath", "Path"},
    "collections": {"OrderedDict"},
}


class RefusedPickle(CheckpointError):
    """A checkpoint file names a Python object outside what torch's checkpoint metadata may contain."""


class _MetadataUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` admits only DCP metadata classes and torch dtypes."""

    def __init__(self, handle: io.BufferedIOBase, source: Path) -> None:
        super().__init__(handle)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED_GLOBALS.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype | torch.memory_format):
            return getattr(torch, name)
        raise RefusedPickle(
            f"{self.source}: refused to load: it references {module}.{name}, which torch's checkpoint "
            "metadata never contains (a crafted or foreign file; nothing was executed)"
        )


def read_metadata(directory: Path) -> Metadata:
    """The validated DCP metadata of `directory` (CheckpointError when hostile, foreign or unreadable)."""
    path = Path(directory) / METADATA_FILE
    try:
        with path.open("rb") as handle:
            metadata = _MetadataUnpickler(handle, path).load()
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read optimizer metadata ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated or garbled pickle stream
        raise CheckpointError(f"{path}: corrupt optimizer metadata ({type(exc).__name__}: {exc})") from None
    _check_metadata(metadata, path)
    return metadata


def _check_metadata(metadata: Any, path: Path) -> None:
    """Every storage entry must name a plain file of this directory and no stream transform."""
    if not isinstance(metadata, Metadata) or not isinstance(metadata.storage_data, dict):
        raise CheckpointError(f"{path}: not torch checkpoint metadata ({type(metadata).__name__})")
    for index, info in metadata.storage_data.items():
        relative = getattr(info, "relative_path", None)
        parts = PurePath(relative).parts if isinstance(relative, str) else ()
        if len(parts) != 1 or parts[0] in ("..", ".") or "\\" in relative or PurePath(relative).is_absolute():
            raise CheckpointError(
                f"{path}: refused: entry {getattr(index, 'fqn', index)!r} points outside the checkpoint "
                f"directory ({relative!r})"
            )
        if getattr(info, "transform_descriptors", None):
            raise CheckpointError(
                f"{path}: refused: entry {getattr(index, 'fqn', index)!r} needs stream transforms "
                f"{list(info.transform_descriptors)}, which biomamba never writes"
            )


class SafeFileSystemReader(FileSystemReader):
    """DCP's file reader with the restricted metadata loader above (read once, validated)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(str(path))
        self._metadata: Metadata | None = None
        self._directory = Path(path)

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        if kwargs.get("rank") is not None:  # biomamba writes one global .metadata, never per-rank ones
            raise CheckpointError(f"{self._directory}: no per-rank metadata in a biomamba checkpoint")
        if self._metadata is None:
            self._metadata = read_metadata(self._directory)
        return self._metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default planner, but non-tensor values are read with `weights_only=True`."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        try:
            obj = torch.load(value, weights_only=True)
        except pickle.UnpicklingError:
            raise RefusedPickle(
                f"optimizer value {read_item.dest_index.fqn!r}: refused to load: it is not plain data "
                "(a crafted or foreign file; nothing was executed)"
            ) from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj
