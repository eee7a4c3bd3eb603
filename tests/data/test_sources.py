"""Readers on the real samples (../shared/data, skipped when absent) and on small fixtures in original formats."""

from __future__ import annotations

import gzip
import re
import tarfile
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.factories.corpora import random_documents, read_documents

from biomamba.data import DataConfig, TokenShards, build_corpus
from biomamba.data.config import SourceConfig
from biomamba.data.readers import READERS, Probe, detect_source_type, resolve_paths
from biomamba.errors import DataError

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"


def _expected_medline(path: Path) -> dict[str, str]:
    """Independent oracle: PMIDs and titles of citations with a non-empty abstract, by regex over the raw XML."""
    raw = gzip.decompress(path.read_bytes()).decode("utf-8")
    expected = {}
    for block in re.findall(r"<MedlineCitation .*?</MedlineCitation>", raw, flags=re.S):
        abstract = re.search(r"<Abstract>(.*?)</Abstract>", block, flags=re.S)
        if abstract and re.search(r"<AbstractText[^>]*>\s*\S", abstract.group(1)):
            pmid = re.search(r"<PMID[^>]*>(\d+)</PMID>", block).group(1)
            title = re.search(r"<ArticleTitle>(.*?)</ArticleTitle>", block, flags=re.S).group(1)
            expected[pmid] = " ".join(title.replace("&amp;", "&").split())
    return expected


def test_medline_sample_yields_exactly_citations_with_abstract(shared_data):
    path = shared_data / "pubmed" / "medline16n0902_sample.xml.gz"
    docs, report = read_documents(path, "pubmed_xml")
    expected = _expected_medline(path)
    assert len(docs) == len(expected) == 526
    assert [d.id for d in docs] == list(expected)
    for doc in docs:
        title = doc.text.split("\n", 1)[0]
        assert title == expected[doc.id]
    assert report.skipped["no abstract"] == 604 - 526
    assert report.deleted_ids == ["26432306"]
    first = docs[0]
    assert first.id == "17942999" and first.year == 2007
    assert "\nPURPOSE: An auditory electrophysiological study" in first.text  # structured labels kept
    assert "\nCONCLUSIONS: The MMN can serve" in first.text


def test_pubmed_article_set_layouts(shared_data):
    docs, report = read_documents(shared_data / "pubmed" / "test_current_medline.xml.gz", "pubmed_xml")
    assert [d.id for d in docs][:2] == ["36400559", "2930949"]
    assert docs[0].text.startswith("Back Pain: Differential Diagnosis and Management.\nBack pain is a common")
    assert len(docs) + report.skipped["no abstract"] == 4
    one, _ = read_documents(shared_data / "pubmed" / "pubmed-29768149.xml", "pubmed_xml")
    assert [d.id for d in one] == ["29768149"] and "\nBACKGROUND: " in one[0].text and one[0].year == 2018


def test_bc5cdr_pubtator_c4_and_wikitext_load(shared_data):
    docs, report = read_documents(shared_data / "pubmed" / "bc5cdr" / "CDR_TestSet.PubTator.txt", "pubtator")
    assert len(docs) == 500 and not report.skipped
    assert docs[0].id == "8701013" and docs[0].text.startswith("Famotidine-associated delirium.")
    assert "\t" not in docs[0].text  # annotation lines are not text
    c4, report = read_documents(shared_data / "general/c4/olmo_c4-sample.00000-of-00001.json.gz", "jsonl")
    assert len(c4) == 1000 and not report.skipped and c4[0].id.startswith("https://")
    wiki, _ = read_documents(shared_data / "general/wikitext/wikitext-2-raw_wiki.test.raw", "wikitext")
    raw = (shared_data / "general/wikitext/wikitext-2-raw_wiki.test.raw").read_text(encoding="utf-8")
    # every ` = X = ` line is a title except two formula fragments inside "Constant k filter"
    formula = ["1 rad / s and a nominal impedance k", "1 henry and capacitance C"]
    titles = [t for t in re.findall(r"^ = ([^=].*?) = $", raw, flags=re.M) if t not in formula]
    assert len(wiki) == 60
    assert [d.text.split("\n", 1)[0] for d in wiki] == titles
    constant_k = next(d.text for d in wiki if d.id.endswith(":Constant k filter"))
    assert "= 1 rad / s and a nominal impedance k =\n1 Ω" in constant_k
    assert wiki[0].text.startswith("Robert Boulter\nRobert Boulter is an English film")
    assert "= = Career = =" in wiki[0].text  # section headings stay inside the article


