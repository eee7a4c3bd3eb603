"""Log-likelihood of (context, continuation) pairs, tokenized exactly as lm-evaluation-harness does.

Tokenization follows lm-eval's causal HF backend (`_encode_pair`): trailing spaces of the context move to
the continuation; the continuation tokens are `encode(context + continuation)[len(encode(context)):]`; the
model input is `(context + continuation)[-(max_length + 1):][:-1]`; an empty context is replaced by the
prefix token (BOS, else EOS). The per-choice log-likelihoods therefore match lm-eval's to float error,
which the parity test checks, while the prompt is run once per question instead of once per choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from biomamba.eval.backends import PrefixBackend


@dataclass
class Encoded:
    """One request as token ids: the model input and how many of its last positions are the answer."""

    inputs: list[int]  # (context + continuation)[-(max_length+1):][:-1]
    continuation: list[int]


class RequestEncoder:
    """Caches context encodings: every choice of a question shares its context string."""

    def __init__(self, tokenizer: Any, max_length: int, add_special_tokens: bool | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.add_special_tokens = add_special_tokens
        self._cache: dict[str, list[int]] = {}
        bos = getattr(tokenizer, "bos_token_id", None)
        self.prefix_token_id = bos if bos is not None else tokenizer.eos_token_id

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        flag = add_special_tokens if add_special_tokens is not None else self.add_special_tokens
        kwargs = {} if flag is None else {"add_special_tokens": flag}
        if add_special_tokens is None and self._has_bos_prefix(text):
            kwargs["add_special_tokens"] = False
        return list(self.tokenizer.encode(text, **kwargs))

    def _has_bos_prefix(self, text: str) -> bool:
        bos = getattr(self.tokenizer, "bos_token", None)
        return bool(bos) and text.startswith(bos)

    def _context(self, text: str) -> list[int]:
        if text not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[text] = self.encode(text)
        return self._cache[text]

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context_enc, continuation_enc) as lm-eval's `loglikelihood` + `_encode_pair` produce them."""
        if context == "":
            cont = self.encode(continuation, add_special_tokens=False)
            if self.prefix_token_id != cont[0]:
                return [self.prefix_token_id], cont
            return cont[:1], cont[1:]
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        whole = self.encode(context + continuation)
        ctx = self._context(context)
        return ctx, whole[len(ctx) :]

    def request(self, context: str, continuation: str) -> Encoded:
        return self.tokens(*self.pair(context, continuation))

    def tokens(self, ctx: list[int], cont: list[int]) -> Encoded:
        if not cont:
            raise ValueError("empty continuation: nothing to score")
        if len(cont) > self.max_length:
            raise ValueError(
                f"a {len(cont)}-token answer does not fit the {self.max_length}-token context window"
            )
        full = (ctx + cont)[-(self.max_length + 1) :]
        return Encoded(full[:-1], cont)


def shared_prefix_length(group: Sequence[Encoded]) -> int:
    """Longest common token prefix that still ends before every request's first answer position."""
    limit = min(len(e.inputs) - len(e.continuation) + 1 for e in group)
    first = group[0].inputs
    length = 0
    while length < limit and all(len(e.inputs) > length and e.inputs[length] == first[length] for e in group):
        length += 1
    return length


@dataclass
class _Plan:
    prefix: list[int]
    members: list[tuple[int, Encoded]]  # (request index, request)

    def suffix(self, enc: Encoded) -> list[int]:
        """The tokens of a request's input after the shared prompt (empty for a one-token answer)."""
        return enc.inputs[len(self.prefix) :]

    def packed_length(self) -> int:
        """Tokens of the prompt followed by every request's suffix (one row of `score_packed`)."""
        return len(self.prefix) + sum(len(self.suffix(enc)) for _, enc in self.members)


def plan_groups(groups: Sequence[Sequence[Encoded]]) -> list[_Plan]:
    """One prompt per question when its choices share one; a question whose choices share nothing
    (left truncation cut them differently) falls back to one prompt per choice."""
    plans: list[_Plan] = []
    index = 0
    for group in groups:
        length = shared_prefix_length(group)
        if length >= 1:
            plans.append(_Plan(group[0].inputs[:length], list(enumerate(group, start=index))))
        else:
            for offset, enc in enumerate(group):
                own = len(enc.inputs) - len(enc.continuation) + 1
                plans.append(_Plan(enc.inputs[:own], [(index + offset, enc)]))
        index += len(group)
    return plans


# Fixed cost of one forward call, in token positions: a chunk is split off only when that saves more
# padded positions than the extra call costs.
CALL_OVERHEAD_TOKENS = 128


def padded_chunks(lengths: Sequence[int], max_rows: int, overhead: int = CALL_OVERHEAD_TOKENS) -> list[range]:
    """Split items sorted by length into consecutive chunks of at most `max_rows`, minimising the padded
    positions (rows x widest) plus `overhead` per chunk (exact dynamic programme; n is a batch or less)."""
    n = len(lengths)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        widest = 0
        for start in range(end - 1, max(end - max_rows, 0) - 1, -1):
            widest = max(widest, lengths[start], 1)
            cost = best[start] + (end - start) * widest + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, start
    chunks, end = [], n
    while end:
        chunks.append(range(cut[end], end))
        end = cut[end]
    return chunks[::-1]


