"""Prefix-sharing model backends: encode a prompt ONCE, then score every answer from its saved state.

Multiple-choice scoring spends almost all of its time on the prompt (PubMedQA abstracts are hundreds of
tokens, answers one or two). lm-evaluation-harness runs prompt + answer again for every choice; here the
prompt is run once per question and the choices continue from the saved state:

- transformers models: from the KV cache (prompts left-padded with an attention mask and explicit
  position ids, so a batch of questions of different lengths runs as one forward);
- biomamba's Mamba2: from the recurrent (conv + SSM) state, which is O(1) in the prompt length. Prompts
  of different lengths are left-padded and the padding is put in its own `seq_idx` segment, so the state
  resets where the real prompt starts; no existing harness reuses a Mamba2 state this way.
- anything else: a plain full-sequence fallback (correct, not faster).

Every backend has the same two calls: `prefill(prompts)` -> (state, last-position log-probs) and
`extend(state, rows, suffixes)` -> (log-probs of each suffix position, new state); `extend` leaves `state`
as it was, so one prefill can feed several extends. Right-padded suffixes
never influence the real positions before them (causal models), so they need no mask.

Scoring needs no state after the answers, so the transformers backend can do better than prefill + extend
(two calls, a cache copied per choice, answers padded to the longest): `score_packed` puts a prompt and
ALL its answers in one row, `[prompt, answer 1, answer 2, ...]`, with a 4D attention mask under which
each answer sees the prompt and its own earlier tokens only, and position ids that restart after the
prompt for every answer. Each answer is computed exactly as in its own prompt + answer sequence, in one
forward per batch, and the LM head runs only on the positions whose log-probs are read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

DEFAULT_MAX_LENGTH = 2048  # lm-eval's default when the config names no context length


class PrefixBackend(Protocol):
    max_length: int

    def prefill(self, prompts: list[list[int]], keep_state: bool = True) -> tuple[Any, torch.Tensor]: ...

    def extend(self, state: Any, rows: list[int], suffixes: list[list[int]]) -> tuple[torch.Tensor, Any]: ...


def padding_id(tokenizer: Any) -> int:
    """The token prompts are padded with: the tokenizer's pad token, else its EOS (GPT-2 has no pad), else 0."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


def model_max_length(model: Any) -> int:
    """Context length as lm-eval's HF backend finds it (config attributes, else 2048)."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None) if config is not None else None
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH


def _device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model always has parameters
        return torch.device("cpu")


def _accepts(model: Any, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    """fp32 log-softmax (over the padded vocabulary, as lm-eval does with the raw logits)."""
    return F.log_softmax(logits.float(), dim=-1)


def _left_pad(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts LEFT-padded to the longest, so every row's last position is its prompt's last token; and
    [B, P] 1 on the real tokens."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    real = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        real[i, width - len(prompt) :] = 1
    return ids, real


def _right_pad(seqs: list[list[int]], pad: int, device: torch.device) -> torch.Tensor:
    width = max(1, max(len(s) for s in seqs))
    out = torch.full((len(seqs), width), pad, dtype=torch.long)
    for i, seq in enumerate(seqs):
        if seq:
            out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out.to(device)


@dataclass
class _KVState:
    cache: Any
    mask: torch.Tensor  # [B, P] 1 on real tokens
    lengths: torch.Tensor  # [B] real tokens so far


def _cache_keyword(model: Any) -> str:
    """transformers 5.24 renamed the forward's `past_key_values` to `cache` (the old name warns and goes in
    5.40); older releases only know `past_key_values`."""
    return "cache" if _accepts(model, "cache") else "past_key_values"


def _returned_cache(out: Any) -> Any:
    """The cache a forward returned: `out.cache` (transformers >= 5.24), else `out.past_key_values`."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _select_rows(cache: Any, index: torch.Tensor, config: Any) -> Any:
    """A new cache holding the given rows (repeats allowed); `cache` is left as it was, so several extends
    (answers bucketed by length) can all start from one prefill."""
    layers = getattr(cache, "layers", None)
    if layers is None:  # transformers before per-layer caches: copy, then select in place
        cache = copy.deepcopy(cache)
        cache.batch_select_indices(index)
        return cache
    from transformers import DynamicCache

    selected = DynamicCache(config=config)
    for number, layer in enumerate(layers):
        selected.update(layer.keys[index], layer.values[index], number)
    return selected


def _suffix_mask(suffixes: list[list[int]], width: int, device: torch.device) -> torch.Tensor:
    """[N, width] 1 on each right-padded sequence's real tokens, 0 on the padding up to `width`."""
    lengths = torch.tensor([len(s) for s in suffixes], device=device)
    return (torch.arange(width, device=device)[None] < lengths[:, None]).long()


