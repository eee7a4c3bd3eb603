"""Tiny corpora: JSON-lines documents as the data stage reads them, and corpus directories in the
biomamba-shards/1 layout (docs/formats.md) as the trainer and eval read them."""

from __future__ import annotations

import json
import random
from pathlib import Path

# Each domain's vocabulary, so documents of different domains are told apart by their words.
WORDS = {
    "pubmed": "patients treated metformin diabetes glycemic control randomized trial cohort serum insulin "
    "thrombocytopenia hepatocellular carcinoma biopsy placebo outcome mortality".split(),
    "c4": "the best deals shop online today free shipping news sports weather city council school "
    "restaurant music video game travel hotel".split(),
    "wikipedia": "the river flows through the valley and the city was founded in century by king army "
    "battle church album band released song".split(),
}


def write_jsonl(path: Path, records: list) -> Path:
    """One JSON value per line (the parent folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def random_documents(
    domain: str, count: int, seed: int, min_words: int = 20, max_words: int = 120
) -> list[dict]:
    """`count` documents `{"id", "text"}` of `domain`'s words, the same for the same seed."""
    rng = random.Random(f"{domain}-{seed}")
    words = WORDS[domain]
    return [
        {
            "id": f"{domain}-{i}",
            "text": " ".join(rng.choice(words) for _ in range(rng.randint(min_words, max_words))),
        }
        for i in range(count)
    ]


def token_corpus(
    root: Path, splits: dict[str, list[list[int]]], *, vocab_size: int, eos_token_id: int, **manifest
):
    """A corpus directory: one shard per split (`"train"`, `"heldout/<domain>"`) of the given token
    documents, and its manifest (`manifest` adds fields, e.g. `tokenizer`)."""
    from biomamba.data.shards import FORMAT_VERSION, token_dtype, write_shard

    dtype = token_dtype(vocab_size)
    shards = {
        split: {"shards": [write_shard(root, f"{split}/shard-00000.bin", docs, dtype).to_json()]}
        for split, docs in splits.items()
    }
    header = {
        "format": FORMAT_VERSION,
        "dtype": dtype.str,
        "vocab_size": vocab_size,
        "eos_token_id": eos_token_id,
    }
    (root / "manifest.json").write_text(
        json.dumps({**header, **manifest, "splits": shards}), encoding="utf-8"
    )
    return root


def read_documents(path: Path, source_type: str, **fields):
    """(documents, FileReport) of one input read by the `source_type` reader (`fields`: SourceConfig's)."""
    from biomamba.data.config import SourceConfig
    from biomamba.data.readers import FileReport, read_source_file

    report = FileReport(str(path))
    source = SourceConfig(type=source_type, path=str(path), **fields)
    return list(read_source_file(str(path), source, report)), report


def corpus_texts(corpus: Path, tokenizer_dir: Path) -> list[str]:
    """The decoded text (without its EOS) of every document in every split of a built corpus, sorted."""
    from tokenizers import Tokenizer

    from biomamba.data import TokenShards

    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    splits = json.loads((corpus / "manifest.json").read_text())["splits"]
    return sorted(tokenizer.decode(doc[:-1].tolist())
                  for split in splits for doc in TokenShards(corpus, split).documents())  # fmt: skip


def medline_article(pmid: int | str, abstract: str | None, title: str | None = None, *, revised: str | None = None,
                    close: bool = True) -> str:  # fmt: skip
    """One line of a MEDLINE file: a PubmedArticle in the PubMed DTD layout, titled `Title PMID.` by default.

    `abstract` None: a citation without one (the reader skips it); `revised` (YYYY-MM-DD): its DateRevised,
    which decides between two versions of a PMID; `close=False`: its closing tag missing, as in a cut record.
    """
    date = ""
    if revised:
        year, month, day = revised.split("-")
        date = f"<DateRevised><Year>{year}</Year><Month>{month}</Month><Day>{day}</Day></DateRevised>"
    body = f"<Abstract><AbstractText>{abstract}</AbstractText></Abstract>" if abstract is not None else ""
    return (f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>{date}'
            f"<Article><ArticleTitle>{title or f'Title {pmid}.'}</ArticleTitle>{body}</Article></MedlineCitation>"
            f"{'</PubmedArticle>' if close else ''}\n")  # fmt: skip


def medline_xml(*records: str) -> str:
    """A `PubmedArticleSet` file of the given records (`medline_article` lines, `<DeleteCitation>`s)."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n{"".join(records)}</PubmedArticleSet>\n'
    )


def write_texts(path: Path, texts: list[str], id_prefix: str) -> Path:
    """`texts` as a JSON lines file of `{"id", "text"}` records, ids `<id_prefix>0`, `<id_prefix>1`, ..."""
    return write_jsonl(path, [{"id": f"{id_prefix}{i}", "text": text} for i, text in enumerate(texts)])


def read_jsonl(path: Path) -> list:
    """The JSON values of a JSON-lines file, one per line (what a run's metrics.jsonl holds)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def logged_losses(run_dir: Path) -> list[float]:
    """The training losses a run logged, in step order (the metrics.jsonl records that have a `loss`)."""
    return [r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
