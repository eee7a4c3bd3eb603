"""Corpus stage: raw PubMed / PMC / C4 / Wikipedia files -> clean, deduplicated, decontaminated, mixed,
tokenized and packed token shards (format: docs/formats.md, reader: `biomamba.data.shards`).

Public API (see docs/data.md):

    from biomamba.data import DataConfig, build_corpus, TokenShards

    config = DataConfig.model_validate({
        "sources": {
            "pubmed":    [{"type": "jsonl", "path": "corpus/pubmed.jsonl"}],
            "c4":        [{"type": "jsonl", "path": "corpus/c4.jsonl"}],
            "wikipedia": [{"type": "jsonl", "path": "corpus/wikipedia.jsonl"}],
        },
        "ratios": {"pubmed": 0.8, "c4": 0.1, "wikipedia": 0.1},
        "heldout_fraction": 0.05,
    })
    manifest = build_corpus(config, tokenizer, "runs/demo/corpus")   # tokenizer: dir, HF fast tokenizer or
                                                                     # tokenizers.Tokenizer
    train = TokenShards("runs/demo/corpus", "train")                 # and "heldout/pubmed", ...

- `build_corpus(config, tokenizer, output_dir, *, only_part=None, dedup_part=None, progress=None) -> manifest`
  (only_part / dedup_part: the per-machine steps of a spread build, docs/data.md)
- `iter_documents(config, split="train"|"heldout", domains=None, limit=None)` -> (domain, text), no tokenizer
- `NgramIndex.build(DecontamConfig)` / `NgramIndex.matches(text)`: benchmark n-gram decontamination
- `read_source_file(path, SourceConfig, FileReport)`: the streaming readers, one per source type in the
  registry `biomamba.data.readers` (a damaged .gz sets `FileReport.damaged` at its end);
  `read_verified_file(...)`: the same, but a damaged .gz yields nothing
- `detect_source_type(path)`: the registered source type a file's content shows
- `TokenShards`, `ShardWriter`, `write_shard`, `read_manifest`: the shard format
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.data.config import BenchmarkConfig, DataConfig, DecontamConfig, DedupConfig, SourceConfig  # noqa: F401
    from biomamba.data.decontam import NgramIndex  # noqa: F401
    from biomamba.data.pipeline import build_corpus, iter_documents  # noqa: F401
    from biomamba.data.readers import (  # noqa: F401
        Document,
        FileReport,
        detect_source_type,
        read_source_file,
        read_verified_file,
    )
    from biomamba.data.shards import ShardWriter, TokenShards, read_manifest, write_shard  # noqa: F401

__all__, __getattr__ = lazy_exports(__name__, __file__)
