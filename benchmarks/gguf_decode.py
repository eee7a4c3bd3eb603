"""CPU decode tokens/s and peak RSS: llama.cpp on GGUF (q8_0, q4_k_m) vs biomamba fp32 / int8, same model.

    .venv/bin/python benchmarks/gguf_decode.py --size 130m --new-tokens 64
    .venv/bin/python benchmarks/gguf_decode.py --tiny          # seconds; tests/compress/test_gguf_benchmark.py

The models are those of benchmarks/compress_quantize.py (random weights, built here; `130m` is the
mamba2-130m shape and a Llama of the same width), so the two tables line up. Every variant is written to
disk by biomamba (`save_model`, `biomamba quantize`'s `quantize_model` + `save_quantized`, or
`export_gguf`) and read back before timing. Decode: greedy, batch 1, `--new-tokens` tokens after a
32-token prompt, through the serving decoders (`BatchDecoder` for PyTorch, `GgufDecoder` for llama.cpp),
best of `--repeats`, same thread count for both (all cores). Peak RSS: a fresh process loads the variant and
decodes (`compress.report.process_peak_memory`). Ratios are against biomamba fp32 measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# the same models, timing and cells as the quantize table
from compress_quantize import SIZES, VOCAB, add_ratios, build, mib_and_ratio  # noqa: E402

VARIANTS = ("fp32", "int8", "gguf-q8_0", "gguf-q4_k_m")


def vocab_tokenizer(size: int):
    """A byte-level BPE of exactly `size` tokens, so the GGUF carries a real vocabulary of the model's width."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers import decoders as dec
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(alphabet)}
    merges = []
    for left in alphabet:  # two-character merges fill the vocabulary (llama.cpp's BPE needs merges)
        for right in alphabet:
            if len(vocab) >= size - 1:
                break
            merges.append((left, right))
            vocab[left + right] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = dec.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def save_variant(family: str, size: str, variant: str, tokenizer, folder: Path) -> Path:
    from biomamba.compress.gguf_export import export_gguf
    from biomamba.compress.quantize import quantize_model
    from biomamba.models import save_model
    from biomamba.models.quantized import save_quantized

    src = folder / f"{family}-fp32"
    if not src.exists():
        save_model(build(family, size), src, tokenizer)
    if variant == "fp32":
        return src
    model = build(family, size)
    if variant == "int8":
        out = folder / f"{family}-int8"
        save_quantized(model, quantize_model(model, "int8", 64), src, out)
        return out
    quant = variant.removeprefix("gguf-")
    return export_gguf(model, tokenizer, folder / f"{family}-{quant}.gguf", quant)


def open_decoder(path: Path):
    """(decoder, kernel label) for a saved variant."""
    from biomamba.models.gguf import is_gguf, open_gguf

    if is_gguf(path):
        _, _, decoder = open_gguf(path, n_ctx=512)
        return decoder, "llama.cpp ggml"
    from biomamba.models import load_model
    from biomamba.models.decoding import BatchDecoder
    from biomamba.models.quantized import QUANT_FILE

    kernel = "torch fp32 matmul"
    if (path / QUANT_FILE).is_file():
        record = json.loads((path / QUANT_FILE).read_text())
        kernel = "+".join(sorted({layer["backend"] for layer in record["layers"].values()}))
    return BatchDecoder(load_model(path)), kernel


def measure(family: str, size: str, new_tokens: int, repeats: int, folder: Path, peak: bool) -> list[dict]:
    from biomamba.compress.report import decode_speed, process_peak_memory

    tokenizer = vocab_tokenizer(VOCAB)
    prompt = list(range(5, 37))
    rows = []
    for variant in VARIANTS:
        path = save_variant(family, size, variant, tokenizer, folder)
        gc.collect()
        rss = process_peak_memory(path, prompt, new_tokens)["peak_bytes"] if peak else None
        decoder, kernel = open_decoder(path)
        speed = decode_speed(decoder, prompt, new_tokens, repeats=repeats)
        assert speed["new_tokens"] == new_tokens  # random weights: no early EOS
        size_bytes = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir())
        rows.append(
            dict(
                family=family,
                variant=variant,
                kernel=kernel,
                tokens_per_s=speed["tokens_per_s"],
                peak_bytes=rss,
                file_bytes=size_bytes,
            )
        )
        print(f"measured: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)  # partial runs keep rows
        del decoder
        gc.collect()
    return add_ratios(rows, {"tokens_per_s": "speed_x", "peak_bytes": "peak_x", "file_bytes": "file_x"})


def table(rows: list[dict]) -> str:
    from biomamba.utils.markdown import markdown_table

    head = "model | variant | kernel | decode tok/s | vs fp32 | peak RSS MiB | vs fp32 | file MiB | vs fp32".split(
        " | "
    )
    cells = [
        [r["family"], r["variant"], r["kernel"], f"{r['tokens_per_s']:.1f}", f"{r['speed_x']:.2f}x"]
        + mib_and_ratio(r["peak_bytes"], r["peak_x"], digits=0)
        + mib_and_ratio(r["file_bytes"], r["file_x"])
        for r in rows
    ]
    return "\n".join(markdown_table(head, cells)) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="130m")
    parser.add_argument("--families", default="llama,mamba2")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--process-peak", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    parser.add_argument("--tiny", action="store_true", help="Seconds-long smoke run (tests use it).")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.new_tokens, args.repeats = "tiny", 4, 1
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            rows += measure(family, args.size, args.new_tokens, args.repeats, Path(tmp), args.process_peak)
    header = (
        f"command: benchmarks/gguf_decode.py {' '.join(argv if argv is not None else sys.argv[1:])}\n"
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}  cpu: {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"size {args.size}, {args.new_tokens} new tokens, best of {args.repeats}\n"
    )
    print(header + "\n" + table(rows))
    result = {"header": header, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
