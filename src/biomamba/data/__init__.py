"""Corpus stage: raw PubMed / PMC / C4 / Wikipedia files -> clean, deduplicated, decontaminated, mixed,
tokenized and packed token shards (format: docs/formats.md, reader: `biomamba.data.shards`)."""
