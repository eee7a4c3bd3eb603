"""SFT collation: tokenise prompt/completion pairs, mask the prompt, pad or pack with document boundaries.

Conventions (those of transformers and TRL, so numbers are comparable):
- `labels[i]` is the target of position i; the loss shifts by one (`logits[:, :-1]` against `labels[:, 1:]`);
- prompt tokens, padding and every document's first token carry -100, so the loss covers answer tokens only
  and no token is ever predicted from the previous packed document;
- prompt and completion are tokenised separately and concatenated, so the mask boundary is exact whatever
  the tokenizer merges across it; an over-long example loses prompt tokens from the LEFT (the question and
  "Answer:" sit at the end of every template), never completion tokens unless the completion alone is too long.

Every batch carries `seq_idx` (document index per position; trailing padding is one more index),
`position_ids` (restarting at each document) and `documents` (real documents per row, which tells a second
document from a trailing padding segment: both show as seq_idx 1). Mamba2 takes `seq_idx` and resets its
conv and SSM state where it changes; transformer families get a block-diagonal causal attention mask built
from it, so packing never lets documents see each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from biomamba.train.batches import IGNORE_INDEX
from biomamba.train.loss import token_cross_entropy


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def tokenize_pair(
    tokenizer: Any,
    prompt: str,
    completion: str,
    max_length: int,
    *,
    add_eos: bool = True,
    answer_reserve: int | None = None,
) -> TokenizedExample:
    """Prompt ids (masked) + completion ids (+ EOS), truncated to `max_length` as described above.

    `answer_reserve` fixes how many positions the prompt leaves free whatever this example's answer is
    (multiple choice: the longest choice + EOS). Without it, left truncation would keep a different amount
    of context for a "no" than for a "maybe" answer, leaking the answer into the prompt, and scoring (which
    must cut every choice's prompt the same way) would see other positions than training did.
    """
    prompt_ids = encode(tokenizer, prompt, special=True)
    completion_ids = encode(tokenizer, completion, special=False)
    eos = getattr(tokenizer, "eos_token_id", None)
    if add_eos and eos is not None:
        completion_ids.append(int(eos))
    bos = getattr(tokenizer, "bos_token_id", None)
    if answer_reserve is not None:
        prompt_ids = truncate_prompt(prompt_ids, max_length - answer_reserve, bos)
    return _truncate(prompt_ids, completion_ids, max_length, bos)


def truncate_prompt(prompt_ids: list[int], budget: int, bos: int | None) -> list[int]:
    """Keep the last `budget` prompt tokens (and a leading BOS when the tokenizer adds one)."""
    budget = max(1, budget)
    if len(prompt_ids) <= budget:
        return prompt_ids
    if bos is not None and prompt_ids and prompt_ids[0] == bos:
        return [bos] + prompt_ids[len(prompt_ids) - budget + 1 :]
    return prompt_ids[-budget:]


def answer_reserve(tokenizer: Any, choices: Sequence[str]) -> int:
    """Positions to leave for the longest choice plus EOS."""
    return max(len(encode(tokenizer, c, special=False)) for c in choices) + 1


def _truncate(
    prompt_ids: list[int], completion_ids: list[int], max_length: int, bos: int | None
) -> TokenizedExample:
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    keep_bos = bool(prompt_ids) and bos is not None and prompt_ids[0] == bos
    if len(completion_ids) > max_length - 1:
        completion_ids = completion_ids[: max_length - 1]
    room = max_length - len(completion_ids)
    if len(prompt_ids) > room:
        prompt_ids = (
            ([prompt_ids[0]] + prompt_ids[len(prompt_ids) - room + 1 :]) if keep_bos else prompt_ids[-room:]
        )
    if not prompt_ids:  # a completion needs at least one token to be predicted from
        prompt_ids = [bos if bos is not None else completion_ids[0]]
    return TokenizedExample(prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids)


def pad_rows(
    examples: Sequence[TokenizedExample], pad_id: int, length: int | None = None
) -> dict[str, torch.Tensor]:
    """One example per row, right-padded (right padding keeps causal models' real tokens unaffected)."""
    length = length or max(len(e) for e in examples)
    rows = [[e] for e in examples]
    return _assemble(rows, pad_id, length)


def pack_greedy(examples: Iterable[TokenizedExample], seq_len: int) -> list[list[TokenizedExample]]:
    """Rows of whole examples, in order, each row at most `seq_len` tokens (an example never split).

    Keeping the order makes the packed stream a pure function of the example order, which is what lets the
    trainer resume exactly from a saved position.
    """
    rows: list[list[TokenizedExample]] = []
    used = seq_len
    for example in examples:
        if used + len(example) > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(example)
        used += len(example)
    return rows


def pack_rows(examples: Iterable[TokenizedExample], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """`pack_greedy`'s rows as one padded batch; an example longer than `seq_len` is an error."""
    examples = list(examples)
    for example in examples:
        if len(example) > seq_len:
            raise ValueError(f"example of {len(example)} tokens does not fit seq_len {seq_len}")
    return _assemble(pack_greedy(examples, seq_len) or [[]], pad_id, seq_len)


def _assemble(rows: list[list[TokenizedExample]], pad_id: int, length: int) -> dict[str, torch.Tensor]:
    shape = (len(rows), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    seq_idx = torch.zeros(shape, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    documents = torch.tensor([len(row) for row in rows], dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for d, example in enumerate(row):
            end = start + len(example)
            input_ids[r, start:end] = torch.tensor(example.input_ids)
            labels[r, start:end] = torch.tensor(example.labels)
            labels[r, start] = IGNORE_INDEX  # never predict a document's first token from the previous one
            seq_idx[r, start:end] = d
            position_ids[r, start:end] = torch.arange(len(example))
            start = end
        if start < length:  # padding forms its own trailing "document"
            seq_idx[r, start:] = len(row)
            position_ids[r, start:] = torch.arange(length - start)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "seq_idx": seq_idx,
        "position_ids": position_ids,
        "documents": documents,
    }


def block_causal_mask(seq_idx: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, T] bool: position i may attend to j iff j <= i and both are in the same document."""
    length = seq_idx.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=seq_idx.device).tril()
    same = seq_idx[:, :, None] == seq_idx[:, None, :]
    return (causal & same)[:, None]


def is_packed(seq_idx: torch.Tensor, documents: torch.Tensor | None = None) -> bool:
    """True when some row holds more than one real document (padding alone needs no mask).

    seq_idx alone cannot tell [doc 0, doc 1] from [doc 0, padding] (both reach index 1), so the collators'
    `documents` count decides; without it any row with a second segment counts as packed (isolating a
    padding segment changes no real token's logits, it only costs the mask).
    """
    if documents is not None:
        return bool((documents > 1).any())
    return bool((seq_idx.amax(dim=1) > 0).any())


def lm_forward(model: Any, batch: dict[str, torch.Tensor], family: str) -> torch.Tensor:
    """Logits [B, T, V] of a (possibly packed) batch, documents isolated from each other.

    Mamba2 gets `seq_idx` (its state resets at each document); transformer families get a block-diagonal
    causal mask and per-document positions when a row is packed.
    """
    input_ids = batch["input_ids"]
    seq_idx = batch.get("seq_idx")
    if seq_idx is None or not is_packed(seq_idx, batch.get("documents")):
        return model(input_ids=input_ids).logits
    from biomamba.models import family_named

    if family_named(family).takes_seq_idx:
        return model(input_ids=input_ids, seq_idx=seq_idx.to(torch.int32)).logits
    return model(
        input_ids=input_ids, attention_mask=block_causal_mask(seq_idx), position_ids=batch["position_ids"]
    ).logits


def completion_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over answer tokens only (label -100 elsewhere), in fp32 for stability."""
    return token_cross_entropy(logits[:, :-1], labels[:, 1:], reduction="mean")
