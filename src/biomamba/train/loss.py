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

    `vocab_size` is the tokenizer's vocabulary when the model's output is wider (biomamba's Mamba2 pads its
    vocabulary to a multiple of 16): label smoothing then spreads its mass over the real ids only, never over
    the padded rows, which no token ever maps to. The softmax still normalises over every row, as the
    unsmoothed loss and the held-out perplexity do, so the padded logits keep being pushed down.
    """

    def __init__(
        self, *, label_smoothing: float = 0.0, use_seq_idx: bool = False, vocab_size: int | None = None
    ) -> None:
        self.label_smoothing = label_smoothing
        self.use_seq_idx = use_seq_idx
        self.vocab_size = vocab_size

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        kwargs = {"input_ids": batch["input_ids"]}
        if self.use_seq_idx and "seq_idx" in batch:
            kwargs["seq_idx"] = batch["seq_idx"]
        logits = model(**kwargs).logits
        labels = batch["labels"]
        real = self.vocab_size
        if self.label_smoothing and real is not None and real < logits.shape[-1]:
            return LossOutput(
                _smoothed_sum(logits, labels, self.label_smoothing, real), count_targets(labels)
            )
        loss = token_cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return LossOutput(loss, count_targets(labels))


def token_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "sum", label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy of `logits` [..., V] against `labels` [...] in fp32, IGNORE_INDEX positions left out.

    One definition for the trainer's loss, held-out perplexity and the fine-tuning losses, so every number
    they report is the same computation (fp32 logits: bf16 log-softmax loses digits over large vocabularies).
    """
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def count_targets(labels: torch.Tensor) -> torch.Tensor:
    """How many positions of `labels` a loss covers (those not IGNORE_INDEX)."""
    return (labels != IGNORE_INDEX).sum()


def _smoothed_sum(logits: torch.Tensor, labels: torch.Tensor, smoothing: float, vocab: int) -> torch.Tensor:
    """Sum over targets of (1 - e) * NLL + e * mean NLL over the first `vocab` ids: torch's label-smoothed
    cross-entropy with the uniform part restricted to the real vocabulary (equal to it when nothing is padded).
    """
    logp = F.log_softmax(logits.float().reshape(-1, logits.shape[-1]), dim=-1)
    flat = labels.reshape(-1)
    keep = flat != IGNORE_INDEX
    logp, flat = logp[keep], flat[keep]
    nll = -logp.gather(1, flat.unsqueeze(1)).squeeze(1)
    uniform = -logp[:, :vocab].mean(dim=-1)
    return ((1.0 - smoothing) * nll + smoothing * uniform).sum()
