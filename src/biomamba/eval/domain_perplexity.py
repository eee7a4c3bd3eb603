"""Held-out perplexity per domain, from corpus shards (`heldout/<domain>`) or plain-text files.

Three numbers, because published recipes differ and must be compared like with like:
- `ppl`: token-weighted: exp(total NLL / total predicted tokens) over windows of `seq_len` tokens that
  do not overlap (stride = seq_len) or, with a smaller `stride`, a sliding window where each window scores
  only its last `stride` targets (every token then sees at least seq_len - stride tokens of context);
- `ppl_batch_mean_variant`: exp(mean over batches of each batch's mean loss), the "mean of per-batch mean
  losses" a published recipe reported. It over-weights the short last window/batch, so it is labelled as
  such and never called perplexity without the qualifier;
- `bits_per_token`: total NLL / tokens / ln 2.
The stream is the documents back to back with their EOS tokens, as the corpus stage wrote them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from biomamba.errors import DataError
from biomamba.utils.digest import file_sha256


def windows(num_tokens: int, seq_len: int, stride: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(begin, end, first_scored) over a stream: inputs [begin, end), targets [first_scored, end] shifted.

    Input position j predicts token j + 1, so a window predicts targets [begin + 1, end] and scores those
    >= first_scored; together the windows score every token but the first exactly once.
    """
    stride = seq_len if stride is None else stride
    if not 1 <= stride <= seq_len:
        raise ValueError(
            f"stride ({stride}) must be between 1 and seq_len ({seq_len}): tokens would be skipped"
        )
    scored_upto = 1  # next target index not yet scored
    begin = 0
    while scored_upto < num_tokens:
        end = min(begin + seq_len, num_tokens - 1)
        yield begin, end, scored_upto
        scored_upto = end + 1
        begin += stride


@torch.no_grad()
def stream_perplexity(
    model: Any, tokens: np.ndarray, *, seq_len: int, stride: int | None = None, batch_size: int = 8
) -> dict[str, Any]:
    """Perplexity of one token stream (see the module docstring for the three numbers)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.size < 2:
        raise DataError("need at least two tokens to measure perplexity")
    device = next(model.parameters()).device
    spans = list(windows(int(tokens.size), seq_len, stride))  # checks the stride before any work
    total_nll, total_count, batch_means = 0.0, 0, []
    for start in range(0, len(spans), batch_size):
        batch = spans[start : start + batch_size]
        width = max(end - begin for begin, end, _ in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, (begin, end, first) in enumerate(batch):
            ids[row, : end - begin] = torch.from_numpy(tokens[begin:end])
            targets = torch.from_numpy(tokens[begin + 1 : end + 1])
            keep = torch.arange(begin + 1, end + 1) >= first
            labels[row, : end - begin] = torch.where(keep, targets, torch.tensor(-100))
        logits = model(input_ids=ids.to(device)).logits.float()
        nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.to(device).reshape(-1),
            ignore_index=-100,
            reduction="sum",
        ).item()
        count = int((labels != -100).sum())
        total_nll += nll
        total_count += count
        batch_means.append(nll / count)
    mean = total_nll / total_count
    return {
        "tokens": total_count,
        "nll_sum": total_nll,
        "ppl": math.exp(mean),
        "bits_per_token": mean / math.log(2),
        "ppl_batch_mean_variant": math.exp(float(np.mean(batch_means))),
        "windows": len(spans),
        "seq_len": seq_len,
        "stride": stride or seq_len,
        "batch_size": batch_size,
    }


def heldout_domains(corpus_dir: str | Path) -> list[str]:
    from biomamba.data.shards import read_manifest

    splits = read_manifest(corpus_dir).get("splits", {})
    return sorted(s.removeprefix("heldout/") for s in splits if s.startswith("heldout/"))


def check_tokenizer(corpus_dir: str | Path, model_dir: str | Path | None) -> None:
    """Refuse shards written by another tokenizer than the model's: the numbers would be meaningless."""
    from biomamba.data.shards import read_manifest

    if model_dir is None or not (Path(model_dir) / "tokenizer.json").is_file():
        return
    expected = (read_manifest(corpus_dir).get("tokenizer") or {}).get("sha256")
    actual = file_sha256(Path(model_dir) / "tokenizer.json")
    if expected and expected != actual:
        raise DataError(
            f"{Path(corpus_dir) / 'manifest.json'}: shards were tokenized with another tokenizer than "
            f"{Path(model_dir) / 'tokenizer.json'} (sha256 {expected[:12]} != {actual[:12]})"
        )


def perplexity(
    model: Any,
    *,
    corpus: str | Path | None = None,
    texts: dict[str, str | Path] | None = None,
    tokenizer: Any = None,
    domains: list[str] | None = None,
    seq_len: int = 1024,
    stride: int | None = None,
    batch_size: int = 8,
    max_tokens: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Perplexity per domain: `heldout/<domain>` shards of `corpus`, and/or `texts` {domain: file}."""
    from biomamba.data.shards import TokenShards

    results: dict[str, dict[str, Any]] = {}
    vocab = _vocab_size(model)
    if corpus is not None:
        available = heldout_domains(corpus)
        for domain in domains or available:
            if domain not in available:
                raise DataError(f"{corpus}: no held-out domain '{domain}' (have: {', '.join(available)})")
            shards = TokenShards(corpus, f"heldout/{domain}")
            n = min(shards.num_tokens, max_tokens or shards.num_tokens)
            tokens = shards.tokens(0, n)
            _check_ids(tokens, vocab, f"{corpus}/heldout/{domain}")
            results[domain] = stream_perplexity(
                model, tokens, seq_len=seq_len, stride=stride, batch_size=batch_size
            )
            results[domain]["source"] = f"{corpus}/heldout/{domain}"
    for domain, path in (texts or {}).items():
        if tokenizer is None:
            raise ValueError("a tokenizer is needed to measure perplexity on text files")
        file = Path(path)
        if not file.is_file():
            raise DataError(f"{file}: text file not found")
        ids = np.asarray(tokenizer(file.read_text(encoding="utf-8"))["input_ids"], dtype=np.int64)
        ids = ids[:max_tokens] if max_tokens else ids
        results[domain] = stream_perplexity(model, ids, seq_len=seq_len, stride=stride, batch_size=batch_size)
        results[domain]["source"] = str(file)
    return results


def _vocab_size(model: Any) -> int | None:
    embeddings = getattr(model, "get_input_embeddings", lambda: None)()
    return int(embeddings.weight.shape[0]) if embeddings is not None else None


def _check_ids(tokens: np.ndarray, vocab: int | None, where: str) -> None:
    if vocab is not None and tokens.size and int(tokens.max()) >= vocab:
        raise DataError(f"{where}: token id {int(tokens.max())} is outside the model's vocabulary ({vocab})")
