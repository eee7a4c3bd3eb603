"""Tensor-at-a-time access to safetensors checkpoints, for merges whose memory stays near one tensor.

Reading uses `safetensors.safe_open` (memory-mapped; a tensor is materialised only when asked for).
Writing streams: the safetensors header only needs each tensor's dtype and shape, which are known before
any tensor is computed, so a shard's header is written first and each merged tensor is appended and freed
as soon as it exists. `safetensors.torch.save_file` would instead need a whole shard in memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from safetensors import safe_open

from biomamba.errors import CheckpointError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_ST_TO_TORCH = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_TORCH_TO_ST = {v: k for k, v in _ST_TO_TORCH.items()}


def torch_dtype(name: str) -> torch.dtype:
    """'float32' / 'bfloat16' / ... -> torch dtype (recipe spelling)."""
    return getattr(torch, name)


class CheckpointReader:
    """The safetensors weights of one model directory (single file or sharded with an index)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self._file_of = self._locate(self.model_dir)
        self._handles: dict[Path, object] = {}

    @staticmethod
    def _locate(model_dir: Path) -> dict[str, Path]:
        if not model_dir.is_dir():
            raise CheckpointError(f"{model_dir}: model directory not found")
        index = model_dir / INDEX_FILE
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise CheckpointError(f"{index}: not a safetensors index ({exc})") from None
            return {name: model_dir / file for name, file in weight_map.items()}
        single = model_dir / SINGLE_FILE
        if single.is_file():
            with safe_open(str(single), framework="pt") as handle:
                return dict.fromkeys(handle.keys(), single)
        raise CheckpointError(
            f"{model_dir}: no {SINGLE_FILE} or {INDEX_FILE} (merging reads safetensors checkpoints; "
            "convert a pytorch_model.bin with `biomamba export` first)"
        )

    def _handle(self, path: Path):  # noqa: ANN202 - safetensors' handle type is private
        if path not in self._handles:
            if not path.is_file():
                raise CheckpointError(f"{path}: shard listed in {INDEX_FILE} is missing")
            self._handles[path] = safe_open(str(path), framework="pt")
        return self._handles[path]

    def keys(self) -> list[str]:
        return list(self._file_of)

    def __contains__(self, name: str) -> bool:
        return name in self._file_of

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle(self._file_of[name]).get_slice(name).get_shape())

    def dtype(self, name: str) -> torch.dtype:
        return _ST_TO_TORCH[self._handle(self._file_of[name]).get_slice(name).get_dtype()]

    def get(self, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        tensor = self._handle(self._file_of[name]).get_tensor(name)
        return tensor if dtype is None or not tensor.is_floating_point() else tensor.to(dtype)


@dataclass(frozen=True)
class TensorSpec:
    """What the writer must know about a tensor before it exists."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def plan_shards(specs: Sequence[TensorSpec], max_shard_size: int) -> list[list[TensorSpec]]:
    """Split tensors (in order) into shards of at most max_shard_size bytes (a bigger tensor gets its own)."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


class StreamingShardWriter:
    """Write tensors, in the planned order, into HF-style safetensors shards without holding a shard in RAM."""

    def __init__(
        self,
        out_dir: Path,
        specs: Sequence[TensorSpec],
        max_shard_size: int,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.shards = plan_shards(specs, max_shard_size)
        self.metadata = {"format": "pt", **(metadata or {})}
        n = len(self.shards)
        self.file_names = (
            [SINGLE_FILE] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        )
        self._order: Iterator[tuple[int, TensorSpec]] = (
            (i, spec) for i, shard in enumerate(self.shards) for spec in shard
        )
        self._current: tuple[int, IO[bytes]] | None = None

    def _open_shard(self, index: int) -> IO[bytes]:
        header: dict[str, object] = {"__metadata__": self.metadata}
        offset = 0
        for spec in self.shards[index]:
            header[spec.name] = {
                "dtype": _TORCH_TO_ST[spec.dtype],
                "shape": list(spec.shape),
                "data_offsets": [offset, offset + spec.nbytes],
            }
            offset += spec.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        handle = open(self.out_dir / self.file_names[index], "wb")  # noqa: SIM115 - closed in write/close
        handle.write(len(raw).to_bytes(8, "little"))
        handle.write(raw)
        return handle

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append the next tensor; it must be the next one of the plan, with the planned dtype and shape."""
        index, spec = next(self._order)
        if spec.name != name or tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
            raise RuntimeError(f"writer expected {spec}, got {name} {tuple(tensor.shape)} {tensor.dtype}")
        if self._current is None or self._current[0] != index:
            if self._current is not None:
                self._current[1].close()
            self._current = (index, self._open_shard(index))
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        if data.numel():
            self._current[1].write(data.view(torch.uint8).numpy().tobytes())

    def close(self) -> None:
        """Finish the last shard and write the index when there are several."""
        if next(self._order, None) is not None:
            raise RuntimeError("writer closed before every planned tensor was written")
        if self._current is not None:
            self._current[1].close()
        if len(self.shards) > 1:
            weight_map = {
                spec.name: self.file_names[i] for i, shard in enumerate(self.shards) for spec in shard
            }
            total = sum(spec.nbytes for shard in self.shards for spec in shard)
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (self.out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