def score_groups(
    backend: PrefixBackend,
    groups: Sequence[Sequence[Encoded]],
    *,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[float, bool]]:
    """(log-likelihood, is_greedy) of every request, in input order, the groups' prompts shared.

    Prompts are sorted longest first (as lm-eval sorts its requests) and cut into batches of at most
    `batch_size` where the padding saved pays for another call (`padded_chunks`): a batch of 16 questions
    whose prompts run from 300 tokens down to 25 would otherwise be mostly padding. Each batch's prompts
    run once; their answers continue from the saved state, bucketed by length the same way — or, for a
    backend that `packs`, each prompt and all its answers are one row of a single forward (sorted and cut
    by that row's length).
    """
    plans = plan_groups(groups)
    results: list[tuple[float, bool] | None] = [None] * sum(len(g) for g in groups)
    if getattr(backend, "packs", False):  # rows of prompts, each with all its answers
        units: list[Any] = pack_rows(plans, PACKED_ROW_TOKENS)
        lengths = [sum(p.packed_length() for p in row) for row in units]
        score, requests = _score_packed_batch, lambda row: sum(len(p.members) for p in row)
    else:  # prompts, their answers continued from the saved state
        units = sorted(plans, key=lambda p: -len(p.prefix))
        lengths = [len(p.prefix) for p in units]
        score, requests = _score_batch, lambda plan: len(plan.members)
    for chunk in padded_chunks(lengths, max(1, batch_size)):
        batch = [units[i] for i in chunk]
        score(backend, batch, results)
        if progress is not None:
            progress(sum(requests(unit) for unit in batch))
    return [r for r in results if r is not None]


# A packed row holds several short questions up to this many tokens (a longer question has a row of its
# own): fewer, fuller forwards, while the attention over the masked-out pairs of a row stays small. Of
# 128/256/512/1024, 128 and 256 were fastest, within noise of each other, on MedQA and ARC at batch 1, 4
# and 16 (benchmarks/eval_speed.py's small GPT-2, 2000-row vocabulary, 2026-12-02); 512 cost up to 19%
# more and 1024 up to 44%: the masked attention grows with the square of the row.
PACKED_ROW_TOKENS = 256


def pack_rows(plans: Sequence[_Plan], budget: int) -> list[list[_Plan]]:
    """Questions sorted longest first (as lm-eval sorts), filled in order into rows of at most `budget`
    tokens (a question longer than that alone); rows come out longest first too."""
    rows: list[list[_Plan]] = []
    used = budget + 1
    for plan in sorted(plans, key=lambda p: -p.packed_length()):
        if used + plan.packed_length() > budget:
            rows.append([])
            used = 0
        rows[-1].append(plan)
        used += plan.packed_length()
    return rows


def _score_packed_batch(backend: Any, batch: list[list[_Plan]], results: list[Any]) -> None:
    """One forward for the batch: rows of prompts, each with all its answers (`HFKVBackend.score_packed`).

    Rows of one prompt whose answers are all one token need no mask: the plain prefill (causal attention,
    the LM head on the last position) does them."""
    if all(len(row) == 1 and row[0].packed_length() == len(row[0].prefix) for row in batch):
        _score_batch(backend, [row[0] for row in batch], results)
        return
    scored = backend.score_packed(
        [[(p.prefix, [p.suffix(enc) for _, enc in p.members]) for p in row] for row in batch]
    )
    for row, per_row in zip(batch, scored, strict=True):
        for plan, per_member in zip(row, per_row, strict=True):
            for (index, enc), positions in zip(plan.members, per_member, strict=True):
                results[index] = _score(positions, enc, len(plan.prefix))


def _score(positions: torch.Tensor, enc: Encoded, prefix_len: int) -> tuple[float, bool]:
    """(log-likelihood, is_greedy) of `enc`'s continuation from the log-probs at input positions
    prefix_len-1 .. len(inputs)-1 (the prompt's last, then the suffix's)."""
    start = len(enc.inputs) - len(enc.continuation) - (prefix_len - 1)
    logp = positions[start : start + len(enc.continuation)]
    target = torch.tensor(enc.continuation, device=logp.device)
    ll = logp.gather(-1, target[:, None]).sum().item()
    greedy = bool((logp.argmax(-1) == target).all().item())
    return float(ll), greedy


def _score_batch(backend: PrefixBackend, batch: list[_Plan], results: list[Any]) -> None:
    members = [(row, index, enc) for row, plan in enumerate(batch) for index, enc in plan.members]
    suffix = {index: enc.inputs[len(batch[row].prefix) :] for row, index, enc in members}
    state, last = backend.prefill([p.prefix for p in batch], keep_state=any(suffix.values()))
    extended: dict[int, torch.Tensor] = {}
    waiting = sorted((m for m in members if suffix[m[1]]), key=lambda m: len(suffix[m[1]]))
    for chunk in padded_chunks([len(suffix[m[1]]) for m in waiting], max(1, len(waiting))):
        part = [waiting[i] for i in chunk]
        logp, _ = backend.extend(state, [row for row, _, _ in part], [suffix[index] for _, index, _ in part])
        for i, (_, index, _) in enumerate(part):
            extended[index] = logp[i, : len(suffix[index])]
    for row, index, enc in members:
        positions = torch.cat([last[row][None], *([extended[index]] if index in extended else [])])
        results[index] = _score(positions, enc, len(batch[row].prefix))
