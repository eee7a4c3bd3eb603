"""`--limit N` takes a seeded sample stratified by label, and label balances are keyed by label, not text."""

from __future__ import annotations

import pytest
from tests.eval.conftest import FIXTURES
from tests.factories.benchmarks import pubmedqa_folder, pubmedqa_records

from biomamba.eval.runner import evaluate
from biomamba.eval.sampling import stratified_sample, stratum_sizes
from biomamba.eval.tasks import TaskFile, label_balance, label_of, load_questions


def test_limit_is_a_seeded_sample_stratified_by_label(tmp_path, tiny_gpt2, tiny_tokenizer):
    labels = ["yes"] * 30 + ["no"] * 20 + ["maybe"] * 10  # sorted by label, as the real ground truth
    folder = pubmedqa_folder(tmp_path / "pubmedqa", pubmedqa_records(labels))
    task_file = TaskFile("pubmedqa_test", folder)
    # the first N would be all yes
    assert [label_of(q) for q in load_questions(task_file)][:30] == ["yes"] * 30
    out = evaluate(tiny_gpt2, tiny_tokenizer, [task_file], limit=12, seed=3, bootstrap_resamples=10)
    task = out["tasks"]["pubmedqa_test"]
    assert task["n"] == 12 and task["label_balance"] == {"yes": 6, "no": 4, "maybe": 2}
    assert task["limit"] == {"n": 12, "of": 60, "seed": 3, "strategy": "stratified by label"}
    again = evaluate(tiny_gpt2, tiny_tokenizer, [task_file], limit=12, seed=3, bootstrap_resamples=10)
    other = evaluate(tiny_gpt2, tiny_tokenizer, [task_file], limit=12, seed=4, bootstrap_resamples=10)
    ids = [[p["id"] for p in r["tasks"]["pubmedqa_test"]["predictions"]] for r in (out, again, other)]
    assert ids[0] == ids[1] and ids[0] != ids[2]
    assert ids[0] == sorted(ids[0])  # file order kept


def test_load_questions_limit_draws_the_same_stratified_sample_as_the_runner(tmp_path):
    """One sampler for every limit: `load_questions(limit=)` is the runner's `--limit`, not the first N."""
    labels = ["yes"] * 30 + ["no"] * 20 + ["maybe"] * 10
    folder = pubmedqa_folder(tmp_path / "pubmedqa", pubmedqa_records(labels))
    task_file = TaskFile("pubmedqa_test", folder)
    every = load_questions(task_file)
    limited = load_questions(task_file, limit=12, seed=3)
    sample, drawn = stratified_sample(every, 12, label_of, seed=3)
    assert [q.qid for q in limited] == [q.qid for q in sample]
    assert label_balance(limited) == {"yes": 6, "no": 4, "maybe": 2}
    assert limited.limit == drawn == {"n": 12, "of": 60, "seed": 3, "strategy": "stratified by label"}
    assert limited.files == every.files and limited.format == every.format
    assert [q.qid for q in load_questions(task_file, limit=12, seed=4)] != [q.qid for q in limited]


def test_stratum_sizes_add_up_and_keep_every_label():
    assert stratum_sizes({"yes": 276, "no": 169, "maybe": 55}, 50) == {"yes": 28, "no": 17, "maybe": 5}
    sizes = stratum_sizes({"a": 1, "b": 1, "c": 1}, 2)
    assert sum(sizes.values()) == 2
    items = list(range(9))
    sample, info = stratified_sample(items, 100, lambda i: str(i % 3))
    assert sample == items and info["n"] == 9
    with pytest.raises(ValueError):
        stratified_sample(items, 0, str)


def test_real_pubmedqa_smoke_run_sees_every_label(shared_data):
    questions = load_questions(TaskFile("pubmedqa_test", shared_data / "pubmedqa"))
    sample, _ = stratified_sample(questions, 50, label_of, seed=0)
    assert label_balance(sample) == {"yes": 28, "no": 17, "maybe": 5}  # 276/169/55 of 500, scaled to 50


def test_label_balance_of_arc_is_keyed_by_answer_letter():
    """ARC choices are free texts (often under 10 characters): the balance must count answer positions."""
    questions = load_questions(TaskFile("arc_easy", FIXTURES / "arc_easy.jsonl"))
    assert len({q.choices[q.gold] for q in questions}) == 3  # three gold texts, but two gold letters
    assert label_balance(questions) == {"A": 2, "B": 1}
