"""Serving throughput: N concurrent HTTP clients against `biomamba serve` vs the same N prompts one by one.

    .venv/bin/python benchmarks/serve_throughput.py --clients 8 --new-tokens 32

A Mamba2 and a Llama (random weights, built here) are served on 127.0.0.1 by biomamba's server. Baseline:
the same prompts generated sequentially in-process with `biomamba.serve.engine.generate_text` (no HTTP,
batch 1) — what a user gets from `biomamba generate` in a loop. Concurrent: N threads each POST one
/v1/completions request at once (greedy, fixed max_tokens, ignore EOS by using a model-free stop-less
prompt); the server batches them. Reported: generated tokens/s for both and their ratio (same run), the
batch sizes the engine formed, and that every concurrent answer equals its sequential one (correctness).
`--tiny` is a seconds-long version (tests/serve/test_benchmarks.py runs it).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = "patient aspirin metformin glucose insulin trial cohort dose renal hepatic cardiac therapy".split()


def tokenizer_for_bench():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


def run(family: str, size: str, clients: int, new_tokens: int, tokenizer) -> dict:
    import compress_quantize
    import httpx
    from compress_quantize import SIZES, build

    from biomamba.models.decoding import BatchDecoder
    from biomamba.serve.config import ServeConfig
    from biomamba.serve.engine import generate_text
    from biomamba.serve.server import RunningServer

    compress_quantize.VOCAB = len(tokenizer)
    assert size in SIZES
    model = build(family, size).eval()
    prompts = [
        " ".join(WORDS[i % len(WORDS) :] + WORDS[: i % len(WORDS)])[: 20 + 7 * i] for i in range(clients)
    ]
    # EOS can end a random model's answer early; the token counts below are what was really generated.
    decoder = BatchDecoder(model, vocab_size=len(tokenizer))
    list(generate_text(decoder, tokenizer, prompts[0], max_new_tokens=2))  # warm-up
    started = time.perf_counter()
    sequential = ["".join(generate_text(decoder, tokenizer, p, max_new_tokens=new_tokens)) for p in prompts]
    seq_s = time.perf_counter() - started

    cfg = ServeConfig(port=0, max_batch_size=clients, batch_wait_ms=20, max_new_tokens=new_tokens)
    with (
        RunningServer(model, tokenizer, cfg, model_name=family) as server,
        httpx.Client(timeout=600) as client,
    ):
        client.post(
            f"{server.url}/v1/completions", json={"prompt": prompts[0], "max_tokens": 2, "temperature": 0}
        )
        server.engine.batch_sizes.clear()

        def ask(prompt: str) -> dict:
            body = {"prompt": prompt, "max_tokens": new_tokens, "temperature": 0}
            return client.post(f"{server.url}/v1/completions", json=body).json()

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(ask, prompts))
        conc_s = time.perf_counter() - started
        batches = list(server.engine.batch_sizes)
    tokens = sum(a["usage"]["completion_tokens"] for a in answers)
    same = [a["choices"][0]["text"] for a in answers] == sequential
    return {
        "family": family,
        "clients": clients,
        "tokens": tokens,
        "sequential_tok_s": tokens / seq_s,
        "concurrent_tok_s": tokens / conc_s,
        "speedup": seq_s / conc_s,
        "batches": batches,
        "same_text": same,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--families", default="mamba2,llama")
    parser.add_argument("--tiny", action="store_true", help="Seconds-long smoke run (tests use it).")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.clients, args.new_tokens = "tiny", 3, 4
    import torch

    from biomamba.utils.markdown import markdown_table

    tokenizer = tokenizer_for_bench()
    rows = [run(f, args.size, args.clients, args.new_tokens, tokenizer) for f in args.families.split(",")]
    print(
        f"command: benchmarks/serve_throughput.py {' '.join(argv if argv is not None else sys.argv[1:])}\n"
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}  cpu: {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, size {args.size}\n"
    )
    head = "model | clients | tokens | sequential tok/s | concurrent tok/s | speedup | batches formed | same text"
    rates = ("sequential_tok_s", "concurrent_tok_s")
    cells = [
        [r["family"], r["clients"], r["tokens"], *(f"{r[k]:.1f}" for k in rates), f"{r['speedup']:.2f}x"]
        + [r["batches"], r["same_text"]]
        for r in rows
    ]
    print("\n".join(markdown_table(head.split(" | "), cells)))
    return rows


if __name__ == "__main__":
    main()