class _Backend:
    """What every backend holds: the model, its device, the context length and the padding id."""

    def __init__(self, model: Any, max_length: int | None = None, pad_id: int = 0) -> None:
        self.model = model
        self.device = _device(model)
        self.max_length = max_length or model_max_length(model)
        self.pad_id = pad_id


class HFKVBackend(_Backend):
    """transformers causal LMs, continuing from the KV cache; scoring in packed rows where that is exact
    (`packs`: the model types and attention kernels `_packs` names)."""

    def __init__(self, model: Any, max_length: int | None = None, pad_id: int = 0) -> None:
        super().__init__(model, max_length, pad_id)
        # Only the prompt's last position needs logits: skipping the LM head elsewhere saves a
        # [prompt x vocab] matmul per question (lm-eval computes them all).
        self.last_only = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
        self.cache_keyword = _cache_keyword(model)
        self.packs = _packs(model, self.max_length)
        config = getattr(model, "config", None)
        self.window = getattr(config, "sliding_window", None)
        # sdpa reads a boolean mask (True: attend); eager adds the mask to its scores
        eager = getattr(config, "_attn_implementation", None) == "eager"
        weights = next(model.parameters()).dtype
        self.mask_dtype = (weights if weights.is_floating_point else torch.float32) if eager else torch.bool

    @torch.no_grad()
    def prefill(self, prompts: list[list[int]], keep_state: bool = True) -> tuple[_KVState, torch.Tensor]:
        """Run the prompts; without `keep_state` (single-token answers: nothing to extend) no cache is kept."""
        if not keep_state and self.last_only:
            return self._last_positions(prompts)
        ids, mask = (t.to(self.device) for t in _left_pad(prompts, self.pad_id))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self._forward(ids, mask, positions, use_cache=keep_state, **self.last_only)
        lengths = mask.sum(-1)
        cache = _returned_cache(out) if keep_state else None
        return _KVState(cache, mask, lengths), _log_probs(out.logits[:, -1])

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, **options: Any) -> Any:
        """The model at explicit positions; the mask is left out when nothing is padded, so attention takes
        its plain causal path, as lm-eval's does."""
        padded = mask if not bool(mask.all()) else None
        return self.model(input_ids=ids, attention_mask=padded, position_ids=positions, **options)

    def _last_positions(self, prompts: list[list[int]]) -> tuple[_KVState, torch.Tensor]:
        """Last-position log-probs without a cache: prompts RIGHT-padded, as lm-eval pads, so attention keeps
        its plain causal path (no mask: a real token never sees the padding after it), and the LM head runs
        on each row's last real position only (`logits_to_keep` as a boolean mask)."""
        ids = _right_pad(prompts, self.pad_id, self.device)
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        last = torch.arange(ids.shape[1], device=self.device)[None] == (lengths - 1)[:, None]
        out = self.model(input_ids=ids, use_cache=False, logits_to_keep=last)
        mask = _suffix_mask(prompts, ids.shape[1], self.device)
        return _KVState(None, mask, lengths), _log_probs(out.logits)

    @torch.no_grad()
    def extend(
        self, state: _KVState, rows: list[int], suffixes: list[list[int]]
    ) -> tuple[torch.Tensor, _KVState]:
        """Log-probs [N, T, V] of the suffixes continuing rows `rows` of the state (left unchanged).

        Suffixes are right-padded to the widest; a padded position's id is clamped to the last position
        the model has (a row whose prompt sits at the context limit would otherwise index past GPT-2's
        learned positions) and masked out of the returned state. Causal attention keeps padding from
        touching the real positions before it.
        """
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        cache = _select_rows(state.cache, index, getattr(self.model, "config", None))
        ids = _right_pad(suffixes, self.pad_id, self.device)
        width = ids.shape[1]
        mask = torch.cat([state.mask[index], _suffix_mask(suffixes, width, self.device)], 1)
        lengths = state.lengths[index]
        positions = (lengths[:, None] + torch.arange(width, device=self.device)[None]).clamp(
            max=self.max_length - 1
        )
        out = self._forward(ids, mask, positions, use_cache=True, **{self.cache_keyword: cache})
        new_lengths = lengths + torch.tensor([len(s) for s in suffixes], device=self.device)
        return _log_probs(out.logits), _KVState(_returned_cache(out), mask, new_lengths)

    @torch.no_grad()
    def score_packed(
        self, rows: list[list[tuple[list[int], list[list[int]]]]]
    ) -> list[list[list[torch.Tensor]]]:
        """Log-probs [1 + len(answer), V] at the prompt's last position and each answer position, per row,
        per question, per answer, from ONE forward over rows `[prompt, answer 1, answer 2, ..., next
        prompt, its answers, ...]` (each row a list of (prompt, answers); rows left-padded).

        Under the 4D mask an answer token attends to its question's prompt and its own earlier tokens, at
        the positions it would have after the prompt alone, and a prompt to itself only, so every answer
        is scored as in its own sequence; only the positions read go through the LM head
        (`logits_to_keep` as a boolean mask).
        """
        layouts = [_packed_row(row) for row in rows]
        width = max(len(layout[0]) for layout in layouts)
        # per position: token, position id, question (-1: padding), part (0: prompt, i: answer i)
        grid = torch.full((4, len(rows), width), -1, dtype=torch.long)
        grid[0], grid[1] = self.pad_id, 0
        for i, layout in enumerate(layouts):
            grid[:, i, width - len(layout[0]) :] = torch.tensor(layout, dtype=torch.long)
        ids, positions, question, part = grid
        keep = _last_prompt_and_answers(question, part)
        mask = _packed_mask(question, part, positions, self.window, self.mask_dtype)
        ids, positions, keep, mask = (t.to(self.device) for t in (ids, positions, keep, mask))
        kwargs = {"logits_to_keep": keep} if self.last_only else {}
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, **kwargs
        )
        logp = _log_probs(out.logits if self.last_only else out.logits[keep])
        result, offset = [], 0
        for row in rows:
            per_question = []
            for _, suffixes in row:
                last, offset = logp[offset], offset + 1
                per_answer = []
                for suffix in suffixes:
                    per_answer.append(torch.cat([last[None], logp[offset : offset + len(suffix)]]))
                    offset += len(suffix)
                per_question.append(per_answer)
            result.append(per_question)
        return result


