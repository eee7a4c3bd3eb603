"""End-to-end corpus builds on tiny JSONL corpora: splits, ratios, resume, atomicity, shard format."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.factories.corpora import WORDS, random_documents, token_corpus, write_jsonl

from biomamba.data import DataConfig, TokenShards, build_corpus, read_manifest
from biomamba.data.shards import MANIFEST_NAME, ShardWriter
from biomamba.errors import DataError


def _config(corpus: dict[str, Path], **extra: object) -> DataConfig:
    sources = {d: [{"type": "jsonl", "path": str(p)}] for d, p in corpus.items()}
    return DataConfig.model_validate(
        {"sources": sources, "heldout_fraction": 0.05, "shard_tokens": 5000, **extra}
    )


def test_demo_shaped_jsonl_corpus_builds_train_and_heldout(jsonl_corpus, tiny_tokenizer, tmp_path):
    out = tmp_path / "corpus"
    manifest = build_corpus(_config(jsonl_corpus), tiny_tokenizer, out)
    assert set(manifest["splits"]) == {"train", "heldout/pubmed", "heldout/c4", "heldout/wikipedia"}
    assert read_manifest(out)["splits"] == manifest["splits"]
    train = TokenShards(out, "train")
    assert train.num_tokens == manifest["splits"]["train"]["tokens"] > 0
    assert manifest["dtype"] == "<u2"
    eos = manifest["eos_token_id"]
    docs = list(train.documents())
    assert len(docs) == manifest["splits"]["train"]["documents"]
    assert all(doc[-1] == eos and (doc[:-1] != eos).all() for doc in docs)
    for domain in WORDS:  # the fixture's domains
        held = TokenShards(out, f"heldout/{domain}")
        assert held.num_documents == manifest["domains"][domain]["heldout_documents"] > 0
    assert manifest["mixture"]["within_tolerance"] is True
    assert not (out / ".work").exists()  # intermediate parts removed after success


def test_heldout_documents_never_enter_train(jsonl_corpus, tiny_tokenizer, tmp_path):
    out = tmp_path / "corpus"
    build_corpus(_config(jsonl_corpus, dedup={"near": False}), tiny_tokenizer, out)
    train = {tuple(d) for d in TokenShards(out, "train").documents()}
    held = {tuple(d) for domain in WORDS for d in TokenShards(out, f"heldout/{domain}").documents()}
    assert held and not (train & held)


def test_heldout_split_is_stable_when_data_is_added(jsonl_corpus, tiny_tokenizer, tmp_path):
    small = build_corpus(_config(jsonl_corpus, dedup={"near": False}), tiny_tokenizer, tmp_path / "small")
    grown = dict(jsonl_corpus)
    grown["pubmed"] = write_jsonl(tmp_path / "grown.jsonl", random_documents("pubmed", 400, seed=1))
    large = build_corpus(_config(grown, dedup={"near": False}), tiny_tokenizer, tmp_path / "large")
    held = lambda out: {tuple(d) for d in TokenShards(out, "heldout/pubmed").documents()}  # noqa: E731
    assert held(tmp_path / "small") < held(tmp_path / "large")
    assert large["domains"]["pubmed"]["heldout_documents"] > small["domains"]["pubmed"]["heldout_documents"]


def test_rerun_is_noop_and_resume_reuses_parts(jsonl_corpus, tiny_tokenizer, tmp_path):
    out = tmp_path / "corpus"
    config = _config(jsonl_corpus, keep_work=True)
    first = build_corpus(config, tiny_tokenizer, out)
    messages: list[str] = []
    again = build_corpus(config, tiny_tokenizer, out, progress=messages.append)
    assert again == first and any("up to date" in m for m in messages)
    # Simulate an interrupted build: manifest gone, parts and shards present -> everything reused.
    (out / MANIFEST_NAME).unlink()
    messages.clear()
    resumed = build_corpus(config, tiny_tokenizer, out, progress=messages.append)
    assert all("reused" in m for m in messages if m.startswith("part "))
    assert any("(0 new)" in m for m in messages)
    assert resumed["splits"] == first["splits"]


def test_same_seed_same_corpus_other_seed_other_order(jsonl_corpus, tiny_tokenizer, tmp_path):
    a = build_corpus(_config(jsonl_corpus, seed=3), tiny_tokenizer, tmp_path / "a")
    b = build_corpus(_config(jsonl_corpus, seed=3), tiny_tokenizer, tmp_path / "b")
    c = build_corpus(_config(jsonl_corpus, seed=4), tiny_tokenizer, tmp_path / "c")
    sha = lambda m: [s["sha256"] for s in m["splits"]["train"]["shards"]]  # noqa: E731
    assert sha(a) == sha(b) and sha(a) != sha(c)


def test_small_domain_is_repeated_and_reported(jsonl_corpus, tiny_tokenizer, tmp_path):
    manifest = build_corpus(_config(jsonl_corpus, total_tokens=60_000), tiny_tokenizer, tmp_path / "corpus")
    rows = manifest["mixture"]["domains"]
    assert rows["pubmed"]["repeated"] and rows["pubmed"]["full_passes"] >= 1
    assert rows["pubmed"]["repeat_factor"] > 1
    assert manifest["mixture"]["within_tolerance"]


def test_interrupted_shard_write_leaves_no_partial_file(jsonl_corpus, tiny_tokenizer, tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    calls = {"n": 0}
    original = ShardWriter.add

    def failing_add(self, tokens, lengths):  # fail in the middle of the first train shard
        calls["n"] += 1
        if "train" in self.relative_path:
            raise KeyboardInterrupt
        return original(self, tokens, lengths)

    monkeypatch.setattr(ShardWriter, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(_config(jsonl_corpus), tiny_tokenizer, out)
    assert not (out / MANIFEST_NAME).exists()
    assert not list(out.rglob("train/shard-*")) and not list(out.rglob("*.tmp"))


def test_workers_give_the_same_corpus(jsonl_corpus, tiny_tokenizer, tmp_path):
    one = build_corpus(_config(jsonl_corpus), tiny_tokenizer, tmp_path / "one")
    two = build_corpus(_config(jsonl_corpus, workers=2), tiny_tokenizer, tmp_path / "two")
    assert one["splits"] == two["splits"]


def test_token_shards_window_matches_documents(jsonl_corpus, tiny_tokenizer, tmp_path):
    out = tmp_path / "corpus"
    build_corpus(_config(jsonl_corpus, shard_tokens=1000), tiny_tokenizer, out)
    train = TokenShards(out, "train")
    tokens, doc_ids = train.window(0, 3000)  # crosses shard boundaries
    flat = np.concatenate(list(train.documents()))[:3000]
    assert (tokens == flat).all() and doc_ids[0] == 0 and doc_ids[-1] > 0


def test_bad_inputs_are_skipped_counted_and_named_in_the_manifest(tmp_path, tiny_tokenizer):
    folder = tmp_path / "c4"
    folder.mkdir()
    good = "".join(json.dumps(d) + "\n" for d in random_documents("c4", 30, seed=8))
    (folder / "a.jsonl").write_text(good + '{"id": "x", "text": "broken\n' + "\n")
    (folder / "b.jsonl").write_bytes(b'{"id": "u", "text": "bad \xff byte"}\n')
    blob = gzip.compress(good.encode() * 3)
    (folder / "c.jsonl.gz").write_bytes(blob[: len(blob) * 2 // 3])
    (folder / "d.jsonl").write_bytes(b"")
    config = DataConfig.model_validate({"sources": {"c4": [{"type": "jsonl", "path": str(folder)}]},
                                        "ratios": {"c4": 1.0}, "dedup": {"near": False, "exact": False}})  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    skipped = manifest["skipped"]
    # invalid JSON: the broken line of a.jsonl, and the half line where c.jsonl.gz was cut
    assert skipped["by_reason"] == {"empty file": 1, "invalid JSON": 2, "invalid UTF-8": 1,
                                    "truncated compressed file (rest of file skipped)": 1}  # fmt: skip
    assert skipped["total"] == 5
    warnings = "\n".join(skipped["warnings"])
    assert f"{folder / 'a.jsonl'}:line 31: invalid JSON" in warnings
    assert f"{folder / 'b.jsonl'}:line 1: invalid UTF-8" in warnings
    assert f"{folder / 'c.jsonl.gz'}: truncated" in warnings
    per_file = {Path(s["path"]).name: s["read"]["documents"] for s in manifest["sources"]}
    assert per_file["a.jsonl"] == 30 and per_file["d.jsonl"] == 0 and 0 < per_file["c.jsonl.gz"] < 90


def test_parts_built_on_several_machines_merge_into_one_corpus(jsonl_corpus, tiny_tokenizer, tmp_path):
    config = _config(jsonl_corpus)
    reference = build_corpus(config, tiny_tokenizer, tmp_path / "single")
    for machine in range(2):  # each "machine" builds its share of the per-file parts
        own = tmp_path / f"m{machine}"
        summary = build_corpus(config, tiny_tokenizer, own, only_part=(machine, 2))
        assert {p["unit"] for p in summary["parts"]} and not (own / MANIFEST_NAME).exists()
        shutil.copytree(own / ".work", tmp_path / "merged" / ".work", dirs_exist_ok=True)
    messages: list[str] = []
    merged = build_corpus(config, tiny_tokenizer, tmp_path / "merged", progress=messages.append)
    assert all("reused" in m for m in messages if m.startswith("part "))
    assert merged["splits"] == reference["splits"]
    with pytest.raises(Exception, match="expected 0 <= i < n"):
        build_corpus(config, tiny_tokenizer, tmp_path / "x", only_part=(2, 2))


def test_input_edited_in_place_to_the_same_size_is_rebuilt(jsonl_corpus, tiny_tokenizer, tmp_path):
    out = tmp_path / "corpus"
    config = _config(jsonl_corpus, keep_work=True, dedup={"near": False})
    first = build_corpus(config, tiny_tokenizer, out)
    path = jsonl_corpus["pubmed"]
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    edited = text.replace("patients", "subjects")  # same length, other words
    assert edited != text and len(edited.encode()) == before.st_size
    path.write_text(edited, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert path.stat().st_size == before.st_size
    messages: list[str] = []
    second = build_corpus(config, tiny_tokenizer, out, progress=messages.append)
    assert not any("up to date" in m for m in messages)
    rebuilt = [m for m in messages if m.startswith("part pubmed-")]
    assert rebuilt and not any("reused" in m for m in rebuilt)
    assert all("reused" in m for m in messages if m.startswith(("part c4-", "part wikipedia-")))
    shards = [s["sha256"] for m in (first, second) for split in m["splits"].values() for s in split["shards"]]
    assert shards[: len(shards) // 2] != shards[len(shards) // 2 :]
    assert first["splits"]["train"]["shards"] != second["splits"]["train"]["shards"]
    source = next(s for s in second["sources"] if s["path"] == str(path))
    assert source["size"] == before.st_size and source["mtime_ns"] == before.st_mtime_ns + 5_000_000_000
    old = next(s for s in first["sources"] if s["path"] == str(path))
    assert old["mtime_ns"] == before.st_mtime_ns


def test_a_cut_manifest_is_one_error_naming_its_line(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": "biomamba-corpus/1",\n "splits": {')
    with pytest.raises(DataError, match=r"manifest\.json:2: invalid JSON"):
        read_manifest(tmp_path)


def test_an_empty_split_reads_as_no_documents(tmp_path):
    token_corpus(tmp_path, {"train": [[5, 0]], "heldout/c4": []}, vocab_size=10, eos_token_id=0)
    assert list(TokenShards(tmp_path, "heldout/c4").documents()) == []
