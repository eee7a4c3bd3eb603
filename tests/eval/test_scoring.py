"""Prefix sharing is exact: batched, padded, cached scoring equals one full forward per request."""

from __future__ import annotations

import pytest
import torch
from tests.eval.conftest import FIXTURES, reference_loglik

from biomamba.eval.backends import FullSequenceBackend, make_backend
from biomamba.eval.protocols import ProtocolRun, extract_answer, greedy_generate, run_letter
from biomamba.eval.runner import evaluate
from biomamba.eval.scoring import RequestEncoder, plan_groups, score_groups
from biomamba.eval.tasks import TASKS, TaskFile, load_questions

QUESTIONS = [
    ("Question: Does aspirin reduce the risk?\nAnswer:", [" yes", " no", " maybe"]),
    (
        "Abstract: We studied 120 patients with type 2 diabetes treated with metformin.\nAnswer:",
        [" A", " B", " C"],
    ),
    ("Plants make food by photosynthesis", [" using energy from the sun.", " roof"]),
]


@pytest.mark.parametrize("family", ["gpt2", "llama", "mamba2"])
def test_shared_prefix_scores_equal_full_forwards(family, tiny_tokenizer, request):
    model = request.getfixturevalue(f"tiny_{family}")
    encoder = RequestEncoder(tiny_tokenizer, 512)
    groups = [[encoder.request(c, x) for x in choices] for c, choices in QUESTIONS]
    backend = make_backend(model)
    for batch_size in (1, 3):  # 3: ragged prompts left-padded in one batch (seq_idx reset for Mamba2)
        got = score_groups(backend, groups, batch_size=batch_size)
        want = [reference_loglik(model, e) for g in groups for e in g]
        assert [g[0] for g in got] == pytest.approx(want, abs=1e-4)
    full = score_groups(FullSequenceBackend(model), groups, batch_size=3)
    assert [g[0] for g in full] == pytest.approx(want, abs=1e-4)


def test_mamba2_short_prompts_fall_back_to_exact_length_groups(tiny_mamba2, tiny_tokenizer):
    encoder = RequestEncoder(tiny_tokenizer, 512)
    groups = [[encoder.request("Hi", " there")], [encoder.request(QUESTIONS[1][0], " A")]]
    backend = make_backend(tiny_mamba2)
    assert len(plan_groups(groups)[0].prefix) < backend.min_padded_length
    got = score_groups(backend, groups, batch_size=2)
    assert [g[0] for g in got] == pytest.approx(
        [reference_loglik(tiny_mamba2, g[0]) for g in groups], abs=1e-4
    )


def test_left_truncation_matches_lm_eval_formula(tiny_tokenizer, tiny_gpt2):
    encoder = RequestEncoder(tiny_tokenizer, 12)
    ctx, cont = encoder.pair(QUESTIONS[1][0], " A")
    enc = encoder.request(QUESTIONS[1][0], " A")
    assert enc.inputs == (ctx + cont)[-13:][:-1]
    groups = [[encoder.request(QUESTIONS[2][0], x) for x in QUESTIONS[2][1]]]
    plans = plan_groups(groups)  # the two choices truncate differently: no shared prefix, one plan each
    assert len(plans) == 2
    got = score_groups(make_backend(tiny_gpt2, max_length=12), groups)
    assert [g[0] for g in got] == pytest.approx([reference_loglik(tiny_gpt2, e) for e in groups[0]], abs=1e-4)


def test_letter_protocol_marks_invalid_top_token_wrong(tiny_gpt2, tiny_tokenizer):
    questions = load_questions(TaskFile("medqa_4options", FIXTURES / "medqa_4options.jsonl"))
    backend = make_backend(tiny_gpt2)
    encoder = RequestEncoder(tiny_tokenizer, backend.max_length)
    records = run_letter(TASKS["medqa_4options"], questions, backend, encoder, ProtocolRun(shots=2, seed=1))
    for record in records:
        if not record["top_token_valid"]:
            assert record["pred"] == -1 and record["correct"] == 0.0
        else:
            assert record["pred"] == max(range(4), key=lambda i: record["letter_logprobs"][i])
    assert sum(not r["top_token_valid"] for r in records) >= 1  # untrained model: free text wins


def test_shots_never_include_the_question_and_seeds_are_reported(tiny_gpt2, tiny_tokenizer):
    files = [TaskFile("medqa_4options", FIXTURES / "medqa_4options.jsonl")]
    out = evaluate(
        tiny_gpt2, tiny_tokenizer, files, protocol="loglikelihood", shots=2, seeds=3, bootstrap_resamples=100
    )
    task = out["tasks"]["medqa_4options"]
    assert out["protocol"]["seeds"] == [0, 1, 2]
    assert len(task["predictions"]) == 3 * task["n"]
    assert len(task["metrics"]["acc_per_seed"]) == 3 and "acc_seed_std" in task["metrics"]
    low, high = task["metrics"]["acc_ci"]
    assert 0.0 <= low <= task["metrics"]["acc"] <= high <= 1.0


def test_greedy_generation_matches_transformers_generate(tiny_gpt2, tiny_tokenizer):
    prompts = [
        tiny_tokenizer.encode("Question: Which organ produces insulin?\nAnswer:"),
        tiny_tokenizer.encode("Plants"),
    ]
    ours = greedy_generate(make_backend(tiny_gpt2), prompts, 6, stop_ids=set())
    for prompt, generated in zip(prompts, ours, strict=True):
        ref = tiny_gpt2.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert generated == ref[0, len(prompt) :].tolist()


def test_generation_protocol_on_mamba2_and_answer_extraction(tiny_mamba2, tiny_tokenizer):
    q = load_questions(TaskFile("pubmedqa", FIXTURES / "pubmedqa_ori_pqal.json"))[0]
    assert extract_answer("Maybe, but yes", q, words=True) == 2
    assert extract_answer("I think (B).", q, words=False) == 1
    assert extract_answer("none here", q, words=True) == -1
    out = evaluate(
        tiny_mamba2,
        tiny_tokenizer,
        [TaskFile("pubmedqa", FIXTURES / "pubmedqa_ori_pqal.json")],
        protocol="generate",
        max_new_tokens=4,
        bootstrap_resamples=100,
    )
    task = out["tasks"]["pubmedqa"]
    assert all("generated" in p for p in task["predictions"])
    assert task["metrics"]["no_answer_rate"] == pytest.approx(
        sum(p["pred"] == -1 for p in task["predictions"]) / task["n"]
    )
