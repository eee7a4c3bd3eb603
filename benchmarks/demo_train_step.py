"""The demo's training step under its CPU settings: threads, OpenMP's wait policy, scan recomputation.

fwd + bwd + AdamW of the demo recipe's model (`recipes/demo.yaml`'s `model:` section) at its batch (8 x 128
tokens), each setting in a process of its own (OpenMP reads OMP_WAIT_POLICY once, when torch loads), the
settings interleaved round by round so a machine whose speed drifts affects them alike; optionally with
`--busy N` processes spinning on N cores, as other jobs do on a shared machine. Ratios are against the
demo's previous settings (one thread, the scan recomputed in backward), measured in the same run.

    python benchmarks/demo_train_step.py --busy 0 1 --rounds 3 --steps 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# name: (torch threads, OMP_WAIT_POLICY or None for OpenMP's default, recompute_scan)
SETTINGS = {
    "1 thread, recompute (before)": (1, None, True),
    "1 thread": (1, None, False),
    "2 threads, spinning": (2, None, False),
    "2 threads, passive (the demo)": (2, "PASSIVE", False),
}
BASELINE = "1 thread, recompute (before)"


def step_seconds(threads: int, recompute: bool, steps: int, warmup: int, batch: int, seq_len: int) -> float:
    """Median seconds of one training step, in this process (run as the child of `main`)."""
    import torch

    from biomamba.config import load_recipe_dict, load_section
    from biomamba.models.config import ModelConfig

    torch.set_num_threads(threads)
    section = load_section(
        load_recipe_dict(ROOT / "recipes" / "demo.yaml"), "model", ModelConfig, "demo.yaml"
    )
    model = section.model_copy(update={"recompute_scan": recompute}).build(seed=0, vocab_size=1024)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 1024, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    times = []
    for index in range(warmup + steps):
        started = time.perf_counter()
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if index >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def _child(name: str, args: argparse.Namespace) -> float:
    threads, policy, recompute = SETTINGS[name]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, __file__, "--child", json.dumps([threads, recompute]), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--seq-len", str(args.seq_len)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def measure(busy: int, args: argparse.Namespace) -> dict[str, float]:
    """Median step seconds of every setting with `busy` spinning processes alongside."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        samples: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.rounds):
            for name in SETTINGS:
                samples[name].append(_child(name, args))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    return {name: statistics.median(values) for name, values in samples.items()}


def markdown(rows: dict[int, dict[str, float]]) -> str:
    lines = ["| busy cores | setting | s per step | speed vs before |", "|---:|---|---:|---:|"]
    for busy, seconds in rows.items():
        for name, value in seconds.items():
            lines.append(f"| {busy} | {name} | {value:.3f} | **{seconds[BASELINE] / value:.2f}x** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--busy", type=int, nargs="+", default=[0, 1], help="Spinning processes per table row."
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        threads, recompute = json.loads(args.child)
        print(step_seconds(threads, recompute, args.steps, args.warmup, args.batch, args.seq_len))
        return {}
    rows = {busy: measure(busy, args) for busy in args.busy}
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
