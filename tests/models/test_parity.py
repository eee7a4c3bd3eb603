"""biomamba's Mamba2 against transformers' Mamba2ForCausalLM on the same weights (fp32, CPU)."""

from __future__ import annotations

import torch
from tests.models.conftest import random_ids, tiny_model
from transformers import Mamba2ForCausalLM

from biomamba.models import load_model, save_model


def test_logits_match_transformers(tmp_path):
    ours = tiny_model()
    save_model(ours, tmp_path / "m")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert theirs.lm_head.weight.data_ptr() == theirs.backbone.embeddings.weight.data_ptr()
    ids = random_ids(2, 21)  # not a multiple of the chunk size: padding path too
    with torch.no_grad():
        ref = theirs(input_ids=ids).logits
        got = ours(input_ids=ids).logits
        loaded = load_model(tmp_path / "m")(input_ids=ids).logits
    assert got.shape == ref.shape == (2, 21, 96)
    assert (got - ref).abs().max().item() <= 1e-4
    assert torch.equal(loaded, got)


def test_loads_transformers_written_checkpoint(tmp_path):
    ours = tiny_model(seed=3)
    save_model(ours, tmp_path / "a")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "a")
    theirs.save_pretrained(tmp_path / "b")
    back = load_model(tmp_path / "b")
    ids = random_ids(1, 13)
    with torch.no_grad():
        assert (back(input_ids=ids).logits - theirs.eval()(input_ids=ids).logits).abs().max() <= 1e-4


def test_loss_matches_transformers(tmp_path):
    ours = tiny_model(seed=5)
    save_model(ours, tmp_path / "m")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = random_ids(2, 16)
    labels = ids.clone()
    labels[0, :5] = -100
    with torch.no_grad():
        a = ours(input_ids=ids, labels=labels).loss
        b = theirs(input_ids=ids, labels=labels).loss
    assert abs(a.item() - b.item()) <= 1e-5


def test_hidden_states_match_transformers(tmp_path):
    ours = tiny_model(seed=7)
    save_model(ours, tmp_path / "m")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = random_ids(2, 10)
    with torch.no_grad():
        a = ours(input_ids=ids, output_hidden_states=True).hidden_states
        b = theirs(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(a) == len(b) == 3
    assert max((x - y).abs().max().item() for x, y in zip(a, b, strict=True)) <= 1e-4


def test_lora_on_in_proj_and_out_proj_trains_and_merges():
    from peft import LoraConfig, get_peft_model

    from biomamba.models import family

    model = tiny_model()
    ids = random_ids(2, 12)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["in_proj", "out_proj"]))
    assert family(peft_model) == "mamba2"
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    out = peft_model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n for n, p in peft_model.named_parameters() if p.requires_grad and p.grad is not None}
    assert any("out_proj.lora_A" in n for n in grads) and any("in_proj.lora_B" in n for n in grads)
    with torch.no_grad():
        before = peft_model(input_ids=ids).logits
        merged = peft_model.merge_and_unload()
        assert (merged(input_ids=ids).logits - before).abs().max() < 1e-5
