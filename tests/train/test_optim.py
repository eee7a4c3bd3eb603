"""Optimizer groups (decoupled decay rules, layer decay), lr schedules, accumulation and numerics options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tests.factories.corpora import logged_losses

from biomamba.data.shards import TokenShards
from biomamba.train import CausalLMLoss, PackedBatches, TrainConfig, Trainer
from biomamba.train.optim import build_adamw, find_blocks, lr_factor, param_groups

from .helpers import tiny_gpt2, tiny_mamba2


def _names_by_decay(model, **kwargs) -> tuple[set[str], set[str]]:
    decay, no_decay = set(), set()
    for group in param_groups(model, weight_decay=0.1, **kwargs):
        (decay if group.weight_decay else no_decay).update(group.names)
    return decay, no_decay


def test_norms_biases_and_embeddings_are_not_decayed_gpt2() -> None:
    decay, no_decay = _names_by_decay(tiny_gpt2())
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight"} <= no_decay
    assert "transformer.h.0.attn.c_attn.bias" in no_decay and "transformer.h.0.ln_1.weight" in no_decay
    assert decay == {
        f"transformer.h.{i}.{m}.weight"
        for i in range(2)
        for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    }


def test_mamba2_ssm_parameters_and_tied_embedding_are_not_decayed() -> None:
    decay, no_decay = _names_by_decay(tiny_mamba2())
    for name in ("A_log", "D", "dt_bias"):
        assert f"backbone.layers.0.mixer.{name}" in no_decay
    assert "backbone.embeddings.weight" in no_decay
    assert "backbone.layers.0.mixer.in_proj.weight" in decay


def test_no_decay_rules_are_configurable() -> None:
    decay, _ = _names_by_decay(tiny_gpt2(), no_decay=["norm", "bias"])
    assert "transformer.wte.weight" in decay


def test_layer_decay_scales_lr_by_depth() -> None:
    model = tiny_gpt2()  # 2 blocks: embeddings depth 0, blocks 1..2, final norm 3
    scales = {}
    for group in param_groups(model, weight_decay=0.0, layer_lr_decay=0.5):
        scales.update(dict.fromkeys(group.names, group.lr_scale))
    assert scales["transformer.wte.weight"] == 0.5**3
    assert scales["transformer.h.0.attn.c_attn.weight"] == 0.5**2
    assert scales["transformer.h.1.attn.c_attn.weight"] == 0.5
    assert scales["transformer.ln_f.weight"] == 1.0
    optimizer = build_adamw(
        model, lr=1.0, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, no_decay=["bias"], layer_lr_decay=0.5
    )
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [0.125, 0.25, 0.5, 1.0]
    assert find_blocks(model)[0] == "transformer.h"


def test_wsd_schedule_is_warmup_stable_then_cosine_to_a_tenth() -> None:
    factors = [
        lr_factor(s, 100, schedule="wsd", warmup_steps=10, stable_ratio=0.65, min_lr_ratio=0.1)
        for s in range(100)
    ]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0
    assert all(f == 1.0 for f in factors[10:75])
    decay = factors[75:]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False)) and decay[-1] == pytest.approx(0.1)


def test_cosine_and_constant_schedules() -> None:
    cosine = [lr_factor(s, 50, schedule="cosine", warmup_steps=5, min_lr_ratio=0.0) for s in range(50)]
    assert cosine[4] == 1.0 and cosine[5] == 1.0 and cosine[-1] == pytest.approx(0.0, abs=1e-12)
    middle = 5 + (50 - 1 - 5) / 2
    assert lr_factor(int(middle), 50, schedule="cosine", warmup_steps=5, min_lr_ratio=0.0) == pytest.approx(
        0.5
    )
    assert [lr_factor(s, 10, schedule="constant", warmup_steps=2) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]


def _fit(
    tmp_path: Path, corpus: Path, model, name: str, micro: int, **changes
) -> tuple[list[float], Trainer]:
    config = TrainConfig(
        seq_len=16,
        micro_batch_size=micro,
        global_batch_size=4,
        max_steps=3,
        lr=1e-2,
        progress=False,
        **changes,
    )
    use_seq_idx = not hasattr(model, "transformer")
    trainer = Trainer(
        model,
        PackedBatches(TokenShards(corpus), 16, micro),
        CausalLMLoss(use_seq_idx=use_seq_idx),
        config,
        tmp_path / name,
    )
    trainer.fit()
    return logged_losses(tmp_path / name), trainer


def test_gradient_accumulation_equals_the_full_batch(tmp_path: Path, corpus: Path) -> None:
    full, a = _fit(tmp_path, corpus, tiny_gpt2(dropout=0.0), "full", micro=4)
    accumulated, b = _fit(tmp_path, corpus, tiny_gpt2(dropout=0.0), "accum", micro=1)
    torch.testing.assert_close(accumulated, full, rtol=1e-5, atol=1e-6)
    for name, param in a.model.named_parameters():
        torch.testing.assert_close(b.model.get_parameter(name), param, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("make", [tiny_gpt2, tiny_mamba2], ids=["gpt2", "mamba2"])
def test_activation_checkpointing_does_not_change_the_losses(tmp_path: Path, corpus: Path, make) -> None:
    kwargs = {"dropout": 0.0} if make is tiny_gpt2 else {}
    plain, _ = _fit(tmp_path, corpus, make(**kwargs), "plain", micro=2)
    recomputed, trainer = _fit(
        tmp_path, corpus, make(**kwargs), "ckpt", micro=2, activation_checkpointing=True
    )
    model = trainer.model
    assert model.is_gradient_checkpointing if make is tiny_gpt2 else model.backbone.gradient_checkpointing
    torch.testing.assert_close(recomputed, plain, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_keeps_fp32_master_weights(tmp_path: Path, corpus: Path) -> None:
    model = tiny_mamba2().to(torch.bfloat16)  # a checkpoint stored in bf16
    losses, trainer = _fit(tmp_path, corpus, model, "bf16", micro=2, precision="bf16")
    assert all(math.isfinite(v) for v in losses)
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    state = trainer.optimizer.state[next(iter(trainer.model.parameters()))]
    assert state["exp_avg"].dtype == torch.float32


def test_config_rejects_impossible_values() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="multiple of micro_batch_size"):
        TrainConfig(micro_batch_size=3, global_batch_size=8)
    with pytest.raises(ValidationError, match="warmup_ratio \\+ stable_ratio"):
        TrainConfig(schedule="wsd", warmup_ratio=0.5, stable_ratio=0.6)
    with pytest.raises(ValidationError):
        TrainConfig(micro_batch_size=0)
    with pytest.raises(ValueError, match="world size"):
        TrainConfig(micro_batch_size=4, global_batch_size=4).accumulation(world_size=3)
