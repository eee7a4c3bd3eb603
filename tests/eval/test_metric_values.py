"""Metric VALUES against direct computations from plain forward passes.

TruthfulQA MC2 (normalised probability mass on the true answers), LAMBADA (greedy match of the whole last
word and its perplexity), the letter protocol through `evaluate()` with its defaults (3 shots x 3 seeds),
and sliding-window perplexity (each token scored once, with the most left context a window allows).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tests.eval.conftest import plain_log_probs, write_jsonl
from tests.factories.benchmarks import medqa_file

from biomamba.eval.domain_perplexity import stream_perplexity, windows
from biomamba.eval.protocols import ProtocolRun, run_letter
from biomamba.eval.runner import evaluate
from biomamba.eval.scoring import RequestEncoder
from biomamba.eval.tasks import TASKS, TRUTHFULQA_PROMPT, TaskFile, load_questions


def _loglik(model, tok, context: str, continuation: str) -> tuple[float, bool]:
    """(log-likelihood, all continuation tokens argmax) the way lm-eval's HF backend computes them."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    ctx = tok.encode(context)
    cont = tok.encode(context + continuation)[len(ctx) :]
    logp = plain_log_probs(model, (ctx + cont)[:-1])[-len(cont) :]
    target = torch.tensor(cont)
    return logp.gather(-1, target[:, None]).sum().item(), bool((logp.argmax(-1) == target).all())


