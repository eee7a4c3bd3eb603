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


def _world_of(drug: str) -> str:
    return DEMO_WORLD.name if drug in DEMO_WORLD.drugs else BACKGROUND_WORLD.name


def test_pubmedqa_asks_what_the_corpus_concludes_and_withholds_it_from_the_context() -> None:
    corpus = generate()
    said = {  # the demo world's facts from the continued corpus, the background world's from the base's
        DEMO_WORLD.name: _stated_verdicts(corpus["pubmed"]),
        BACKGROUND_WORLD.name: _stated_verdicts(corpus["pubmed_background"]),
    }
    assert all(len(verdicts) == 1 for by_fact in said.values() for verdicts in by_fact.values()), (
        "every fact is stated one way only"
    )
    labels, worlds = Counter(), Counter()
    for entry in corpus["pubmedqa"].values():
        drug, outcome = entry["QUESTION"].removeprefix("Does ").split(" in ")[0].split(" reduce ")
        assert said[_world_of(drug)][(drug, outcome.lower())] == {entry["final_decision"]}
        assert not any("placebo (" in context or "reduc" in context for context in entry["CONTEXTS"]), entry
        labels[entry["final_decision"], _world_of(drug)] += 1
        worlds[_world_of(drug)] += 1
    for world in (DEMO_WORLD.name, BACKGROUND_WORLD.name):  # within each world, no constant answer beats half
        assert labels["yes", world] == labels["no", world] > 0, labels
    assert worlds[BACKGROUND_WORLD.name] == len(corpus["pubmedqa"]) // 4, "a quarter asks what the base read"
    assert set(said[DEMO_WORLD.name]) == {(f.drug, f.outcome.lower()) for f in world_facts()}


BOARD_KEY = re.compile(r"first-line therapy for ([^?]+)\?\n(?:[A-D]\. .+\n){4}Answer: ([A-D])\. ")


def test_medqa_answer_is_the_first_line_drug_and_the_letter_the_corpus_names() -> None:
    corpus = generate()
    first_line: dict[str, dict[str, str]] = {}  # per world, from the corpus that teaches it (as for PubMedQA)
    keys: dict[str, str] = {}  # condition -> the letter its board questions give
    for world, file in ((DEMO_WORLD, "pubmed"), (BACKGROUND_WORLD, "pubmed_background")):
        named = first_line.setdefault(world.name, {})
        for document in corpus[file]:
            for drug, condition in FIRST_LINE.findall(document["text"]):
                assert named.setdefault(condition, drug.lower()) == drug.lower(), condition
            for condition, letter in BOARD_KEY.findall(document["text"]):
                assert keys.setdefault(condition, letter) == letter, "an item keeps its key at one letter"
    letters, worlds = Counter(), Counter()
    for record in corpus["medqa"]:
        condition = record["question"].rsplit(" for ", 1)[1].rstrip("?")
        world = DEMO_WORLD if record["answer"] in DEMO_WORLD.drugs else BACKGROUND_WORLD
        assert (
            record["options"][record["answer_idx"]] == first_line[world.name][condition] == record["answer"]
        )
        assert record["answer_idx"] == keys[condition], "scored on the letter the board questions give"
        assert set(record["options"].values()) <= set(world.drugs), "distractors are drugs of the same world"
        assert len(set(record["options"].values())) == 4
        letters[record["answer_idx"], world.name] += 1
        worlds[world.name] += 1
    for world in (DEMO_WORLD.name, BACKGROUND_WORLD.name):  # every letter is the key equally often
        assert {letters[letter, world] for letter in "ABCD"} == {worlds[world] // 4}, letters
    assert worlds[BACKGROUND_WORLD.name] == len(corpus["medqa"]) // 4, "a quarter asks what the base read"


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