# transformers model types whose attention takes a custom 4D mask as it is (masking_utils) and whose
# positions come from position_ids only: packed scoring is exact for them (tests/eval/test_parity.py).
PACKED_MODEL_TYPES = ("gpt2", "llama", "mistral", "qwen2", "qwen3", "phi3")
MASK_READERS = ("sdpa", "eager")


def _packs(model: Any, max_length: int) -> bool:
    """Whether `score_packed` is exact for this model: a known model type, an attention implementation
    that reads a 4D mask, no sliding window narrower than the context (one mask serves every layer)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in PACKED_MODEL_TYPES:
        return False
    if getattr(config, "_attn_implementation", None) not in MASK_READERS:
        return False
    window = getattr(config, "sliding_window", None)
    return window is None or int(window) >= max_length


def _packed_row(row: list[tuple[list[int], list[list[int]]]]) -> list[list[int]]:
    """[tokens, position ids, question numbers, part numbers] of one packed row."""
    tokens: list[int] = []
    positions: list[int] = []
    questions: list[int] = []
    parts: list[int] = []
    for number, (prefix, suffixes) in enumerate(row):
        tokens += prefix
        positions += range(len(prefix))
        parts += [0] * len(prefix)
        for answer, suffix in enumerate(suffixes, start=1):
            tokens += suffix
            positions += range(len(prefix), len(prefix) + len(suffix))
            parts += [answer] * len(suffix)
        questions += [number] * (len(tokens) - len(questions))
    return [tokens, positions, questions, parts]


def _last_prompt_and_answers(question: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """[B, T] True at every answer position and at each prompt's last position (a prompt token followed by
    an answer, another question or the row's end)."""
    next_question = torch.cat([question[:, 1:], torch.full_like(question[:, :1], -2)], 1)
    next_part = torch.cat([part[:, 1:], torch.ones_like(part[:, :1])], 1)
    prompt = (question >= 0) & (part == 0)
    return (part > 0) | (prompt & ((next_part != 0) | (next_question != question)))


