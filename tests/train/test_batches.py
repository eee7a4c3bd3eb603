"""PackedBatches: windows, labels, document ids, splitting across processes, resumable position."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biomamba.data.shards import TokenShards
from biomamba.errors import DataError
from biomamba.train import PackedBatches

from .helpers import EOS, make_corpus


def test_labels_are_next_tokens_and_seq_idx_counts_documents(corpus: Path) -> None:
    shards = TokenShards(corpus)
    batch = PackedBatches(shards, 32, 3, shuffle=False).next_batch()
    assert batch["input_ids"].shape == batch["labels"].shape == batch["seq_idx"].shape == (3, 32)
    torch.testing.assert_close(batch["input_ids"][0, 1:], batch["labels"][0, :-1])
    for row in range(3):
        ids, docs = batch["input_ids"][row], batch["seq_idx"][row]
        # The document index steps up exactly at the position after an EOS.
        after_eos = torch.zeros_like(docs)
        after_eos[1:] = (ids[:-1] == EOS).long()
        assert torch.equal(docs, torch.cumsum(after_eos, 0))
    expected = torch.from_numpy(shards.tokens(32, 33))
    assert torch.equal(batch["input_ids"][1], expected[:-1]) and torch.equal(batch["labels"][1], expected[1:])


def test_two_processes_take_the_same_global_batch_as_one(corpus: Path) -> None:
    shards = TokenShards(corpus)
    single = PackedBatches(shards, 16, 4, seed=5)
    ranks = [PackedBatches(shards, 16, 2, seed=5, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        whole = single.next_batch()["input_ids"]
        parts = torch.cat([r.next_batch()["input_ids"] for r in ranks])
        assert torch.equal(whole, parts)
    assert single.state_dict()["cursor"] == ranks[0].state_dict()["cursor"] == 12


def test_state_dict_resumes_at_the_next_batch_across_epochs(corpus: Path) -> None:
    shards = TokenShards(corpus)
    source = PackedBatches(shards, 64, 8, seed=1)
    for _ in range(20):  # several epochs of a small split
        source.next_batch()
    state = source.state_dict()
    expected = source.next_batch()
    fresh = PackedBatches(shards, 64, 8, seed=1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.next_batch()["input_ids"], expected["input_ids"])
    assert source.epoch > 1
    with pytest.raises(DataError, match="seq_len=64, this run has 32"):
        PackedBatches(shards, 32, 8, seed=1).load_state_dict(state)


def test_too_small_a_corpus_is_a_clear_error(tmp_path: Path) -> None:
    shards = TokenShards(make_corpus(tmp_path / "c", train_docs=2))
    with pytest.raises(DataError, match="too few for 8 windows"):
        PackedBatches(shards, 64, 8)
