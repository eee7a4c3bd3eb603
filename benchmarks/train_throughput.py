"""Trainer throughput: biomamba's Trainer end to end vs the bare model step vs transformers' Trainer.

Three measurements in ONE process, on the same model initialisation, data and batch:

1. bare step: a hand-written loop `forward -> cross-entropy -> backward -> clip -> AdamW step` on batches
   already on the device (no data loading, no logging, no checks): the ceiling a trainer can reach;
2. biomamba: `biomamba.train.Trainer` reading packed shards from disk (memory-mapped), with its per-step
   checks (non-finite guard, global token counting), JSON-lines logging and the sum-loss normalisation;
   evaluation and checkpoints are off during the timed steps;
3. transformers: `transformers.Trainer` on the same windows (GPT-2 only; the reference users know).

tokens/s are counted over the steps after `--warmup` (timestamps taken at each step end, CUDA-synchronised),
MFU = tokens/s x training FLOPs per token / peak (989 TFLOP/s bf16 for an H100).

    python benchmarks/train_throughput.py --model gpt2-124m --device cuda --batch 8 --seq-len 1024   # GPU
    python benchmarks/train_throughput.py --model mamba2-130m --device cuda --batch 8 --seq-len 1024
    python benchmarks/train_throughput.py --tiny --device cpu                                          # seconds

On CPU only the ratios measured in the same run mean anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from biomamba.data.shards import FORMAT_VERSION, TokenShards, token_dtype, write_shard
from biomamba.utils.atomic import write_json


def build_model(name: str, vocab: int, seq_len: int, seed: int = 0, kernels: str = "auto") -> torch.nn.Module:
    torch.manual_seed(seed)
    if name.startswith("gpt2"):
        from transformers import GPT2Config, GPT2LMHeadModel

        dims = {"gpt2-124m": (768, 12, 12), "gpt2-tiny": (64, 2, 2)}[name]
        config = GPT2Config(
            vocab_size=vocab, n_positions=max(seq_len, 64), n_embd=dims[0], n_layer=dims[1], n_head=dims[2],
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        )  # fmt: skip
        return GPT2LMHeadModel(config)
    from biomamba.models import create_model

    if name == "mamba2-tiny":
        model = create_model(
            {"d_model": 64, "n_layer": 2, "vocab_size": vocab, "d_state": 16, "headdim": 16}, seed=seed
        )
    else:
        model = create_model(name.removeprefix("mamba2-"), seed=seed, vocab_size=vocab)
    model.config.kernels = kernels  # the Mamba2 scan backend (biomamba.models.kernels)
    return model


def write_corpus(root: Path, vocab: int, tokens: int, seed: int = 0) -> Path:
    """Random documents (lengths 50..2000) in the shard format, enough for every measured step."""
    rng = np.random.default_rng(seed)
    docs, total = [], 0
    while total < tokens:
        length = int(rng.integers(50, 2000))
        docs.append([*rng.integers(1, vocab, size=length - 1).tolist(), 0])
        total += length
    dtype = token_dtype(vocab)
    record = write_shard(root, "train/shard-00000.bin", docs, dtype)
    write_json(
        root / "manifest.json",
        {"format": FORMAT_VERSION, "dtype": dtype.str, "vocab_size": vocab, "eos_token_id": 0,
         "splits": {"train": {"shards": [record.to_json()]}}},
    )  # fmt: skip
    return root


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(stamps: list[float], tokens_per_step: int, warmup: int) -> float:
    timed = stamps[warmup:]
    return (len(timed) - 1) * tokens_per_step / (timed[-1] - timed[0])


def bare_step(args: argparse.Namespace, device: torch.device, corpus: Path) -> dict[str, Any]:
    from biomamba.train.batches import PackedBatches

    model = build_model(args.model, args.vocab, args.seq_len, kernels=args.kernels).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=device.type == "cuda")
    source = PackedBatches(TokenShards(corpus), args.seq_len, args.batch, seed=0)
    batches = [{k: v.to(device) for k, v in source.next_batch().items()} for _ in range(args.steps)]
    use_seq_idx = args.model.startswith("mamba2")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    stamps = []
    for batch in batches:
        with autocast:
            kwargs = {"seq_idx": batch["seq_idx"]} if use_seq_idx else {}
            logits = model(input_ids=batch["input_ids"], **kwargs).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        stamps.append(time.perf_counter())
    return {"tokens_per_s": _rate(stamps, args.batch * args.seq_len, args.warmup), "model": model}


def biomamba_trainer(
    args: argparse.Namespace, device: torch.device, corpus: Path, out: Path
) -> dict[str, Any]:
    from biomamba.train import CausalLMLoss, PackedBatches, TrainConfig, Trainer

    model = build_model(args.model, args.vocab, args.seq_len, kernels=args.kernels)
    config = TrainConfig(
        seq_len=args.seq_len, micro_batch_size=args.batch, global_batch_size=args.batch, max_steps=args.steps,
        lr=1e-4, schedule="constant", device=str(device), progress=False, compile=args.compile,
        keep_last=1, weight_decay=0.1,
    )  # fmt: skip
    stamps: list[float] = []

    def stamp(trainer: Any, record: dict[str, Any]) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    trainer = Trainer(
        model, PackedBatches(TokenShards(corpus), args.seq_len, args.batch, seed=0),
        CausalLMLoss(use_seq_idx=args.model.startswith("mamba2")), config, out / "biomamba", callbacks=[stamp],
    )  # fmt: skip
    trainer.fit()
    rate = _rate(stamps, args.batch * args.seq_len, args.warmup)
    mfu = rate * trainer.flops_per_token / trainer.peak_flops if trainer.peak_flops else None
    return {"tokens_per_s": rate, "mfu": mfu, "flops_per_token": trainer.flops_per_token}


def transformers_trainer(
    args: argparse.Namespace, device: torch.device, corpus: Path, out: Path
) -> dict[str, Any]:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from biomamba.train.batches import PackedBatches

    source = PackedBatches(TokenShards(corpus), args.seq_len, 1, seed=0)
    rows = []
    for _ in range(args.steps * args.batch):
        batch = source.next_batch()
        ids = torch.cat([batch["input_ids"][0], batch["labels"][0, -1:]])
        rows.append({"input_ids": ids[:-1], "labels": ids[:-1]})  # transformers shifts labels itself
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            _sync(device)
            stamps.append(time.perf_counter())

    arguments = TrainingArguments(
        output_dir=str(out / "hf"), per_device_train_batch_size=args.batch, max_steps=args.steps,
        learning_rate=1e-4, adam_beta2=0.95, weight_decay=0.1, max_grad_norm=1.0, lr_scheduler_type="constant",
        bf16=device.type == "cuda", logging_steps=1, save_strategy="no", report_to=[], dataloader_num_workers=0,
        use_cpu=device.type == "cpu", disable_tqdm=True, seed=0,
    )  # fmt: skip
    model = build_model(args.model, args.vocab, args.seq_len)
    trainer = Trainer(model=model, args=arguments, train_dataset=rows, callbacks=[Stamp()])
    trainer.train()
    return {"tokens_per_s": _rate(stamps, args.batch * args.seq_len, args.warmup)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt2-124m", help="gpt2-124m, mamba2-130m, mamba2-370m, ...")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--compile", action="store_true", help="torch.compile in biomamba's Trainer")
    parser.add_argument("--no-hf", action="store_true", help="skip transformers' Trainer")
    parser.add_argument("--kernels", default="auto", help="Mamba2 scan backend (model.kernels of a recipe)")
    parser.add_argument("--tiny", action="store_true", help="tiny model and sizes: a seconds-long CPU check")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.model = {"gpt2-124m": "gpt2-tiny", "mamba2-130m": "mamba2-tiny"}.get(args.model, args.model)
        args.batch, args.seq_len, args.steps, args.warmup, args.vocab = 2, 64, 8, 2, 512
    if args.steps <= args.warmup + 1:
        parser.error("--steps must exceed --warmup + 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        corpus = write_corpus(out / "corpus", args.vocab, (args.steps * args.batch + 2) * (args.seq_len + 1))
        bare = bare_step(args, device, corpus)
        params = sum(p.numel() for p in bare.pop("model").parameters())
        ours = biomamba_trainer(args, device, corpus, out)
        hf = None
        if args.model.startswith("gpt2") and not args.no_hf:
            hf = transformers_trainer(args, device, corpus, out)
    results: dict[str, Any] = {
        "model": args.model, "params": params, "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(), "batch": args.batch, "seq_len": args.seq_len, "steps": args.steps,
        "warmup": args.warmup, "compile": args.compile, "kernels": args.kernels,
        "bare_tokens_per_s": bare["tokens_per_s"], "biomamba_tokens_per_s": ours["tokens_per_s"],
        "biomamba_mfu": ours["mfu"], "trainer_vs_bare": ours["tokens_per_s"] / bare["tokens_per_s"],
    }  # fmt: skip
    if hf is not None:
        results["transformers_tokens_per_s"] = hf["tokens_per_s"]
        results["biomamba_vs_transformers"] = ours["tokens_per_s"] / hf["tokens_per_s"]
    assert all(math.isfinite(v) for v in results.values() if isinstance(v, float))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
