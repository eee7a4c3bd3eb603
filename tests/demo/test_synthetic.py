from __future__ import annotations

import json
from pathlib import Path

from biomamba.demo.synthetic import NOTICE, generate, world_facts, write_demo_corpus


def test_generation_is_deterministic_and_seed_dependent() -> None:
    assert generate(seed=7) == generate(seed=7)
    assert generate(seed=7)["pubmed"] != generate(seed=8)["pubmed"]


def test_questions_agree_with_the_abstracts_world() -> None:
    corpus = generate()
    effective = {f.drug: f.effective for f in world_facts()}
    for entry in corpus["pubmedqa"].values():
        drug = entry["QUESTION"].split()[1]
        assert entry["final_decision"] == ("yes" if effective[drug] else "no")
    first_line = {f.condition: f.drug for f in world_facts()}
    for record in corpus["medqa"]:
        condition = record["question"].rsplit(" for ", 1)[1].rstrip("?")
        assert record["options"][record["answer_idx"]] == first_line[condition] == record["answer"]


def test_written_files_are_labelled_and_in_source_formats(tmp_path: Path) -> None:
    paths = write_demo_corpus(tmp_path)
    assert "SYNTHETIC" in (tmp_path / "NOTICE.txt").read_text() and "SYNTHETIC" in NOTICE
    lines = paths["pubmed"].read_text().splitlines()
    assert len(lines) == 320 and all({"id", "text"} <= set(json.loads(line)) for line in lines)
    pubmedqa = json.loads(paths["pubmedqa"].read_text())
    assert all(set(v) >= {"QUESTION", "CONTEXTS", "final_decision", "LONG_ANSWER"} for v in pubmedqa.values())
    medqa = [json.loads(line) for line in paths["medqa"].read_text().splitlines()]
    assert all(set(r["options"]) == set("ABCD") for r in medqa)
