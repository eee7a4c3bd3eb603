"""Bucketed, on-disk deduplication decides exactly as the in-memory datasketch MinHashLSH loop it replaces."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from tests.factories.corpora import WORDS, random_documents, write_texts
from tests.factories.scripts import benchmark_script

from biomamba.data import DataConfig, build_corpus
from biomamba.data import dedup_buckets as buckets
from biomamba.data.clean import normalize_text
from biomamba.data.dedup import CodedDomains, deduplicate, lsh_bands, minhash_signatures, text_hash
from biomamba.data.dedup_buckets import SignatureFile, greedy_duplicates, write_signature_file


def _bench():
    return benchmark_script("data_dedup_scale")


def _edited(text: str, rng: random.Random, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        words[rng.randrange(len(words))] = rng.choice(WORDS["c4"])
    return " ".join(words)


def _corpus(count: int = 600) -> list[str]:
    """Real text: random abstracts, exact copies, lightly and heavily edited copies, and copies of copies."""
    rng = random.Random(7)
    texts = [d["text"] for d in random_documents("pubmed", count, seed=3, min_words=60, max_words=120)]
    for _ in range(count // 2):
        source = rng.choice(texts)
        kind = rng.random()
        texts.append(source.upper() if kind < 0.15 else _edited(source, rng, rng.choice([1, 2, 4, 8, 15])))
    return texts


def test_decisions_equal_the_datasketch_loop_on_real_text(tmp_path):
    texts = _corpus()
    hashes = np.asarray([text_hash(t) for t in texts], dtype=np.uint64)
    signatures = minhash_signatures(texts, 128, 5)
    reference = _bench().baseline_deduplicate(hashes, signatures, 0.8)
    assert 0 < (~reference).sum() < len(texts) // 2  # there is something to decide
    for per_bucket, per_task in ((10**9, 10**9), (500, 97)):  # one bucket, one task; many of both
        result = deduplicate(hashes, signatures, ["pubmed"] * len(texts), exact=True, near=True, threshold=0.8,
                             work_dir=tmp_path / "work", records_per_bucket=per_bucket, docs_per_task=per_task)  # fmt: skip
        np.testing.assert_array_equal(result.keep, reference)
        assert result.exact_duplicates + result.near_duplicates == (~reference).sum()
        assert not (tmp_path / "work").exists()  # scratch bucket files are removed


def test_a_chain_keeps_its_end_like_datasketch_not_like_a_union_find():
    """A~B and B~C but not A~C: the sequential rule keeps A and C (B is a duplicate of kept A)."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, size=128, dtype=np.uint32)
    b, c = a.copy(), a.copy()
    b[100:120] = rng.integers(0, 2**32, size=20, dtype=np.uint32)
    c[100:120] = b[100:120]
    c[80:100] = rng.integers(0, 2**32, size=20, dtype=np.uint32)
    signatures = np.stack([a, b, c])
    hashes = np.arange(3, dtype=np.uint64)
    result = deduplicate(hashes, signatures, ["x"] * 3, exact=True, near=True, threshold=0.8)
    assert result.keep.tolist() == [True, False, True]
    np.testing.assert_array_equal(result.keep, _bench().baseline_deduplicate(hashes, signatures, 0.8))


def test_greedy_decision_on_a_long_chain_and_independent_pairs():
    chain = np.stack([np.arange(0, 9), np.arange(1, 10)], axis=1)
    pairs = np.concatenate([chain, [[20, 30], [30, 40], [20, 40]]]).astype(np.uint32)
    dropped = greedy_duplicates(pairs, 50)
    assert np.flatnonzero(dropped).tolist() == [1, 3, 5, 7, 9, 30, 40]


def test_exact_dedup_keeps_the_first_alive_copy_and_counts_per_domain(tmp_path):
    hashes = np.asarray([5, 7, 5, 9, 7, 5, 9], dtype=np.uint64)
    alive = np.asarray([False, True, True, True, True, True, True])  # doc 0 deleted: doc 2 is the first 5
    domains = ["a", "a", "b", "b", "b", "a", "a"]
    result = deduplicate(hashes, None, domains, exact=True, near=False, threshold=0.8, alive=alive,
                         records_per_bucket=2, docs_per_task=3)  # fmt: skip
    assert result.keep.tolist() == [False, True, True, True, False, False, False]
    assert result.by_domain == {"a": {"exact": 2, "near": 0}, "b": {"exact": 1, "near": 0}}


def test_parallel_workers_decide_the_same(tmp_path):
    texts = _corpus(300)
    hashes = np.asarray([text_hash(t) for t in texts], dtype=np.uint64)
    signatures = minhash_signatures(texts, 64, 5)
    kwargs = {"exact": True, "near": True, "threshold": 0.7, "records_per_bucket": 400, "docs_per_task": 50}
    one = deduplicate(hashes, signatures, ["d"] * len(texts), **kwargs)
    two = deduplicate(hashes, signatures, ["d"] * len(texts), workers=2, **kwargs)
    np.testing.assert_array_equal(one.keep, two.keep)
    np.testing.assert_array_equal(one.keep, _bench().baseline_deduplicate(hashes, signatures, 0.7))


