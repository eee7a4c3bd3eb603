"""Latency of short requests mixed with long ones: continuous batching vs run-to-completion, same run.

    .venv/bin/python benchmarks/serve_latency.py --long 4 --long-tokens 128 --short 16 --short-tokens 4 --gap-ms 200

A Mamba2 and a Llama (random weights, built here as in benchmarks/compress_quantize.py) are served on
127.0.0.1 by biomamba's server twice: with `continuous_batching: false` (the baseline: a batch runs to its
end before waiting requests start, which is how the server worked before) and with it on (waiting requests
join the running batch between decode steps). The workload is the same for both: `--long` requests of
`--long-tokens` sent at once, then `--short` requests of `--short-tokens` sent one every `--gap-ms` while
the long ones decode. Reported per mode: p50 / p99 / max end-to-end latency of the short requests, the
time until the last long one finished, and whether every answer equals the other mode's (greedy, so the
schedule must not change the text). `--tiny` is a seconds-long version (tests/serve/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def workload(model, tokenizer, args: argparse.Namespace, continuous: bool) -> dict:  # noqa: ANN001
    """Serve `model` in one mode and play the mixed workload against it; latencies in seconds."""
    import httpx
    from serve_throughput import WORDS

    from biomamba.serve.config import ServeConfig
    from biomamba.serve.server import RunningServer

    cfg = ServeConfig(
        port=0,
        max_batch_size=args.long + args.short,
        batch_wait_ms=5,
        max_new_tokens=max(args.long_tokens, args.short_tokens),
        continuous_batching=continuous,
    )
    prompts = [" ".join(WORDS[i % len(WORDS) :] + WORDS[: i % len(WORDS)])[: 20 + 3 * i] for i in range(40)]
    answers: dict[str, str] = {}
    short_latency: list[float] = []
    long_done: list[float] = []
    lock = threading.Lock()

    with (
        RunningServer(model, tokenizer, cfg, model_name="bench") as server,
        httpx.Client(timeout=600) as client,
    ):

        def ask(key: str, prompt: str, tokens: int, into: list[float], started: float) -> None:
            body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0}
            sent = time.perf_counter()
            r = client.post(f"{server.url}/v1/completions", json=body)
            r.raise_for_status()
            now = time.perf_counter()
            with lock:
                answers[key] = r.json()["choices"][0]["text"]
                into.append(now - (sent if into is short_latency else started))

        ask("warm", prompts[0], 2, [], time.perf_counter())
        started = time.perf_counter()
        threads = [
            threading.Thread(target=ask, args=(f"long{i}", prompts[i], args.long_tokens, long_done, started))
            for i in range(args.long)
        ]
        for t in threads:
            t.start()
        time.sleep(args.gap_ms / 1000)  # the long ones are decoding when the first short one arrives
        for i in range(args.short):
            prompt = prompts[(args.long + i) % len(prompts)]
            t = threading.Thread(
                target=ask, args=(f"short{i}", prompt, args.short_tokens, short_latency, started)
            )
            t.start()
            threads.append(t)
            time.sleep(args.gap_ms / 1000)
        for t in threads:
            t.join()
    return {"short": short_latency, "long_done_s": max(long_done), "answers": answers}


def run(family: str, args: argparse.Namespace, tokenizer) -> list[dict]:  # noqa: ANN001
    import compress_quantize
    from compress_quantize import build

    compress_quantize.VOCAB = len(tokenizer)
    model = build(family, args.size).eval()
    modes = {
        name: workload(model, tokenizer, args, continuous)
        for name, continuous in (("run-to-completion", False), ("continuous", True))
    }
    same = modes["run-to-completion"]["answers"] == modes["continuous"]["answers"]
    base_p50 = percentile(modes["run-to-completion"]["short"], 50)
    base_p99 = percentile(modes["run-to-completion"]["short"], 99)
    rows = []
    for name, result in modes.items():
        p50, p99 = percentile(result["short"], 50), percentile(result["short"], 99)
        rows.append(
            {
                "family": family,
                "mode": name,
                "p50_s": p50,
                "p99_s": p99,
                "max_s": max(result["short"]),
                "p50_ratio": p50 / base_p50,
                "p99_ratio": p99 / base_p99,
                "long_done_s": result["long_done_s"],
                "same_text": same,
                "shorts": len(result["short"]),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--families", default="mamba2,llama")
    parser.add_argument("--long", type=int, default=4, help="Long requests, sent at once.")
    parser.add_argument("--long-tokens", type=int, default=128)
    parser.add_argument("--short", type=int, default=16, help="Short requests, one every --gap-ms.")
    parser.add_argument("--short-tokens", type=int, default=4)
    parser.add_argument("--gap-ms", type=float, default=200.0)
    parser.add_argument("--tiny", action="store_true", help="Seconds-long smoke run (tests use it).")
    args = parser.parse_args(argv)
    if args.tiny:
        vars(args).update(size="tiny", long=1, long_tokens=24, short=3, short_tokens=2, gap_ms=20)
    import torch
    from serve_throughput import tokenizer_for_bench

    from biomamba.utils.markdown import markdown_table

    tokenizer = tokenizer_for_bench()
    rows = [row for family in args.families.split(",") for row in run(family, args, tokenizer)]
    print(
        f"command: benchmarks/serve_latency.py {' '.join(argv if argv is not None else sys.argv[1:])}\n"
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}  cpu: {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, size {args.size}\n"
    )
    head = "model | mode | short p50 s | short p99 s | short max s | p50 vs baseline | p99 vs baseline | "
    head += "last long done s | same text"
    cells = [
        [r["family"], r["mode"], *(f"{r[k]:.3f}" for k in ("p50_s", "p99_s", "max_s"))]
        + [f"{r['p50_ratio']:.2f}x", f"{r['p99_ratio']:.2f}x", f"{r['long_done_s']:.2f}", r["same_text"]]
        for r in rows
    ]
    print("\n".join(markdown_table(head.split(" | "), cells)))
    return rows


if __name__ == "__main__":
    main()
