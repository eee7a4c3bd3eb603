"""Fixtures of the data-stage tests: a tiny byte-level BPE (trained here, never downloaded) and JSONL corpora."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.factories.corpora import WORDS, random_documents, write_jsonl


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-token byte-level BPE saved in the transformers format (trained in well under a second)."""
    from biomamba.tokenizer.train import train_tokenizer

    texts = [d["text"] for domain in WORDS for d in random_documents(domain, 50, seed=99)]
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(texts, vocab_size=400, output_dir=out)
    return out


@pytest.fixture
def jsonl_corpus(tmp_path: Path) -> dict[str, Path]:
    """Three JSONL domains (pubmed, c4, wikipedia) shaped like the demo corpus: fields id and text."""
    return {d: write_jsonl(tmp_path / "src" / f"{d}.jsonl", random_documents(d, 200, seed=1)) for d in WORDS}
