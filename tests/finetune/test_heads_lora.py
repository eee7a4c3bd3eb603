from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biomamba.errors import BiomambaError
from biomamba.finetune.heads import (
    ChoiceClassifier,
    SequenceClassifier,
    classification_loss,
    collate_questions,
    encode_choices,
    encode_sequence,
    load_classifier,
    save_classifier,
)
from biomamba.finetune.lora import apply_lora, check_qlora_available, merge_lora, trainable_parameters
from biomamba.finetune.records import QAExample
from biomamba.models import family, load_model, save_model

PERMUTATIONS = [(0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2)]
DRUGS = ("metformin", "insulin", "aspirin")
# the gold option is always "aspirin", at a different position each time: learnable from the option alone
QUESTIONS = [
    QAExample(
        str(i),
        f"Question {i}: which drug is an antiplatelet?",
        "aspirin",
        "",
        tuple(DRUGS[k] for k in perm),
        perm.index(2),
        ("A", "B", "C"),
    )
    for i, perm in enumerate(PERMUTATIONS)
]
YNM = [
    QAExample(
        str(i),
        f"Does drug {i} reduce stroke?",
        a,
        "The trial enrolled patients.",
        ("yes", "no", "maybe"),
        ("yes", "no", "maybe").index(a),
        ("yes", "no", "maybe"),
    )
    for i, a in enumerate(["yes", "no", "maybe", "yes"])
]


def _mc_batch(tokenizer):
    items = [encode_choices(tokenizer, q, 48) for q in QUESTIONS]
    return collate_questions(items, tokenizer.pad_token_id, multiple_choice=True)


def test_choice_classifier_learns_and_ignores_padding(tokenizer, tiny_model_dir: Path) -> None:
    torch.manual_seed(0)
    model = ChoiceClassifier(load_model(tiny_model_dir)).train()
    batch = _mc_batch(tokenizer)
    assert batch["input_ids"].shape[:2] == (6, 3)
    logits = model(batch["input_ids"], batch["last_index"])
    assert logits.shape == (6, 3)
    # extra right padding does not move the pooled state of a causal model
    wider = torch.nn.functional.pad(batch["input_ids"], (0, 5), value=tokenizer.pad_token_id)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model(wider, batch["last_index"]), model(batch["input_ids"], batch["last_index"])
        )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss = classification_loss(model(batch["input_ids"], batch["last_index"]), batch["labels"])
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first * 0.5, (first, loss.item())


def test_sequence_classifier_round_trip(tokenizer, tiny_model_dir: Path, tmp_path: Path) -> None:
    model = SequenceClassifier(load_model(tiny_model_dir), 3, ("yes", "no", "maybe")).eval()
    batch = collate_questions(
        [encode_sequence(tokenizer, q, 64) for q in YNM], tokenizer.pad_token_id, multiple_choice=False
    )
    assert batch["input_ids"].ndim == 2
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        before = model(batch["input_ids"], batch["last_index"])
    assert before.shape == (4, 3)
    save_classifier(model, tmp_path / "clf", tokenizer)
    again = load_classifier(tmp_path / "clf")
    assert again.labels == ["yes", "no", "maybe"] and isinstance(again, SequenceClassifier)
    with torch.no_grad():
        torch.testing.assert_close(again(batch["input_ids"], batch["last_index"]), before)


def test_lora_targets_train_merge_and_reload(tokenizer, tiny_model_dir: Path, tmp_path: Path) -> None:
    base = load_model(tiny_model_dir)
    fam = family(base)
    ids = torch.tensor([tokenizer("Question: Does aspirin work? Answer: yes")["input_ids"]])
    with torch.no_grad():
        reference = base(input_ids=ids).logits.clone()
    model = apply_lora(base, fam, r=4, alpha=8, dropout=0.0)
    assert family(model) == fam
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    expected = {"mamba2": ("in_proj", "out_proj"), "gpt2": ("c_attn", "c_proj", "c_fc")}[fam]
    assert all(any(f".{t}." in n for n in names) for t in expected)
    trainable, total = trainable_parameters(model)
    assert 0 < trainable < total * 0.2
    with torch.no_grad():  # adapters start at zero: the model is unchanged
        torch.testing.assert_close(model(input_ids=ids).logits, reference)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None]).mean().neg()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        tuned = model(input_ids=ids).logits.clone()
    assert not torch.allclose(tuned, reference)
    merged = merge_lora(model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    save_model(merged, tmp_path / "merged", tokenizer)
    reloaded = load_model(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, tuned, atol=1e-4, rtol=1e-4)


def test_lora_on_classifier_backbone_keeps_head_trainable(tokenizer, tiny_model_dir: Path) -> None:
    lm = load_model(tiny_model_dir)
    model = ChoiceClassifier(apply_lora(lm, family(lm), r=2))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert "head.weight" in trainable and all(n.startswith("head.") or "lora_" in n for n in trainable)
    batch = _mc_batch(tokenizer)
    loss = classification_loss(model(batch["input_ids"], batch["last_index"]), batch["labels"])
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_unknown_lora_target_is_a_clear_error(tiny_gpt2_dir: Path) -> None:
    with pytest.raises(BiomambaError, match=r"\['in_proj'\] not found in the gpt2 model"):
        apply_lora(load_model(tiny_gpt2_dir), "gpt2", target_modules=["in_proj"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_qlora_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(BiomambaError, match="qlora needs"):
        check_qlora_available()
