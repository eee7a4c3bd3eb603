from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from biomamba.demo.synthetic import (
    BACKGROUND_WORLD,
    DEMO_WORLD,
    NOTICE,
    TEXT_FILES,
    generate,
    world_facts,
    write_demo_corpus,
)

FIRST_LINE = re.compile(r"(?:: |\. )([A-Z][\w-]*) is the recommended first-line therapy for ([^.?]+)[.?]")


def _stated_verdicts(documents: list[dict]) -> dict[tuple[str, str], set[str]]:
    """What the PubMed-style documents conclude about each (drug, outcome): their conclusion sentences."""
    said: dict[tuple[str, str], set[str]] = {}
    for document in documents:
        text = document["text"]
        if "CONCLUSIONS: " in text:
            last = text.rsplit("CONCLUSIONS: ", 1)[1]
        elif text.startswith("Question: Does "):
            last = text.rsplit(". ", 1)[1]
        else:
            continue  # a board question: it states the first-line drug, not an outcome
        last = last.lower()
        match = re.match(
            r"(?:in .+?, )?(\S+) (?:does not reduce|has no effect on|reduces|lowers) (.+?)(?: in |\.$)", last
        )
        assert match, last
        verdict = "no" if ("does not" in last or "no effect" in last) else "yes"
        said.setdefault((match[1], match[2]), set()).add(verdict)
    return said


def test_generation_is_deterministic_and_seed_dependent() -> None:
    assert generate(seed=7) == generate(seed=7)
    assert generate(seed=7)["pubmed"] != generate(seed=8)["pubmed"]


def test_pubmedqa_asks_what_the_demo_corpus_concludes_and_withholds_it_from_the_context() -> None:
    corpus = generate()
    said = _stated_verdicts(corpus["pubmed"])
    assert all(len(verdicts) == 1 for verdicts in said.values()), "every fact is stated one way only"
    labels = Counter()
    for entry in corpus["pubmedqa"].values():
        drug, outcome = entry["QUESTION"].removeprefix("Does ").split(" in ")[0].split(" reduce ")
        assert said[(drug, outcome.lower())] == {entry["final_decision"]}
        assert not any("placebo (" in context or "reduc" in context for context in entry["CONTEXTS"]), entry
        labels[entry["final_decision"]] += 1
    assert labels["yes"] == labels["no"] and set(labels) == {"yes", "no"}, "no constant answer beats half"
    assert set(said) == {(f.drug, f.outcome.lower()) for f in world_facts()}


def test_medqa_answer_is_the_first_line_drug_the_demo_corpus_names() -> None:
    corpus = generate()
    first_line = {}
    for document in corpus["pubmed"]:
        for drug, condition in FIRST_LINE.findall(document["text"]):
            assert first_line.setdefault(condition, drug.lower()) == drug.lower(), condition
    letters = Counter()
    for record in corpus["medqa"]:
        condition = record["question"].rsplit(" for ", 1)[1].rstrip("?")
        assert record["options"][record["answer_idx"]] == first_line[condition] == record["answer"]
        assert set(record["options"].values()) <= set(DEMO_WORLD.drugs), (
            "distractors are drugs of the world too"
        )
        letters[record["answer_idx"]] += 1
    assert min(letters.values()) >= 0.15 * len(corpus["medqa"]), letters


def test_the_base_models_biomedical_text_is_mostly_another_world_and_states_demo_facts_rarely() -> None:
    corpus = generate()
    background = corpus["pubmed_background"]
    text = "\n".join(d["text"] for d in background)
    demo_names = {*DEMO_WORLD.drugs, *DEMO_WORLD.conditions, *DEMO_WORLD.outcomes, *DEMO_WORLD.biomarkers}
    assert [name for name in demo_names if name not in text] == [], "no first contact in the held-out text"
    demo_facts = {(f.drug, f.outcome.lower()): f.verdict for f in world_facts()}
    background_facts = {(f.drug, f.outcome.lower()): f.verdict for f in world_facts(BACKGROUND_WORLD)}
    said = _stated_verdicts(background)
    assert set(said) == set(demo_facts) | set(background_facts)
    assert all(verdicts == {{**demo_facts, **background_facts}[fact]} for fact, verdicts in said.items())
    opening = [d["text"].split("?")[0].split(".")[0] for d in background]  # names the document's condition
    demo_world = [o for o in opening if any(condition in o for condition in DEMO_WORLD.conditions)]
    assert len(demo_world) <= len(background) / 3, "the base's PubMed is mostly the background world"
    assert 3 * len(demo_world) <= len(corpus["pubmed"]), (
        "continued pretraining states the demo facts far more"
    )
    first_line = {drug.lower() for d in background for drug, _ in FIRST_LINE.findall(d["text"])}
    assert first_line == set(BACKGROUND_WORLD.drugs) | set(DEMO_WORLD.drugs)


def test_written_files_are_labelled_and_in_source_formats(tmp_path: Path) -> None:
    paths = write_demo_corpus(tmp_path)
    assert "SYNTHETIC" in (tmp_path / "NOTICE.txt").read_text() and "SYNTHETIC" in NOTICE
    for name in TEXT_FILES:
        lines = paths[name].read_text().splitlines()
        assert lines and all({"id", "text"} <= set(json.loads(line)) for line in lines)
    pubmedqa = json.loads(paths["pubmedqa"].read_text())
    assert len(pubmedqa) >= 300, "hundreds of questions, so intervals can separate before from after"
    assert all(set(v) >= {"QUESTION", "CONTEXTS", "final_decision", "LONG_ANSWER"} for v in pubmedqa.values())
    medqa = [json.loads(line) for line in paths["medqa"].read_text().splitlines()]
    assert len(medqa) >= 300 and all(set(r["options"]) == set("ABCD") for r in medqa)
