"""torchrun integration: process-group set-up, DDP / FSDP2 wrapping, and small collectives.

Launch with `torchrun --nproc_per_node N -m biomamba train RECIPE` (or `torchrun ... $(which biomamba) train`):
torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR, and `init_distributed` joins the group (NCCL on
GPUs, gloo on CPU, which the tests use). Without torchrun everything here is a no-op.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device | None = None) -> DistInfo:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE set); else single process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    atexit.register(_destroy_process_group)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def _destroy_process_group() -> None:
    """Tear down the group this process joined before the interpreter finalises.

    Why: left to interpreter shutdown, gloo's worker threads can be destroyed while still joinable, and the
    process then aborts (`terminate called without an active exception`, SIGABRT) after a run that completed,
    which torchrun reports as a failed rank. No barrier here: a rank leaving on an error must not wait for others.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process when `flag` is true on any (so all take the same branch of a collective)."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_model(model: nn.Module, strategy: str, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP, or FSDP2 (`fully_shard` on every block, then the root) with fp32 params (master weights).

    FSDP2 shards parameters in place, so the returned module IS `model` (with DTensor parameters); DDP returns
    a wrapper whose `.module` is `model`.
    """
    if not info.enabled or strategy == "none":
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        from biomamba.train.optim import find_blocks

        found = find_blocks(model)
        if found is not None:
            for block in found[1]:
                fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def is_fsdp(model: nn.Module) -> bool:
    return any(type(p).__name__ == "DTensor" for p in model.parameters())
