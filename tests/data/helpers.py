"""Corpus builders shared by the data-stage tests (importable, unlike conftest)."""

from __future__ import annotations

import json
import random
from pathlib import Path

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
