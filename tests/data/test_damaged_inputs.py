"""Damaged (not truncated) .gz inputs: garbage in the middle of a real-layout gzip must reach no shard.

zlib only notices such damage at the member's CRC (or at an invalid deflate code), after it has handed out
garbled text; these tests overwrite bytes in the middle of a gzip file exactly as a bad disk or download does.
Reads use 16 KiB chunks so that the small samples span many chunks, as real files (hundreds of MiB) do.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from pathlib import Path

import pytest
from tests.factories import corpora
from tests.factories.corpora import corpus_texts, random_documents, read_documents, write_jsonl

from biomamba.data import DataConfig, build_corpus
from biomamba.data.clean import normalize_text
from biomamba.data.readers import DAMAGED_REASON, iter_text_documents, streams
from biomamba.errors import DataError

C4_SAMPLE = "general/c4/olmo_c4-sample.00000-of-00001.json.gz"
MEDLINE_SAMPLE = "pubmed/medline16n0902_sample.xml.gz"


@pytest.fixture(autouse=True)
def _small_read_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "READ_CHUNK_BYTES", 16 * 1024)


def damage(data: bytes, path: Path, at: float = 0.5, length: int = 64, seed: int = 0) -> Path:
    """Write `data` with `length` random bytes overwriting the middle (not a cut: the size is unchanged)."""
    rng = random.Random(seed)
    damaged = bytearray(data)
    start = int(len(damaged) * at)
    damaged[start : start + length] = bytes(rng.randrange(256) for _ in range(length))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(damaged))
    return path


def _build(sources: list[dict], tokenizer: Path, out: Path, **extra: object) -> dict:
    config = DataConfig.model_validate({"sources": {"web": sources}, "ratios": {"web": 1.0},
                                        "dedup": {"near": False}, "decontam": {"enabled": False},
                                        "heldout_fraction": 0.1, **extra})  # fmt: skip
    return build_corpus(config, tokenizer, out, progress=lambda m: print(m))


def _assert_dropped_and_named(manifest: dict, damaged: Path, printed: str) -> dict:
    entry = next(s for s in manifest["sources"] if s["path"] == str(damaged))
    assert entry["documents"] == 0 and entry["tokens"] == 0
    info = entry["read"]["damaged"]
    assert info["records"] > 0
    assert "incorrect data check" in info["reason"] or "invalid" in info["reason"]  # zlib's own words
    assert manifest["skipped"]["by_reason"][DAMAGED_REASON] == info["records"]
    assert f"WARNING: {damaged}: damaged compressed file" in printed
    assert any(str(damaged) in w and "dropped whole" in w for w in manifest["skipped"]["warnings"])
    return info


def test_damaged_c4_shard_contributes_no_text(shared_data, tiny_tokenizer, tmp_path, capsys):
    raw = (shared_data / C4_SAMPLE).read_bytes()
    damaged = damage(raw, tmp_path / "c4" / "damaged.json.gz")
    intact = shared_data / "general/c4/olmo_c4-sample.01.json.gz"
    manifest = _build([{"type": "jsonl", "path": [str(intact), str(damaged)]}], tiny_tokenizer,
                      tmp_path / "corpus")  # fmt: skip
    _assert_dropped_and_named(manifest, damaged, capsys.readouterr().out)
    good = {
        normalize_text(json.loads(line)["text"]) for line in gzip.decompress(intact.read_bytes()).splitlines()
    }
    shard_texts = corpus_texts(tmp_path / "corpus", tiny_tokenizer)
    assert shard_texts and set(shard_texts) <= good


def test_damaged_medline_file_is_dropped_whole_and_counted(shared_data, tiny_tokenizer, tmp_path, capsys):
    raw = (shared_data / MEDLINE_SAMPLE).read_bytes()
    damaged = damage(raw, tmp_path / "pubmed" / "medline16n0902.xml.gz", at=0.6)
    intact = shared_data / "pubmed/bc5cdr/CDR_TestSet.PubTator.txt"
    manifest = _build([{"type": "pubmed_xml", "path": str(damaged)}, {"type": "pubtator", "path": str(intact)}],
                      tiny_tokenizer, tmp_path / "corpus")  # fmt: skip
    info = _assert_dropped_and_named(manifest, damaged, capsys.readouterr().out)
    assert info["records"] < 526  # what parsed before the check failed: all of it dropped
    pubtator = iter_text_documents(str(intact), "pubtator")
    good = {normalize_text(d.text) for d in pubtator}
    assert set(corpus_texts(tmp_path / "corpus", tiny_tokenizer)) <= good


def _medline_gzip(count: int, seed: int) -> bytes:
    """A self-written MEDLINE file (PubmedArticleSet layout) of `count` citations with varied abstracts."""
    docs = random_documents("pubmed", count, seed=seed, min_words=60, max_words=160)
    records = [
        corpora.medline_article(1000 + n, f"{doc['text']} {n}.", f"Study {n}.") for n, doc in enumerate(docs)
    ]
    return gzip.compress(corpora.medline_xml(*records).encode(), mtime=0)


def test_self_written_damaged_medline_dropped_and_truncated_one_kept(tiny_tokenizer, tmp_path, capsys):
    data = _medline_gzip(600, seed=3)
    damaged = damage(data, tmp_path / "pubmed" / "a-damaged.xml.gz", at=0.5)
    truncated = tmp_path / "pubmed" / "b-truncated.xml.gz"
    truncated.write_bytes(_medline_gzip(600, seed=4)[: len(data) // 2])
    manifest = _build([{"type": "pubmed_xml", "path": str(tmp_path / "pubmed")}], tiny_tokenizer,
                      tmp_path / "corpus")  # fmt: skip
    _assert_dropped_and_named(manifest, damaged, capsys.readouterr().out)
    kept = next(s for s in manifest["sources"] if s["path"] == str(truncated))
    assert kept["read"]["damaged"] is None and kept["documents"] > 100  # complete records before the cut
    assert kept["read"]["skipped"]["truncated compressed file (rest of file skipped)"] == 1


def test_on_damaged_fail_stops_the_build_naming_the_file(tiny_tokenizer, tmp_path):
    damaged = damage(_medline_gzip(600, seed=3), tmp_path / "pubmed" / "x.xml.gz")
    with pytest.raises(DataError, match=r"x\.xml\.gz: damaged compressed file .*on_damaged: fail"):
        _build([{"type": "pubmed_xml", "path": str(damaged)}], tiny_tokenizer, tmp_path / "corpus",
               on_damaged="fail")  # fmt: skip
    assert not (tmp_path / "corpus" / "manifest.json").exists()


def test_tools_reading_documents_directly_get_nothing_from_a_damaged_file(tmp_path):
    damaged = damage(_medline_gzip(600, seed=3), tmp_path / "x.xml.gz")
    assert list(iter_text_documents(str(damaged), "pubmed_xml")) == []
    intact = tmp_path / "y.xml.gz"
    intact.write_bytes(_medline_gzip(50, seed=3))
    assert len(list(iter_text_documents(str(intact), "pubmed_xml"))) == 50


def test_valid_gzip_with_empty_content_is_an_empty_file(tmp_path):
    path = tmp_path / "empty.json.gz"
    path.write_bytes(gzip.compress(b""))
    docs, report = read_documents(path, "jsonl")
    assert docs == [] and report.skipped == {"empty file": 1}


def test_damaged_pmc_bundle_is_dropped_whole(tiny_tokenizer, tmp_path):
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as tar:
        for number, doc in enumerate(random_documents("pubmed", 300, seed=6, min_words=80, max_words=200)):
            article = (f'<article><front><article-meta><article-id pub-id-type="pmc">PMC{number}</article-id>'
                       f"<title-group><article-title>Article {number}</article-title></title-group></article-meta>"
                       f"</front><body><sec><p>{doc['text']} {number}.</p></sec></body></article>").encode()  # fmt: skip
            info = tarfile.TarInfo(f"oa/PMC{number}.nxml")
            info.size = len(article)
            tar.addfile(info, io.BytesIO(article))
    damaged = damage(bundle.getvalue(), tmp_path / "pmc" / "oa_comm_xml.PMC000xxxxxx.baseline.tar.gz", at=0.5)
    intact = write_jsonl(tmp_path / "ok.jsonl", random_documents("c4", 20, seed=1))
    manifest = _build([{"type": "pmc_jats", "path": str(damaged)}, {"type": "jsonl", "path": str(intact)}],
                      tiny_tokenizer, tmp_path / "corpus")  # fmt: skip
    entry = next(s for s in manifest["sources"] if s["path"] == str(damaged))
    assert entry["documents"] == 0 and entry["read"]["damaged"]["reason"]
    assert manifest["skipped"]["by_reason"][DAMAGED_REASON] == entry["read"]["damaged"]["records"] > 0


def test_self_written_damaged_c4_shard_contributes_no_text(tiny_tokenizer, tmp_path, capsys):
    """The same without ../shared/data: a C4-layout shard (`{text, url, timestamp}` lines, gzip) written here."""
    docs = random_documents("c4", 3000, seed=11, min_words=40, max_words=120)
    lines = "".join(json.dumps({"text": f"{d['text']} {n}.", "url": f"https://example.org/{n}",
                                "timestamp": "2019-04-22T08:51:25Z"}) + "\n" for n, d in enumerate(docs))  # fmt: skip
    damaged = damage(
        gzip.compress(lines.encode(), mtime=0), tmp_path / "c4" / "c4-train.00001-of-01024.json.gz"
    )
    intact = write_jsonl(
        tmp_path / "c4" / "c4-train.00000-of-01024.json", random_documents("c4", 30, seed=12)
    )
    manifest = _build([{"type": "jsonl", "path": str(tmp_path / "c4")}], tiny_tokenizer, tmp_path / "corpus")
    _assert_dropped_and_named(manifest, damaged, capsys.readouterr().out)
    good = {normalize_text(json.loads(line)["text"]) for line in intact.read_text().splitlines()}
    shard_texts = corpus_texts(tmp_path / "corpus", tiny_tokenizer)
    assert shard_texts and set(shard_texts) <= good
