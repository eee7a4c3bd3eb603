"""Loss functions: `loss_fn(model, batch) -> LossOutput`, summed over target tokens.

The trainer normalises by the number of targets of the whole global batch (all micro-batches, all processes)
AFTER backward, by scaling the gradients. A loss function therefore returns a SUM and a COUNT, never a mean:
that keeps the gradient exactly that of the global-batch mean however the batch is split (accumulation,
world size), and lets masked losses (answer-only fine-tuning, where each micro-batch has a different number of
targets) plug in without bias. Extra scalars in `metrics` are summed over micro-batches and logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from biomamba.train.batches import IGNORE_INDEX


@dataclass
class LossOutput:
    """What a loss function returns for one micro-batch."""

    loss_sum: torch.Tensor  # scalar, summed over target tokens (or examples), differentiable
    num_targets: torch.Tensor | int  # how many targets the sum covers
    metrics: dict[str, float] = field(default_factory=dict)


LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], LossOutput]


class CausalLMLoss:
    """Next-token cross-entropy over `labels` (IGNORE_INDEX positions excluded), optional label smoothing.

    `use_seq_idx` passes the batch's `seq_idx` to the model (biomamba's Mamba2 resets its state at document
    starts); transformers models take only input_ids, so packed documents attend across boundaries there,
    as in the published GPT-2/Mistral recipes.
    """

    def __init__(self, *, label_smoothing: float = 0.0, use_seq_idx: bool = False) -> None:
        self.label_smoothing = label_smoothing
        self.use_seq_idx = use_seq_idx

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        kwargs = {"input_ids": batch["input_ids"]}
        if self.use_seq_idx and "seq_idx" in batch:
            kwargs["seq_idx"] = batch["seq_idx"]
        logits = model(**kwargs).logits
        labels = batch["labels"]
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
            label_smoothing=self.label_smoothing,
        )
        return LossOutput(loss, (labels != IGNORE_INDEX).sum())
