"""Length-aware batching: a batch is cut where its padding would cost more than another forward call."""

from __future__ import annotations

from biomamba.eval.scoring import CALL_OVERHEAD_TOKENS, padded_chunks


def _cost(lengths, chunks):
    return sum(len(c) * max(lengths[i] for i in c) + CALL_OVERHEAD_TOKENS for c in chunks)


def test_one_long_prompt_is_not_batched_with_fifteen_short_ones():
    lengths = [300] + [25] * 15
    chunks = padded_chunks(lengths, 16)
    assert [list(c) for c in chunks] == [[0], list(range(1, 16))]
    fixed = [range(0, 16)]  # the old batching: 16 rows padded to 300
    assert _cost(lengths, chunks) < _cost(lengths, fixed)


def test_chunks_cover_everything_in_order_and_respect_the_batch_size():
    lengths = sorted([7, 300, 299, 120, 64, 64, 3, 1, 1, 90, 250, 12] * 3, reverse=True)
    for max_rows in (1, 4, 16):
        chunks = padded_chunks(lengths, max_rows)
        assert [i for c in chunks for i in c] == list(range(len(lengths)))
        assert all(1 <= len(c) <= max_rows for c in chunks)
    assert [list(c) for c in padded_chunks([40] * 8, 16)] == [list(range(8))]  # equal lengths: one call
    assert padded_chunks([], 16) == []
