"""Training-step throughput of Mamba2 implementations on the SAME weights: fwd + bwd + AdamW.

Compares biomamba's pure-PyTorch Mamba2 with transformers' Mamba2ForCausalLM (its pure-torch path when the
CUDA extensions are absent) and, when importable on CUDA, mamba-ssm's reference (Mamba2 layer,
use_mem_eff_path=False: nn.Conv1d + the Triton SSD kernel; wheel from ../shared/tools/
mamba-ssm-reference-wheel.sh). Reports tokens/s, MFU = 6 * params * tokens/s / peak (989 TFLOP/s = H100
dense bf16) and peak memory (CUDA only). Each implementation runs in the same process, one after another.

    python benchmarks/models_train_step.py --preset 130m --batch 8 --seq-len 2048 --device cuda   # GPU
    python benchmarks/models_train_step.py --tiny --device cpu                                       # seconds

Absolute CPU numbers mean little; the CPU figure worth reporting is the ratio biomamba / transformers
measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from biomamba.models import create_model, save_model
from biomamba.models.mamba2 import Mamba2Config

H100_BF16_FLOPS = 989e12
# biomamba with another scan backend (config.kernels): torch.compile'd scan, mamba-ssm's or fla's Triton kernels
BIOMAMBA_KERNELS = {"biomamba-compile": "torch_compile", "biomamba-triton": "triton", "biomamba-fla": "fla"}


def _config(args: argparse.Namespace) -> Mamba2Config:
    from biomamba.models.presets import preset_config

    if args.tiny:
        return Mamba2Config(d_model=64, n_layer=2, vocab_size=256, d_state=16, headdim=16, chunk_size=32)
    cfg = preset_config(args.preset)
    if args.n_layer:
        cfg = cfg.replace(n_layer=args.n_layer)
    if args.d_model:
        cfg = cfg.replace(d_model=args.d_model)
    if args.vocab_size:
        cfg = cfg.replace(vocab_size=args.vocab_size)
    return cfg.replace(chunk_size=args.chunk_size) if args.chunk_size else cfg


def _build(impl: str, model_dir: Path, device: str, compile_model: bool) -> torch.nn.Module:
    if impl == "biomamba":
        from biomamba.models import load_model

        model = load_model(model_dir, device=device)
        model.config.kernels = "torch"
    elif impl in BIOMAMBA_KERNELS:
        from biomamba.models import load_model

        model = load_model(model_dir, device=device)
        model.config.kernels = BIOMAMBA_KERNELS[impl]
    elif impl == "transformers":
        from transformers import Mamba2ForCausalLM

        model = Mamba2ForCausalLM.from_pretrained(model_dir).to(device)
    elif impl == "mamba-ssm":
        model = _mamba_ssm_reference(model_dir, device)
    else:
        raise ValueError(impl)
    model.train()
    return torch.compile(model) if compile_model else model


def _mamba_ssm_reference(model_dir: Path, device: str) -> torch.nn.Module:
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    from biomamba.models.checkpoint import (
        config_from_hf,
        config_to_ssm,
        hf_to_ssm_keys,
        read_config,
        read_weights,
    )

    cfg = config_to_ssm(config_from_hf(read_config(model_dir)))
    cfg["ssm_cfg"] = {**cfg["ssm_cfg"], "use_mem_eff_path": False}
    cfg.pop("norm_epsilon", None)
    model = MambaLMHeadModel(MambaConfig(**cfg), device=device, dtype=torch.float32)
    state = hf_to_ssm_keys(read_weights(model_dir))
    state.setdefault("lm_head.weight", state["backbone.embedding.weight"])
    model.load_state_dict(state)
    return model


def _loss(impl: str, model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    if impl == "mamba-ssm":
        logits = model(ids).logits
        return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
    return model(input_ids=ids, labels=ids).loss


def measure(
    impl: str, model_dir: Path, args: argparse.Namespace, n_params: int, batch: int
) -> dict[str, Any]:
    device = args.device
    model = _build(impl, model_dir, device, args.compile)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.startswith("cuda"))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, min(256, args.vocab_size or 256), (batch, args.seq_len), generator=gen).to(device)
    autocast = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        if args.bf16
        else contextlib.nullcontext()
    )
    cuda = device.startswith("cuda")

    def step() -> float:
        with autocast:
            loss = _loss(impl, model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        for _ in range(args.warmup):
            step()
        _sync(cuda)
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        _sync(cuda)
        elapsed = time.perf_counter() - start
    except torch.OutOfMemoryError:
        model = opt = None  # free device memory before the next implementation
        torch.cuda.empty_cache()
        return {"impl": impl, "batch": batch, "error": "out of memory"}
    tokens_per_s = batch * args.seq_len * args.steps / elapsed
    result = {
        "impl": impl,
        "batch": batch,
        "seq_len": args.seq_len,
        "tokens_per_s": tokens_per_s,
        "step_s": elapsed / args.steps,
        "loss": loss,
        "mfu": 6 * n_params * tokens_per_s / args.peak_flops if cuda else None,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    model = opt = None
    if cuda:
        torch.cuda.empty_cache()
    return result


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def _available(impl: str, device: str) -> bool:
    if impl in ("mamba-ssm", "biomamba-triton"):
        from biomamba.models.kernels import triton_chunk_scan

        return device.startswith("cuda") and triton_chunk_scan() is not None
    if impl == "biomamba-fla":
        from biomamba.models.kernels import fla_chunk_scan

        return device.startswith("cuda") and fla_chunk_scan() is not None
    return True


def _markdown(rows: list[dict[str, Any]], header: dict[str, Any]) -> str:
    lines = [
        f"`{header['command']}` on {header['machine']} ({header['date']}), model {header['model']} "
        f"({header['params']:,} params), seq {header['seq_len']}, bf16 autocast: {header['bf16']}",
        "",
        "| impl | batch | tokens/s | ratio vs transformers | MFU | peak GiB |",
        "|---|---|---|---|---|---|",
    ]
    base = next((r["tokens_per_s"] for r in rows if r["impl"] == "transformers" and "error" not in r), None)
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['impl']} | {r['batch']} | {r['error']} | | | |")
            continue
        ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        lines.append(f"| {r['impl']} | {r['batch']} | {r['tokens_per_s']:,.0f} | {ratio} | {mfu} | {mem} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="130m")
    parser.add_argument("--n-layer", type=int, default=None, help="Override depth (e.g. a quick CPU run).")
    parser.add_argument("--d-model", type=int, default=None, help="Override width.")
    parser.add_argument(
        "--vocab-size", type=int, default=None, help="Override vocabulary (small: mixer-bound)."
    )
    parser.add_argument("--tiny", action="store_true", help="A test-sized model (CPU, seconds).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--transformers-batch", type=int, default=None, help="Batch for transformers (OOM).")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile every implementation.")
    parser.add_argument("--impl", nargs="+", default=["biomamba", "transformers", "mamba-ssm"])
    parser.add_argument("--peak-flops", type=float, default=H100_BF16_FLOPS)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results as JSON here.")
    args = parser.parse_args(argv)
    if args.tiny:
        args.seq_len = min(args.seq_len, 64)
        args.batch = min(args.batch, 2)
        args.steps = min(args.steps, 2)
        args.warmup = min(args.warmup, 1)
    if args.bf16 is None:
        args.bf16 = args.device.startswith("cuda")
    cfg = _config(args)
    model = create_model(cfg, seed=0)
    n_params = model.num_parameters()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        save_model(model, model_dir)
        del model
        for impl in args.impl:
            if not _available(impl, args.device):
                print(
                    f"skip {impl}: needs its Triton kernels (mamba-ssm or fla-core) on CUDA", file=sys.stderr
                )
                continue
            batch = (
                args.transformers_batch if impl == "transformers" and args.transformers_batch else args.batch
            )
            rows.append(measure(impl, model_dir, args, n_params, batch))
            print(json.dumps(rows[-1]), file=sys.stderr)
    header = {
        "command": "python benchmarks/models_train_step.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": _machine(args.device),
        "date": time.strftime("%Y-%m-%d"),
        "model": "tiny" if args.tiny else args.preset,
        "params": n_params,
        "seq_len": args.seq_len,
        "bf16": args.bf16,
    }
    print(_markdown(rows, header))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    return rows


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    threads = torch.get_num_threads()
    return f"CPU {platform.processor() or platform.machine()} ({threads} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')})"


if __name__ == "__main__":
    main()
