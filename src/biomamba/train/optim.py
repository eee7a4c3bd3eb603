"""AdamW parameter groups (decoupled weight decay, no-decay rules, layer-wise lr decay) and lr schedules.

Schedules are pure functions of the step, so the scheduler's whole state is the step counter saved in
`trainer_state.json`: resuming recomputes the exact same lr.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

_NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.RMSNorm)


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The ModuleList holding the model's repeated blocks (the one with the most parameters).

    Works for GPT-2 (`transformer.h`), Llama/Mistral (`model.layers`) and Mamba2 (`backbone.layers`) without
    naming them, so FSDP units, activation checkpointing and layer decay need no per-family table.
    """
    best: tuple[str, nn.ModuleList] | None = None
    best_size = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            size = sum(p.numel() for p in module.parameters())
            if size > best_size:
                best, best_size = (name, module), size
    return best


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def _param_kinds(model: nn.Module) -> dict[str, set[str]]:
    """Map parameter name -> kinds among {norm, bias, embedding} (a tied weight counts as embedding)."""
    kinds: dict[str, set[str]] = {}
    embedding_ids: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, param in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            found = kinds.setdefault(full, set())
            if isinstance(module, nn.Embedding):
                found.add("embedding")
                embedding_ids.add(id(param))
            if _is_norm(module):
                found.add("norm")
            if p_name.endswith("bias") or param.ndim < 2:
                # 1-d parameters (biases, norm gains, Mamba's A_log/D/dt_bias) are never decayed.
                found.add("bias")
            if getattr(param, "_no_weight_decay", False):
                found.add("bias")
    for name, param in model.named_parameters():
        if id(param) in embedding_ids:
            kinds.setdefault(name, set()).add("embedding")
    return kinds


def _layer_depths(model: nn.Module) -> tuple[dict[str, int], int]:
    """Depth of each parameter: 0 = embeddings (before the blocks), i + 1 = block i, L + 1 = after the blocks."""
    found = find_blocks(model)
    if found is None:
        return {}, 0
    prefix, blocks = found
    depths: dict[str, int] = {}
    block_ids: dict[int, int] = {}
    for index, block in enumerate(blocks):
        for param in block.parameters():
            block_ids[id(param)] = index + 1
    seen_blocks = False
    for name, param in model.named_parameters():
        if id(param) in block_ids:
            depths[name] = block_ids[id(param)]
            seen_blocks = True
        else:
            depths[name] = len(blocks) + 1 if seen_blocks else 0
    return depths, len(blocks)


@dataclass
class GroupSpec:
    params: list[nn.Parameter]
    weight_decay: float
    lr_scale: float
    names: list[str]


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    no_decay: Iterable[str] = ("norm", "bias", "embedding"),
    layer_lr_decay: float = 1.0,
) -> list[GroupSpec]:
    """Split trainable parameters by (decay?, lr scale); layer i of L gets lr x decay^(L + 1 - depth)."""
    skip = set(no_decay)
    kinds = _param_kinds(model)
    depths, num_layers = _layer_depths(model) if layer_lr_decay != 1.0 else ({}, 0)
    groups: dict[tuple[float, float], GroupSpec] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = 0.0 if kinds.get(name, set()) & skip else weight_decay
        depth = depths.get(name, num_layers + 1)
        scale = layer_lr_decay ** (num_layers + 1 - depth) if layer_lr_decay != 1.0 else 1.0
        spec = groups.setdefault((decay, scale), GroupSpec([], decay, scale, []))
        spec.params.append(param)
        spec.names.append(name)
    return list(groups.values())


def build_adamw(
    model: nn.Module,
    *,
    lr: float,
    betas: Sequence[float],
    eps: float,
    weight_decay: float,
    no_decay: Iterable[str],
    layer_lr_decay: float,
) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay) over `param_groups`; each group remembers its lr scale."""
    specs = param_groups(model, weight_decay=weight_decay, no_decay=no_decay, layer_lr_decay=layer_lr_decay)
    groups = [
        {"params": s.params, "weight_decay": s.weight_decay, "lr": lr * s.lr_scale, "lr_scale": s.lr_scale}
        for s in specs
    ]
    fused = all(p.is_cuda for s in specs for p in s.params) and bool(specs)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=fused or None)


def lr_factor(
    step: int,
    total_steps: int,
    *,
    schedule: str,
    warmup_steps: int,
    stable_ratio: float = 0.65,
    min_lr_ratio: float = 0.1,
) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based) of `total_steps`.

    - constant: linear warmup, then 1.
    - cosine: linear warmup, then cosine from 1 down to min_lr_ratio at the last step.
    - wsd (warmup-stable-decay, BioMamba): linear warmup, stable at 1 for stable_ratio of all steps, then
      cosine down to min_lr_ratio over the remaining steps.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        decay_start = warmup_steps
    elif schedule == "wsd":
        decay_start = warmup_steps + round(stable_ratio * total_steps)
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    if step < decay_start:
        return 1.0
    span = max(1, total_steps - 1 - decay_start)
    progress = min(1.0, (step - decay_start) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