def test_signature_file_is_a_memory_mappable_npy_read_by_ranges(tmp_path):
    rows = np.random.default_rng(1).integers(0, 2**32, size=(1000, 16), dtype=np.uint32)
    stored = write_signature_file(
        tmp_path / "s.npy", (rows[i : i + 300] for i in range(0, 1000, 300)), 1000, 16
    )
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy", mmap_mode="r"), rows)
    np.testing.assert_array_equal(stored.rows(250, 700), rows[250:700])
    np.testing.assert_array_equal(
        SignatureFile(tmp_path / "s.npy").gather(np.array([3, 999])), rows[[3, 999]]
    )
    with pytest.raises(ValueError, match="999 signature rows written, 1000 documents expected"):
        write_signature_file(tmp_path / "t.npy", [rows[:999]], 1000, 16)


def test_signatures_of_several_parts_read_as_one_array(tmp_path):
    """The parts' own files (one of them empty, as a part with no documents) read in place, in order."""
    rows = np.random.default_rng(2).integers(0, 2**32, size=(700, 16), dtype=np.uint32)
    paths = []
    for number, (start, stop) in enumerate([(0, 250), (250, 250), (250, 700)]):
        paths.append(tmp_path / f"{number}.npy")
        np.save(paths[-1], rows[start:stop])
    signatures = SignatureFile(paths)
    assert signatures.shape == (700, 16)
    np.testing.assert_array_equal(signatures.rows(200, 300), rows[200:300])
    np.testing.assert_array_equal(signatures.rows(0, 700), rows)
    docs = np.array([0, 249, 250, 699])
    np.testing.assert_array_equal(signatures.gather(docs), rows[docs])


def test_bands_are_datasketch_own():
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    assert lsh_bands(0.8, 128) == (lsh.b, lsh.r)


def test_scale_benchmark_smoke(tmp_path, monkeypatch):
    """The benchmark's synthetic input has exact and near clusters, and both sides decide the same on it."""
    bench = _bench()
    monkeypatch.setattr(bench, "CHUNK", 2000)
    bench.make_input(tmp_path, 8000)
    hashes = np.load(tmp_path / "hashes.npy")
    domains = CodedDomains(np.load(tmp_path / "domains.npy"), bench.DOMAINS)
    ours = deduplicate(hashes, SignatureFile(tmp_path / "signatures.npy"), domains, exact=True, near=True,
                       threshold=bench.THRESHOLD, work_dir=tmp_path / "work")  # fmt: skip
    assert ours.exact_duplicates > 0 and ours.near_duplicates > 0
    reference = bench.baseline_deduplicate(hashes, np.load(tmp_path / "signatures.npy"), bench.THRESHOLD)
    np.testing.assert_array_equal(ours.keep, reference)


def test_build_corpus_dedups_across_files_as_the_reference_and_cleans_its_scratch(tmp_path, tiny_tokenizer):
    """Two files, the second full of copies and edits of the first: the build's counts are the reference's."""
    texts = _corpus(120)
    first = write_texts(tmp_path / "src" / "a.jsonl", texts[:120], "a")
    second = write_texts(tmp_path / "src" / "b.jsonl", texts[120:], "b")
    config = DataConfig.model_validate({"sources": {"pubmed": [{"type": "jsonl", "path": [str(first), str(second)]}]},
                                        "ratios": {"pubmed": 1.0}, "workers": 2, "keep_work": True,
                                        "decontam": {"enabled": False}})  # fmt: skip
    manifest = build_corpus(config, tiny_tokenizer, tmp_path / "corpus")
    clean = [normalize_text(t) for t in texts]
    hashes = np.asarray([text_hash(t) for t in clean], dtype=np.uint64)
    signatures = minhash_signatures(clean, config.dedup.num_perm, config.dedup.shingle_words)
    exact_keep = np.zeros(len(clean), dtype=bool)
    exact_keep[np.unique(hashes, return_index=True)[1]] = True
    reference = _bench().baseline_deduplicate(hashes, signatures, config.dedup.threshold)
    assert manifest["dedup"]["exact_duplicates"] == (~exact_keep).sum() > 0
    assert manifest["dedup"]["near_duplicates"] == (exact_keep & ~reference).sum() > 0
    work = tmp_path / "corpus" / ".work"
    assert (work / "parts").is_dir() and not (work / "dedup").exists()
    assert not (work / "signatures.npy").exists()


