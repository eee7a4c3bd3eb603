from __future__ import annotations

import torch

from biomamba.finetune.collate import (
    IGNORE_INDEX,
    TokenizedExample,
    block_causal_mask,
    completion_loss,
    is_packed,
    lm_forward,
    pack_rows,
    pad_rows,
    tokenize_pair,
)
from biomamba.finetune.records import QAExample
from biomamba.finetune.templates import render


def test_only_answer_tokens_carry_labels(tokenizer) -> None:
    example = tokenize_pair(tokenizer, "Question: Does aspirin work?\nAnswer:", " yes", max_length=64)
    answer = tokenizer(" yes", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    n_prompt = len(example) - len(answer)
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert example.labels[n_prompt:] == answer == example.input_ids[n_prompt:]


def test_truncation_keeps_completion_and_prompt_end(tokenizer) -> None:
    prompt = "Context: " + "the trial enrolled patients " * 30 + "\nQuestion: Does it work?\nAnswer:"
    full = tokenize_pair(tokenizer, prompt, " maybe", max_length=10_000)
    short = tokenize_pair(tokenizer, prompt, " maybe", max_length=20)
    assert len(short) == 20
    assert short.input_ids == full.input_ids[-20:]  # cut from the left: question and answer survive
    assert short.labels[-3:] == full.labels[-3:]


def test_pad_and_pack_shapes_masks_and_boundaries() -> None:
    a = TokenizedExample([5, 6, 7], [IGNORE_INDEX, 6, 7])
    b = TokenizedExample([8, 9], [IGNORE_INDEX, 9])
    c = TokenizedExample([1, 2, 3, 4], [IGNORE_INDEX, IGNORE_INDEX, 3, 4])
    padded = pad_rows([a, b], pad_id=0)
    assert padded["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert padded["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX, 9, IGNORE_INDEX]]
    packed = pack_rows([a, b, c], seq_len=6, pad_id=0)
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0], [1, 2, 3, 4, 0, 0]]
    assert packed["seq_idx"].tolist() == [[0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 1, 1]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]
    # the first token of b is not predicted from a's last token
    assert packed["labels"].tolist()[0] == [IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9, IGNORE_INDEX]
    mask = block_causal_mask(packed["seq_idx"])[0, 0]
    assert mask[4, 3] and not mask[4, 2] and not mask[2, 3]


def test_packed_gpt2_logits_equal_separate_documents(tokenizer, tiny_gpt2_dir) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    docs = [tokenize_pair(tokenizer, f"Question: case {i}?\nAnswer:", " yes", 64) for i in range(3)]
    packed = pack_rows(docs, seq_len=64, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        logits = lm_forward(model, packed, "gpt2")
        start = 0
        for doc in docs:
            alone = model(input_ids=torch.tensor([doc.input_ids])).logits[0]
            torch.testing.assert_close(logits[0, start : start + len(doc)], alone, atol=1e-5, rtol=1e-5)
            start += len(doc)
    loss = completion_loss(logits, packed["labels"])
    assert torch.isfinite(loss) and loss > 0


def test_completion_loss_ignores_prompt() -> None:
    logits = torch.zeros(1, 4, 5)
    logits[0, 2, 3] = 100.0  # position 2 predicts label of position 3 perfectly
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 3]])
    assert completion_loss(logits, labels) < 1e-6
    labels_all = torch.tensor([[IGNORE_INDEX, 0, 0, 3]])
    assert completion_loss(logits, labels_all) > 0.5


def test_templates_for_each_kind(tokenizer) -> None:
    ynm = QAExample("1", "Does it?", "no", "Some context.", ("yes", "no", "maybe"), 1, ("yes", "no", "maybe"))
    pair = render(ynm, tokenizer)
    assert pair.prompt == "Context: Some context.\nQuestion: Does it?\nAnswer:"
    assert pair.completion == " no" and pair.choices == (" yes", " no", " maybe") and pair.label == 1
    mc = QAExample("2", "Which drug?", "insulin", "", ("metformin", "insulin"), 1, ("A", "B"))
    pair = render(mc, tokenizer)
    assert "(A) metformin\n(B) insulin\nAnswer:" in pair.prompt and pair.completion == " B"
    free = QAExample("3", "What is flu?", "A virus.")
    assert render(free, tokenizer).completion == " A virus."


def test_row_of_exactly_two_documents_is_isolated(tokenizer, tiny_model_dir) -> None:
    """seq_idx 0 and 1 only (no padding segment): the second document must not see the first."""
    from biomamba.models import family as model_family
    from biomamba.models import load_model

    model = load_model(str(tiny_model_dir), dtype="float32").eval()
    fam = model_family(model)
    first = tokenize_pair(
        tokenizer, "Context: the trial enrolled patients.\nQuestion: case 1?\nAnswer:", " no", 64
    )
    second = tokenize_pair(tokenizer, "Question: Does aspirin work?\nAnswer:", " yes", 64)
    packed = pack_rows([first, second], seq_len=len(first) + len(second), pad_id=tokenizer.pad_token_id)
    assert packed["seq_idx"].amax().item() == 1 and packed["input_ids"].shape[0] == 1
    alone = pad_rows([second], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        logits = lm_forward(model, packed, fam)
        alone_logits = lm_forward(model, alone, fam)
    torch.testing.assert_close(logits[0, len(first) :], alone_logits[0], atol=1e-5, rtol=1e-5)
    labels = packed["labels"].clone()
    labels[0, : len(first)] = IGNORE_INDEX  # the second document's answer tokens only
    torch.testing.assert_close(
        completion_loss(logits, labels), completion_loss(alone_logits, alone["labels"]), atol=1e-5, rtol=1e-5
    )


def test_is_packed_tells_a_second_document_from_padding() -> None:
    a = TokenizedExample([5, 6, 7], [IGNORE_INDEX, 6, 7])
    b = TokenizedExample([8, 9], [IGNORE_INDEX, 9])
    two_docs = pack_rows([a, b], seq_len=5, pad_id=0)
    padded = pad_rows([a, b], pad_id=0)  # row 2: one document + a padding segment
    assert is_packed(two_docs["seq_idx"], two_docs["documents"])
    assert not is_packed(padded["seq_idx"], padded["documents"])
    assert is_packed(two_docs["seq_idx"])  # without counts, any second segment is isolated (safe side)


def test_finetuning_pads_with_the_rule_biomamba_eval_pads_with() -> None:
    """One padding rule: the tokenizer's pad token, else its EOS (GPT-2 has no pad), else 0 (neither)."""
    from types import SimpleNamespace

    from biomamba.eval.backends import padding_id
    from biomamba.finetune.config import FinetuneConfig
    from biomamba.finetune.run import Task

    config = FinetuneConfig.model_construct(task="sft-qa")  # the rule is the tokenizer's alone
    for pad, eos, want in ((7, 2, 7), (None, 2, 2), (None, None, 0)):
        tokenizer = SimpleNamespace(pad_token_id=pad, eos_token_id=eos)
        assert Task(config, tokenizer, "mamba2").pad_id == padding_id(tokenizer) == want
