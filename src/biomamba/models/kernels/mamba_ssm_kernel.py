"""mamba-ssm's Triton SSD kernel (``kernels: triton``): the reference implementation, used on CUDA tensors.

mamba-ssm builds without its CUDA extensions (its Mamba2 SSD kernels are Triton), see
scripts/mamba-ssm-reference.sh. The kernel takes the raw dt and applies bias, softplus and the clamp itself.
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
    except Exception:  # not installed, no triton, or a broken CUDA build: another backend serves
        return None
    return mamba_chunk_scan_combined


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
