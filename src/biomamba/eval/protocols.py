"""The three scoring protocols, run over a list of `Question`s with a prefix-sharing backend.

(a) `loglikelihood`: log-likelihood of each choice after the prompt; acc = argmax, acc_norm = argmax of
    log-likelihood / character length of the choice (exactly lm-evaluation-harness's definitions).
(b) `letter`: BioMistral's protocol. The question is shown with lettered options after k solved examples
    ("Answer: B"); the prediction is the answer letter with the highest next-token probability, and it
    counts as WRONG when the single most probable next token is not one of the valid letters. The k
    shots are drawn by each of S seeds; accuracy is reported as mean and std over seeds.
(c) `generate`: greedy generation, then answer extraction (the first option word such as yes/no/maybe
    for yes/no tasks, else the first standalone option letter); no extractable answer counts as wrong.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from biomamba.eval.backends import PrefixBackend
from biomamba.eval.metrics import choice_probabilities
from biomamba.eval.scoring import RequestEncoder, score_groups
from biomamba.eval.tasks import LETTERS, Question, TaskSpec, lettered

PROTOCOLS = ("loglikelihood", "letter", "generate")
DEFAULT_SHOTS = {"loglikelihood": 0, "letter": 3, "generate": 0}


@dataclass
class ProtocolRun:
    """Settings shared by the protocols."""

    shots: int = 0
    seed: int = 0
    batch_size: int = 16
    max_new_tokens: int = 16
    fewshot_delimiter: str = "\n\n"
    target_delimiter: str = " "


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def draw_shots(
    questions: Sequence[Question], pool: Sequence[Question] | None, run: ProtocolRun
) -> list[list[Question]]:
    """`run.shots` solved examples per question, never the question itself, as every protocol draws them: in
    question order, by one `random.Random(run.seed)`, from `pool` or else the other questions."""
    rng = random.Random(run.seed)
    drawn = []
    for question in questions:
        candidates = [q for q in pool or questions if q.qid != question.qid or q.where != question.where]
        if run.shots > len(candidates):
            raise ValueError(
                f"{run.shots} shots requested but the shot pool has only {len(candidates)} other questions"
            )
        drawn.append(rng.sample(candidates, run.shots) if run.shots else [])
    return drawn


def _record(q: Question, prompt: str, **fields: Any) -> dict[str, Any]:
    """A prediction as results files hold it: the question's id, place and gold, its prompt's hash, `fields`."""
    return {"id": q.qid, "where": q.where, "prompt_sha": prompt_hash(prompt), "gold": q.gold, **fields}


# --------------------------------------------------------------------------------- (a) log-likelihood


def _fewshot_prefix(spec: TaskSpec, shots: Sequence[Question], run: ProtocolRun) -> str:
    parts = [s.shot_context() + run.target_delimiter + s.target_text() for s in shots]
    return spec.description + "".join(p + run.fewshot_delimiter for p in parts)


def run_loglikelihood(
    spec: TaskSpec,
    questions: Sequence[Question],
    backend: PrefixBackend,
    encoder: RequestEncoder,
    run: ProtocolRun,
    pool: Sequence[Question] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    prefixes = [_fewshot_prefix(spec, shots, run) for shots in draw_shots(questions, pool, run)]
    contexts = [
        [(prefix + ctx, cont) for ctx, cont in q.requests(run.target_delimiter)]
        for q, prefix in zip(questions, prefixes, strict=True)
    ]
    groups = [[encoder.request(c, x) for c, x in reqs] for reqs in contexts]
    scores = score_groups(backend, groups, batch_size=run.batch_size, progress=progress)
    out, offset = [], 0
    for q, reqs in zip(questions, contexts, strict=True):
        mine = scores[offset : offset + len(reqs)]
        offset += len(reqs)
        out.append(_loglik_record(spec, q, reqs, mine))
    return out


def _loglik_record(
    spec: TaskSpec, q: Question, reqs: list[tuple[str, str]], scores: list[tuple[float, bool]]
):
    lls = np.array([s[0] for s in scores])
    record = _record(q, reqs[0][0], logliks=[round(float(x), 6) for x in lls])
    if spec.metric == "loglik":  # LAMBADA: greedy-match accuracy and the target's log-likelihood
        record.update(
            pred=0 if scores[0][1] else -1, correct=float(scores[0][1]), confidence=float(np.exp(lls[0]))
        )
        return record
    lengths = np.array([float(len(c)) for c in q.choices])
    probs = choice_probabilities(lls)
    pred, pred_norm = int(np.argmax(lls)), int(np.argmax(lls / lengths))
    record.update(
        pred=pred,
        pred_norm=pred_norm,
        correct=float(pred == q.gold),
        correct_norm=float(pred_norm == q.gold),
        confidence=float(probs[pred]),
    )
    if spec.metric == "mc2" and q.labels is not None:
        record["correct"] = float(probs[np.array(q.labels) == 1].sum())
    return record


# --------------------------------------------------------------------------------- (b) letter


def letter_block(q: Question, answer: str | None = None) -> str:
    body = q.stem.rstrip() + "\n" + lettered(q.options) + "Answer:"
    return body + (f" {answer}" if answer is not None else "")


def letter_token_ids(encoder: RequestEncoder, n: int) -> list[int]:
    """Token id of " A", " B", ... (the token that follows "Answer:"); each must be one distinct token."""
    ids = []
    for letter in LETTERS[:n]:
        tokens = encoder.encode(" " + letter, add_special_tokens=False)
        if len(tokens) != 1:
            tokens = encoder.encode(letter, add_special_tokens=False)
        if len(tokens) != 1:
            raise ValueError(f"the tokenizer splits answer letter {letter!r} into {len(tokens)} tokens")
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError("the tokenizer maps two answer letters to the same token")
    return ids


def run_letter(
    spec: TaskSpec,
    questions: Sequence[Question],
    backend: PrefixBackend,
    encoder: RequestEncoder,
    run: ProtocolRun,
    pool: Sequence[Question] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    prompts = [
        "".join(letter_block(s, LETTERS[s.gold]) + run.fewshot_delimiter for s in shots) + letter_block(q)
        for q, shots in zip(questions, draw_shots(questions, pool, run), strict=True)
    ]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    records: dict[int, dict[str, Any]] = {}
    for start in range(0, len(order), run.batch_size):
        batch = order[start : start + run.batch_size]
        tokens = [encoder.encode(prompts[i])[-backend.max_length :] for i in batch]
        _, last = backend.prefill(tokens)
        for row, i in enumerate(batch):
            q = questions[i]
            letter_ids = letter_token_ids(encoder, len(q.options))
            logp = last[row]
            top = int(logp.argmax().item())
            letter_lp = logp[torch.tensor(letter_ids, device=logp.device)].double().cpu().numpy()
            probs = choice_probabilities(letter_lp)
            pred = int(np.argmax(letter_lp)) if top in letter_ids else -1
            records[i] = _record(
                q,
                prompts[i],
                pred=pred,
                top_token_valid=top in letter_ids,
                letter_logprobs=[round(float(x), 6) for x in letter_lp],
                correct=float(pred == q.gold),
                confidence=float(probs.max()),
            )
        if progress is not None:
            progress(len(batch))
    return [records[i] for i in range(len(questions))]


# --------------------------------------------------------------------------------- (c) generation


def generation_prompt(spec: TaskSpec, q: Question) -> str:
    if spec.answer_words:
        return q.stem.rstrip() + "\nAnswer:"
    return letter_block(q)


def extract_answer(text: str, q: Question, words: bool) -> int:
    """Index of the answer found in generated text, -1 when none is found."""
    if words:
        pattern = r"\b(" + "|".join(re.escape(o.lower()) for o in q.options) + r")\b"
        match = re.search(pattern, text.lower())
        return [o.lower() for o in q.options].index(match.group(1)) if match else -1
    letters = LETTERS[: len(q.options)]
    match = re.search(r"\b([" + letters + r"])\b", text)
    return letters.index(match.group(1)) if match else -1


@torch.no_grad()
def greedy_generate(
    backend: PrefixBackend, prompts: list[list[int]], max_new_tokens: int, stop_ids: set[int]
) -> list[list[int]]:
    """Greedy decoding for a batch, from the shared backend state (KV cache or Mamba2 state)."""
    state, last = backend.prefill(prompts)
    generated: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    rows = list(range(len(prompts)))
    for _ in range(max_new_tokens):
        next_ids = last.argmax(-1).tolist()
        for i, tok in enumerate(next_ids):
            if not done[i]:
                if tok in stop_ids:
                    done[i] = True
                else:
                    generated[i].append(tok)
        if all(done):
            break
        logp, state = backend.extend(state, rows, [[t] for t in next_ids])
        last = logp[:, 0]
    return generated


def run_generate(
    spec: TaskSpec,
    questions: Sequence[Question],
    backend: PrefixBackend,
    encoder: RequestEncoder,
    run: ProtocolRun,
    pool: Sequence[Question] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    tokenizer = encoder.tokenizer
    stop = {tokenizer.eos_token_id} | set(encoder.encode("\n", add_special_tokens=False)[:1])
    answer = (lambda s: s.options[s.gold]) if spec.answer_words else (lambda s: LETTERS[s.gold])
    prompts = [
        "".join(generation_prompt(spec, s) + " " + answer(s) + run.fewshot_delimiter for s in shots)
        + generation_prompt(spec, q)
        for q, shots in zip(questions, draw_shots(questions, pool, run), strict=True)
    ]
    records: list[dict[str, Any]] = []
    for start in range(0, len(questions), run.batch_size):
        batch = range(start, min(start + run.batch_size, len(questions)))
        tokens = [encoder.encode(prompts[i])[-(backend.max_length - run.max_new_tokens) :] for i in batch]
        outputs = greedy_generate(backend, tokens, run.max_new_tokens, stop)
        for i, ids in zip(batch, outputs, strict=True):
            q = questions[i]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            pred = extract_answer(text, q, spec.answer_words)
            records.append(_record(q, prompts[i], pred=pred, generated=text, correct=float(pred == q.gold)))
        if progress is not None:
            progress(len(batch))
    return records


RUNNERS = {"loglikelihood": run_loglikelihood, "letter": run_letter, "generate": run_generate}