class _Bigram(torch.nn.Module):
    """Next-token logits depend on the last token only: greedy paths can be set by hand."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(vocab, vocab))

    def forward(self, input_ids, **_):
        return SimpleNamespace(logits=self.table[input_ids])


class _PrefixHash(torch.nn.Module):
    """Logits at a position are a random row chosen by a hash of the WHOLE prefix (a running sum), with
    the answer letters boosted: predictions then change with the shots drawn, and the top token is a
    letter for some prompts and free text for others."""

    def __init__(self, vocab: int, letter_ids: list[int], boost: float, rows: int = 997) -> None:
        super().__init__()
        table = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0))
        table[:, letter_ids] += boost
        self.table = torch.nn.Parameter(table)
        self.rows = rows

    def forward(self, input_ids, **_):
        return SimpleNamespace(logits=self.table[(input_ids * 7919).cumsum(-1) % self.rows])


# ------------------------------------------------------------------------------------- TruthfulQA MC2

MC2_QUESTIONS = [
    (
        "What happens if you eat watermelon seeds?",
        ["Nothing happens.", "You digest them."],
        ["You grow watermelons in your stomach.", "You die."],
    ),
    ("Which vitamin deficiency causes scurvy?", ["Vitamin C deficiency."], ["Vitamin D.", "Iron."]),
    ("Does aspirin reduce the risk of infarction?", ["Yes, in some patients.", "It can.", "Yes."], ["No."]),
]


@pytest.mark.parametrize("family", ["gpt2", "mamba2"])
def test_truthfulqa_mc2_is_normalised_mass_on_true_answers(family, tmp_path, tiny_tokenizer, request):
    model = request.getfixturevalue(f"tiny_{family}")
    records = [
        {
            "question": q,
            "mc1_targets": {true[0]: 1, **{f: 0 for f in false}},
            "mc2_targets": {**{t: 1 for t in true}, **{f: 0 for f in false}},
        }
        for q, true, false in MC2_QUESTIONS
    ]
    path = tmp_path / "mc_task.json"
    path.write_text(json.dumps(records, indent=1))
    out = evaluate(model, tiny_tokenizer, [TaskFile("truthfulqa_mc2", path)], bootstrap_resamples=50)
    task = out["tasks"]["truthfulqa_mc2"]
    want = []
    for (q, true, false), pred in zip(MC2_QUESTIONS, task["predictions"], strict=True):
        context = TRUTHFULQA_PROMPT + "\n\nQ: " + q + "\nA:"
        lls = [_loglik(model, tiny_tokenizer, context, " " + a)[0] for a in true + false]
        assert pred["logliks"] == pytest.approx(lls, abs=1e-4)
        # lm-eval's process_results_mc2: true answers come first; split at the first false one.
        split = len(true)
        p = np.exp(np.array(lls))
        mc2 = p[:split].sum() / p.sum()
        assert 0.0 < mc2 < 1.0
        assert pred["correct"] == pytest.approx(mc2, abs=1e-5)
        want.append(mc2)
    assert task["metrics"]["acc"] == pytest.approx(float(np.mean(want)), abs=1e-5)
    assert "acc_norm" not in task["metrics"]


def test_truthfulqa_mc2_counts_true_answers_wherever_they_are(tmp_path, tiny_gpt2, tiny_tokenizer):
    """Hub layout with the true answers not first: the mass is still that of the labels == 1."""
    choices = ["You die.", "Nothing happens.", "You grow a tree.", "You digest them."]
    record = {"question": MC2_QUESTIONS[0][0], "mc2_targets": {"choices": choices, "labels": [0, 1, 0, 1]}}
    record["mc1_targets"] = {"choices": choices, "labels": [0, 1, 0, 0]}
    path = write_jsonl(tmp_path / "tqa.jsonl", [record])
    out = evaluate(tiny_gpt2, tiny_tokenizer, [TaskFile("truthfulqa_mc2", path)], bootstrap_resamples=50)
    pred = out["tasks"]["truthfulqa_mc2"]["predictions"][0]
    context = TRUTHFULQA_PROMPT + "\n\nQ: " + MC2_QUESTIONS[0][0] + "\nA:"
    p = np.exp([_loglik(tiny_gpt2, tiny_tokenizer, context, " " + c)[0] for c in choices])
    assert pred["correct"] == pytest.approx((p[1] + p[3]) / p.sum(), abs=1e-5)


# ------------------------------------------------------------------------------------------- LAMBADA

LAMBADA_TEXTS = [
    "Plants make food by photosynthesis using energy from the sun.",
    "The hyoid bone develops from the second and third pharyngeal arches.",
    "We studied 120 patients with type 2 diabetes treated with metformin",
]


@pytest.mark.parametrize("family", ["gpt2", "mamba2"])
def test_lambada_perplexity_and_accuracy_match_direct_computation(family, tmp_path, tiny_tokenizer, request):
    model = request.getfixturevalue(f"tiny_{family}")
    path = write_jsonl(tmp_path / "lambada.jsonl", [{"text": t} for t in LAMBADA_TEXTS])
    task = evaluate(model, tiny_tokenizer, [TaskFile("lambada", path)], bootstrap_resamples=50)["tasks"][
        "lambada"
    ]
    direct = [
        _loglik(model, tiny_tokenizer, t.rsplit(" ", 1)[0], " " + t.rsplit(" ", 1)[1]) for t in LAMBADA_TEXTS
    ]
    assert [p["logliks"][0] for p in task["predictions"]] == pytest.approx([d[0] for d in direct], abs=1e-4)
    assert [p["correct"] for p in task["predictions"]] == [float(d[1]) for d in direct]
    assert task["metrics"]["ppl"] == pytest.approx(math.exp(-np.mean([d[0] for d in direct])), rel=1e-4)
    assert task["metrics"]["acc"] == pytest.approx(np.mean([d[1] for d in direct]))


def test_lambada_accuracy_needs_every_token_of_the_last_word_greedy(tmp_path, tiny_tokenizer):
    """A bigram model whose greedy path spells the whole last word of one text, and all but its last
    token in another: acc counts only the first."""
    tok = tiny_tokenizer
    model = _Bigram(len(tok))
    texts = ["Plants make food by photosynthesis", "The hyoid bone develops from metformin"]
    for i, text in enumerate(texts):
        context, word = text.rsplit(" ", 1)
        ctx, cont = tok.encode(context), tok.encode(" " + word)
        assert tok.encode(text) == ctx + cont and len(cont) >= 3
        path = [ctx[-1]] + cont
        steps = len(cont) if i == 0 else len(cont) - 1  # the second text misses its last token
        with torch.no_grad():
            for prev, nxt in zip(path[:steps], path[1 : steps + 1], strict=True):
                model.table[prev, nxt] = 5.0
    path = write_jsonl(tmp_path / "lambada.jsonl", [{"text": t} for t in texts])
    out = evaluate(model, tok, [TaskFile("lambada", path)], backend="full", bootstrap_resamples=50)
    task = out["tasks"]["lambada"]
    direct = [_loglik(model, tok, t.rsplit(" ", 1)[0], " " + t.rsplit(" ", 1)[1]) for t in texts]
    assert [d[1] for d in direct] == [True, False]
    assert [p["correct"] for p in task["predictions"]] == [1.0, 0.0]
    assert task["metrics"]["acc"] == 0.5
    assert task["metrics"]["ppl"] == pytest.approx(math.exp(-np.mean([d[0] for d in direct])), rel=1e-5)


# ------------------------------------------------------------------------------------ letter protocol

LETTER_QUESTIONS = [
    ("Which vitamin deficiency causes scurvy?", ["Vitamin A", "Vitamin C", "Vitamin K", "Iron"], "B"),
    ("Which organ produces insulin?", ["Liver", "Kidney", "Pancreas", "Spleen"], "C"),
    (
        "Where does the hyoid bone develop from?",
        ["Pharyngeal arches", "Neural crest", "Somites", "Skin"],
        "A",
    ),
    ("Which drug treats type 2 diabetes first?", ["Insulin", "Aspirin", "Warfarin", "Metformin"], "D"),
    ("How do plants make food?", ["Respiration", "Photosynthesis", "Digestion", "Fermentation"], "B"),
    ("Which bone is in the neck?", ["Femur", "Tibia", "Hyoid", "Radius"], "C"),
    ("Does aspirin reduce infarction risk?", ["Yes", "No", "Never", "Only in children"], "A"),
    ("Which vitamin needs the sun?", ["Vitamin K", "Vitamin C", "Iron", "Vitamin D"], "D"),
]


def _letter_prompt(q, answer: str | None = None) -> str:
    """BioMistral's layout: question, lettered options, "Answer:" (plus " X" for a solved shot)."""
    options = "".join(f"{letter}. {opt}\n" for letter, opt in zip("ABCD", q.options, strict=True))
    return q.stem + "\n" + options + "Answer:" + (f" {answer}" if answer else "")


