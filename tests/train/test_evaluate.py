"""Held-out perplexity per domain, early stopping and the best checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tests.factories.corpora import read_jsonl

from biomamba.data.shards import TokenShards
from biomamba.errors import RecipeError
from biomamba.train import CausalLMLoss, HeldoutPerplexity, PackedBatches, TrainConfig, Trainer

from .helpers import tiny_gpt2, tiny_mamba2


def test_heldout_perplexity_matches_a_direct_computation(corpus: Path) -> None:
    model = tiny_mamba2().eval()
    evaluator = HeldoutPerplexity(str(corpus), seq_len=16, batch_size=3, max_tokens=100, use_seq_idx=True)
    with torch.no_grad():
        results = evaluator(model)
        assert set(results) == {"c4/loss", "c4/ppl", "pubmed/loss", "pubmed/ppl"}
        shards = TokenShards(corpus, "heldout/pubmed")
        total, count = 0.0, 0
        for i in range(100 // 16):
            tokens, docs = (torch.from_numpy(a)[None] for a in shards.window(i * 16, 17))
            logits = model(input_ids=tokens[:, :-1], seq_idx=docs[:, :-1]).logits
            total += F.cross_entropy(logits[0], tokens[0, 1:], reduction="sum").item()
            count += 16
    assert results["pubmed/loss"] == pytest.approx(total / count, rel=1e-5)
    assert results["pubmed/ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_unknown_domain_is_named(corpus: Path) -> None:
    with pytest.raises(RecipeError, match=r"train.eval_domains: no held-out split for \['wikipedia'\]"):
        HeldoutPerplexity(str(corpus), seq_len=16, batch_size=2, max_tokens=64, domains=["wikipedia"])


def test_early_stopping_stops_and_keeps_the_best_checkpoint(tmp_path: Path, corpus: Path) -> None:
    scores = iter([3.0, 2.0, 2.5, 2.4, 2.1, 1.0])  # best at the 2nd evaluation, then 3 without improvement

    def fake_metric(model) -> dict[str, float]:
        return {"score": next(scores)}

    config = TrainConfig(
        seq_len=16,
        micro_batch_size=2,
        global_batch_size=2,
        max_steps=20,
        eval_every=2,
        progress=False,
        early_stopping={"metric": "val/score", "mode": "min", "patience": 3},
        keep_best=True,
    )
    trainer = Trainer(
        tiny_gpt2(),
        PackedBatches(TokenShards(corpus), 16, 2),
        CausalLMLoss(),
        config,
        tmp_path / "run",
        evaluators={"val": fake_metric},
    )
    result = trainer.fit()
    assert result.stopped == "early_stopping" and result.step == 10
    best = json.loads((tmp_path / "run" / "checkpoints" / "best" / "trainer_state.json").read_text())
    assert best["step"] == 4 and best["best_metric"] == 2.0
    assert (tmp_path / "run" / "checkpoints" / "step-00000010").is_dir()  # the stopping point is saved too
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["val/score"] for r in records if "val/score" in r] == [3.0, 2.0, 2.5, 2.4, 2.1]
