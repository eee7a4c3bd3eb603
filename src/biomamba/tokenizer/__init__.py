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

from biomamba.tokenizer.config import TokenizerConfig
from biomamba.tokenizer.fertility import BIOMEDICAL_TERMS, FertilityReport, fertility_report
from biomamba.tokenizer.train import build_bpe, save_tokenizer, train_tokenizer

__all__ = [
    "BIOMEDICAL_TERMS",
    "FertilityReport",
    "TokenizerConfig",
    "build_bpe",
    "fertility_report",
    "save_tokenizer",
    "train_tokenizer",
]