MEDLINE_FIXTURE = b"""<?xml version="1.0"?>
<PubmedArticleSet>
<PubmedArticle><MedlineCitation><PMID Version="1">111</PMID><Article><ArticleTitle>First title.</ArticleTitle>
<Abstract><AbstractText Label="BACKGROUND">Alpha text.</AbstractText><AbstractText Label="RESULTS">Beta text.</AbstractText></Abstract>
</Article></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID Version="1">222</PMID><Article><ArticleTitle>Broken <i>record.</ArticleTitle>
<Abstract><AbstractText>Gamma.</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID Version="1">333</PMID><Article><ArticleTitle>No abstract.</ArticleTitle></Article></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID Version="1">444</PMID><Article><ArticleTitle>Empty abstract.</ArticleTitle><Abstract><AbstractText/></Abstract></Article></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID Version="1">555</PMID><Article><ArticleTitle>Last &amp; kept.</ArticleTitle><Abstract><AbstractText>Delta &#xa0;text.</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>
<DeleteCitation><PMID Version="1">999</PMID><PMID Version="1">111</PMID></DeleteCitation>
</PubmedArticleSet>
"""


def test_malformed_record_is_skipped_with_warning_naming_it(tmp_path):
    path = tmp_path / "update.xml"
    path.write_bytes(MEDLINE_FIXTURE)
    docs, report = read_documents(path, "pubmed_xml")
    assert [d.id for d in docs] == ["111", "555"]
    assert docs[0].text == "First title.\nBACKGROUND: Alpha text.\nRESULTS: Beta text."
    assert docs[1].text.startswith("Last & kept.\nDelta")
    assert report.skipped == {"malformed XML record": 1, "no abstract": 2}
    assert re.search(r"update\.xml:line 6: malformed XML record: PMID 222", report.warnings[0])
    assert report.deleted_ids == ["999", "111"]


def test_truncated_gzip_keeps_complete_records_and_warns(tmp_path):
    data = gzip.compress(MEDLINE_FIXTURE * 40)
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    docs, report = read_documents(path, "pubmed_xml")
    assert docs and all(d.id in {"111", "555"} for d in docs)
    assert report.skipped["truncated compressed file (rest of file skipped)"] == 1
    assert any("cut.xml.gz" in w and "truncated" in w for w in report.warnings)


def test_jsonl_bad_lines_are_counted_with_line_numbers(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'{"id": "a", "text": "good one"}\n{"id": "b", "text": "bad \xff utf8"}\nnot json\n'
                     b'{"id": "c"}\n[1]\n\n{"text": "no id", "url": "u1"}\n')  # fmt: skip
    docs, report = read_documents(path, "jsonl")
    assert [d.id for d in docs] == ["a", "u1"]
    assert report.skipped == {"invalid UTF-8": 1, "invalid JSON": 1, "no string field 'text'": 1,
                              "JSON line is not an object": 1}  # fmt: skip
    assert any(w.startswith(f"{path}:line 2: invalid UTF-8") for w in report.warnings)


def test_jsonl_gz_custom_fields(tmp_path):
    path = tmp_path / "c4.json.gz"
    path.write_bytes(gzip.compress(b'{"body": "x y z", "doc": 7}\n'))
    docs, _ = read_documents(path, "jsonl", text_field="body", id_field="doc")
    assert [(d.id, d.text) for d in docs] == [("7", "x y z")]


def test_empty_file_is_a_counted_skip_and_missing_path_an_error(tmp_path):
    empty = tmp_path / "empty.xml.gz"
    empty.write_bytes(b"")
    docs, report = read_documents(empty, "pubmed_xml")
    assert docs == [] and report.skipped == {"empty file": 1}
    with pytest.raises(DataError, match=r"data.sources.pubmed: .*nope\*.xml: no such file"):
        resolve_paths(SourceConfig(type="pubmed_xml", path=str(tmp_path / "nope*.xml")), "pubmed")


JATS = b"""<article><front><article-meta><article-id pub-id-type="pmc">PMC42</article-id>
<title-group><article-title>A JATS article</article-title></title-group>
<abstract><p>Short abstract.</p></abstract></article-meta></front>
<body><sec><title>Introduction</title><p>Body text cites <xref ref-type="bibr" rid="r1">[1]</xref> here.</p>
<fig id="f1"><caption><p>Figure caption must go.</p></caption></fig>
<table-wrap><table><tr><td>cell must go</td></tr></table></table-wrap>
<p>Second paragraph with <italic>emphasis</italic>.</p></sec></body>
<back><ref-list><ref id="r1"><mixed-citation>Reference must go.</mixed-citation></ref></ref-list></back></article>"""


