"""The quantization table (BioMistral's, measured): size, memory, speed and quality of each variant.

Quality comes from the evaluation stage itself (`biomamba.eval.domain_perplexity` on held-out shards and
`biomamba.eval.evaluate` on multiple-choice task files), so a quantized model's numbers are computed
exactly as the unquantized model's and every delta compares like with like.

Peak memory is measured, never inferred from the weights: on a GPU, torch.cuda.max_memory_allocated
over loading and generation (the counter reset before each variant); on CPU, the peak resident set size of
a fresh child process (`python -m biomamba.compress.report MODEL_DIR ...`) that loads the model directory
and runs the same greedy generation, so every variant pays the same interpreter and library overhead and
the delta between two rows is the model's own. The weights' byte size is a separate column.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biomamba.utils.markdown import markdown_table

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
PROMPT = "The patient was treated with"


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
    """Bytes held by parameters and buffers (shared tensors once): the weight bytes, not a process measurement."""
    unique = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(_tensor_bytes(t) for t in unique.values())


def prompt_ids(tokenizer: Any) -> list[int]:
    """The decode benchmark's prompt, tokenized (every variant, and every child process, uses it)."""
    return tokenizer(PROMPT, add_special_tokens=False)["input_ids"] or [0]


@torch.inference_mode()
def decode_speed(
    decoder: Any, prompt_ids: list[int], new_tokens: int, *, repeats: int = 1, reset_peak: bool = True
) -> dict[str, float | None]:
    """Greedy decode of `new_tokens` at batch size 1 with a serving decoder (`BatchDecoder`, or a GGUF one)
    after a warm-up: tokens/s (best of `repeats`), and on a GPU the peak CUDA allocation
    (`cuda_peak_bytes`, None on CPU).

    `reset_peak` resets the CUDA peak counter after the warm-up, so the peak covers generation only; pass
    False after resetting it yourself before loading the model, to cover load + generation.
    """
    from biomamba.models.decoding import GenerationRequest

    device = decoder.device
    cuda = device.type == "cuda"
    decoder.run([GenerationRequest(list(prompt_ids), max_new_tokens=2)])  # warm-up
    if cuda:
        torch.cuda.synchronize(device)
        if reset_peak:
            torch.cuda.reset_peak_memory_stats(device)
    best, produced = float("inf"), 0
    for _ in range(repeats):
        request = GenerationRequest(list(prompt_ids), max_new_tokens=new_tokens)
        started = time.perf_counter()
        decoder.run([request])
        if cuda:
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - started)
        produced = len(list(request.stream(timeout=1)))
    return {
        "tokens_per_s": produced / max(best, 1e-9),
        "cuda_peak_bytes": float(torch.cuda.max_memory_allocated(device)) if cuda else None,
        "new_tokens": produced,
    }


# ---------------------------------------------------------------------------------------------------------
# Peak memory of a fresh process


def process_peak_memory(
    model_dir: str | Path,
    prompt_ids: Sequence[int],
    new_tokens: int,
    *,
    vocab_size: int | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    timeout: float | None = None,
) -> dict[str, int]:
    """Peak RSS of a fresh Python process that loads `model_dir` and greedily decodes `new_tokens`.

    Returns {"peak_bytes", "baseline_bytes", "new_tokens"}: baseline is the process's RSS once torch and
    biomamba are imported, before the model is loaded. The peak is read by the child itself (Linux:
    VmHWM of /proc/self/status; elsewhere getrusage's ru_maxrss), because the parent's
    RUSAGE_CHILDREN gives the largest child ever waited for and, on Linux, may carry the parent's own RSS
    over exec.
    """
    import biomamba
    from biomamba.errors import BiomambaError

    cmd = [sys.executable, "-m", "biomamba.compress.report", str(model_dir), "--device", device]
    cmd += ["--prompt", ",".join(str(int(i)) for i in prompt_ids), "--new-tokens", str(int(new_tokens))]
    if vocab_size is not None:
        cmd += ["--vocab-size", str(int(vocab_size))]
    if dtype is not None:
        cmd += ["--dtype", dtype]
    src = str(Path(biomamba.__file__).resolve().parents[1])  # the child imports the same biomamba
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BiomambaError(f"peak-memory child for {model_dir} ran past {timeout} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise BiomambaError(
            f"peak-memory child for {model_dir} failed (exit {done.returncode}): {tail or 'no output'}"
        )
    result = json.loads(lines[-1])
    return {k: int(result[k]) for k in ("peak_bytes", "baseline_bytes", "new_tokens")}


def _status_bytes(field_name: str) -> int | None:
    """A `VmXXX:  123 kB` line of /proc/self/status in bytes (None where there is no /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _peak_rss() -> int:
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # bytes on macOS, KiB elsewhere


def _current_rss() -> int:
    rss = _status_bytes("VmRSS")
    return rss if rss is not None else _peak_rss()


def _child_main(argv: Sequence[str] | None = None) -> int:
    """The child of `process_peak_memory`: load, run `decode_speed` (warm-up + decode), print one JSON line."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m biomamba.compress.report", description=_child_main.__doc__
    )
    parser.add_argument("model_dir")
    parser.add_argument("--prompt", required=True, help="Comma-separated token ids.")
    parser.add_argument("--new-tokens", type=int, required=True)
    parser.add_argument("--vocab-size", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="Load dtype of an unquantized model [stored].")
    args = parser.parse_args(argv)

    from biomamba.models import load_model
    from biomamba.models.checkpoint import detect_format
    from biomamba.models.decoding import BatchDecoder
    from biomamba.models.gguf import is_gguf, open_gguf
    from biomamba.models.quantized import QUANT_FILE, TORCH_FILE, is_quantized_dir

    gguf_file = is_gguf(args.model_dir)  # a GGUF file runs through llama.cpp, as `biomamba generate` does
    # libraries the load will import count in the baseline, so peak - baseline is the model's own
    if gguf_file:
        import llama_cpp  # noqa: F401
    elif detect_format(args.model_dir) == "transformers":
        import transformers  # noqa: F401
    if not gguf_file and is_quantized_dir(args.model_dir):
        record = json.loads((Path(args.model_dir) / QUANT_FILE).read_text())
        if record.get("weights") == TORCH_FILE:
            import torchao  # noqa: F401

    baseline = _current_rss()
    prompt = [int(i) for i in args.prompt.split(",")]
    if gguf_file:
        decoder = open_gguf(args.model_dir, n_ctx=len(prompt) + args.new_tokens + 8)[2]
    else:
        model = load_model(args.model_dir, device=args.device, dtype=args.dtype)
        decoder = BatchDecoder(model, vocab_size=args.vocab_size)
    produced = decode_speed(decoder, prompt, args.new_tokens)["new_tokens"]
    print(json.dumps({"peak_bytes": _peak_rss(), "baseline_bytes": baseline, "new_tokens": produced}))
    return 0


