"""`eval translate` with tiny local models (seq2seq and causal): same format, answers kept, cache reused."""

from __future__ import annotations

import json

import pytest
from tests.eval.conftest import FIXTURES
from tests.factories.models import save_dir

from biomamba.eval.tasks import TaskFile, load_questions, parse_task_file
from biomamba.eval.translate import Translator, default_output, translate_task_file


@pytest.fixture(scope="module")
def tiny_t5(tiny_dir, tiny_tokenizer):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tiny_tokenizer),
        d_model=16,
        d_ff=32,
        d_kv=8,
        num_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=0,
    )
    return save_dir(tiny_dir / "t5", T5ForConditionalGeneration(config), tiny_tokenizer)


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_translate_medqa_keeps_answers_and_reuses_cache(kind, tiny_t5, tiny_dir, tmp_path):
    model_dir = tiny_t5 if kind == "seq2seq" else tiny_dir / "gpt2"
    source = FIXTURES / "medqa_4options.jsonl"
    output = default_output(tmp_path / source.name, "fr")
    assert output.name == "medqa_4options.fr.jsonl"
    cache = tmp_path / "cache.jsonl"
    translator = Translator(model_dir, "fr", cache_path=cache, max_new_tokens=4)
    assert translator.seq2seq == (kind == "seq2seq")
    stats = translate_task_file("medqa_4options", source, output, translator)
    assert stats["records"] == 4 and stats["model_calls"] > 0
    original = [json.loads(line) for line in source.read_text().splitlines()]
    translated = [json.loads(line) for line in output.read_text().splitlines()]
    for before, after in zip(original, translated, strict=True):
        assert after["answer_idx"] == before["answer_idx"]
        assert sorted(after["options"]) == sorted(before["options"])
        assert after["answer"] == after["options"][after["answer_idx"]]
    questions = load_questions(parse_task_file(f"medqa_4options={output}"))
    assert questions[0].language == "fr" and [q.gold for q in questions] == [0, 1, 2, 3]
    again = Translator(model_dir, "fr", cache_path=cache, max_new_tokens=4)
    translate_task_file("medqa_4options", source, tmp_path / "second.fr.jsonl", again)
    assert again.model_calls == 0
    assert (tmp_path / "second.fr.jsonl").read_text() == output.read_text()


def test_translate_csv_and_pubmedqa_layouts(tiny_t5, tmp_path):
    translator = Translator(tiny_t5, "de", max_new_tokens=3)
    csv_out = tmp_path / "anatomy_test.de.csv"
    translate_task_file("mmlu_anatomy", FIXTURES / "anatomy_test.csv", csv_out, translator)
    assert [q.gold for q in load_questions(TaskFile("mmlu_anatomy", csv_out, "de"))] == [3, 0, 2]
    pq_out = tmp_path / "ori_pqal.de.json"
    translate_task_file("pubmedqa", FIXTURES / "pubmedqa_ori_pqal.json", pq_out, translator)
    data = json.loads(pq_out.read_text())
    assert list(data) == ["1001", "1002", "1003", "1004"]
    assert [v["final_decision"] for v in data.values()] == ["yes", "no", "maybe", "yes"]
