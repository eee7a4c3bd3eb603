"""Perplexity: windows cover every token once; token-weighted vs batch-mean variant; corpus shards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.factories.corpora import token_corpus

from biomamba.errors import DataError
from biomamba.eval.domain_perplexity import check_tokenizer, perplexity, stream_perplexity, windows


@pytest.mark.parametrize(
    ("n", "seq_len", "stride"), [(10, 4, None), (10, 4, 2), (11, 4, 3), (2, 4, None), (100, 7, 5)]
)
def test_windows_score_every_token_but_the_first_once(n, seq_len, stride):
    spans = list(windows(n, seq_len, stride))
    scored = [t for begin, end, first in spans for t in range(max(first, begin + 1), end + 1)]
    assert scored == list(range(1, n))
    assert all(end - begin <= seq_len for begin, end, _ in spans)


def test_token_weighted_perplexity_matches_a_direct_computation(tiny_gpt2):
    tokens = np.random.default_rng(0).integers(0, 300, 50)
    stats = stream_perplexity(tiny_gpt2, tokens, seq_len=16, batch_size=2)
    nll, count, means = 0.0, 0, []
    for begin in range(0, 49, 16):
        end = min(begin + 16, 49)
        with torch.no_grad():
            logits = tiny_gpt2(input_ids=torch.tensor(tokens[begin:end])[None]).logits[0]
        loss = F.cross_entropy(logits, torch.tensor(tokens[begin + 1 : end + 1]), reduction="sum").item()
        nll, count = nll + loss, count + (end - begin)
        means.append((loss, end - begin))
    assert stats["tokens"] == count == 49
    assert stats["ppl"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    batch_means = [(means[0][0] + means[1][0]) / 32, (means[2][0] + means[3][0]) / (16 + 1)]
    assert stats["ppl_batch_mean_variant"] == pytest.approx(math.exp(np.mean(batch_means)), rel=1e-5)
    assert stats["ppl_batch_mean_variant"] != pytest.approx(stats["ppl"], rel=1e-6)
    sliding = stream_perplexity(tiny_gpt2, tokens, seq_len=16, stride=4)
    assert sliding["tokens"] == 49 and sliding["windows"] > stats["windows"]


def _corpus(tmp_path, docs_by_domain, sha="x"):
    splits = {f"heldout/{domain}": docs for domain, docs in docs_by_domain.items()}
    tokenizer = {"path": "t", "sha256": sha}
    return token_corpus(tmp_path, splits, vocab_size=400, eos_token_id=0, tokenizer=tokenizer)


def test_heldout_domains_from_corpus_shards(tmp_path, tiny_mamba2, tiny_dir):
    rng = np.random.default_rng(0)
    pubmed = [list(rng.integers(1, 300, 20)) + [0] for _ in range(3)]
    c4 = [list(rng.integers(1, 300, 30)) + [0] for _ in range(2)]
    corpus = _corpus(tmp_path, {"pubmed": pubmed, "c4": c4})
    out = perplexity(tiny_mamba2, corpus=corpus, seq_len=32)
    assert set(out) == {"pubmed", "c4"} and out["pubmed"]["tokens"] == 63 - 1
    only = perplexity(tiny_mamba2, corpus=corpus, domains=["c4"], seq_len=32, max_tokens=40)
    assert set(only) == {"c4"} and only["c4"]["tokens"] == 39
    with pytest.raises(DataError, match="no held-out domain 'wiki'"):
        perplexity(tiny_mamba2, corpus=corpus, domains=["wiki"])
    with pytest.raises(DataError, match="another tokenizer"):
        check_tokenizer(corpus, tiny_dir / "gpt2")


def test_text_file_perplexity(tmp_path, tiny_gpt2, tiny_tokenizer):
    text = tmp_path / "wiki.txt"
    text.write_text("Plants make food by photosynthesis using energy from the sun. " * 5)
    out = perplexity(tiny_gpt2, texts={"wiki": text}, tokenizer=tiny_tokenizer, seq_len=16)
    n = len(tiny_tokenizer(text.read_text())["input_ids"])
    assert out["wiki"]["tokens"] == n - 1 and out["wiki"]["ppl"] > 1.0
