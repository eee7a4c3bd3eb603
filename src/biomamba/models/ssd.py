"""The SSD (state-space dual) scan of Mamba2 in pure PyTorch: chunked for training, recurrent for decoding.

Why our own: transformers' fallback path broadcasts B and C to every head and the mamba-ssm kernels need a
CUDA build. This version keeps B and C per *group* and contracts over the state inside einsums, so the
largest tensors are the intra-chunk score matrices ``[batch, chunks, heads, chunk, chunk]`` (batch x length
x chunk x heads). Per-position states ``[batch, length, heads, headdim, state]`` are never built; only one
state per chunk boundary exists, exactly as in the mamba-ssm algorithm.

Numerics: the log-decays (``dt * A``), their sums and the exponentials are always fp32; the big
contractions run in the input dtype (bf16 under autocast, with fp32 accumulation on GPUs); chunk states
and the inter-chunk recurrence are fp32. The decay between positions s < l is ``exp(sum of dA over
(s, l])``, and that sum is always accumulated over the segment itself (`segment_sums`, the SSD paper's
``segsum``), never taken as the difference of two running sums from the chunk start: those grow to hundreds
in a 256-step chunk, and their difference loses digits that the exponential then magnifies.

Document boundaries: ``seg`` is a non-decreasing segment id per position (see `segment_ids`). Every term
that would carry information from one segment into another is masked, so a packed document gets the
same outputs as when it is processed alone. An ``initial_state`` belongs to the segment of position 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def segment_ids(seq_idx: Tensor) -> Tensor:
    """Turn any per-position document index into a non-decreasing segment id starting at 0 per row.

    A new segment starts wherever ``seq_idx`` changes, so callers may pass document numbers, 0/1 flags
    that alternate, or anything else that changes exactly at document starts.
    """
    change = torch.zeros_like(seq_idx, dtype=torch.long)
    change[:, 1:] = (seq_idx[:, 1:] != seq_idx[:, :-1]).long()
    return change.cumsum(dim=1)


def segment_sums(x: Tensor) -> Tensor:
    """``out[..., l, s] = sum(x[..., s+1 : l+1])`` for s <= l, and -inf above the diagonal (no decay path).

    Accumulated by a masked cumulative sum over each segment, so every entry is as exact as a direct sum
    of the few terms between s and l (the stable form; see the module docstring)."""
    t = x.shape[-1]
    grid = x[..., None].expand(*x.shape, t)  # grid[..., i, s] = x[..., i]
    strictly_below = torch.ones(t, t, dtype=torch.bool, device=x.device).tril(-1)
    sums = grid.masked_fill(~strictly_below, 0.0).cumsum(dim=-2)
    causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
    return sums.masked_fill(~causal, float("-inf"))


def suffix_sums(x: Tensor) -> Tensor:
    """``out[..., s] = sum(x[..., s+1:])``: the log-decay from position s to the end, summed directly."""
    tail = x[..., 1:].flip(-1).cumsum(-1).flip(-1)
    return F.pad(tail, (0, 1))


def ssd_chunked(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    D: Tensor | None = None,
    initial_state: Tensor | None = None,
    seg: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Run the SSD scan over a whole sequence.

    Shapes: x ``[b, l, h, p]``; dt ``[b, l, h]`` (already softplus'ed and clamped); A ``[h]`` (negative);
    B, C ``[b, l, g, n]`` with ``h`` divisible by ``g``; D ``[h]``; initial_state ``[b, h, p, n]``;
    seg ``[b, l]`` non-decreasing segment ids. Returns ``(y [b, l, h, p] fp32, final_state [b, h, p, n]
    fp32)``. The final state is the state after the last position (of the last segment).
    """
    b, length, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    hpg = h // g
    q = chunk_size
    pad = (-length) % q
    mm_dtype = x.dtype
    dt = dt.float()
    if pad:
        # Padded steps have dt = 0: no decay and no input, so they change neither outputs nor the state.
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))  # along the length (dim 1)
        dt = F.pad(dt, (0, 0, 0, pad))
        if seg is not None:
            seg = torch.cat([seg, seg[:, -1:].expand(b, pad)], dim=1)
    c = (length + pad) // q

    xc = x.reshape(b, c, q, g, hpg, p)
    Bc = B.reshape(b, c, q, g, n)
    Cc = C.reshape(b, c, q, g, n)
    dA = (dt * A.float()).reshape(b, c, q, h).permute(0, 1, 3, 2)  # [b, c, h, q]
    xdt = (xc.float() * dt.reshape(b, c, q, g, hpg, 1)).to(mm_dtype)

    # 1. Intra-chunk (diagonal blocks): causal, decayed "attention" C_l . B_s within each chunk.
    seg_decay = segment_sums(dA)  # [b, c, h, q(l), q(s)], -inf where s > l
    if seg is not None:
        segc = seg.reshape(b, c, q)
        same = (segc[..., :, None] == segc[..., None, :])[:, :, None]  # [b, c, 1, q, q]
        seg_decay = seg_decay.masked_fill(~same, float("-inf"))
    L = torch.exp(seg_decay)
    CB = torch.einsum("bclgn,bcsgn->bcgls", Cc, Bc)  # per group: never broadcast to heads
    M = (CB.float().unsqueeze(3) * L.reshape(b, c, g, hpg, q, q)).to(mm_dtype)
    y = torch.einsum("bcghls,bcsghp->bclghp", M, xdt).float()

    # 2. State contributed by each chunk, decayed to the chunk's end (only its last segment counts).
    decay_to_end = torch.exp(suffix_sums(dA))  # [b, c, h, q]
    if seg is not None:
        same_as_end = (segc == segc[..., -1:]).unsqueeze(2)  # [b, c, 1, q]
        decay_to_end = decay_to_end * same_as_end
    xdt_decay = (xdt.float() * decay_to_end.permute(0, 1, 3, 2).reshape(b, c, q, g, hpg, 1)).to(mm_dtype)
    chunk_states = torch.einsum("bcsgn,bcsghp->bcghpn", Bc, xdt_decay).float().reshape(b, c, h, p, n)

    # 3. Inter-chunk recurrence in closed form: state entering chunk k = sum over earlier chunk states,
    # decayed across the chunks in between, kept only if no segment boundary lies in between.
    if initial_state is None:
        initial_state = torch.zeros(b, h, p, n, dtype=torch.float32, device=x.device)
    states = torch.cat([initial_state.float().unsqueeze(1), chunk_states], dim=1)  # [b, c+1, h, p, n]
    chunk_decay = F.pad(dA.sum(dim=-1), (0, 0, 1, 0))  # [b, c+1, h]: log-decay across each chunk
    inter = segment_sums(chunk_decay.transpose(1, 2))  # [b, h, k, z], -inf where z > k
    if seg is not None:
        # Segment at each boundary: the initial state belongs to position 0's segment.
        seg_bound = torch.cat([seg[:, :1], segc[:, :, -1]], dim=1)  # [b, c+1]
        same_c = (seg_bound[:, :, None] == seg_bound[:, None, :])[:, None]  # [b, 1, k, z]
        inter = inter.masked_fill(~same_c, float("-inf"))
    decay_chunk = torch.exp(inter)
    new_states = torch.einsum("bhkz,bzhpn->bkhpn", decay_chunk, states)
    entering, final_state = new_states[:, :-1], new_states[:, -1]

    # 4. Contribution of the entering state to each position of the chunk.
    decay_in = torch.exp(torch.cumsum(dA, dim=-1))  # [b, c, h, q]: from the chunk start, a direct sum
    if seg is not None:
        seg_prev_end = torch.cat([seg[:, :1], segc[:, :-1, -1]], dim=1)  # [b, c]
        decay_in = decay_in * (segc == seg_prev_end[:, :, None]).unsqueeze(2)
    ent = entering.reshape(b, c, g, hpg, p, n).to(mm_dtype)
    y_off = torch.einsum("bclgn,bcghpn->bclghp", Cc, ent).float()
    y = y + y_off * decay_in.permute(0, 1, 3, 2).reshape(b, c, q, g, hpg, 1)

    y = y.reshape(b, c * q, h, p)[:, :length]
    if D is not None:
        y = y + x[:, :length].float() * D.float()[:, None]
    return y, final_state


