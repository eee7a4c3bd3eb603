"""Held-out perplexity per domain during training, so forgetting shows while it happens.

Reads `heldout/<domain>` splits of the corpus (docs/formats.md), the first `eval_tokens` tokens of each, as
consecutive windows of seq_len + 1 tokens: the same windows at every evaluation, so the curve compares like
with like. Under torchrun the windows are split across processes and the sums all-reduced; every process runs
the same number of forward passes (padding with zero-weight repeats), which FSDP's collectives require.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from biomamba.data.shards import TokenShards, read_manifest
from biomamba.train.distributed import DistInfo, all_reduce_sum
from biomamba.train.loss import token_cross_entropy


def heldout_domains(corpus_dir: str) -> list[str]:
    """Domains with a held-out split in the corpus manifest, sorted."""
    splits = read_manifest(corpus_dir).get("splits", {})
    return sorted(name.removeprefix("heldout/") for name in splits if name.startswith("heldout/"))


class HeldoutPerplexity:
    """Evaluator `fn(model) -> {"<domain>/ppl": ..., "<domain>/loss": ...}` over held-out splits."""

    def __init__(
        self,
        corpus_dir: str,
        *,
        seq_len: int,
        batch_size: int,
        max_tokens: int,
        domains: list[str] | None = None,
        use_seq_idx: bool = False,
        device: torch.device | str = "cpu",
        dist_info: DistInfo | None = None,
    ) -> None:
        available = heldout_domains(corpus_dir)
        wanted = domains if domains is not None else available
        missing = [d for d in wanted if d not in available]
        if missing:
            from biomamba.errors import RecipeError

            raise RecipeError(
                "recipe",
                "train.eval_domains",
                f"no held-out split for {missing} in {corpus_dir} (have {available})",
            )
        self.batch_size = batch_size
        self.use_seq_idx = use_seq_idx
        self.device = torch.device(device)
        self.dist = dist_info or DistInfo()
        self.windows = {
            d: self._windows(TokenShards(corpus_dir, f"heldout/{d}"), seq_len, max_tokens) for d in wanted
        }

    @staticmethod
    def _windows(shards: TokenShards, seq_len: int, max_tokens: int) -> list[tuple[np.ndarray, np.ndarray]]:
        length = min(seq_len + 1, shards.num_tokens)
        count = max(1, min(max_tokens, shards.num_tokens - 1) // (length - 1))
        return [
            shards.window(i * (length - 1), length)
            for i in range(count)
            if (i + 1) * (length - 1) < shards.num_tokens
        ]

    def __call__(self, model: nn.Module) -> dict[str, float]:
        results: dict[str, float] = {}
        for domain, windows in self.windows.items():
            loss, count = self._domain_loss(model, windows)
            mean = loss / max(count, 1.0)
            results[f"{domain}/loss"] = mean
            results[f"{domain}/ppl"] = math.exp(min(mean, 80.0))
        return results

    def _domain_loss(
        self, model: nn.Module, windows: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[float, float]:
        batches = [windows[i : i + self.batch_size] for i in range(0, len(windows), self.batch_size)]
        world, rank = self.dist.world_size, self.dist.rank
        rounds = math.ceil(len(batches) / world)
        totals = torch.zeros(2, dtype=torch.float64, device=self.device)
        for round_index in range(rounds):
            index = round_index * world + rank
            real = index < len(batches)
            tokens = torch.from_numpy(np.stack([w[0] for w in batches[index if real else 0]])).to(self.device)
            docs = torch.from_numpy(np.stack([w[1] for w in batches[index if real else 0]])).to(self.device)
            kwargs = {"input_ids": tokens[:, :-1]}
            if self.use_seq_idx:
                kwargs["seq_idx"] = docs[:, :-1]
            logits = model(**kwargs).logits
            labels = tokens[:, 1:]
            loss = token_cross_entropy(logits, labels)
            if real:
                totals[0] += loss.double()
                totals[1] += labels.numel()
        all_reduce_sum(totals, self.dist)
        return float(totals[0]), float(totals[1])