def test_pmc_jats_body_without_references_tables_figures(tmp_path):
    path = tmp_path / "PMC42.nxml"
    path.write_bytes(JATS)
    docs, _ = read_documents(path, "pmc_jats")
    assert len(docs) == 1 and docs[0].id == "PMC42"
    text = docs[0].text
    assert text == ("A JATS article\nShort abstract.\nIntroduction\nBody text cites here.\n"
                    "Second paragraph with emphasis.")  # fmt: skip
    bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(path, arcname="x/PMC42.nxml")
    docs, _ = read_documents(bundle, "pmc_jats")
    assert [d.id for d in docs] == ["PMC42"]


def test_hf_source_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="hf dataset 'allenai/c4': cannot load"):
        read_documents("allenai/c4", "hf", hf_config="en")


def test_hf_source_reads_local_dataset_dir(tmp_path):
    import datasets

    dataset = datasets.Dataset.from_dict({"text": ["one doc", "two doc"], "id": ["a", "b"]})
    dataset.save_to_disk(tmp_path / "ds")
    docs, _ = read_documents(tmp_path / "ds", "hf")
    assert [(d.id, d.text) for d in docs] == [("a", "one doc"), ("b", "two doc")]


def test_an_unknown_source_type_is_refused_naming_every_registered_one():
    with pytest.raises(ValidationError, match="unknown source type 'medline'") as refused:
        SourceConfig(type="medline", path="x")
    assert all(name in str(refused.value) for name in READERS)


@pytest.mark.parametrize(("sample", "expected"), [
    ("pubmed/medline16n0902_sample.xml.gz", "pubmed_xml"),
    ("pubmed/test_current_medline.xml.gz", "pubmed_xml"),
    ("pubmed/pubmed-29768149.xml", "pubmed_xml"),
    ("pubmed/bc5cdr/CDR_TestSet.PubTator.txt", "pubtator"),
    ("general/c4/olmo_c4-sample.01.json.gz", "jsonl"),
    ("general/c4/olmo_c4_100_domains_5_theguardian_val.jsonl.gz", "jsonl"),
    ("general/wikitext/wikitext-2-raw_wiki.test.raw", "wikitext"),
    ("general/wikitext/README.pytorch_examples", "text"),
])  # fmt: skip
def test_each_real_sample_is_claimed_by_its_reader_alone(shared_data, sample, expected):
    probe = Probe(shared_data / sample)
    claims = [reader.name for reader in READERS.values() if not reader.fallback and reader.detect(probe)]
    assert claims == ([] if READERS[expected].fallback else [expected])  # the fallback takes what none claims
    assert detect_source_type(shared_data / sample) == expected


@pytest.fixture
def restored_readers():
    """The registry as it was after the test (the worked example registers a reader of its own)."""
    saved = dict(READERS)
    yield
    READERS.clear()
    READERS.update(saved)


def _architecture_example() -> str:
    """The code block of docs/ARCHITECTURE.md's "Adding a data source" section, as a developer copies it."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("## Adding a data source", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_architecture_example_is_one_place(restored_readers, tiny_tokenizer, tmp_path):
    exec(compile(_architecture_example(), str(ARCHITECTURE), "exec"), {"__name__": "tsv_example"})
    docs = random_documents("pubmed", 40, seed=4)
    export = tmp_path / "export.tsv.gz"
    lines = [f"{d['id']}\t{d['text']}" for d in docs]
    export.write_bytes(gzip.compress("\n".join([*lines[:5], "no tab on this line", *lines[5:]]).encode()))
    assert detect_source_type(export) == "tsv"
    read, report = read_documents(export, "tsv")
    assert [(d.id, d.text) for d in read] == [(d["id"], d["text"]) for d in docs]
    assert report.warnings == [f"{export}:line 6: line without id<TAB>text"]
    config = DataConfig.model_validate({"sources": {"pubmed": [{"type": "tsv", "path": str(export)}]},
                                        "ratios": {"pubmed": 1.0}, "heldout_fraction": 0,
                                        "dedup": {"near": False}, "decontam": {"enabled": False}})  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    assert manifest["sources"][0]["type"] == "tsv"
    assert manifest["splits"]["train"]["documents"] == len(docs)
    assert len(list(TokenShards(tmp_path / "corpus", "train").documents())) == len(docs)