def _packed_mask(
    question: torch.Tensor,
    part: torch.Tensor,
    positions: torch.Tensor,
    window: int | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """[B, 1, T, T] mask: a query sees the earlier keys of its own question's prompt and of its own answer
    (never padding, never another question); a padding query sees itself only, so no softmax row is
    empty. Boolean (sdpa), else additive."""
    width = question.shape[1]
    index = torch.arange(width)
    same_question = (question[:, :, None] == question[:, None, :]) & (question[:, None, :] >= 0)
    key_part, query_part = part[:, None, :], part[:, :, None]
    allowed = (
        (index[:, None] >= index[None, :]) & same_question & ((key_part == 0) | (key_part == query_part))
    )
    if window is not None:
        allowed &= (positions[:, :, None] - positions[:, None, :]) < window
    allowed |= torch.eye(width, dtype=torch.bool)
    allowed = allowed[:, None]
    if dtype == torch.bool:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


class Mamba2StateBackend(_Backend):
    """biomamba's Mamba2, continuing from the recurrent state (`allocate_cache`, `cache.select`)."""

    def __init__(self, model: Any, max_length: int | None = None, pad_id: int = 0) -> None:
        super().__init__(model, max_length, pad_id)
        # Left padding is safe only when the real prompt is longer than the conv window: the conv
        # history saved in the cache is the last (d_conv - 1) inputs, which must all be real tokens.
        self.min_padded_length = int(getattr(model.config, "d_conv", 4))

    @torch.no_grad()
    def prefill(self, prompts: list[list[int]], keep_state: bool = True) -> tuple[Any, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ragged = any(len(p) != width for p in prompts)
        if ragged and any(len(p) < self.min_padded_length for p in prompts):
            return self._prefill_by_length(prompts)
        ids, seq_idx = _left_pad(prompts, self.pad_id)  # the padding is segment 0, the prompt segment 1
        cache = self.model.allocate_cache(len(prompts))
        out = self.model(
            input_ids=ids.to(self.device),
            seq_idx=seq_idx.to(self.device) if ragged else None,
            cache=cache,
            logits_to_keep=1,
        )
        return cache, _log_probs(out.logits[:, -1])

    def _prefill_by_length(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor]:
        """Rows grouped by exact length (no padding at all), then stacked back in the caller's order."""
        by_length: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            by_length.setdefault(len(prompt), []).append(i)
        caches, logits, order = [], [], []
        for rows in by_length.values():
            cache, lp = self.prefill([prompts[i] for i in rows])
            caches.append(cache)
            logits.append(lp)
            order.extend(rows)
        cache = type(caches[0]).cat(caches)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return cache.select(inverse), torch.cat(logits)[inverse.to(logits[0].device)]

    @torch.no_grad()
    def extend(self, state: Any, rows: list[int], suffixes: list[list[int]]) -> tuple[torch.Tensor, Any]:
        cache = state.select(rows)
        ids = _right_pad(suffixes, self.pad_id, self.device)
        out = self.model(input_ids=ids, cache=cache)
        return _log_probs(out.logits), cache


@dataclass
class _FullState:
    prompts: list[list[int]]


class FullSequenceBackend(_Backend):
    """Any causal LM without a usable cache: runs prompt + suffix in full (the lm-eval way)."""

    def _run(self, seqs: list[list[int]]) -> torch.Tensor:
        return _log_probs(self.model(input_ids=_right_pad(seqs, self.pad_id, self.device)).logits)

    @torch.no_grad()
    def prefill(self, prompts: list[list[int]], keep_state: bool = True) -> tuple[_FullState, torch.Tensor]:
        lp = self._run(prompts)
        last = torch.tensor([len(p) - 1 for p in prompts], device=lp.device)
        return _FullState(prompts), lp[torch.arange(len(prompts), device=lp.device), last]

    @torch.no_grad()
    def extend(
        self, state: _FullState, rows: list[int], suffixes: list[list[int]]
    ) -> tuple[torch.Tensor, _FullState]:
        full = [state.prompts[r] + s for r, s in zip(rows, suffixes, strict=True)]
        lp = self._run(full)
        width = max(1, max(len(s) for s in suffixes))
        out = torch.zeros((len(rows), width, lp.shape[-1]), dtype=lp.dtype, device=lp.device)
        for i, (r, s) in enumerate(zip(rows, suffixes, strict=True)):
            start = len(state.prompts[r])
            out[i, : len(s)] = lp[i, start : start + len(s)]
        return out, _FullState(full)


def make_backend(
    model: Any, *, max_length: int | None = None, pad_id: int = 0, kind: str = "auto"
) -> PrefixBackend:
    """Pick the fastest correct backend for `model` ("auto"), or force "kv", "mamba2" or "full"."""
    if kind == "auto":  # the family's `FamilySpec.eval_backend` (transformers' Mamba caches: "full")
        from biomamba.models.families import GENERIC, family_spec

        kind = family_spec(model, default=GENERIC).eval_backend
    backends = {"kv": HFKVBackend, "mamba2": Mamba2StateBackend, "full": FullSequenceBackend}
    if kind not in backends:
        raise ValueError(f"unknown backend {kind!r} (auto, kv, mamba2, full)")
    return backends[kind](model, max_length=max_length, pad_id=pad_id)