@pytest.mark.parametrize("family", ["gpt2", "prefix_hash"])
def test_letter_protocol_through_evaluate_defaults(family, tmp_path, tiny_tokenizer, request):
    tok = tiny_tokenizer
    letter_ids = [tok.encode(" " + c) for c in "ABCD"]
    assert all(len(ids) == 1 for ids in letter_ids)
    letter_ids = [ids[0] for ids in letter_ids]
    if family == "gpt2":
        model, backend = request.getfixturevalue("tiny_gpt2"), "auto"
    else:
        model, backend = _PrefixHash(len(tok), letter_ids, boost=2.5), "full"
    path = medqa_file(tmp_path / "medqa.jsonl", LETTER_QUESTIONS)
    out = evaluate(model, tok, [f"medqa_4options={path}"], protocol="letter", backend=backend, batch_size=3)
    assert out["protocol"]["shots"] == 3 and out["protocol"]["seeds"] == [0, 1, 2]
    task = out["tasks"]["medqa_4options"]
    questions = load_questions(TaskFile("medqa_4options", path))
    preds = task["predictions"]
    assert len(preds) == 3 * len(questions)
    per_seed, invalid, prompts = [], [], {}
    for seed in (0, 1, 2):
        rng = random.Random(seed)
        mine = [p for p in preds if p["seed"] == seed]
        correct = []
        for q, pred in zip(questions, mine, strict=True):
            shots = rng.sample([o for o in questions if o.qid != q.qid], 3)
            assert q not in shots
            prompt = "".join(_letter_prompt(s, "ABCD"[s.gold]) + "\n\n" for s in shots) + _letter_prompt(q)
            assert pred["id"] == q.qid
            assert pred["prompt_sha"] == hashlib.sha256(prompt.encode()).hexdigest()[:16]
            prompts.setdefault(q.qid, set()).add(prompt)
            logp = plain_log_probs(model, tok.encode(prompt))[-1]
            letter_lp = logp[letter_ids]
            valid = int(logp.argmax()) in letter_ids
            # top token not a letter: wrong, whatever the letters
            want = int(letter_lp.argmax()) if valid else -1
            assert pred["letter_logprobs"] == pytest.approx(letter_lp.tolist(), abs=1e-4)
            assert pred["top_token_valid"] == valid and pred["pred"] == want
            assert pred["correct"] == float(want == q.gold)
            correct.append(float(want == q.gold))
            invalid.append(not valid)
        per_seed.append(float(np.mean(correct)))
    metrics = task["metrics"]
    assert metrics["acc_per_seed"] == pytest.approx(per_seed)
    assert metrics["acc_seed_mean"] == pytest.approx(np.mean(per_seed))
    assert metrics["acc_seed_std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert metrics["acc"] == pytest.approx(np.mean(per_seed))
    assert metrics["invalid_top_token_rate"] == pytest.approx(np.mean(invalid))
    assert any(len(p) > 1 for p in prompts.values())  # the seeds draw different shots
    if family == "prefix_hash":  # a model whose answers move with the shots: the numbers are not trivial
        assert 0.0 < metrics["invalid_top_token_rate"] < 1.0
        assert len(set(per_seed)) > 1 and metrics["acc_seed_std"] > 0.0


class _FixedLogits:
    """A backend whose prompt's next-token log-probs are given rows, one per question in order."""

    max_length = 512

    def __init__(self, rows: list[torch.Tensor]) -> None:
        self.rows = rows
        self.calls = 0

    def prefill(self, prompts):
        out = torch.stack(self.rows[self.calls : self.calls + len(prompts)])
        self.calls += len(prompts)
        return None, torch.log_softmax(out, -1)


def test_letter_protocol_counts_a_non_letter_top_token_wrong(tmp_path, tiny_tokenizer):
    tok = tiny_tokenizer
    questions = load_questions(
        TaskFile("medqa_4options", medqa_file(tmp_path / "m.jsonl", LETTER_QUESTIONS[:2]))
    )
    letter_ids = [tok.encode(" " + c)[0] for c in "ABCD"]
    other = next(i for i in range(len(tok)) if i not in letter_ids)
    rows = []
    for q, top_is_letter in zip(questions, (False, True), strict=True):
        logits = torch.zeros(len(tok))
        logits[letter_ids] = torch.tensor([1.0, 2.0, 3.0, 4.0])
        logits[letter_ids[q.gold]] = 6.0  # the gold letter beats the other letters
        logits[other] = 5.0 if top_is_letter else 9.0  # ... but here free text beats every letter
        rows.append(logits)
    run = ProtocolRun(shots=0, batch_size=1)
    got = run_letter(TASKS["medqa_4options"], questions, _FixedLogits(rows), RequestEncoder(tok, 512), run)
    assert [r["top_token_valid"] for r in got] == [False, True]
    assert [r["pred"] for r in got] == [-1, questions[1].gold]
    assert [r["correct"] for r in got] == [0.0, 1.0]


# ------------------------------------------------------------------------------ sliding-window perplexity


@pytest.mark.parametrize("family", ["gpt2", "mamba2"])
@pytest.mark.parametrize(("seq_len", "stride"), [(16, 4), (16, 5), (12, 12)])
def test_sliding_window_perplexity_value(family, seq_len, stride, request):
    model = request.getfixturevalue(f"tiny_{family}")
    tokens = np.random.default_rng(1).integers(1, 300, 50)
    stats = stream_perplexity(model, tokens, seq_len=seq_len, stride=stride, batch_size=3)
    nll, cache = 0.0, {}
    for t in range(1, tokens.size):
        # The first window (inputs tokens[b : b + seq_len], b a multiple of stride) that predicts token t
        # is the one that gives it the most left context: t - b tokens.
        b = max(0, math.ceil((t - seq_len) / stride)) * stride
        assert min(t, seq_len - stride + 1) <= t - b <= seq_len
        if b not in cache:
            cache[b] = plain_log_probs(model, tokens[b : b + seq_len].tolist())
        nll -= cache[b][t - 1 - b, tokens[t]].item()
    assert stats["tokens"] == tokens.size - 1
    assert stats["nll_sum"] == pytest.approx(nll, rel=1e-5)
    assert stats["ppl"] == pytest.approx(math.exp(nll / (tokens.size - 1)), rel=1e-5)
    assert stats["windows"] == len(cache)


def test_stride_outside_one_to_seq_len_is_refused():
    with pytest.raises(ValueError, match="stride"):
        list(windows(50, 8, 9))
    with pytest.raises(ValueError, match="stride"):
        list(windows(50, 8, 0))
