"""Optional fast path: mamba-ssm's Triton SSD kernel, used only when it imports and tensors are on CUDA.

Never required: the default pure-PyTorch scan (`biomamba.models.ssd`) computes the same function. The
kernel is used for whole-sequence forwards without a cache (training, scoring); decoding always uses the
PyTorch recurrence. ``config.kernels`` selects: ``auto`` (kernel when available), ``torch`` (never),
``triton`` (required: an error if it cannot be used).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor


@functools.cache
def triton_chunk_scan() -> Callable | None:
    """mamba-ssm's ``mamba_chunk_scan_combined`` if importable, else None (imported once)."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:  # not installed, no triton, or a broken CUDA build: the torch path serves
        return None
    return mamba_chunk_scan_combined


def use_triton(mode: str, x: Tensor) -> bool:
    """Whether this forward should take the Triton path."""
    if mode == "torch":
        return False
    available = x.is_cuda and triton_chunk_scan() is not None
    if mode == "triton" and not available:
        raise RuntimeError("kernels='triton' needs mamba-ssm's Triton kernels and CUDA tensors")
    return available


def triton_ssd(
    x: Tensor,
    dt_raw: Tensor,
    dt_bias: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    chunk_size: int,
    dt_limit: tuple[float, float],
    seg: Tensor | None,
) -> Tensor:
    """Same contract as `ssd_chunked` (no initial state) with dt bias/softplus/clamp done in the kernel."""
    kernel = triton_chunk_scan()
    assert kernel is not None
    return kernel(
        x,
        dt_raw,
        A,
        B,
        C,
        chunk_size,
        D=D,
        dt_bias=dt_bias,
        dt_softplus=True,
        dt_limit=dt_limit,
        seq_idx=seg.to(dtype=torch.int32) if seg is not None else None,
    )
