"""flash-linear-attention's chunked scalar-decay linear attention as Mamba2's SSD (``kernels: fla``).

Why: ``fla-core`` is a pure-Triton pip wheel (no compiler, no CUDA build), and its ``chunk_simple_gla``
computes exactly the SSD recurrence. Per head, with state ``S [K=d_state, V=headdim]``::

    fla:    S_t = exp(g_t) S_{t-1} + k_t^T v_t        o_t = scale * q_t S_t
    Mamba2: h_t = exp(dt_t A) h_{t-1} + B_t^T (dt_t x_t)   y_t = C_t h_t + D x_t

so ``g = dt * A`` (log decay, fp32), ``q = C``, ``k = B`` (broadcast from groups to heads: head ``i`` reads
group ``i // (heads / groups)``, the grouping of `biomamba.models.ssd`), ``v = x * dt``, ``scale = 1``, and the
``D`` skip is added here. Packed documents: fla resets the state at ``cu_seqlens`` boundaries of one flattened
row, so the batch is flattened to ``[1, b*l]`` and every document start (and every row start) is a boundary.

`fla_inputs` is the mapping alone (pure torch, tested on CPU against the recurrence); `fla_ssd` runs the kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@functools.cache
def fla_chunk_scan() -> Callable | None:
    """fla's ``chunk_simple_gla`` if fla-core imports (it needs triton), else None (imported once)."""
    try:
        from fla.ops.simple_gla import chunk_simple_gla
    except Exception:  # not installed, no triton, or a triton without a usable backend
        return None
    return chunk_simple_gla


@dataclass
class FlaInputs:
    """Arguments of ``chunk_simple_gla`` for one SSD call; ``cu_seqlens`` is None without packed documents."""

    q: Tensor  # [n, t, h, d_state]
    k: Tensor  # [n, t, h, d_state]
    v: Tensor  # [n, t, h, headdim]
    g: Tensor  # [n, t, h] fp32 log decay
    cu_seqlens: Tensor | None  # [segments + 1] int64 on the inputs' device, with its CPU copy below
    cu_seqlens_cpu: Tensor | None


# One entry: every layer of a forward gets the same `seg` tensor, so its boundaries are found (one device
# sync) once per forward rather than once per layer. Held by identity, like fla's own tensor_cache.
_last_boundaries: list[tuple[Tensor, Tensor, Tensor]] = []


def cu_seqlens_from_segments(seg: Tensor) -> tuple[Tensor, Tensor]:
    """Start offsets of every document in the flattened ``[1, b*l]`` batch, plus its end (fla's layout).

    ``seg [b, l]`` is non-decreasing per row (`biomamba.models.ssd.segment_ids`); a new document starts at
    every change and at the first position of every row. Returns (on seg's device, on CPU)."""
    if _last_boundaries and _last_boundaries[0][0] is seg:
        return _last_boundaries[0][1], _last_boundaries[0][2]
    b, length = seg.shape
    seg_cpu = seg.detach().cpu()
    starts = torch.ones(b, length, dtype=torch.bool)
    starts[:, 1:] = seg_cpu[:, 1:] != seg_cpu[:, :-1]
    offsets = torch.nonzero(starts.reshape(-1)).reshape(-1)
    cpu = torch.cat([offsets, torch.tensor([b * length])]).to(torch.int64)
    on_device = cpu.to(seg.device, non_blocking=True)
    _last_boundaries[:] = [(seg, on_device, cpu)]
    return on_device, cpu


def fla_inputs(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, seg: Tensor | None) -> FlaInputs:
    """Map `ssd_chunked`'s arguments (x ``[b,l,h,p]``, processed dt ``[b,l,h]``, A ``[h]``, B/C ``[b,l,g,n]``,
    seg ``[b,l]``) onto ``chunk_simple_gla``'s. The matmul operands keep x's dtype (bf16 under autocast)."""
    b, length, h, p = x.shape
    heads_per_group = h // B.shape[2]
    dt = dt.float()
    q = C.to(x.dtype).repeat_interleave(heads_per_group, dim=2)
    k = B.to(x.dtype).repeat_interleave(heads_per_group, dim=2)
    v = (x.float() * dt[..., None]).to(x.dtype)
    g = dt * A.float()
    if seg is None:
        return FlaInputs(q, k, v, g, None, None)
    cu, cu_cpu = cu_seqlens_from_segments(seg)
    flat = [t.reshape(1, b * length, *t.shape[2:]) for t in (q, k, v, g)]
    return FlaInputs(*flat, cu, cu_cpu)


def fla_ssd(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, seg: Tensor | None) -> Tensor:
    """Same contract as `ssd_chunked` without an initial state: y ``[b, l, h, p]`` fp32, D skip included."""
    kernel = fla_chunk_scan()
    assert kernel is not None
    o, _ = kernel(**vars(fla_inputs(x, dt, A, B, C, seg)), scale=1.0)
    return o.reshape(x.shape).float() + x.float() * D.float()[:, None]
