"""Decontamination: benchmark readers in their original formats, n-gram matching, per-benchmark report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    assert (
        index.matches(
            "An unrelated paragraph about river valleys and the kings that founded cities long ago."
        )
        == []
    )
    assert index.stats["medqa"]["texts"] == 2 and index.stats["bioasq"]["too_short_to_index"] == 2


def test_mmlu_csv_folder_is_indexed(shared_data):
    index = NgramIndex.build(DecontamConfig(benchmarks=[{"name": "mmlu", "format": "mmlu",
                                                         "path": str(shared_data / "mcq" / "mmlu_dev")}]))  # fmt: skip
    assert index.stats["mmlu"]["texts"] == 6 * 5 * 2
    line = (shared_data / "mcq/mmlu_dev/anatomy_dev.csv").read_text().splitlines()[0]
    import csv

    row = next(csv.reader([line]))
    assert index.matches(" ".join(row[:5])) == ["mmlu"]


def test_bad_benchmark_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "pqa.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="pqa.json: not a valid pubmedqa file"):
        NgramIndex.build(DecontamConfig(benchmarks=[{"name": "p", "format": "pubmedqa", "path": str(bad)}]))
    with pytest.raises(DataError, match="not found"):
        NgramIndex.build(
            DecontamConfig(benchmarks=[{"name": "p", "format": "pubmedqa", "path": str(tmp_path / "x")}])
        )


def test_pubmedqa_abstracts_mixed_into_pubmed_are_all_removed(shared_data, tiny_tokenizer, tmp_path):
    pqa = json.loads((shared_data / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    injected = tmp_path / "pubmedqa_as_pubmed.jsonl"
    with injected.open("w", encoding="utf-8") as handle:
        for pmid, record in pqa.items():  # the abstract as PubMed has it: contexts then the conclusion
            handle.write(
                json.dumps({"id": pmid, "text": " ".join(record["CONTEXTS"]) + " " + record["LONG_ANSWER"]})
                + "\n"
            )
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
    from .helpers import random_documents, write_jsonl

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
