"""No prompt length crashes: prompts at the context limit batched beside short prompts with long answers.

Right-padding the answers of a batch to the widest one used to give the padded positions of a row whose
prompt sits at max_length - 1 position ids past the last one (IndexError on GPT-2's learned positions).
Every backend must give the `full` backend's log-likelihoods, which are checked against one plain forward
per request. The transformers backend is checked both ways it scores: packed (prompts and all their
answers in one masked row, sdpa and eager attention) and prefill + extend from the KV cache.
"""

from __future__ import annotations

import random

import pytest
from tests.eval.conftest import reference_loglik

from biomamba.eval.backends import FullSequenceBackend, make_backend
from biomamba.eval.scoring import (
    PACKED_ROW_TOKENS,
    Encoded,
    RequestEncoder,
    pack_rows,
    plan_groups,
    score_groups,
)

BACKENDS = {"gpt2": ["kv", "full"], "llama": ["kv", "full"], "mamba2": ["mamba2", "full"]}


def _groups(encoder: RequestEncoder, vocab: int) -> list[list[Encoded]]:
    """Questions whose prompts are max_length - 1, max_length - 2 and a few tokens long; answers of 1 to 9
    tokens, so every batch pads short answers up to long ones."""
    rng = random.Random(0)

    def ids(n: int) -> list[int]:
        return [rng.randrange(1, vocab) for _ in range(n)]

    limit = encoder.max_length
    shapes = [(limit - 1, [1, 2]), (limit - 2, [1, 1]), (5, [9, 3]), (limit - 1, [1]), (12, [7, 1, 4])]
    return [[encoder.tokens(ids(n), ids(k)) for k in answers] for n, answers in shapes]


@pytest.mark.parametrize("family", sorted(BACKENDS))
def test_prompts_at_the_context_limit_score_like_full_forwards(family, tiny_tokenizer, request):
    model = request.getfixturevalue(f"tiny_{family}")
    limit = 512 if family != "mamba2" else 160  # gpt2/llama: their n_positions; Mamba2 has no position limit
    encoder = RequestEncoder(tiny_tokenizer, limit)
    groups = _groups(encoder, len(tiny_tokenizer))
    assert max(len(e.inputs) for g in groups for e in g) == limit  # the last position is really used
    full = score_groups(FullSequenceBackend(model, max_length=limit), groups, batch_size=5)
    want = [reference_loglik(model, e) for g in groups for e in g]
    assert [s[0] for s in full] == pytest.approx(want, abs=1e-4)
    for kind in BACKENDS[family]:
        backend = make_backend(model, max_length=limit, kind=kind)
        for packs in (True, False) if kind == "kv" else (False,):
            if packs:  # transformers GPT-2 and Llama pack by default; the short prompts share a row
                assert backend.packs
                assert any(len(row) > 1 for row in pack_rows(plan_groups(groups), PACKED_ROW_TOKENS))
            backend.packs = packs
            for batch_size in (1, 2, 5):
                got = score_groups(backend, groups, batch_size=batch_size)
                want_ll = [s[0] for s in full]
                assert [s[0] for s in got] == pytest.approx(want_ll, abs=1e-4), (kind, packs, batch_size)
                assert [s[1] for s in got] == [s[1] for s in full]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_packed_rows_score_like_full_forwards_under_eager_attention(family, tiny_tokenizer, request):
    """Eager attention adds the mask to its scores (sdpa reads it as booleans): both must pack exactly."""
    import copy

    model = copy.deepcopy(request.getfixturevalue(f"tiny_{family}"))
    model.set_attn_implementation("eager")
    encoder = RequestEncoder(tiny_tokenizer, 512)
    groups = _groups(encoder, len(tiny_tokenizer))
    backend = make_backend(model, max_length=512, kind="kv")
    assert backend.packs
    got = score_groups(backend, groups, batch_size=2)
    want = [reference_loglik(model, e) for g in groups for e in g]
    assert [s[0] for s in got] == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_kv_backend_uses_the_cache_keyword_transformers_keeps(family, tiny_tokenizer, request):
    """transformers 5.24 deprecates the forward's `past_key_values` (removed in 5.40): no such warning."""
    import warnings

    model = request.getfixturevalue(f"tiny_{family}")
    encoder = RequestEncoder(tiny_tokenizer, 64)
    groups = _groups(encoder, len(tiny_tokenizer))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score_groups(make_backend(model, max_length=64, kind="kv"), groups, batch_size=5)
    assert not [w for w in caught if "past_key_values" in str(w.message)]