def test_an_interrupted_merge_with_stale_bucket_files_resumes_byte_identical(
    tmp_path, tiny_tokenizer, monkeypatch
):
    """A merge killed in dedup leaves bucket files behind (no `finally` runs after kill -9): the rerun ignores them."""
    source = write_texts(tmp_path / "src" / "a.jsonl", _corpus(90), "d")
    config = DataConfig.model_validate({"sources": {"pubmed": [{"type": "jsonl", "path": str(source)}]},
                                        "ratios": {"pubmed": 1.0}, "workers": 1, "heldout_fraction": 0.1,
                                        "decontam": {"enabled": False}})  # fmt: skip
    clean = build_corpus(config, tiny_tokenizer, tmp_path / "clean")

    def killed(args):
        raise RuntimeError("killed")

    monkeypatch.setattr(buckets, "resolve_near", killed)
    with pytest.raises(RuntimeError, match="killed"):
        build_corpus(config, tiny_tokenizer, tmp_path / "resumed")
    monkeypatch.undo()
    stale = tmp_path / "resumed" / ".work" / "dedup"
    stale.mkdir(parents=True)
    for name in ("near-0000-0000.bin", "exact-0000-0000.bin"):
        (stale / name).write_bytes(np.arange(1200, dtype=np.uint8).tobytes())
    resumed = build_corpus(config, tiny_tokenizer, tmp_path / "resumed")
    assert resumed["dedup"] == clean["dedup"] and clean["dedup"]["near_duplicates"] > 0
    for split in clean["splits"].values():
        for shard in split["shards"]:
            for suffix in (".bin", ".idx"):
                path = Path(shard["path"]).with_suffix(suffix)
                assert (tmp_path / "resumed" / path).read_bytes() == (tmp_path / "clean" / path).read_bytes()


def test_documents_not_alive_are_ignored_as_if_absent():
    """Deleted (not alive) documents neither are kept nor make later documents duplicates."""
    texts = _corpus(300)
    hashes = np.asarray([text_hash(t) for t in texts], dtype=np.uint64)
    signatures = minhash_signatures(texts, 128, 5)
    alive = np.random.default_rng(5).random(len(texts)) < 0.7
    result = deduplicate(hashes, signatures, ["d"] * len(texts), exact=True, near=True, threshold=0.8, alive=alive,
                         records_per_bucket=300, docs_per_task=100)  # fmt: skip
    expected = np.zeros(len(texts), dtype=bool)
    expected[alive] = _bench().baseline_deduplicate(hashes[alive], signatures[alive], 0.8)
    np.testing.assert_array_equal(result.keep, expected)
    assert (~expected[alive]).sum() > 0


@pytest.mark.parametrize("exact", [True, False])
def test_a_document_copied_thousands_of_times_costs_checks_per_copy_not_per_pair(monkeypatch, exact):
    """3,000 copies of one abstract (one LSH group of 3,000 per band: 4.5M pairs) among real documents and
    edited copies: the decisions are datasketch's, and the signature checks grow with the copies, not their square."""
    texts, copies = _corpus(200), 3000
    repeats = np.ones(len(texts), dtype=np.int64)
    repeats[50] += copies  # document 50 followed by its copies, in place
    signatures = np.repeat(minhash_signatures(texts, 128, 5), repeats, axis=0)
    hashes = np.repeat(np.asarray([text_hash(t) for t in texts], dtype=np.uint64), repeats)
    checked = []
    original = buckets._verified

    def counting(pairs, *args):
        checked.append(len(pairs))
        return original(pairs, *args)

    monkeypatch.setattr(buckets, "_verified", counting)
    result = deduplicate(hashes, signatures, ["d"] * len(hashes), exact=exact, near=True, threshold=0.8,
                         records_per_bucket=5000, docs_per_task=700)  # fmt: skip
    np.testing.assert_array_equal(result.keep, _bench().baseline_deduplicate(hashes, signatures, 0.8))
    bands, _ = lsh_bands(0.8, 128)
    assert result.near_duplicates + result.exact_duplicates >= copies
    assert sum(checked) < 2 * bands * copies < copies**2 // 2


def test_identity_scale_benchmark_smoke(tmp_path, monkeypatch):
    """The identity benchmark's PubMed-like files have revisions and deletions, and both sides decide the same."""
    bench = _bench()
    monkeypatch.setattr(bench, "PER_FILE", 3000)
    bench.make_identity_input(tmp_path, 40_000)
    ours, base = bench.run_identity("biomamba", tmp_path), bench.run_identity("baseline", tmp_path)
    assert ours["deleted"] > 0 and ours["superseded"] > 0 and ours["kept"] < 40_000
    counts = ("deleted", "superseded", "kept")
    assert [ours[key] for key in counts] == [base[key] for key in counts]
    alive = {side: np.load(tmp_path / f"alive-{side}.npy") for side in ("biomamba", "baseline")}
    np.testing.assert_array_equal(alive["biomamba"], alive["baseline"])
