"""Exponential moving average of the weights, kept in fp32 beside the raw weights.

EMA weights usually evaluate better than the last raw weights at the end of continued pretraining (BioMamba
used decay 0.999). The shadow lives on the training device; under FSDP each process keeps the EMA of its own
shard, so it costs one extra copy of the sharded parameters, not of the full model.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """ema = decay * ema + (1 - decay) * param, after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().clone().float() for name, p in model.named_parameters() if p.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 - self.decay
        for name, param in model.named_parameters():
            shadow = self.shadow.get(name)
            if shadow is not None:
                shadow.lerp_(param.detach().float(), weight)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, shadow in self.shadow.items():
            if name in state:
                shadow.copy_(state[name])
