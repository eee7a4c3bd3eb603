"""Decontamination: benchmark readers in their original formats, n-gram matching, per-benchmark report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from tests.factories.corpora import random_documents, write_jsonl

from biomamba.data import DataConfig, build_corpus
from biomamba.data.config import DecontamConfig
from biomamba.data.decontam import NgramIndex, ngram_hashes
from biomamba.errors import DataError

QUESTION = "Which enzyme deficiency causes the accumulation of glucocerebroside in macrophages of the spleen and marrow?"


def _fixtures(tmp_path: Path) -> list[dict]:
    medqa = tmp_path / "medqa.jsonl"
    medqa.write_text(json.dumps({"question": QUESTION, "options": {"A": "Hexosaminidase A", "B": "Glucocerebrosidase"},
                                 "answer_idx": "B", "answer": "Glucocerebrosidase", "meta_info": "step1"}) + "\n")  # fmt: skip
    medmcqa = tmp_path / "dev.json"
    medmcqa.write_text(json.dumps({"question": "Drug of choice for absence seizures in a young child is?",
                                   "opa": "Ethosuximide", "opb": "Phenytoin", "opc": "Carbamazepine", "opd": "Valproate",
                                   "cop": 1, "exp": "Ethosuximide is the preferred first line agent for typical absence "
                                   "seizures in children without generalized tonic clonic seizures.", "id": "x"}) + "\n")  # fmt: skip
    bioasq = tmp_path / "bioasq.json"
    bioasq.write_text(json.dumps({"questions": [{"id": "q1", "type": "yesno", "body": "Is it?", "exact_answer": "yes",
        "ideal_answer": ["Yes."], "documents": [], "snippets": [{"text": "Hereditary angioedema is caused by a "
        "deficiency of the C1 esterase inhibitor protein encoded by the SERPING1 gene in most patients."}]}]}))  # fmt: skip
    return [{"name": "medqa", "format": "medqa", "path": str(medqa)},
            {"name": "medmcqa", "format": "medmcqa", "path": str(medmcqa)},
            {"name": "bioasq", "format": "bioasq", "path": str(bioasq)}]  # fmt: skip


def test_ngram_hashes_ignore_case_and_punctuation():
    a = ngram_hashes("The Quick, brown fox -- jumps over the lazy dog again and again today ok", 13)
    b = ngram_hashes("the quick brown fox jumps over the lazy dog again and again today ok!", 13)
    assert a.size == 2 and (a == b).all()
    assert ngram_hashes("too short", 13).size == 0


def test_each_benchmark_format_is_indexed_and_matched(tmp_path):
    index = NgramIndex.build(DecontamConfig(benchmarks=_fixtures(tmp_path)))
    assert index.matches(f"Some exam prep. {QUESTION} Answer below.") == ["medqa"]
    assert index.matches("note: ethosuximide is the preferred first line agent for typical absence seizures "
                         "in children without generalized") == ["medmcqa"]  # fmt: skip
    assert index.matches(
        "Hereditary angioedema is caused by a deficiency of the C1 esterase inhibitor protein"
    ) == ["bioasq"]
    unrelated = "An unrelated paragraph about river valleys and the kings that founded cities long ago."
    assert index.matches(unrelated) == []
    # question, each option after it, all options after it; the BioASQ body and ideal answer are too short
    assert index.stats["medqa"]["texts"] == 4 and index.stats["bioasq"]["too_short_to_index"] == 2


def test_mmlu_csv_folder_is_indexed(shared_data):
    index = NgramIndex.build(DecontamConfig(benchmarks=[{"name": "mmlu", "format": "mmlu",
                                                         "path": str(shared_data / "mcq" / "mmlu_dev")}]))  # fmt: skip
    assert index.stats["mmlu"]["texts"] == 6 * 5 * (1 + 4 + 1)  # question, + each option, + all options
    line = (shared_data / "mcq/mmlu_dev/anatomy_dev.csv").read_text().splitlines()[0]
    row = next(csv.reader([line]))
    assert index.matches(" ".join(row[:5])) == ["mmlu"]


def test_bad_benchmark_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "pqa.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"pqa.json:1: invalid JSON"):
        NgramIndex.build(DecontamConfig(benchmarks=[{"name": "p", "format": "pubmedqa", "path": str(bad)}]))
    with pytest.raises(DataError, match="not found"):
        NgramIndex.build(
            DecontamConfig(benchmarks=[{"name": "p", "format": "pubmedqa", "path": str(tmp_path / "x")}])
        )


def test_pubmedqa_abstracts_mixed_into_pubmed_are_all_removed(shared_data, tiny_tokenizer, tmp_path):
    pqa = json.loads((shared_data / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    # each abstract as PubMed has it: the contexts, then the conclusion
    abstracts = [
        {"id": pmid, "text": " ".join(r["CONTEXTS"]) + " " + r["LONG_ANSWER"]} for pmid, r in pqa.items()
    ]
    injected = write_jsonl(tmp_path / "pubmedqa_as_pubmed.jsonl", abstracts)
    config = DataConfig.model_validate({
        "sources": {
            "pubmed": [{"type": "pubmed_xml", "path": str(shared_data / "pubmed/medline16n0902_sample.xml.gz"),
                        "max_documents": 100},
                       {"type": "jsonl", "path": str(injected)}],
            "c4": [{"type": "jsonl", "path": str(shared_data / "general/c4/olmo_c4-sample.01.json.gz")}],
        },
        "ratios": {"pubmed": 0.9, "c4": 0.1},
        "dedup": {"near": False},
        "decontam": {"benchmarks": [{"name": "pubmedqa", "format": "pubmedqa",
                                     "path": str(shared_data / "pubmedqa/ori_pqal.json")}]},
    })  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    source = next(s for s in manifest["sources"] if s["path"] == str(injected))
    assert source["read"]["documents"] == len(pqa) == 1000
    assert source["contaminated"] == {"pubmedqa": 1000} and source["documents"] == 0
    report = manifest["decontamination"]["benchmarks"]["pubmedqa"]
    assert report["documents_matched"] >= 1000 and report["ngrams"] > 100_000


def test_flag_mode_keeps_documents_and_lists_them(tmp_path, tiny_tokenizer):
    docs = random_documents("pubmed", 30, seed=5)
    docs[3]["text"] += " " + QUESTION
    sources = {"pubmed": [{"type": "jsonl", "path": str(write_jsonl(tmp_path / "p.jsonl", docs))}]}
    base = {"sources": sources, "ratios": {"pubmed": 1.0}, "dedup": {"near": False}}
    decontam = {"benchmarks": _fixtures(tmp_path)}
    flagged = build_corpus(DataConfig.model_validate({**base, "decontam": {**decontam, "action": "flag"}}),
                           tiny_tokenizer, tmp_path / "flag")  # fmt: skip
    dropped = build_corpus(
        DataConfig.model_validate({**base, "decontam": decontam}), tiny_tokenizer, tmp_path / "drop"
    )
    assert flagged["decontamination"]["flagged_ids"] == ["pubmed-3"]
    assert flagged["decontamination"]["benchmarks"]["medqa"]["documents_matched"] == 1
    total = lambda m: sum(s["documents"] for s in m["splits"].values())  # noqa: E731
    assert total(flagged) == 30 and total(dropped) == 29


def _small_corpus(tmp_path: Path) -> dict:
    docs = random_documents("pubmed", 30, seed=5)
    return {"pubmed": [{"type": "jsonl", "path": str(write_jsonl(tmp_path / "p.jsonl", docs))}]}


def test_enabled_without_benchmarks_warns_and_records_it_in_the_manifest(tmp_path, tiny_tokenizer):
    base = {"sources": _small_corpus(tmp_path), "ratios": {"pubmed": 1.0}, "dedup": {"near": False}}
    messages: list[str] = []
    manifest = build_corpus(DataConfig.model_validate(base), tiny_tokenizer, tmp_path / "a",
                            progress=messages.append)  # fmt: skip
    warnings = [m for m in messages if m.startswith("WARNING")]
    assert len(warnings) == 1 and "data.decontam.benchmarks is empty" in warnings[0]
    assert "data.decontam.benchmarks is empty" in manifest["decontamination"]["warning"]
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["decontamination"]["warning"]
    # Explicitly disabled, or with benchmarks: no warning.
    messages.clear()
    off = build_corpus(DataConfig.model_validate({**base, "decontam": {"enabled": False}}), tiny_tokenizer,
                       tmp_path / "b", progress=messages.append)  # fmt: skip
    on = build_corpus(DataConfig.model_validate({**base, "decontam": {"benchmarks": _fixtures(tmp_path)}}),
                      tiny_tokenizer, tmp_path / "c", progress=messages.append)  # fmt: skip
    assert not any(m.startswith("WARNING") for m in messages)
    assert off["decontamination"]["warning"] is None and on["decontamination"]["warning"] is None


def test_missing_benchmark_path_is_a_one_line_error_before_any_work(tmp_path, tiny_tokenizer):
    benchmarks = [
        *_fixtures(tmp_path),
        {"name": "pqa", "format": "pubmedqa", "path": str(tmp_path / "nope.json")},
    ]
    config = DataConfig.model_validate({"sources": _small_corpus(tmp_path), "ratios": {"pubmed": 1.0},
                                        "decontam": {"benchmarks": benchmarks}})  # fmt: skip
    messages: list[str] = []
    with pytest.raises(
        DataError, match=r"^data\.decontam\.benchmarks\.3\.path: .*nope\.json: not found"
    ) as err:
        build_corpus(config, tiny_tokenizer, tmp_path / "corpus", progress=messages.append)
    assert "\n" not in str(err.value) and not messages and not (tmp_path / "corpus").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"benchmarks\.0\.path: .*is a folder without benchmark files"):
        NgramIndex.build(DecontamConfig(benchmarks=[{"name": "m", "format": "medqa", "path": str(empty)}]))


def test_shipped_pretraining_recipes_list_decontamination_benchmarks():
    """Every shipped pretraining recipe decontaminates against the biomedical benchmarks (validated schema)."""
    recipes = Path(__file__).resolve().parents[2] / "recipes"
    names = ["biomamba-130m", "biomamba-370m", "biomamba-780m", "biomamba-1.3b", "biomamba-2.7b",
             "biomedlm-2.7b", "biomistral-7b"]  # fmt: skip
    for name in names:
        data = yaml.safe_load((recipes / f"{name}.yaml").read_text(encoding="utf-8"))["data"]
        decontam = DataConfig.model_validate(data).decontam
        assert decontam.enabled, name
        formats = {b.format for b in decontam.benchmarks}
        assert {"pubmedqa", "medqa", "medmcqa", "mmlu", "bioasq"} <= formats, name
        paths = {b.path for b in decontam.benchmarks}
        assert {"data/pubmedqa/ori_pqal.json", "data/pubmedqa/test_set.json"} <= paths, name


def test_general_benchmarks_are_indexed_in_their_original_formats(tmp_path):
    passage = ("The Amazon river flows through the rainforest of Brazil and carries more water than any other "
               "river on the planet during the wet season.")  # fmt: skip
    files = {
        "boolq": [{"question": "does the amazon river carry the most water", "passage": passage, "answer": True}],
        "arc": [{"id": "a1", "question": {"stem": "Which property of a mineral can be determined just by looking "
                 "at it under ordinary daylight without any tools?", "choices": [{"label": "A", "text": "luster"},
                 {"label": "B", "text": "mass"}]}, "answerKey": "A"}],
        "openbookqa": [{"id": "o1", "question_stem": "A student wants to keep a cup of cocoa warm for as long as "
                        "possible during the long winter walk so she should", "choices": {"label": ["A", "B"],
                        "text": ["use a metal cup", "use a foam cup"]}, "answerKey": "B"}],
        "hellaswag": [{"ind": 4, "activity_label": "Baking cookies", "ctx_a": "A woman is standing in a kitchen "
                       "with a large bowl of dough on the counter in front of her.", "ctx_b": "she",
                       "ctx": "unused", "endings": ["rolls the dough into small balls and places them on a "
                       "greased baking tray in neat rows.", "jumps"], "label": ""}],
        "piqa": [{"goal": "How do I keep the paint brush from drying out overnight between two coats",
                  "sol1": "Wrap it tightly in plastic cling film and store it in the fridge.", "sol2": "Boil it."}],
        "winogrande": [{"sentence": "The trophy would not fit into the brown suitcase on the shelf because the _ "
                        "was far too large for it.", "option1": "trophy", "option2": "suitcase", "answer": "1"}],
        "lambada": [{"text": "He handed her the small wooden box that his grandmother had left him and she "
                     "opened it slowly to find the old brass key"}],
    }  # fmt: skip
    benchmarks = [
        {"name": name, "format": name, "path": str(write_jsonl(tmp_path / f"{name}.jsonl", records))}
        for name, records in files.items()
    ]
    arc_array = tmp_path / "arc.json"  # some releases are one JSON array
    arc_array.write_text(json.dumps(files["arc"]))
    index = NgramIndex.build(DecontamConfig(benchmarks=benchmarks))
    assert index.matches(f"Trivia: {passage}") == ["boolq"]
    assert index.matches("Q: Which property of a mineral can be determined just by looking at it under "
                         "ordinary daylight without any tools? luster mass") == ["arc"]  # fmt: skip
    assert index.matches("a student wants to keep a cup of cocoa warm for as long as possible during "
                         "the long winter walk so she should use a metal cup") == ["openbookqa"]  # fmt: skip
    assert index.matches("in front of her. She rolls the dough into small balls and places them on a greased "
                         "baking tray") == ["hellaswag"]  # fmt: skip
    assert index.matches("How do I keep the paint brush from drying out overnight between two coats? Wrap it "
                         "tightly in plastic") == ["piqa"]  # fmt: skip
    assert index.matches("Puzzle: the trophy would not fit into the brown suitcase on the shelf because the "
                         "trophy was") == ["winogrande"]  # fmt: skip
    assert index.matches(
        "his grandmother had left him and she opened it slowly to find the old brass key"
    ) == ["lambada"]
    assert index.stats["hellaswag"]["texts"] == 4 and index.stats["arc"]["texts"] == 4
    again = NgramIndex.build(
        DecontamConfig(benchmarks=[{"name": "arc", "format": "arc", "path": str(arc_array)}])
    )
    assert again.stats["arc"]["ngrams"] == index.stats["arc"]["ngrams"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "no passage"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: missing field 'passage'"):
        NgramIndex.build(DecontamConfig(benchmarks=[{"name": "b", "format": "boolq", "path": str(bad)}]))
