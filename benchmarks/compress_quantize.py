"""Decode tokens/s, peak memory, weight bytes and file size of quantized variants vs fp32 and bf16, one run.

    .venv/bin/python benchmarks/compress_quantize.py --size small --new-tokens 64
    .venv/bin/python benchmarks/compress_quantize.py --device cuda --size 130m   # on a GPU machine

Models are built here (random weights, no downloads): a Mamba2 (biomamba's) and a Llama of the chosen size.
Each variant is saved with biomamba's own code and reloaded from disk before timing (the table measures
what a user gets). Decode: greedy, batch 1, `--new-tokens` tokens after a short prompt, through the serving
decoder (`biomamba.models.decoding.BatchDecoder`), best of `--repeats` runs. Peak memory, measured: on a GPU
torch.cuda.max_memory_allocated over load + decode (reset before each variant); on CPU the peak RSS of a
fresh process that loads the saved directory and runs the same decode (`report.process_peak_memory`; it
includes the interpreter and libraries, the same for every variant, so compare differences). Weight bytes
(parameters and buffers) are a separate column. Every ratio is against fp32 measured in the same run.
`--tiny` is a seconds-long version (tests/compress/test_benchmarks.py runs it, with `--no-process-peak`,
so it cannot rot).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = {
    "tiny": {
        "mamba2": dict(d_model=64, n_layer=2, d_state=16, headdim=16),
        "llama": dict(hidden_size=64, layers=2),
    },
    "small": {
        "mamba2": dict(d_model=512, n_layer=6, d_state=64, headdim=64),
        "llama": dict(hidden_size=512, layers=6),
    },
    "130m": {
        "mamba2": dict(d_model=768, n_layer=24, d_state=128, headdim=64),
        "llama": dict(hidden_size=768, layers=12),
    },
}
VOCAB = 8192
# What each quantized kernel does per matmul, and so why weight-only int8/int4 decodes slower than fp32 on CPU
KERNELS = {
    "torchao": "torchao int8 weight-only (AffineQuantizedTensor, plain layout): the int8 weight is cast to the "
    "activation dtype inside every matmul, then a dense fp32 GEMM runs; the cast costs more than the "
    "smaller read saves when decoding is not memory-bound",
    "biomamba": "biomamba QuantLinear: the whole weight is dequantized (unpack, x scale) to fp32 on every call, "
    "then F.linear; a full fp32 copy is rebuilt per token, so it is slower than fp32 and peaks higher",
}


def build(family: str, size: str):
    import torch

    torch.manual_seed(0)
    spec = SIZES[size][family]
    if family == "mamba2":
        from biomamba.models import create_model

        return create_model({**spec, "vocab_size": VOCAB, "chunk_size": 64}, seed=0)
    from transformers import LlamaConfig, LlamaForCausalLM

    h = spec["hidden_size"]
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=h,
        intermediate_size=int(h * 8 / 3) // 64 * 64,
        num_hidden_layers=spec["layers"],
        num_attention_heads=max(1, h // 64),
        num_key_value_heads=max(1, h // 64),
        max_position_embeddings=2048,
    )
    return LlamaForCausalLM(cfg).eval()


def variants(device: str) -> list[tuple[str, str | None, str]]:
    """(name, quantization method or None, dtype)."""
    rows = [
        ("fp32", None, "float32"),
        ("bf16", None, "bfloat16"),
        ("int8", "int8", "float32"),
        ("int4", "int4", "float32"),
    ]
    if device.startswith("cuda"):
        rows += [("int8 (bf16 act.)", "int8", "bfloat16"), ("int4 (bf16, torchao)", "int4", "bfloat16")]
    return rows


def measure(
    family: str,
    size: str,
    device: str,
    new_tokens: int,
    repeats: int,
    group_size: int,
    folder: Path,
    process_peak: bool = True,
) -> list[dict]:
    import gc

    import torch

    from biomamba.compress.quantize import quantize_model
    from biomamba.compress.report import decode_speed, model_bytes, process_peak_memory, weights_size
    from biomamba.models import load_model, save_model
    from biomamba.models.decoding import BatchDecoder
    from biomamba.models.quantized import save_quantized

    src = save_model(build(family, size), folder / f"{family}-fp32")
    prompt = list(range(5, 37))
    rows = []
    for name, method, dtype in variants(device):
        model = build(family, size).to(device=device, dtype=getattr(torch, dtype))
        out = folder / f"{family}-{name.replace(' ', '_')}"
        if method:
            record = quantize_model(model, method, group_size)
            backends = sorted({layer["backend"] for layer in record["layers"].values()})
            save_quantized(model, record, src, out)
        else:
            backends = ["-"]
            save_model(model, out)
        del model
        gc.collect()
        cuda = device.startswith("cuda")
        peak, kind = None, "-"
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()  # the peak covers load + decode of this variant
            kind = "cuda"
        elif process_peak:  # a fresh process, run while this one holds no model
            load_dtype = dtype if not method else None
            peak = process_peak_memory(out, prompt, new_tokens, device=device, dtype=load_dtype)["peak_bytes"]
            kind = "process"
        model = load_model(out, device=device, dtype=dtype if not method else None)
        decoder = BatchDecoder(model)
        speed = decode_speed(decoder, prompt, new_tokens, repeats=repeats, reset_peak=False)
        assert speed["new_tokens"] == new_tokens  # random weights: no early EOS
        if cuda:
            peak = int(speed["cuda_peak_bytes"])
        rows.append(
            {
                "family": family,
                "variant": name,
                "backend": "+".join(backends),
                "tokens_per_s": speed["tokens_per_s"],
                "peak_memory": kind,
                "peak_memory_bytes": peak,
                "weight_bytes": model_bytes(model),
                "file_bytes": weights_size(out),
            }
        )
        del model, decoder
    ratios = {"tokens_per_s": "speed_x", "peak_memory_bytes": "peak_x", "weight_bytes": "weight_x"}
    return add_ratios(rows, {**ratios, "file_bytes": "file_x"})


def mib_and_ratio(value: float | None, ratio: float | None, digits: int = 1) -> list[str]:
    """The two cells of a measured size: MiB and its ratio to fp32 ("-" for what was not measured)."""
    if value is None:
        return ["-", "-"]
    return [f"{value / 2**20:.{digits}f}", f"{ratio:.2f}x" if ratio is not None else "-"]


def add_ratios(rows: list[dict], columns: dict[str, str]) -> list[dict]:
    """Set each row's ratio to the first row (fp32, same run) for every `column: ratio key` pair; None where
    either value was not measured."""
    base = rows[0]
    for row in rows:
        for column, ratio in columns.items():
            known = row[column] is not None and bool(base[column])
            row[ratio] = row[column] / base[column] if known else None
    return rows


def kernel_notes(rows: list[dict], device: str) -> str:
    """One line per quantized kernel that ran: what it does, hence why it is slower on CPU."""
    used = sorted({k for r in rows for k in r["backend"].split("+") if k in KERNELS})
    where = " on CPU" if not device.startswith("cuda") else ""
    lines = [f"- kernel `{k}`{where}: {KERNELS[k]}." for k in used]
    if used and not device.startswith("cuda"):
        lines.append(
            "- for fast CPU decoding use llama.cpp's Q8_0/Q4_K kernels: `biomamba export MODEL -o OUT --format "
            "gguf --quant q4_k_m` (benchmarks/gguf_decode.py)."
        )
    return "\n".join(lines) + ("\n" if lines else "")


def table(rows: list[dict], device: str) -> str:
    from biomamba.utils.markdown import markdown_table

    kinds = {r["peak_memory"] for r in rows} - {"-"}
    peak = f"peak memory ({kinds.pop()})" if len(kinds) == 1 else "peak memory"
    head = ["model", "variant", "kernel", "decode tok/s", "speed vs fp32", f"{peak} MiB", "vs fp32"]
    head += ["weight bytes MiB", "vs fp32", "file MiB", "vs fp32"]
    cells = [
        [r["family"], r["variant"], r["backend"], f"{r['tokens_per_s']:.1f}", f"{r['speed_x']:.2f}x"]
        + mib_and_ratio(r["peak_memory_bytes"], r["peak_x"])
        + mib_and_ratio(r["weight_bytes"], r["weight_x"])
        + mib_and_ratio(r["file_bytes"], r["file_x"])
        for r in rows
    ]
    return "\n".join(markdown_table(head, cells)) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--families", default="mamba2,llama")
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    parser.add_argument(
        "--process-peak",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CPU: measure each variant's peak RSS in a fresh process (a few seconds per variant).",
    )
    parser.add_argument("--tiny", action="store_true", help="Seconds-long smoke run (tests use it).")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.new_tokens, args.repeats = "tiny", 4, 1
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            rows += measure(
                family,
                args.size,
                args.device,
                args.new_tokens,
                args.repeats,
                args.group_size,
                Path(tmp),
                args.process_peak,
            )
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine()
    )
    header = (
        f"command: benchmarks/compress_quantize.py {' '.join(argv if argv is not None else sys.argv[1:])}\n"
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}  device: {args.device} ({device_name}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, size {args.size}, "
        f"{args.new_tokens} new tokens, best of {args.repeats}\n"
    )
    print(header + "\n" + table(rows, args.device) + "\n" + kernel_notes(rows, args.device))
    result = {"header": header, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
