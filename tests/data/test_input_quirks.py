"""Real inputs that go wrong: unclosed XML records, one PMID from several sources, leftovers of a killed build,
and the recipe's top-level output_dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.factories.corpora import corpus_texts, medline_article, medline_xml, read_documents
from tests.factories.scripts import invoke_cli, run_cli

from biomamba.data import DataConfig, TokenShards, build_corpus
from biomamba.data.shards import ShardWriter
from biomamba.errors import DataError


def test_record_missing_its_closing_tag_does_not_swallow_the_next(tmp_path):
    path = tmp_path / "pubmed24n0001.xml"
    path.write_text(medline_xml(medline_article(111, "Alpha."), medline_article(222, "Unclosed.", close=False),
                                medline_article(333, "Gamma."), medline_article(444, "Delta.")))  # fmt: skip
    docs, report = read_documents(path, "pubmed_xml")
    assert [d.id for d in docs] == ["111", "333", "444"]
    assert report.skipped == {"record without closing </PubmedArticle>": 1}
    assert report.warnings == [f"{path}:line 4: record without closing </PubmedArticle>: PMID 222"]


def test_medline_citation_set_record_missing_its_closing_tag(tmp_path):
    citation = '<MedlineCitation Owner="NLM"><PMID>{0}</PMID><Article><ArticleTitle>T{0}.</ArticleTitle>' \
               "<Abstract><AbstractText>Text {0}.</AbstractText></Abstract></Article>"  # fmt: skip
    path = tmp_path / "medline16n0001.xml"
    path.write_text("<MedlineCitationSet>" + citation.format(1) + citation.format(2) + "</MedlineCitation>"
                    + "<DeleteCitation><PMID>9</PMID></DeleteCitation></MedlineCitationSet>")  # fmt: skip
    docs, report = read_documents(path, "pubmed_xml")
    assert [d.id for d in docs] == ["2"] and report.deleted_ids == ["9"]
    assert report.skipped == {"record without closing </MedlineCitation>": 1}


def test_one_identity_per_pmid_across_pubtator_and_medline_newest_wins(tmp_path, tiny_tokenizer):
    body = "abstract body with enough words to pass every filter of the corpus build"
    pubtator = tmp_path / "bc5cdr" / "CDR_TrainingSet.PubTator.txt"
    pubtator.parent.mkdir()
    pubtator.write_text("".join(f"{p}|t|PubTator title {p}.\n{p}|a|PubTator {body} {p}.\n{p}\t0\t5\tx\tChemical\tD1\n\n"
                                for p in (1, 2, 3)))  # fmt: skip
    medline = tmp_path / "medline"
    medline.mkdir()
    for name, versions in (("pubmed24n0001", [(2, "Baseline", "2020-01-05"), (3, "Baseline", "2021-06-01")]),
                           ("pubmed24n1300", [(3, "Older", "2019-01-01"), (4, "Update", "2024-01-01")])):  # fmt: skip
        articles = [medline_article(p, f"{what} {body} {p}.", revised=date) for p, what, date in versions]
        (medline / f"{name}.xml").write_text(medline_xml(*articles))
    sources = {
        "pubmed": [{"type": "pubtator", "path": str(pubtator)}, {"type": "pubmed_xml", "path": str(medline)}]
    }
    config = DataConfig.model_validate({"sources": sources, "ratios": {"pubmed": 1.0}, "heldout_fraction": 0,
                                        "dedup": {"near": False}, "decontam": {"enabled": False}})  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    texts = corpus_texts(tmp_path / "corpus", tiny_tokenizer)
    # PMID 1: PubTator only; 2: the dated MEDLINE record beats the undated PubTator one; 3: DateRevised 2021
    # beats the PubTator one and the 2019 one, although that comes later; 4: in the update file only
    assert [t.split("\n")[1].split()[0] for t in texts] == ["PubTator", "Baseline", "Baseline", "Update"]
    assert manifest["medline_updates"]["superseded"] == 3  # PMID 2 once, PMID 3 twice


def test_rerun_after_a_killed_build_removes_its_temporary_shard_files(jsonl_corpus, tiny_tokenizer, tmp_path):
    config = DataConfig.model_validate({"sources": {d: [{"type": "jsonl", "path": str(p)}] for d, p in
                                                    jsonl_corpus.items()}, "dedup": {"near": False}})  # fmt: skip
    out = tmp_path / "corpus"
    build_corpus(config, tiny_tokenizer, out)
    # what a build killed (SIGKILL: no cleanup runs) while writing shards leaves behind, and no manifest
    for split in ("train", "heldout/c4"):
        writer = ShardWriter(out, f"{split}/shard-00000.bin", np.dtype("<u2"))
        writer.add(np.arange(5, dtype=np.int64), np.asarray([5]))
    (out / "manifest.json").unlink()
    assert len(list(out.rglob(".shard-*.tmp"))) == 4
    build_corpus(config, tiny_tokenizer, out)
    assert list(out.rglob(".shard-*.tmp")) == []
    assert TokenShards(out, "train").num_tokens > 0


def test_top_level_output_dir_is_where_data_build_and_tokenizer_train_write(jsonl_corpus, tiny_tokenizer,
                                                                             tmp_path, monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # a wrong default would land in ./runs/ here
    root = tmp_path / "experiments" / "bio"
    sources = {d: [{"type": "jsonl", "path": str(p)}] for d, p in jsonl_corpus.items()}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "bio", "output_dir": str(root),
                                      "tokenizer": {"name_or_path": str(tiny_tokenizer), "vocab_size": 300},
                                      "data": {"sources": sources, "dedup": {"near": False}}}))  # fmt: skip
    result = invoke_cli(["data", "build", recipe])
    assert result.exit_code == 0, result.output
    assert (root / "corpus" / "manifest.json").is_file()
    result = invoke_cli(["tokenizer", "train", recipe])
    assert result.exit_code == 0, result.output
    assert (root / "tokenizer" / "tokenizer.json").is_file()
    assert not (tmp_path / "runs").exists()


def test_build_without_training_documents_names_each_source_and_why(jsonl_corpus, tiny_tokenizer, tmp_path):
    from .test_damaged_inputs import _medline_gzip, damage

    pubmed = tmp_path / "pubmed"
    pubmed.mkdir()
    (pubmed / "a.xml").write_text(medline_xml(*(medline_article(p, None) for p in (1, 2, 3))))  # no abstracts
    damage(_medline_gzip(600, seed=3), pubmed / "b.xml.gz")
    recipe = tmp_path / "recipe.yaml"
    out = tmp_path / "corpus"
    sources = {"pubmed": [{"type": "pubmed_xml", "path": str(pubmed)}],
               "c4": [{"type": "jsonl", "path": str(jsonl_corpus["c4"])}],
               "web": [{"type": "jsonl", "path": str(jsonl_corpus["c4"])}]}  # fmt: skip
    recipe.write_text(yaml.safe_dump({"name": "t", "tokenizer": {"name_or_path": str(tiny_tokenizer)},
                                      "data": {"sources": sources, "ratios": {"pubmed": 0.5, "c4": 0.3, "web": 0.2},
                                               "dedup": {"near": False}, "output_dir": str(out)}}))  # fmt: skip
    proc = run_cli(["data", "build", recipe])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    line = lines[0]
    assert line.startswith("error: no training documents left in domain(s) pubmed, web (ratio > 0): pubmed: ")
    assert "a.xml: 0 documents (no abstract x3)" in line
    assert "b.xml.gz: 0 documents (damaged compressed file (dropped whole) x" in line
    assert "web: c4.jsonl: 200 documents; then removed: " in line and " exact duplicates" in line
    assert f"(what was read: {out / 'manifest.failed.json'})" in line
    assert not (out / "manifest.json").exists()
    failed = json.loads((out / "manifest.failed.json").read_text())
    assert failed["error"] == line.removeprefix("error: ")
    assert {Path(s["path"]).name for s in failed["sources"]} == {"a.xml", "b.xml.gz", "c4.jsonl"}
    assert failed["domains"]["pubmed"]["skipped"]["no abstract"] == 3


def test_train_looks_for_the_corpus_where_data_build_writes_it(tmp_path, monkeypatch):
    from biomamba.train import train

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "experiments" / "bio"
    recipe = {"name": "bio", "output_dir": str(root), "data": {"sources": {"pubmed": [{"type": "text", "path": "x"}]}},
              "train": {"max_steps": 1, "progress": False}}  # fmt: skip
    with pytest.raises(DataError, match=f"{root / 'corpus' / 'manifest.json'}: corpus manifest not found"):
        train(recipe)
