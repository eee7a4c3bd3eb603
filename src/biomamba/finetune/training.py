"""What fine-tuning plugs into the trainer: batch sources, loss functions and checkpoint writers.

The trainer (`biomamba.train.Trainer`) owns the loop, optimizer, schedule, checkpoints, exact resume,
logging, early stopping and torchrun. Fine-tuning only supplies:
- `RowBatches`: a resumable source over a fixed list of rows (packed SFT rows, or classifier questions),
  sampled by the pretraining source's `EpochSampler` ((seed, epoch) permutation, one global counter), so
  resuming and changing the world size behave the same way;
- `SFTLoss` (answer tokens only, documents isolated) and `ClassifierLoss` (softmax over options), both
  returning SUM and COUNT as the trainer's contract requires;
- `save_weights` / `load_weights`: a checkpoint's model/ holds a plain model directory for full
  fine-tuning, the peft adapter (adapter_config.json + adapter_model.safetensors) for LoRA, and the
  classifier head beside either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biomamba.errors import CheckpointError, DataError
from biomamba.finetune.collate import TokenizedExample, _assemble, lm_forward
from biomamba.finetune.heads import HEAD_FILE, SequenceClassifier, classification_loss, save_head
from biomamba.train.batches import EpochSampler

ADAPTER_WEIGHTS = "adapter_model.safetensors"


class RowBatches(EpochSampler):
    """Micro-batches over fixed rows; `collate(rows)` builds the tensors. See the module docstring."""

    def __init__(
        self,
        rows: Sequence[Any],
        collate: Callable[[list[Any]], dict[str, torch.Tensor]],
        micro_batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(rows) < micro_batch_size * world_size:
            raise DataError(
                f"only {len(rows)} training rows for a micro batch of {micro_batch_size} x {world_size} "
                "processes: lower train.micro_batch_size or add data"
            )
        self.rows = list(rows)
        self.collate = collate
        super().__init__(len(self.rows), micro_batch_size, seed=seed, rank=rank, world_size=world_size)

    def next_batch(self) -> dict[str, torch.Tensor]:
        return self.collate([self.rows[i] for i in self.take()])

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "rows": len(self.rows), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (("rows", len(self.rows)), ("seed", self.seed)):
            if state.get(key, mine) != mine:
                raise DataError(
                    f"cannot resume: the checkpoint was saved with {key}={state[key]}, this run has {mine} "
                    "(the fine-tuning data or recipe changed)"
                )
        self.cursor = int(state["cursor"])


def sft_collate(
    pad_id: int, seq_len: int, packing: bool
) -> Callable[[list[list[TokenizedExample]]], dict[str, torch.Tensor]]:
    """Packed rows fill seq_len; unpacked rows pad to the longest in the micro-batch (less waste)."""

    def collate(rows: list[list[TokenizedExample]]) -> dict[str, torch.Tensor]:
        length = seq_len if packing else max(sum(len(e) for e in row) for row in rows)
        return _assemble(rows, pad_id, length)

    return collate


class SFTLoss:
    """Summed cross-entropy over answer tokens; documents of a packed row never see each other."""

    def __init__(self, family: str) -> None:
        self.family = family

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> Any:
        from biomamba.train.loss import LossOutput, count_targets, token_cross_entropy

        logits = lm_forward(model, batch, self.family)
        targets = batch["labels"][:, 1:]
        return LossOutput(token_cross_entropy(logits[:, :-1], targets), count_targets(targets))


class ClassifierLoss:
    """Summed cross-entropy of the classifier's logits (one target per question)."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> Any:
        from biomamba.train.loss import LossOutput

        logits = model(batch["input_ids"], batch["last_index"])
        loss = classification_loss(logits, batch["labels"]) * batch["labels"].numel()
        correct = (logits.argmax(-1) == batch["labels"]).sum().item()
        return LossOutput(loss, batch["labels"].numel(), {"train_accuracy": float(correct)})


# ------------------------------------------------------------------------------------------- checkpoints


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def _save_lm(lm: nn.Module, directory: Path) -> None:
    from safetensors.torch import save_file

    if _is_peft(lm):
        from peft import get_peft_model_state_dict

        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(lm).items()}
        save_file(state, directory / ADAPTER_WEIGHTS)
        lm.peft_config["default"].save_pretrained(str(directory))
        return
    from biomamba.train.checkpoint import default_save_model

    default_save_model(lm, directory, None)


def _load_lm(lm: nn.Module, directory: Path) -> None:
    from safetensors.torch import load_file

    if _is_peft(lm):
        from peft import set_peft_model_state_dict

        if not (directory / ADAPTER_WEIGHTS).is_file():
            raise CheckpointError(f"{directory}: no {ADAPTER_WEIGHTS} (not a LoRA fine-tuning checkpoint)")
        result = set_peft_model_state_dict(lm, load_file(directory / ADAPTER_WEIGHTS))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise CheckpointError(f"{directory}: adapter weights do not match the model: {unexpected[:5]}")
        return
    from biomamba.train.checkpoint import default_load_weights

    default_load_weights(lm, directory)


def save_weights(
    model: nn.Module, directory: Path, state_dict: dict[str, torch.Tensor] | None = None
) -> None:
    """Trainer hook: write a checkpoint's model/ (see the module docstring). Sharded FSDP state is not
    supported for fine-tuning (`state_dict` must be None: fine-tune with DDP)."""
    if state_dict is not None:
        raise CheckpointError("fine-tuning checkpoints need unsharded weights: use train.distributed: ddp")
    if isinstance(model, SequenceClassifier):
        _save_lm(model.lm, directory)
        save_head(model, directory)
        return
    _save_lm(model, directory)


def load_weights(model: nn.Module, directory: Path) -> None:
    """Trainer hook: the inverse of `save_weights`, into the live model."""
    from safetensors.torch import load_file

    if isinstance(model, SequenceClassifier):
        _load_lm(model.lm, directory)
        if not (directory / HEAD_FILE).is_file():
            raise CheckpointError(f"{directory}: no {HEAD_FILE} (not a classifier checkpoint)")
        model.head.load_state_dict(load_file(directory / HEAD_FILE))
        return
    _load_lm(model, directory)