# ---------------------------------------------------------------------------------------------------------
# The table


@dataclass
class VariantRow:
    """One line of the table.

    `peak_memory` names what `peak_memory_bytes` measured: "process" (peak RSS of a fresh process that
    loads the model and decodes; `process_baseline_bytes` is its RSS before loading) or "cuda"
    (torch.cuda.max_memory_allocated over load + decode, or over decode alone when the caller did not
    reset the counter before loading). `weight_bytes` is the parameters and buffers alone.
    """

    name: str
    file_bytes: int
    weight_bytes: int
    peak_memory_bytes: int
    peak_memory: str
    tokens_per_s: float
    process_baseline_bytes: int | None = None
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
    process_peak: dict[str, int] | None = None,
    peak_since_load: bool = False,
) -> VariantRow:
    """Size, memory, speed and (through biomamba.eval) quality of one model variant.

    Peak memory: on a GPU, the CUDA peak (`peak_since_load`: the caller reset the counter before loading
    `model`, so load + decode are covered); on CPU, `process_peak` (a `process_peak_memory` result) when
    given, else a child process is run here on `model_dir`.
    """
    from biomamba.models.decoding import BatchDecoder

    prompt = prompt_ids(tokenizer)
    decoder = BatchDecoder(model, vocab_size=len(tokenizer))
    speed = decode_speed(decoder, prompt, new_tokens, reset_peak=not peak_since_load)
    if speed["cuda_peak_bytes"] is not None:
        peak, kind, baseline = int(speed["cuda_peak_bytes"]), "cuda", None
    else:
        if process_peak is None:
            process_peak = process_peak_memory(model_dir, prompt, new_tokens, vocab_size=len(tokenizer))
        peak, kind, baseline = process_peak["peak_bytes"], "process", process_peak["baseline_bytes"]
    row = VariantRow(
        name,
        file_bytes=weights_size(model_dir),
        weight_bytes=model_bytes(model),
        peak_memory_bytes=peak,
        peak_memory=kind,
        tokens_per_s=float(speed["tokens_per_s"]),
        process_baseline_bytes=baseline,
    )
    if corpus is not None or task_files:
        from biomamba.eval.config import EvalConfig
        from biomamba.eval.runner import run_eval

        ppl = {"corpus": str(corpus), "seq_len": seq_len, "max_tokens": max_tokens}
        config = EvalConfig(shots=0, seeds=1, bootstrap_resamples=200, perplexity=ppl if corpus else None)
        results = run_eval(config, task_files=task_files, model=model, tokenizer=tokenizer)
        row.perplexity = {domain: float(s["ppl"]) for domain, s in results.get("perplexity", {}).items()}
        row.accuracy = {task: float(r["metrics"]["acc"]) for task, r in results["tasks"].items()}
    return row


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f}"


PEAK_LABELS = {"process": "peak memory (process) MiB (Δ)", "cuda": "peak memory (CUDA) MiB (Δ)"}


def render_table(rows: Sequence[VariantRow]) -> str:
    """Markdown table; deltas are against the first row (the unquantized model). The peak column's label
    follows what the rows measured."""
    base = rows[0]
    kinds = {row.peak_memory for row in rows}
    peak_label = PEAK_LABELS[base.peak_memory] if len(kinds) == 1 else "peak memory MiB (Δ)"
    head = ["variant", "file MiB", "weight bytes MiB", peak_label, "tokens/s", "speed x"]
    head += [f"ppl {d} (Δ)" for d in base.perplexity] + [f"acc {t} (Δ)" for t in base.accuracy]
    table = []
    for row in rows:
        peak_delta = (row.peak_memory_bytes - base.peak_memory_bytes) / 2**20
        cells = [
            row.name,
            _mib(row.file_bytes),
            _mib(row.weight_bytes),
            f"{_mib(row.peak_memory_bytes)} ({peak_delta:+.2f})",
            f"{row.tokens_per_s:.1f}",
            f"{row.tokens_per_s / max(base.tokens_per_s, 1e-9):.2f}",
        ]
        for own, reference in ((row.perplexity, base.perplexity), (row.accuracy, base.accuracy)):
            for key, base_value in reference.items():
                value = own.get(key, float("nan"))
                cells.append(f"{value:.3f} ({value - base_value:+.3f})")
        table.append(cells)
    return "\n".join(markdown_table(head, table)) + "\n"


def rows_to_json(rows: Sequence[VariantRow], device: str) -> dict[str, Any]:
    return {"format": "biomamba-quantize-report/2", "device": device, "variants": [asdict(r) for r in rows]}


if __name__ == "__main__":
    sys.exit(_child_main())
