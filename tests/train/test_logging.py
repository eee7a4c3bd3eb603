"""Metrics JSON lines, TensorBoard, the live progress line, MFU, and the torch.compile switch."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from tests.factories.corpora import logged_losses, read_jsonl

from biomamba.data.shards import TokenShards
from biomamba.train import CausalLMLoss, PackedBatches, TrainConfig, Trainer
from biomamba.train.metrics import flops_per_token

from .helpers import tiny_gpt2, tiny_mamba2


def _trainer(tmp_path: Path, corpus: Path, model=None, **changes) -> Trainer:
    config = TrainConfig(seq_len=16, micro_batch_size=2, global_batch_size=2, max_steps=3, **changes)
    model = model if model is not None else tiny_gpt2(dropout=0.0)
    return Trainer(model, PackedBatches(TokenShards(corpus), 16, 2), CausalLMLoss(), config, tmp_path / "run")


def test_metrics_jsonl_tensorboard_and_mfu(tmp_path: Path, corpus: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = _trainer(tmp_path, corpus, progress=False, tensorboard=True, peak_tflops=1.0)
    trainer.fit()
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert {"loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu"} <= set(records[0])
    assert records[-1]["tokens"] == 3 * 2 * 16
    assert records[0]["mfu"] == pytest.approx(records[0]["tokens_per_s"] * trainer.flops_per_token / 1e12)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3]
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([r["loss"] for r in records])


def test_progress_line_shows_loss_lr_speed_mfu_and_eta(tmp_path: Path, corpus: Path, capsys) -> None:
    _trainer(tmp_path, corpus, progress=True, peak_tflops=1.0).fit()
    err = capsys.readouterr().err
    for word in ("train", "3/3", "loss", "lr", "tok/s", "MFU", "ETA"):
        assert word in err


def test_flops_per_token_counts_attention_for_transformers_only() -> None:
    gpt2, mamba = tiny_gpt2(), tiny_mamba2()
    gpt2_params = sum(p.numel() for p in gpt2.parameters())
    assert flops_per_token(gpt2, 16, "gpt2") == 6 * gpt2_params + 12 * 2 * 32 * 16
    assert flops_per_token(mamba, 16, "mamba2") == 6 * sum(p.numel() for p in mamba.parameters())


def test_compile_switch_trains_the_compiled_model_and_saves_the_plain_one(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The eager backend keeps this a seconds-long test; inductor is what a GPU run uses.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    plain = _trainer(tmp_path / "a", corpus, progress=False)
    plain.fit()
    compiled = _trainer(tmp_path / "b", corpus, progress=False, compile=True)
    assert compiled.forward_model is not compiled.model and hasattr(compiled.forward_model, "_orig_mod")
    compiled.fit()
    losses = [logged_losses(root / "run") for root in (tmp_path / "a", tmp_path / "b")]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    saved = json.loads(
        (tmp_path / "b" / "run" / "checkpoints" / "step-00000003" / "model" / "config.json").read_text()
    )
    assert saved["model_type"] == "gpt2"
