"""Batch sources: where the trainer's micro-batches come from, with a resumable position.

A batch source is any object with

    next_batch() -> dict[str, torch.Tensor]      one micro-batch for THIS process
    state_dict() -> dict (JSON-serialisable)     the data position
    load_state_dict(state) -> None               jump back to a saved position

The trainer calls `next_batch()` accumulation times per optimizer step and saves `state_dict()` in every
checkpoint, so `--resume` continues on exactly the next unseen batch. The fine-tuning stage plugs its own
sources (answer-only labels, classifier batches) into the same loop by implementing these three methods.

`PackedBatches` is the pretraining source: fixed-length windows cut from the packed token shards, shuffled
per epoch by a seeded permutation. Its position is ONE global counter of windows consumed, shared by all
processes (`EpochSampler`), so a checkpoint written by N processes resumes on M processes at the same place
(the global batch stays the same; each process takes its slice of it).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from biomamba.data.shards import TokenShards
from biomamba.errors import DataError

IGNORE_INDEX = -100


@runtime_checkable
class BatchSource(Protocol):
    """What the trainer needs from a data source (see the module docstring)."""

    def next_batch(self) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EpochSampler:
    """Which items of a fixed set this process takes next; `cursor` (global samples consumed) is the position.

    Global sample g is item perm(epoch)[g mod size], the permutation seeded by (seed, epoch) only, so the order
    never depends on how many processes read it; process `rank` of `world_size` takes samples
    [cursor + rank * micro, cursor + (rank + 1) * micro) of each global slice of micro x world_size samples.
    """

    def __init__(
        self, size: int, micro_batch_size: int, *, seed: int, rank: int, world_size: int, shuffle: bool = True
    ) -> None:
        self.size = size
        self.micro_batch_size = micro_batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.cursor = 0
        self._perm_epoch = -1
        self._perm = np.arange(size)

    def _item(self, sample: int) -> int:
        epoch, offset = divmod(sample, self.size)
        if not self.shuffle:
            return offset
        if epoch != self._perm_epoch:
            rng = np.random.Generator(np.random.PCG64([self.seed, epoch]))
            self._perm = rng.permutation(self.size)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def take(self) -> list[int]:
        """The items of this process's next micro-batch; the cursor moves past the whole global slice."""
        first = self.cursor + self.rank * self.micro_batch_size
        items = [self._item(sample) for sample in range(first, first + self.micro_batch_size)]
        self.cursor += self.micro_batch_size * self.world_size
        return items


class PackedBatches(EpochSampler):
    """Causal-LM micro-batches from packed shards: `input_ids`, `labels` (next token) and `seq_idx`.

    Window w covers tokens [w * seq_len, w * seq_len + seq_len + 1): inputs are its first seq_len tokens and
    labels the last seq_len, so every token of the split is predicted once per epoch. `seq_idx` numbers the
    documents inside the window; biomamba's Mamba2 resets its state where it changes.
    """

    def __init__(
        self,
        shards: TokenShards,
        seq_len: int,
        micro_batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        self.shards = shards
        self.seq_len = seq_len
        self.num_windows = max(0, (shards.num_tokens - 1) // seq_len)
        if self.num_windows < micro_batch_size * world_size:
            raise DataError(
                f"{shards.corpus_dir}: split '{shards.split}' has {shards.num_tokens} tokens, too few for "
                f"{micro_batch_size * world_size} windows of {seq_len + 1} tokens; lower train.seq_len or "
                "build a larger corpus"
            )
        super().__init__(
            self.num_windows, micro_batch_size, seed=seed, rank=rank, world_size=world_size, shuffle=shuffle
        )

    @property
    def epoch(self) -> float:
        """Fractional passes over the split so far (for the log)."""
        return self.cursor / self.num_windows

    def next_batch(self) -> dict[str, torch.Tensor]:
        windows = [self.shards.window(w * self.seq_len, self.seq_len + 1) for w in self.take()]
        tokens = torch.from_numpy(np.stack([tokens for tokens, _ in windows]))
        docs = torch.from_numpy(np.stack([docs for _, docs in windows]))
        return {
            "input_ids": tokens[:, :-1].contiguous(),
            "labels": tokens[:, 1:].contiguous(),
            "seq_idx": docs[:, :-1].contiguous(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "seq_len": self.seq_len,
            "num_windows": self.num_windows,
            "seed": self.seed,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seq_len", "num_windows", "seed", "shuffle"):
            if key in state and state[key] != getattr(self, key):
                raise DataError(
                    f"{self.shards.corpus_dir}: cannot resume: the checkpoint's data position was saved with "
                    f"{key}={state[key]!r}, this run has {getattr(self, key)!r} (corpus or recipe changed)"
                )
        self.cursor = int(state["cursor"])
