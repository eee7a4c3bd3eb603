"""Generation: cached decoding equals naive decoding, parity with transformers, stop strings, streaming."""

from __future__ import annotations

import torch
from tests.factories import models
from tests.models.conftest import tiny_model
from transformers import Mamba2ForCausalLM

from biomamba.models import save_model
from biomamba.models.generation import generate, stream_generate

PROMPTS = ["the patient was", "insulin resistance is a hallmark of"]


def _naive_greedy(model, ids: list[int], n: int, vocab: int) -> list[int]:
    """Greedy decoding by re-running the full forward each step (no cache): the reference."""
    out = list(ids)
    for _ in range(n):
        logits = model(input_ids=torch.tensor([out])).logits[0, -1, :vocab]
        out.append(int(logits.argmax()))
    return out[len(ids) :]


def test_mamba2_cached_greedy_equals_naive(tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    results = generate(model, tokenizer, PROMPTS, max_new_tokens=12, greedy=True, stop_at_eos=False)
    for prompt, result in zip(PROMPTS, results, strict=True):
        ids = tokenizer(prompt)["input_ids"]
        with torch.no_grad():
            assert result.token_ids == _naive_greedy(model, ids, 12, len(tokenizer))
        assert result.finish_reason == "length" and result.prompt_tokens == len(ids)
        assert result.text == tokenizer.decode(result.token_ids, skip_special_tokens=True)


def test_mamba2_greedy_matches_transformers_generate(tokenizer, tmp_path):
    model = tiny_model(seed=4, vocab_size=len(tokenizer))
    save_model(model, tmp_path / "m")
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = tokenizer(PROMPTS[1], return_tensors="pt")["input_ids"]
    # transformers does not mask the padded vocabulary rows, so give them no chance to win
    with torch.no_grad():
        for m in (model.lm_head, theirs.lm_head):
            m.weight[len(tokenizer) :] = 0.0
        want = theirs.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=1)[
            0, ids.shape[1] :
        ]
    got = generate(model, tokenizer, PROMPTS[1], max_new_tokens=10, greedy=True, stop_at_eos=False)
    assert got.token_ids == want.tolist()


def test_transformers_model_batched_left_padding_equals_single(tokenizer):
    gpt2 = models.gpt2(len(tokenizer), positions=64).eval()
    batched = generate(gpt2, tokenizer, PROMPTS, max_new_tokens=8, greedy=True, stop_at_eos=False)
    for prompt, result in zip(PROMPTS, batched, strict=True):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            want = gpt2.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=1)
        assert result.token_ids == want[0, ids.shape[1] :].tolist()


def test_stop_string_cuts_and_streaming_never_takes_back(tokenizer):
    model = tiny_model(seed=2, vocab_size=len(tokenizer))
    free = generate(model, tokenizer, PROMPTS[0], max_new_tokens=20, greedy=True, stop_at_eos=False)
    assert len(free.text) > 6
    stop = free.text[3:6]
    cut = generate(model, tokenizer, PROMPTS[0], 20, greedy=True, stop=[stop], stop_at_eos=False)
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    events = list(stream_generate(model, tokenizer, PROMPTS, 20, greedy=True, stop=[stop], stop_at_eos=False))
    for i in range(len(PROMPTS)):
        mine = [e for e in events if e.index == i]
        assert sum(e.finished for e in mine) == 1 and mine[-1].finished
        assert stop not in "".join(e.text for e in mine)
    assert "".join(e.text for e in events if e.index == 0) == cut.text


def test_sampling_is_seeded_and_top_p_tiny_is_greedy(tokenizer):
    model = tiny_model(seed=6, vocab_size=len(tokenizer))
    greedy = generate(model, tokenizer, PROMPTS, 10, greedy=True, stop_at_eos=False)
    nucleus = generate(model, tokenizer, PROMPTS, 10, temperature=1.0, top_p=1e-6, seed=1, stop_at_eos=False)
    assert [g.token_ids for g in greedy] == [g.token_ids for g in nucleus]
    a = generate(model, tokenizer, PROMPTS, 10, temperature=2.0, seed=3, stop_at_eos=False)
    b = generate(model, tokenizer, PROMPTS, 10, temperature=2.0, seed=3, stop_at_eos=False)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in greedy]
    assert all(t < len(tokenizer) for g in a for t in g.token_ids)


def test_eos_ends_a_row(tokenizer):
    model = tiny_model(seed=1, vocab_size=len(tokenizer))
    # declare the first greedy token to be EOS: generation must stop before emitting anything
    first = generate(model, tokenizer, PROMPTS[0], 5, greedy=True, stop_at_eos=False).token_ids[0]
    tokenizer_eos = tokenizer.eos_token_id
    try:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(first)
        result = generate(model, tokenizer, PROMPTS[0], 5, greedy=True)
    finally:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(tokenizer_eos)
    assert result.finish_reason == "eos" and result.token_ids == [] and result.text == ""
