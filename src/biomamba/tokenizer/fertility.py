"""Fertility report: how many tokens per word each tokenizer spends on biomedical vs general text.

A general-domain tokenizer splits "thrombocytopenia" into many pieces; every extra piece costs context length,
compute and (for small models) accuracy. Comparing fertility on held-out biomedical and general text tells
whether a domain tokenizer is worth its price (re-initialised embeddings); the term table shows where it helps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from biomamba.utils.markdown import markdown_table

BIOMEDICAL_TERMS = (
    "thrombocytopenia", "acetaminophen", "immunohistochemistry", "pharmacokinetics", "hepatocellular",
    "glomerulonephritis", "cardiomyopathy", "electroencephalography", "methotrexate", "angiotensin",
    "pneumothorax", "erythropoietin", "bronchiectasis", "tachycardia", "hypercholesterolemia",
    "adenocarcinoma", "polymerase", "osteoporosis", "myocardial infarction", "randomized controlled trial",
)  # fmt: skip


@dataclass
class FertilityReport:
    """rows[tokenizer][domain] = {"words", "tokens", "tokens_per_word", "split_word_fraction"}; term pieces."""

    rows: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    terms: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def markdown(self) -> str:
        """Two markdown tables: tokens per word per domain, and how each biomedical term is split."""
        names = list(self.rows)
        domains = list(dict.fromkeys(d for row in self.rows.values() for d in row))
        fertility = []
        for name in names:
            cells = [
                f"{self.rows[name][d]['tokens_per_word']:.3f}" if d in self.rows[name] else "-"
                for d in domains
            ]
            vocab = int(next(iter(self.rows[name].values()), {}).get("vocab_size", 0))
            fertility.append([name, vocab, *cells])
        head = ["tokenizer", "vocab", *(f"{d} tokens/word" for d in domains)]
        lines = markdown_table(head, fertility, align="lr" + "r" * len(domains))
        if self.terms:
            pieces = [[term, *(f"{len(per_tok[n])}: " + " · ".join(p.strip() or "␣" for p in per_tok[n]) for n in names)]
                      for term, per_tok in self.terms.items()]  # fmt: skip
            lines += ["", *markdown_table(["term", *(f"{n} (pieces)" for n in names)], pieces)]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "terms": self.terms}


def fertility_report(
    tokenizers: Mapping[str, Any],
    texts_by_domain: Mapping[str, Iterable[str]],
    terms: Iterable[str] = BIOMEDICAL_TERMS,
) -> FertilityReport:
    """Measure tokens per whitespace word on each domain's texts for each tokenizer (name -> path or object)."""
    from biomamba.data.tokenize import hub_tokenizer

    loaded = {name: hub_tokenizer(tok) if isinstance(tok, str) else tok for name, tok in tokenizers.items()}
    materialised = {domain: list(texts) for domain, texts in texts_by_domain.items()}
    report = FertilityReport()
    for name, tok in loaded.items():
        report.rows[name] = {}
        for domain, texts in materialised.items():
            words = tokens = split_words = 0
            for text in texts:
                text_words = text.split()
                words += len(text_words)
                tokens += len(tok(text, add_special_tokens=False)["input_ids"])
                split_words += sum(
                    len(tok(" " + w, add_special_tokens=False)["input_ids"]) > 1 for w in text_words[:200]
                )
            report.rows[name][domain] = {
                "documents": len(texts),
                "words": words,
                "tokens": tokens,
                "tokens_per_word": tokens / words if words else 0.0,
                "split_word_fraction": split_words / max(1, sum(min(200, len(t.split())) for t in texts)),
                "vocab_size": len(tok),
            }
    for term in terms:
        report.terms[term] = {
            name: [tok.decode([i]) for i in tok(" " + term, add_special_tokens=False)["input_ids"]]
            for name, tok in loaded.items()
        }
    return report
