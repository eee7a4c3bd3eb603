"""Resumable evaluation: every finished task is written at once, and a rerun skips what is already done.

A 10-task run that fails in task 9 used to lose tasks 1-8 (results were written only at the end). Now the
results file is rewritten atomically after each task, and each task entry records a `fingerprint` of what
produced it: the model's weights and config, the tokenizer, the scoring settings and the task file's
sha256. A rerun with the same `--output` reuses an entry only when all four match; anything else runs
again. A task read from something without a content hash (`file_sha256` null) is never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from biomamba.benchmarks import SourceFile
from biomamba.eval.results import read_results

log = logging.getLogger(__name__)


def _sha(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@torch.no_grad()
def model_fingerprint(model: Any) -> str:
    """Hash of the config and, per tensor, its name, shape, dtype and three float64 checksums.

    Checksums instead of the raw bytes: a 7B model hashes in seconds without a second copy in memory, and
    any training step changes them (a position-weighted sum also catches permuted weights).
    """
    config = getattr(model, "config", None)
    parts: list[Any] = [config.to_dict() if hasattr(config, "to_dict") else repr(config)]
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().flatten().double()
        weights = torch.linspace(-1.0, 1.0, flat.numel(), dtype=torch.float64, device=flat.device)
        checks = [float(flat.sum()), float((flat * flat).sum()), float((flat * weights).sum())]
        parts.append([name, list(tensor.shape), str(tensor.dtype), [f"{c:.12e}" for c in checks]])
    return _sha(parts)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of the vocabulary and special tokens: another tokenizer gives other prompts and scores."""
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    special = getattr(tokenizer, "special_tokens_map", {})
    return _sha([type(tokenizer).__name__, sorted(vocab.items()), special])


def task_fingerprint(
    run: dict[str, str], settings: dict[str, Any], files: Sequence[SourceFile] | None
) -> dict[str, Any]:
    """What one task entry depends on: `run` holds the model and tokenizer fingerprints; `files` are those
    the task's questions were read from, each with the sha256 the reader took (None: never reused)."""
    sources = _sha([[str(f.path), f.sha256] for f in files]) if files is not None else None
    return {**run, "settings": _sha(settings), "file_sha256": sources}


def finished_tasks(output: Path | None) -> dict[str, dict[str, Any]]:
    """Task entries of an earlier run at `output` ({} when there is none). A file that is not a results file
    is an error (DataError naming it), never overwritten."""
    if output is None or not Path(output).exists():
        return {}
    return dict(read_results(output)["tasks"])


def reusable(previous: dict[str, Any] | None, fingerprint: dict[str, Any]) -> bool:
    """True when an earlier entry was made by the same model, tokenizer, settings and file contents."""
    if previous is None or fingerprint.get("file_sha256") is None:
        return False
    return previous.get("fingerprint") == fingerprint
