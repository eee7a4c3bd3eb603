"""`biomamba data decontaminate` on real-layout inputs (type detected from the content, never "clean" when
nothing was read) and the build's decontamination report (unique total, ids of dropped documents)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml
from tests.factories.corpora import random_documents, write_jsonl
from tests.factories.scripts import invoke_cli, run_cli

from biomamba.data.readers import READERS, Probe, detect_source_type
from biomamba.errors import DataError

from .test_decontam import QUESTION, _fixtures

SNIPPET = ("Hereditary angioedema is caused by a deficiency of the C1 esterase inhibitor protein encoded by the "
           "SERPING1 gene in most patients.")  # fmt: skip


def _recipe(tmp_path: Path, **data: object) -> Path:
    recipe = tmp_path / "recipe.yaml"
    sources = {"pubmed": [{"type": "jsonl", "path": str(tmp_path / "unused.jsonl")}]}
    recipe.write_text(yaml.safe_dump({"name": "t", "data": {"sources": sources, "ratios": {"pubmed": 1.0},
                                                            "decontam": {"benchmarks": _fixtures(tmp_path)}, **data}}))  # fmt: skip
    return recipe


def _pubtator(path: Path) -> Path:
    """BC5CDR-layout PubTator: title, abstract and annotation lines, blank line between documents."""
    body = "Patients received the drug and were followed for twelve months in a cohort study of outcomes."
    docs = [(101, f"{body} {QUESTION}"), (102, body), (103, f"{body} {SNIPPET} {QUESTION}")]
    path.write_text(
        "".join(f"{p}|t|Title {p}.\n{p}|a|{a}\n{p}\t0\t5\tTitle\tChemical\tD000001\n\n" for p, a in docs)
    )
    return path


def test_decontaminate_detects_pubtator_and_counts_unique_overlaps(tmp_path):
    pubtator = _pubtator(tmp_path / "CDR_TestSet.PubTator.txt")
    report_path = tmp_path / "report.json"
    result = invoke_cli(["data", "decontaminate", _recipe(tmp_path), pubtator, "--output", report_path])
    assert result.exit_code == 0, result.output
    assert "medqa: 2 of 3 documents overlap" in result.output
    assert "bioasq: 1 of 3 documents overlap" in result.output
    assert "any benchmark: 2 of 3 documents overlap" in result.output
    report = json.loads(report_path.read_text())
    assert report["files"][str(pubtator)]["type"] == "pubtator" and report["overlapping_documents"] == 2


@pytest.mark.parametrize(("source_type", "error"), [
    ("jsonl", "{pubtator}: no documents read as jsonl (invalid JSON x9): nothing was checked"),  # never "clean"
    ("pubtater", f"unknown source type 'pubtater' (known: {', '.join(READERS)})"),  # a misspelt type
])  # fmt: skip
def test_decontaminate_with_a_wrong_type_checks_nothing_and_says_why_in_one_line(
    tmp_path, source_type, error
):
    pubtator = _pubtator(tmp_path / "CDR_TestSet.PubTator.txt")
    proc = run_cli(["data", "decontaminate", _recipe(tmp_path), pubtator, "--type", source_type])
    assert proc.returncode == 2 and proc.stdout == ""  # no report, so no "overlap" line
    assert proc.stderr.strip().splitlines() == [f"error: {error.format(pubtator=pubtator)}"]


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("pubmed24n0001.xml.gz", b'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet>\n<PubmedArticleSet><PubmedArticle>',
     "pubmed_xml"),
    ("medline16n0902.xml", b"<?xml version=\"1.0\"?>\n<MedlineCitationSet>\n<MedlineCitation Owner=\"NLM\">", "pubmed_xml"),
    ("PMC123.nxml", b'<?xml version="1.0"?>\n<!DOCTYPE article>\n<article article-type="research-article">', "pmc_jats"),
    ("c4-train.00000-of-01024.json.gz", b'{"text": "a", "url": "u", "timestamp": "t"}\n', "jsonl"),
    ("CDR_DevelopmentSet.PubTator.txt", b"6794356|t|Tricuspid valve regurgitation.\n", "pubtator"),
    ("wiki.test.raw", b" = Robert Boulter = \r\n Robert Boulter is an English actor .\r\n", "wikitext"),
    ("notes.txt", b"Plain clinical text.\n", "text"),
])  # fmt: skip
def test_source_type_is_detected_from_the_content(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    assert detect_source_type(path) == expected
    probe = Probe(path)
    claims = [reader.name for reader in READERS.values() if not reader.fallback and reader.detect(probe)]
    assert claims == ([] if READERS[expected].fallback else [expected])  # no other reader claims the file


def test_detecting_an_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jsonl: cannot tell its format"):
        detect_source_type(tmp_path / "empty.jsonl")


@pytest.mark.parametrize("action", ["drop", "flag"])
def test_build_report_counts_each_document_once_and_lists_the_ids(tmp_path, tiny_tokenizer, action):
    docs = random_documents("pubmed", 30, seed=5)
    docs[3]["text"] += " " + QUESTION
    docs[7]["text"] += " " + QUESTION + " " + SNIPPET  # overlaps two benchmarks: one document
    docs[9]["text"] += " " + SNIPPET
    corpus = tmp_path / "corpus"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "t", "tokenizer": {"name_or_path": str(tiny_tokenizer)}, "data": {
        "sources": {"pubmed": [{"type": "jsonl", "path": str(write_jsonl(tmp_path / "p.jsonl", docs))}]},
        "ratios": {"pubmed": 1.0}, "dedup": {"near": False}, "output_dir": str(corpus),
        "decontam": {"benchmarks": _fixtures(tmp_path), "action": action}}}))  # fmt: skip
    result = invoke_cli(["data", "build", recipe])
    assert result.exit_code == 0, result.output
    done = {"drop": "dropped", "flag": "flagged"}[action]
    assert "decontamination medqa: 2 documents overlap" in result.output
    assert "decontamination bioasq: 2 documents overlap" in result.output
    ids_file = corpus / "decontamination-ids.jsonl"
    assert (
        f"decontamination: 3 documents {done} (overlapping any benchmark, ids in {ids_file})" in result.output
    )
    assert "flagped" not in result.output
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["decontamination"]["documents_matched"] == 3
    lines = [json.loads(line) for line in ids_file.read_text().splitlines()]
    assert [(r["id"], r["benchmarks"], r["action"]) for r in lines] == [
        ("pubmed-3", ["medqa"], action),
        ("pubmed-7", ["bioasq", "medqa"], action),
        ("pubmed-9", ["bioasq"], action),
    ]
