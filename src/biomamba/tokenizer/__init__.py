"""Tokenizer stage: train a byte-level BPE in the transformers format, and compare tokenizers' fertility.

Public API:

    from biomamba.tokenizer import train_tokenizer, fertility_report

    tok = train_tokenizer(texts=iter_of_str, vocab_size=28_896, output_dir="runs/bio/tokenizer")
    # or train_tokenizer(files=["a.jsonl.gz", "b.txt"], vocab_size=..., output_dir=...)
    report = fertility_report({"gpt2": "gpt2", "bio": "runs/bio/tokenizer"},
                              {"pubmed": pubmed_texts, "c4": c4_texts})
    print(report.markdown())
    save_tokenizer(tok, "runs/x/final")  # save_pretrained that transformers 4.x and 5.x both load
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.tokenizer.config import TokenizerConfig  # noqa: F401
    from biomamba.tokenizer.fertility import BIOMEDICAL_TERMS, FertilityReport, fertility_report  # noqa: F401
    from biomamba.tokenizer.train import build_bpe, save_tokenizer, train_tokenizer  # noqa: F401

__all__, __getattr__ = lazy_exports(__name__, __file__)
