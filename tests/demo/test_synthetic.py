from __future__ import annotations

import json
import re
from pathlib import Path

from biomamba.demo.synthetic import NOTICE, generate, world_facts, write_demo_corpus


def test_generation_is_deterministic_and_seed_dependent() -> None:
    assert generate(seed=7) == generate(seed=7)
    assert generate(seed=7)["pubmed"] != generate(seed=8)["pubmed"]


def test_questions_agree_with_the_abstracts_world() -> None:
    corpus = generate()
    verdicts = {(f.drug, f.outcome.lower()): f.verdict for f in world_facts()}
    assert len(verdicts) == 32 and set(verdicts.values()) == {"yes", "no", "maybe"}
    for entry in corpus["pubmedqa"].values():
        drug, outcome = entry["QUESTION"].removeprefix("Does ").split(" in ")[0].split(" reduce ")
        assert entry["final_decision"] == verdicts[(drug, outcome.lower())]
    conclusions: dict[tuple[str, str], set[str]] = {}  # what the corpus's abstracts conclude about each fact
    for document in corpus["pubmed"]:
        last = document["text"].rsplit("CONCLUSIONS: ", 1)[1].lower()
        match = re.match(r"(?:whether )?(\S+) (?:does not )?reduces? (.+?) in ", last)
        assert match, last
        said = "maybe" if "uncertain" in last else ("no" if "does not reduce" in last else "yes")
        conclusions.setdefault((match[1], match[2]), set()).add(said)
    assert conclusions == {fact: {verdict} for fact, verdict in verdicts.items()}
    assert set(conclusions) == set(verdicts), "every fact a question asks about is stated by the corpus"
    first_line = {f.condition: f.drug for f in world_facts()}
    for record in corpus["medqa"]:
        condition = record["question"].rsplit(" for ", 1)[1].rstrip("?")
        assert record["options"][record["answer_idx"]] == first_line[condition] == record["answer"]


def test_written_files_are_labelled_and_in_source_formats(tmp_path: Path) -> None:
    paths = write_demo_corpus(tmp_path)
    assert "SYNTHETIC" in (tmp_path / "NOTICE.txt").read_text() and "SYNTHETIC" in NOTICE
    lines = paths["pubmed"].read_text().splitlines()
    assert len(lines) == 480 and all({"id", "text"} <= set(json.loads(line)) for line in lines)
    pubmedqa = json.loads(paths["pubmedqa"].read_text())
    assert len(pubmedqa) >= 300, "hundreds of questions, so intervals can separate before from after"
    assert all(set(v) >= {"QUESTION", "CONTEXTS", "final_decision", "LONG_ANSWER"} for v in pubmedqa.values())
    medqa = [json.loads(line) for line in paths["medqa"].read_text().splitlines()]
    assert all(set(r["options"]) == set("ABCD") for r in medqa)