def ssd_step(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
) -> Tensor:
    """One recurrent step, updating ``state`` in place (O(1) in the sequence length).

    Shapes: state ``[b, h, p, n]`` fp32; x ``[b, h, p]``; dt ``[b, h]`` (processed); B, C ``[b, g, n]``.
    Returns y ``[b, h, p]`` fp32.
    """
    b, h, p = x.shape
    g, n = B.shape[1], B.shape[2]
    hpg = h // g
    dt = dt.float()
    dA = torch.exp(dt * A.float())  # [b, h]
    xf = x.float().reshape(b, g, hpg, p)
    Bf = B.float()
    dBx = torch.einsum("bghp,bgn->bghpn", xf * dt.reshape(b, g, hpg, 1), Bf).reshape(b, h, p, n)
    new_state = state * dA[:, :, None, None] + dBx
    state.copy_(new_state)
    y = torch.einsum("bghpn,bgn->bghp", new_state.reshape(b, g, hpg, p, n), C.float()).reshape(b, h, p)
    if D is not None:
        y = y + x.float() * D.float()[:, None]
    return y


def ssd_flops_per_token(config) -> float:
    """Training FLOPs per token of the SSD scans of every layer (forward + backward = 3 x forward), the term
    that 6 x parameters leaves out, for MFU. Counts the matmuls of the chunked algorithm with the config's
    chunk length Q (2 FLOPs per multiply-add), per layer and token: C.B scores 2Q*g*n, scores x inputs 2Q*h*p,
    chunk states 2h*p*n, entering states to outputs 2h*p*n. Depends on Q, so it is a model-FLOPs convention
    (the same count for every implementation of the same config), not what a given kernel executes."""
    q, g, n, h, p = config.chunk_size, config.ngroups, config.d_state, config.nheads, config.headdim
    forward = 2 * q * (g * n + h * p) + 4 * h * p * n
    return 3.0 * config.n_layer * forward
