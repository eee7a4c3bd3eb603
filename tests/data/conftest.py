"""Fixtures of the data-stage tests: a tiny byte-level BPE (trained here, never downloaded) and JSONL corpora."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = {
    "pubmed": "patients treated metformin diabetes glycemic control randomized trial cohort serum insulin "
    "thrombocytopenia hepatocellular carcinoma biopsy placebo outcome mortality".split(),
    "c4": "the best deals shop online today free shipping news sports weather city council school "
    "restaurant music video game travel hotel".split(),
    "wikipedia": "the river flows through the valley and the city was founded in century by king army "
    "battle church album band released song".split(),
}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def random_documents(
    domain: str, count: int, seed: int, min_words: int = 20, max_words: int = 120
) -> list[dict]:
    rng = random.Random(f"{domain}-{seed}")
    words = WORDS[domain]
    return [
        {
            "id": f"{domain}-{i}",
            "text": " ".join(rng.choice(words) for _ in range(rng.randint(min_words, max_words))),
        }
        for i in range(count)
    ]


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
