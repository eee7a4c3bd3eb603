"""The quantization table (BioMistral's, measured): size, memory, speed and quality of each variant.

Quality comes from the evaluation stage itself (`biomamba.eval.domain_perplexity` on held-out shards and
`biomamba.eval.evaluate` on multiple-choice task files), so a quantized model's numbers are computed
exactly as the unquantized model's and every delta compares like with like.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def weights_size(model_dir: str | Path) -> int:
    """Bytes of the weight files of a model directory (what a user downloads or copies)."""
    return sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.suffix in WEIGHT_SUFFIXES)


def _tensor_bytes(t: torch.Tensor) -> int:
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is not None and type(t) is not torch.Tensor and type(t) is not nn.Parameter:
        names, _ = flatten()  # torchao subclasses: count the stored int data and scales, not the logical size
        return sum(_tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def model_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (shared tensors once): the model's resident weight memory."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += _tensor_bytes(t)
    return total


@torch.inference_mode()
def decode_speed(
    model: nn.Module, prompt_ids: list[int], new_tokens: int, vocab_size: int | None = None
) -> dict[str, float]:
    """Greedy decode of `new_tokens` at batch size 1 with the serving decoder; tokens/s and peak memory.

    Peak memory is torch.cuda.max_memory_allocated on a GPU; on CPU it is the model's resident weight
    bytes (CPU allocators expose no per-run peak), labelled as such in the table.
    """
    from biomamba.serve.engine import BatchDecoder, GenerationRequest

    decoder = BatchDecoder(model, vocab_size=vocab_size)
    device = decoder.device
    warm = GenerationRequest(list(prompt_ids), max_new_tokens=2)
    decoder.run([warm])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    request = GenerationRequest(list(prompt_ids), max_new_tokens=new_tokens)
    started = time.perf_counter()
    decoder.run([request])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    produced = len(list(request.stream(timeout=1)))
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else model_bytes(model)
    return {
        "tokens_per_s": produced / max(elapsed, 1e-9),
        "peak_memory_bytes": float(peak),
        "new_tokens": produced,
    }


@dataclass
class VariantRow:
    """One line of the table."""

    name: str
    file_bytes: int
    memory_bytes: int
    tokens_per_s: float
    perplexity: dict[str, float] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)


def measure_variant(
    name: str,
    model: nn.Module,
    tokenizer: Any,
    model_dir: str | Path,
    *,
    corpus: str | Path | None = None,
    task_files: Sequence[str] = (),
    max_tokens: int = 20_000,
    seq_len: int = 512,
    new_tokens: int = 32,
) -> VariantRow:
    """Size, speed and (through biomamba.eval) quality of one model variant."""
    prompt = tokenizer("The patient was treated with", add_special_tokens=False)["input_ids"] or [0]
    speed = decode_speed(model, prompt, new_tokens, vocab_size=len(tokenizer))
    row = VariantRow(name, weights_size(model_dir), int(speed["peak_memory_bytes"]), speed["tokens_per_s"])
    if corpus is not None:
        from biomamba.eval.domain_perplexity import (
            perplexity,  # (the package attribute is shadowed by the submodule)
        )

        stats = perplexity(model, corpus=corpus, seq_len=seq_len, max_tokens=max_tokens)
        row.perplexity = {domain: float(s["ppl"]) for domain, s in stats.items()}
    if task_files:
        from biomamba.eval.runner import evaluate

        results = evaluate(
            model,
            tokenizer,
            list(task_files),
            protocol="loglikelihood",
            shots=0,
            seeds=1,
            bootstrap_resamples=200,
        )
        row.accuracy = {task: float(r["metrics"]["acc"]) for task, r in results["tasks"].items()}
    return row


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f}"


def render_table(rows: Sequence[VariantRow], device: str) -> str:
    """Markdown table; deltas are against the first row (the unquantized model)."""
    base = rows[0]
    domains = list(base.perplexity)
    tasks = list(base.accuracy)
    memory = "peak memory MiB" if device.startswith("cuda") else "weight memory MiB"
    head = ["variant", "file MiB", memory, "tokens/s", "speed x"]
    head += [f"ppl {d} (Δ)" for d in domains] + [f"acc {t} (Δ)" for t in tasks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [
            row.name,
            _mib(row.file_bytes),
            _mib(row.memory_bytes),
            f"{row.tokens_per_s:.1f}",
            f"{row.tokens_per_s / max(base.tokens_per_s, 1e-9):.2f}",
        ]
        for d in domains:
            value = row.perplexity.get(d, float("nan"))
            cells.append(f"{value:.3f} ({value - base.perplexity[d]:+.3f})")
        for t in tasks:
            value = row.accuracy.get(t, float("nan"))
            cells.append(f"{value:.3f} ({value - base.accuracy[t]:+.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rows_to_json(rows: Sequence[VariantRow], device: str) -> dict[str, Any]:
    return {"format": "biomamba-quantize-report/1", "device": device, "variants": [asdict(r) for r in rows]}
