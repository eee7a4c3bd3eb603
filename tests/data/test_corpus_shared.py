"""A corpus built from the real samples: token ratios, report, MEDLINE deletions, dedup counts, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.factories.corpora import corpus_texts, medline_article, medline_xml, random_documents, write_jsonl
from tests.factories.scripts import invoke_cli, run_cli

from biomamba.data import DataConfig, TokenShards, build_corpus, read_manifest


def _sources(shared: Path, pubtator: bool = True) -> dict:
    pubmed = [{"type": "pubmed_xml", "path": str(shared / "pubmed/medline16n0902_sample.xml.gz")}]
    if pubtator:
        pubmed.append({"type": "pubtator", "path": str(shared / "pubmed/bc5cdr/CDR_TestSet.PubTator.txt")})
    return {
        "pubmed": pubmed,
        "c4": [{"type": "jsonl", "path": str(shared / "general/c4/olmo_c4-sample.00000-of-00001.json.gz"),
                "max_documents": 150}],
        "wikipedia": [{"type": "wikitext", "path": str(shared / "general/wikitext/wikitext-2-raw_wiki.test.raw"),
                       "max_documents": 20}],
    }  # fmt: skip


@pytest.mark.parametrize("ratios", [{"pubmed": 0.8, "c4": 0.1, "wikipedia": 0.1},
                                    {"pubmed": 0.5, "c4": 0.3, "wikipedia": 0.2}])  # fmt: skip
def test_samples_corpus_hits_token_ratios_within_one_point(shared_data, tiny_tokenizer, tmp_path, ratios):
    config = DataConfig.model_validate({"sources": _sources(shared_data, pubtator=False), "ratios": ratios,
                                        "dedup": {"near": False}, "workers": 1})  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    mixture = manifest["mixture"]
    assert mixture["within_tolerance"] is True
    assert "within 1 percentage point" in mixture["summary"]
    train = TokenShards(tmp_path / "corpus", "train")
    assert train.num_tokens == mixture["total_tokens"]
    for domain, target in ratios.items():
        row = mixture["domains"][domain]
        assert abs(row["tokens"] / train.num_tokens - target) <= 0.01
        assert row["achieved"] == pytest.approx(row["tokens"] / train.num_tokens, abs=1e-6)
    pubmed = manifest["domains"]["pubmed"]  # every record is accounted for
    assert pubmed["skipped"] == {"no abstract": 78} and pubmed["documents_read"] == 526


def test_medline_update_semantics_delete_and_supersede(tmp_path, tiny_tokenizer):
    def article(pmid: int, text: str) -> str:
        return medline_article(
            pmid, f"{text} abstract body with enough words to keep it.", f"Title {pmid} {text}"
        )

    base = tmp_path / "pubmed" / "base0001.xml"
    update = tmp_path / "pubmed" / "upd0002.xml"
    base.parent.mkdir()
    base.write_text(medline_xml(*(article(p, f"version one of {p}") for p in (1, 2, 3))))
    update.write_text(
        medline_xml(article(2, "version two revised"), "<DeleteCitation><PMID>3</PMID></DeleteCitation>")
    )
    config = DataConfig.model_validate({"sources": {"pubmed": [{"type": "pubmed_xml", "path": str(base.parent)}]},
                                        "ratios": {"pubmed": 1.0}, "dedup": {"near": False},
                                        "clean": {"min_chars": 10}})  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    assert manifest["medline_updates"] == {"deleted": 1, "superseded": 1}
    assert manifest["splits"]["train"]["documents"] == 2
    texts = corpus_texts(tmp_path / "corpus", tiny_tokenizer)
    assert texts[0].startswith("Title 1 version one") and texts[1].startswith("Title 2 version two revised")


def test_exact_and_near_duplicates_are_removed_and_counted(tmp_path, tiny_tokenizer):
    docs = random_documents("c4", 40, seed=2, min_words=60, max_words=80)
    docs.append({"id": "dup-exact", "text": docs[0]["text"].upper()})  # same after case/space normalisation
    near = docs[1]["text"].split()
    near[10] = "zebra"
    docs.append({"id": "dup-near", "text": " ".join(near)})
    path = write_jsonl(tmp_path / "c4.jsonl", docs)
    config = DataConfig.model_validate({"sources": {"c4": [{"type": "jsonl", "path": str(path)}]},
                                        "ratios": {"c4": 1.0}})  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    assert manifest["dedup"]["exact_duplicates"] == 1 and manifest["dedup"]["near_duplicates"] == 1
    assert manifest["domains"]["c4"]["exact_duplicates"] == 1
    assert sum(s["documents"] for s in manifest["splits"].values()) == 40


def test_cli_build_and_inspect(shared_data, tiny_tokenizer, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    sources = _sources(shared_data)
    sources["pubmed"] = sources["pubmed"][1:]  # BC5CDR PubTator only
    recipe.write_text(yaml.safe_dump({"name": "t", "data": {"sources": sources, "dedup": {"near": False}},
                                      "tokenizer": {"name_or_path": str(tiny_tokenizer)}}))  # fmt: skip
    out = tmp_path / "corpus"
    result = invoke_cli(["data", "build", recipe, "--output-dir", out, "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "within 1 percentage point" in result.output
    manifest = read_manifest(out)
    assert manifest["config"]["seed"] == 7
    result = invoke_cli(["data", "inspect", out])
    assert result.exit_code == 0 and "pubmed: target 80.0%" in result.output


def test_cli_bad_ratio_is_one_line_naming_the_key(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"sources": {"pubmed": [{"type": "jsonl", "path": "x"}]},
                                               "ratios": {"pubmed": 0.7}}}))  # fmt: skip
    proc = run_cli(["data", "build", recipe, "--tokenizer", "x"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {recipe}: data: ratios must sum to 1 (they sum to 0.7)"
    ]
