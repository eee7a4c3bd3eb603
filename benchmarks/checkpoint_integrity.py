"""What checkpoint integrity costs: sha256 of every file on save, verification on resume.

Measured in ONE process on one GPT-2 and its AdamW state (+ EMA), written by `biomamba.train.Trainer`:

1. save: `Trainer.save_checkpoint()` end to end (model, EMA, optimizer via DCP, RNG, state, checksums);
2. checksums: `write_checksums` alone on that checkpoint (the part of 1 that integrity adds);
3. load: `Trainer.load_checkpoint()` (safetensors + the restricted DCP reader);
4. verify: `verify_checksums` alone (what `--resume` adds before 3).

Reported as ratios: checksums / save and verify / load. Files are in the OS page cache right after they
are written, so on a cold disk the hashing share is smaller still (reading dominates both).

    python benchmarks/checkpoint_integrity.py                      # ~50M parameters, a few hundred MB
    python benchmarks/checkpoint_integrity.py --tiny               # seconds (what the test runs)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from biomamba.train import CausalLMLoss, TrainConfig, Trainer
from biomamba.train.integrity import verify_checksums, write_checksums


class _NoBatches:
    """The benchmark never trains: checkpoints only need a data position."""

    def next_batch(self) -> dict[str, torch.Tensor]:
        raise RuntimeError("not used")

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _model(tiny: bool) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    size = {"n_embd": 64, "n_layer": 2, "n_head": 2} if tiny else {"n_embd": 512, "n_layer": 8, "n_head": 8}
    return GPT2LMHeadModel(GPT2Config(vocab_size=32000, n_positions=256, **size))


def _timed(action: Any, repeats: int) -> float:
    """Best of `repeats` wall-clock seconds (the least disturbed by the other users of the machine)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="A tiny model: seconds, for the test suite.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(max_steps=1, ema_decay=0.99, progress=False, device="cpu", keep_last=1)
        trainer = Trainer(_model(args.tiny), _NoBatches(), CausalLMLoss(), config, Path(tmp) / "run")
        for param in trainer.model.parameters():  # fill Adam's moments so the optimizer state is full size
            param.grad = torch.randn_like(param)
        trainer.optimizer.step()
        path = trainer.save_checkpoint()
        save_s = _timed(lambda: trainer.save_checkpoint(), args.repeats)
        hash_s = _timed(lambda: write_checksums(path), args.repeats)
        load_s = _timed(lambda: trainer.load_checkpoint(path), args.repeats)
        verify_s = _timed(lambda: verify_checksums(path), args.repeats)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    results = {
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "checkpoint_mb": round(size / 2**20, 1),
        "save_s": save_s,
        "checksums_s": hash_s,
        "load_s": load_s,
        "verify_s": verify_s,
        "checksums_vs_save": hash_s / save_s,
        "verify_vs_load": verify_s / load_s,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
